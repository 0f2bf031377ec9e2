//! Fault injection: the next N requests matching a method and a path pattern fail with a
//! chosen error, are delayed, or lose their connection mid-body.
//!
//! Text form (CLI `--fault`, admin endpoint): `METHOD:PATTERN:COUNT:ACTION`
//! * `METHOD`: `GET`, `PUT`, … or `*` / empty for any method;
//! * `PATTERN`: a substring of the raw request target `PATH?QUERY` (empty = any; may contain `:`);
//! * `COUNT`: how many matching requests the rule affects;
//! * `ACTION`: `STATUS:CODE` (e.g. `500:InternalError`, `503:SlowDown`), `delay=MS`, `drop`,
//!   `lost` (the request is performed, then the connection closes before any response:
//!   a lost response), or `crc` (a wrong `x-kss-checksum-crc64ecma` on the response).
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status and KS3 error code, without performing the operation.
    Error { status: u16, code: String },
    /// Wait, then serve normally.
    Delay(Duration),
    /// Close the connection mid-transfer: for a request with a body, after reading part of
    /// it (nothing is stored); otherwise after sending the headers and part of the response
    /// body (or nothing at all when the response has no body).
    DropMidBody,
    /// Perform the request in full, then close the connection without answering: the
    /// client cannot tell whether it took effect (a lost response).
    LoseResponse,
    /// Serve normally, but send a wrong `x-kss-checksum-crc64ecma`: what a client sees when
    /// data was corrupted between it and the store.
    CorruptChecksum,
}

/// One rule; `count` is how many more requests it affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// `None` = any method.
    pub method: Option<String>,
    /// Substring of the raw request target `PATH?QUERY`; `""` matches everything.
    pub path_pattern: String,
    pub count: u32,
    pub action: FaultAction,
}

impl FaultRule {
    /// Parses `METHOD:PATTERN:COUNT:ACTION` (see the module docs).
    pub fn parse(spec: &str) -> Result<FaultRule, String> {
        let bad = || {
            format!("bad fault spec {spec:?}: expected METHOD:PATTERN:COUNT:ACTION with ACTION = STATUS:CODE, delay=MS, drop, lost or crc")
        };
        let (method, rest) = spec.split_once(':').ok_or_else(bad)?;
        let (rest, last) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (rest, action) = if last == "drop" {
            (rest, FaultAction::DropMidBody)
        } else if last == "lost" {
            (rest, FaultAction::LoseResponse)
        } else if last == "crc" {
            (rest, FaultAction::CorruptChecksum)
        } else if let Some(ms) = last.strip_prefix("delay=") {
            let ms: u64 = ms.parse().map_err(|_| bad())?;
            (rest, FaultAction::Delay(Duration::from_millis(ms)))
        } else {
            let (rest, status) = rest.rsplit_once(':').ok_or_else(bad)?;
            let status: u16 = status.parse().map_err(|_| bad())?;
            if !(400..=599).contains(&status) || last.is_empty() {
                return Err(bad());
            }
            (
                rest,
                FaultAction::Error {
                    status,
                    code: last.to_string(),
                },
            )
        };
        let (pattern, count) = rest.rsplit_once(':').ok_or_else(bad)?;
        let count: u32 = count.parse().map_err(|_| bad())?;
        let method = match method.trim() {
            "" | "*" | "ANY" | "any" => None,
            m => Some(m.to_ascii_uppercase()),
        };
        Ok(FaultRule {
            method,
            path_pattern: pattern.to_string(),
            count,
            action,
        })
    }

    fn matches(&self, method: &str, target: &str) -> bool {
        self.count > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && target.contains(self.path_pattern.as_str())
    }

    /// The text form, as accepted by [`FaultRule::parse`].
    pub fn to_spec(&self) -> String {
        let action = match &self.action {
            FaultAction::Error { status, code } => format!("{status}:{code}"),
            FaultAction::Delay(d) => format!("delay={}", d.as_millis()),
            FaultAction::DropMidBody => "drop".to_string(),
            FaultAction::LoseResponse => "lost".to_string(),
            FaultAction::CorruptChecksum => "crc".to_string(),
        };
        format!(
            "{}:{}:{}:{action}",
            self.method.as_deref().unwrap_or("*"),
            self.path_pattern,
            self.count
        )
    }
}

/// A cheap, cloneable handle on a server's fault rules.
#[derive(Clone, Default)]
pub struct FaultInjector {
    rules: Arc<Mutex<Vec<FaultRule>>>,
}

impl FaultInjector {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        crate::sync::lock(&self.rules)
    }

    /// Adds a rule; rules are tried in insertion order.
    pub fn inject(&self, rule: FaultRule) {
        if rule.count > 0 {
            self.lock().push(rule);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many faults are still pending (sum of the rules' counts).
    pub fn remaining(&self) -> usize {
        self.lock().iter().map(|r| r.count as usize).sum()
    }

    /// The pending rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.lock().clone()
    }

    /// Consumes one fault for this request, if a rule matches.
    pub fn take(&self, method: &str, target: &str) -> Option<FaultAction> {
        let mut rules = self.lock();
        let idx = rules.iter().position(|r| r.matches(method, target))?;
        let rule = &mut rules[idx];
        rule.count -= 1;
        let action = rule.action.clone();
        if rule.count == 0 {
            rules.remove(idx);
        }
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        let r = FaultRule::parse("PUT:/b/k?partNumber=2:3:500:InternalError").unwrap();
        assert_eq!(r.method.as_deref(), Some("PUT"));
        assert_eq!(r.path_pattern, "/b/k?partNumber=2");
        assert_eq!(r.count, 3);
        assert_eq!(
            r.action,
            FaultAction::Error {
                status: 500,
                code: "InternalError".into()
            }
        );
        let r = FaultRule::parse("*::1:delay=250").unwrap();
        assert_eq!(r.method, None);
        assert_eq!(r.path_pattern, "");
        assert_eq!(r.action, FaultAction::Delay(Duration::from_millis(250)));
        let r = FaultRule::parse("GET:a:b:2:drop").unwrap();
        assert_eq!(r.path_pattern, "a:b");
        assert_eq!(r.action, FaultAction::DropMidBody);
        assert_eq!(FaultRule::parse(&r.to_spec()).unwrap(), r);
        let r = FaultRule::parse("POST:/b/k?uploadId=x:1:lost").unwrap();
        assert_eq!(r.action, FaultAction::LoseResponse);
        assert_eq!(FaultRule::parse(&r.to_spec()).unwrap(), r);
        let r = FaultRule::parse("GET:/b/k:1:crc").unwrap();
        assert_eq!(r.action, FaultAction::CorruptChecksum);
        assert_eq!(FaultRule::parse(&r.to_spec()).unwrap(), r);
        for bad in [
            "",
            "GET",
            "GET:x:1",
            "GET:x:one:drop",
            "GET:x:1:200:OK",
            "GET:x:1:delay=x",
        ] {
            assert!(FaultRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_down() {
        let f = FaultInjector::new();
        f.inject(FaultRule::parse("GET:/b/:2:503:SlowDown").unwrap());
        assert_eq!(f.remaining(), 2);
        assert!(f.take("PUT", "/b/x").is_none());
        assert!(f.take("GET", "/c/x").is_none());
        assert!(f.take("get", "/b/x").is_some());
        assert!(f.take("GET", "/b/y").is_some());
        assert!(f.take("GET", "/b/y").is_none());
        assert_eq!(f.remaining(), 0);
    }
}
