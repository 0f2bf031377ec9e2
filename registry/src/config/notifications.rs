//! `notifications`: distribution's webhook endpoints (`notifications.endpoints[]`) and
//! `notifications.events.includereferences`, with distribution 2.8.2's defaults.
use std::time::Duration;

use serde_norway::Value;

use super::values::{boolean, go_duration, key_str, section, string, uint};
use super::{err, ConfigError};

/// The `notifications` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// The endpoints that are not `disabled`, in the order configured.
    pub endpoints: Vec<Endpoint>,
    /// `events.includereferences`: manifest events carry `target.references`.
    pub include_references: bool,
}

/// One `notifications.endpoints[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `name`: how logs and metrics call it.
    pub name: String,
    /// `url`: where events are POSTed (http or https).
    pub url: String,
    /// `headers`: added to every POST (a name may have several values).
    pub headers: Vec<(String, String)>,
    /// `timeout` (default 1s): one POST is abandoned after it.
    pub timeout: Duration,
    /// `threshold` (default 10): failures in a row before retries wait `backoff`.
    pub threshold: u64,
    /// `backoff` (default 1s): the wait between attempts once `threshold` is reached.
    pub backoff: Duration,
    /// `ignoredmediatypes` and `ignore.mediatypes`, merged: events of targets of these
    /// media types are not sent.
    pub ignored_media_types: Vec<String>,
    /// `ignore.actions`: events of these actions are not sent (whatever the media types;
    /// in 2.8.2 only when some media type is ignored too).
    pub ignored_actions: Vec<String>,
    /// `queuesize` (this registry's; default 10000): events waiting for this endpoint at
    /// most; when full, the oldest is dropped (and counted).
    pub queue_size: usize,
}

/// The default `queuesize`.
pub const DEFAULT_QUEUE_SIZE: usize = 10_000;

/// Reads `notifications`; disabled endpoints are left out.
pub(super) fn read(v: &Value, warnings: &mut Vec<String>) -> Result<Notifications, ConfigError> {
    let mut n = Notifications::default();
    for (k, v) in section(v, "notifications")? {
        let key = key_str(k);
        match key.as_str() {
            "endpoints" => {
                let list = match v {
                    Value::Null => Vec::new(),
                    Value::Sequence(s) => s.iter().collect(),
                    _ => return Err(err("notifications.endpoints", "must be a list")),
                };
                for (i, e) in list.into_iter().enumerate() {
                    if let Some(e) = read_endpoint(e, i, warnings)? {
                        n.endpoints.push(e);
                    }
                }
            }
            "events" => {
                for (k, v) in section(v, "notifications.events")? {
                    match key_str(k).as_str() {
                        "includereferences" => {
                            n.include_references =
                                boolean(v, "notifications.events.includereferences")?
                        }
                        other => warnings.push(format!(
                            "notifications.events.{other}: unknown key, ignored"
                        )),
                    }
                }
            }
            other => warnings.push(format!("notifications.{other}: unknown key, ignored")),
        }
    }
    let mut names: Vec<&str> = n.endpoints.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(err(
            "notifications.endpoints",
            "two endpoints have the same name",
        ));
    }
    Ok(n)
}

fn read_endpoint(
    v: &Value,
    i: usize,
    warnings: &mut Vec<String>,
) -> Result<Option<Endpoint>, ConfigError> {
    let at = format!("notifications.endpoints[{i}]");
    let mut e = Endpoint {
        name: String::new(),
        url: String::new(),
        headers: Vec::new(),
        timeout: Duration::from_secs(1),
        threshold: 10,
        backoff: Duration::from_secs(1),
        ignored_media_types: Vec::new(),
        ignored_actions: Vec::new(),
        queue_size: DEFAULT_QUEUE_SIZE,
    };
    let mut disabled = false;
    for (k, v) in section(v, &at)? {
        let key = key_str(k);
        let full = format!("{at}.{key}");
        match key.as_str() {
            "name" => e.name = string(v, &full)?,
            "disabled" => disabled = boolean(v, &full)?,
            "url" => e.url = string(v, &full)?,
            "headers" => {
                for (name, values) in section(v, &full)? {
                    let name = key_str(name);
                    let hk = format!("{full}.{name}");
                    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                        return Err(err(&hk, "not a valid header name"));
                    }
                    for value in strings(values, &hk)? {
                        if http::HeaderValue::from_str(&value).is_err() {
                            return Err(err(&hk, "not a valid header value"));
                        }
                        e.headers.push((name.clone(), value));
                    }
                }
            }
            // distribution: zero or less means the default.
            "timeout" => {
                let d = go_duration(v, &full)?;
                if !d.is_zero() {
                    e.timeout = d;
                }
            }
            "threshold" => {
                let t = uint(v, &full)?;
                if t > 0 {
                    e.threshold = t;
                }
            }
            "backoff" => {
                let d = go_duration(v, &full)?;
                if !d.is_zero() {
                    e.backoff = d;
                }
            }
            "ignoredmediatypes" => e.ignored_media_types.extend(strings(v, &full)?),
            "ignore" => {
                for (k, v) in section(v, &full)? {
                    let key = key_str(k);
                    let full = format!("{full}.{key}");
                    match key.as_str() {
                        "mediatypes" => e.ignored_media_types.extend(strings(v, &full)?),
                        "actions" => e.ignored_actions.extend(strings(v, &full)?),
                        other => {
                            warnings.push(format!("{at}.ignore.{other}: unknown key, ignored"))
                        }
                    }
                }
            }
            "queuesize" => {
                let q = uint(v, &full)?;
                if q == 0 {
                    return Err(err(&full, "must be at least 1"));
                }
                e.queue_size = usize::try_from(q).map_err(|_| err(&full, "too large"))?;
            }
            other => warnings.push(format!("{at}.{other}: unknown key, ignored")),
        }
    }
    if disabled {
        return Ok(None);
    }
    let uri: http::Uri = e
        .url
        .parse()
        .map_err(|_| err(&format!("{at}.url"), format!("`{}` is not a URL", e.url)))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(err(
            &format!("{at}.url"),
            format!("`{}` is not an http:// or https:// URL", e.url),
        ));
    }
    if e.name.is_empty() {
        e.name = e.url.clone();
    }
    Ok(Some(e))
}

