//! `health.storagedriver`: distribution's storage probe. Every `interval` a `stat` of `/`
//! through the driver (not-found is healthy: an empty bucket is fine); after `threshold`
//! failures in a row the registry is unhealthy until a probe succeeds again. While it
//! is, `/debug/health` answers 503 naming the error and every request on the main port
//! answers distribution 2.8.2's 503 `UNAVAILABLE`.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::{Response, StatusCode};
use ks3_driver_host::Driver;

use crate::app::respond;
use crate::config::StorageHealth;
use crate::http_io::Body;

/// The name distribution gives the check: `storagedriver_<driver name>`.
const CHECK: &str = "storagedriver_ks3";

/// The longest error text kept (it is shown on the debug port).
const MAX_ERROR: usize = 1024;

/// The current verdict; healthy until the probe says otherwise.
#[derive(Debug, Default)]
pub struct Health {
    /// Whether `failing` holds an error: what every request checks, without a lock.
    unhealthy: AtomicBool,
    failing: RwLock<Option<String>>,
}

impl Health {
    /// Whether the registry is unhealthy (the main port then answers 503).
    pub fn is_failing(&self) -> bool {
        self.unhealthy.load(Ordering::Relaxed)
    }

    /// The error of the failing check, if the registry is unhealthy.
    pub fn failing(&self) -> Option<String> {
        self.failing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, v: Option<String>) {
        let failing = v.is_some();
        *self.failing.write().unwrap_or_else(|e| e.into_inner()) = v;
        self.unhealthy.store(failing, Ordering::Relaxed);
    }

    /// `/debug/health`'s answer: 200 `{}`, or 503 `{"storagedriver_ks3":"<error>"}`.
    pub fn debug_response(&self) -> Response<Body> {
        let (status, body) = match self.failing() {
            None => (StatusCode::OK, "{}".to_string()),
            Some(e) => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ CHECK: e }).to_string(),
            ),
        };
        respond(
            status,
            &[("content-type", "application/json; charset=utf-8".into())],
            Body::full(body),
        )
    }
}

/// The main port's answer to every request while unhealthy: 2.8.2's body byte for byte
/// (which it sends, newline included, without `Docker-Distribution-Api-Version`: its
/// health gate sits in front of the API), plus a `Retry-After` of one probe interval
/// (2.8.2 sends none), the soonest the verdict can change. A request that reaches KS3
/// and finds it unreachable, while the probe has not yet failed `threshold` times (or
/// with no health check), gets the same code and status from its handler
/// (`RegistryError::is_unavailable`), so a client sees one answer for one outage.
pub fn unavailable_response(interval: Duration) -> Response<Body> {
    let retry_after = interval.as_secs_f64().ceil().max(1.0) as u64;
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        &[
            ("content-type", "application/json; charset=utf-8".into()),
            ("retry-after", retry_after.to_string()),
        ],
        Body::full(
            r#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable","detail":"health check failed: please see /debug/health"}]}
"#,
        ),
    )
}

/// One probe: `Ok` when storage answered (found or not).
async fn probe(driver: &Driver, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, driver.stat("/")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_not_found() => Ok(()),
        Ok(Err(e)) => Err(one_line(&e.to_string())),
        Err(_) => Err(format!("stat / did not answer within {timeout:?}")),
    }
}

/// An error as a short single line (the driver's errors carry no credentials).
fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR)
        .collect();
    out.truncate(out.trim_end().len());
    out
}

/// Probes every `cfg.interval` (the first after one interval, as distribution's poller)
/// until the task is aborted, and keeps `health` up to date.
pub async fn run(driver: Driver, cfg: StorageHealth, health: Arc<Health>) {
    // A probe may not outlast the interval by much, so a store that stops answering
    // (rather than failing) is noticed too; the driver's own retries fit in 5 s.
    let timeout = cfg.interval.max(Duration::from_secs(5));
    let mut ticks =
        tokio::time::interval_at(tokio::time::Instant::now() + cfg.interval, cfg.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u32 = 0;
    loop {
        ticks.tick().await;
        match probe(&driver, timeout).await {
            Ok(()) => {
                if failures >= cfg.threshold {
                    tracing::info!(target: "ks3_registry::health", "storage health check passes again");
                }
                failures = 0;
                health.set(None);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures >= cfg.threshold {
                    if failures == cfg.threshold {
                        tracing::warn!(
                            target: "ks3_registry::health",
                            "storage health check failed {failures} times in a row: {e}"
                        );
                    }
                    health.set(Some(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_distributions() {
        let h = Health::default();
        assert_eq!(h.debug_response().status(), StatusCode::OK);
        h.set(Some("boom \"x\"".into()));
        assert!(h.is_failing());
        assert_eq!(h.debug_response().status(), StatusCode::SERVICE_UNAVAILABLE);
        h.set(None);
        assert!(!h.is_failing());
        assert_eq!(one_line("a\nb\r\n"), "a b");
        assert_eq!(one_line(&"x".repeat(5000)).len(), MAX_ERROR);
    }
}