/// A list of strings, or one string. Numbers and booleans are taken as their text, as
/// distribution's YAML decoder takes them into a string (`X-Version: [2]`).
fn strings(v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
    let one = |x: &Value| match x {
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => string(other, key),
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(s) => s.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::time::Duration;

    #[test]
    fn reads_endpoints_with_distributions_defaults() {
        let c = Config::from_yaml(
            "notifications:
  events:
    includereferences: true
  endpoints:
    - name: scanner
      url: https://scanner.example/events
      headers:
        Authorization: [Bearer abc]
        X-Two: [a, b]
      timeout: 500ms
      threshold: 5
      backoff: 3s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [text/plain]
        actions: [pull]
    - name: off
      disabled: true
      url: http://nowhere
    - name: plain
      url: http://127.0.0.1:9/x
",
        )
        .unwrap();
        let n = &c.notifications;
        assert!(n.include_references);
        assert_eq!(n.endpoints.len(), 2);
        let e = &n.endpoints[0];
        assert_eq!(e.name, "scanner");
        assert_eq!(e.timeout, Duration::from_millis(500));
        assert_eq!((e.threshold, e.backoff), (5, Duration::from_secs(3)));
        assert_eq!(e.headers.len(), 3);
        assert_eq!(
            e.ignored_media_types,
            ["application/octet-stream", "text/plain"]
        );
        assert_eq!(e.ignored_actions, ["pull"]);
        let p = &n.endpoints[1];
        assert_eq!(
            (p.timeout, p.threshold, p.backoff),
            (Duration::from_secs(1), 10, Duration::from_secs(1))
        );
        assert!(!c.warnings.iter().any(|w| w.contains("notifications")));
        assert!(Config::from_yaml(
            "notifications:\n  endpoints:\n    - name: x\n      url: ftp://a\n"
        )
        .is_err());
    }

    /// Every key of distribution 2.8.2's `notifications` section (its
    /// `configuration.Notifications`, `Endpoint`, `Events` and `Ignore`), each set to a
    /// value other than its default: each one is read (honoured), none warned about; a key
    /// 2.8.2 does not have is warned about at every level, never silently dropped.
    #[test]
    fn every_2_8_2_key_is_honoured_and_unknown_ones_are_warned_about() {
        const KEYS_2_8_2: [&str; 11] = [
            "events.includereferences",
            "endpoints[].name",
            "endpoints[].disabled",
            "endpoints[].url",
            "endpoints[].headers",
            "endpoints[].timeout",
            "endpoints[].threshold",
            "endpoints[].backoff",
            "endpoints[].ignoredmediatypes",
            "endpoints[].ignore.mediatypes",
            "endpoints[].ignore.actions",
        ];
        let yaml = "notifications:
  events:
    includereferences: true
  endpoints:
    - name: a
      disabled: false
      url: http://127.0.0.1:9/a
      headers:
        X-One: [1]
      timeout: 2s
      threshold: 4
      backoff: 3s
      ignoredmediatypes: [m/one]
      ignore:
        mediatypes: [m/two]
        actions: [pull, mount]
    - name: b
      disabled: true
      url: http://127.0.0.1:9/b
";
        for k in KEYS_2_8_2 {
            let leaf = k.rsplit(['.', ']']).next().unwrap();
            assert!(
                yaml.contains(&format!(" {leaf}:")),
                "{k} is not in the test"
            );
        }
        let c = Config::from_yaml(yaml).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let n = &c.notifications;
        assert!(n.include_references);
        assert_eq!(n.endpoints.len(), 1, "b is disabled");
        let e = &n.endpoints[0];
        assert_eq!(
            (e.name.as_str(), e.url.as_str()),
            ("a", "http://127.0.0.1:9/a")
        );
        assert_eq!(e.headers, [("X-One".to_string(), "1".to_string())]);
        assert_eq!(e.timeout, Duration::from_secs(2));
        assert_eq!((e.threshold, e.backoff), (4, Duration::from_secs(3)));
        assert_eq!(e.ignored_media_types, ["m/one", "m/two"]);
        assert_eq!(e.ignored_actions, ["pull", "mount"]);

        // 2.8.2's REGISTRY_* overrides reach the section too.
        let env = [(
            "REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES".to_string(),
            "true".to_string(),
        )]
        .into();
        let c = Config::from_yaml_and_env("", &env).unwrap();
        assert!(c.notifications.include_references);

        // Keys 2.8.2 does not have: a warning naming each.
        let c = Config::from_yaml(
            "notifications:
  sinks: []
  events:
    includeall: true
  endpoints:
    - url: http://127.0.0.1:9/a
      retries: 3
      ignore:
        tags: [latest]
",
        )
        .unwrap();
        for w in [
            "notifications.sinks",
            "notifications.events.includeall",
            "notifications.endpoints[0].retries",
            "notifications.endpoints[0].ignore.tags",
        ] {
            assert!(
                c.warnings
                    .iter()
                    .any(|x| x.starts_with(w) && x.contains("ignored")),
                "no warning for {w}: {:?}",
                c.warnings
            );
        }
        assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
    }
}
