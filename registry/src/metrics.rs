//! Prometheus metrics of one registry process, in the text exposition format (0.0.4) that
//! `/metrics` on `http.debug.addr` serves. Families named as distribution 2.8.2 names them
//! where the meaning is the same (`registry_http_requests_total{code,handler,method}`,
//! `registry_http_request_duration_seconds`, `registry_http_in_flight_requests`,
//! `registry_storage_action_seconds{action,driver}`), so its dashboards keep working;
//! the rest are this registry's (bytes in and out, uploads in progress, driver calls by
//! outcome, KS3 requests by status class and the failures the driver retries).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ks3_driver_host::{CallRecord, DriverObserver, Ks3Request};

tokio::task_local! {
    /// The request body bytes the current request's handlers have read (see
    /// [`received`]); set around each request by the server.
    pub(crate) static RECEIVED: Arc<AtomicU64>;
}

/// Counts `n` request body bytes read by the current request (no-op outside one).
pub(crate) fn received(n: usize) {
    let _ = RECEIVED.try_with(|c| c.fetch_add(n as u64, Ordering::Relaxed));
}

/// Bucket bounds (seconds) of the latency histograms: 1 ms to 60 s.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A histogram of durations.
#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        if self.counts.len() != BUCKETS.len() {
            self.counts = vec![0; BUCKETS.len()];
        }
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.counts[i] = self.counts[i].saturating_add(1);
            }
        }
        self.sum += s;
        self.count = self.count.saturating_add(1);
    }
}

/// Label values, in the family's label order.
type Labels = Vec<String>;

#[derive(Debug, Default)]
struct Families {
    requests: BTreeMap<Labels, u64>,
    request_seconds: BTreeMap<Labels, Histogram>,
    bytes_in: BTreeMap<Labels, u64>,
    bytes_out: BTreeMap<Labels, u64>,
    storage_seconds: BTreeMap<Labels, Histogram>,
    storage_calls: BTreeMap<Labels, u64>,
    ks3_requests: BTreeMap<Labels, u64>,
    notify_events: BTreeMap<Labels, u64>,
    notify_failures: BTreeMap<Labels, u64>,
    notify_pending: BTreeMap<Labels, u64>,
}

/// The process's metrics. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
    in_flight: AtomicI64,
    uploads_in_progress: AtomicI64,
    ks3_retryable: AtomicU64,
}

/// One upload in progress, counted until dropped; owned, so it can live in an upload slot.
pub struct UploadCount(Arc<Metrics>);

impl Drop for UploadCount {
    fn drop(&mut self) {
        self.0.uploads_in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The driver reports each call and KS3 request here (`Driver::with_observer`).
impl DriverObserver for Metrics {
    fn call(&self, c: &CallRecord<'_>) {
        self.storage_call(c.operation, c.outcome.as_str(), c.took);
    }

    fn ks3_request(&self, r: &Ks3Request<'_>) {
        self.ks3_request(r.method, r.status);
        if r.retryable {
            self.ks3_retryable();
        }
    }
}

/// Counts a request in flight until dropped.
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Families) -> R) -> R {
        let mut g = self.families.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A request has started; it counts as in flight while the guard lives.
    pub fn request_started(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// A request has been answered.
    pub fn request_done(&self, method: &str, handler: &str, code: u16, took: Duration) {
        self.with(|f| {
            let c = f
                .requests
                .entry(vec![code.to_string(), handler.into(), method.into()])
                .or_default();
            *c = c.saturating_add(1);
            f.request_seconds
                .entry(vec![handler.into(), method.into()])
                .or_default()
                .observe(took);
        });
    }

    /// Request body bytes received, and response body bytes sent.
    pub fn bytes(&self, handler: &str, received: u64, sent: u64) {
        self.with(|f| {
            for (map, n) in [(&mut f.bytes_in, received), (&mut f.bytes_out, sent)] {
                if n > 0 {
                    let c = map.entry(vec![handler.into()]).or_default();
                    *c = c.saturating_add(n);
                }
            }
        });
    }

    /// An upload request carrying blob data has started; it counts while the guard lives.
    pub fn upload_started(self: &Arc<Self>) -> UploadCount {
        self.uploads_in_progress.fetch_add(1, Ordering::Relaxed);
        UploadCount(Arc::clone(self))
    }

    /// One driver call: its operation, `ok` / `not-found` / `error`, and how long it took.
    pub fn storage_call(&self, action: &str, outcome: &str, took: Duration) {
        self.with(|f| {
            f.storage_seconds
                .entry(vec![action.into(), "ks3".into()])
                .or_default()
                .observe(took);
            let c = f
                .storage_calls
                .entry(vec![action.into(), outcome.into()])
                .or_default();
            *c = c.saturating_add(1);
        });
    }

    /// One request sent to KS3, by method and status (`2xx`…, `error` when none came).
    pub fn ks3_request(&self, method: &str, status: Option<u16>) {
        let class = match status {
            Some(s) => format!("{}xx", s / 100),
            None => "error".into(),
        };
        self.with(|f| {
            let c = f
                .ks3_requests
                .entry(vec![method.into(), class])
                .or_default();
            *c = c.saturating_add(1);
        });
    }

    /// One request to KS3 that failed in a way the driver retries. The host cannot see
    /// the retry itself (it is decided inside the sandbox), only the failure that causes
    /// one while `maxretries` allows: so that is what is counted, and named.
    pub fn ks3_retryable(&self) {
        self.ks3_retryable.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` notification events for `endpoint` ended as `outcome` (`delivered`, or
    /// `dropped` from a full queue).
    pub fn notify_events(&self, endpoint: &str, outcome: &str, n: u64) {
        self.with(|f| {
            let c = f
                .notify_events
                .entry(vec![endpoint.into(), outcome.into()])
                .or_default();
            *c = c.saturating_add(n);
        });
    }

    /// One POST of an event to `endpoint` failed (it will be retried).
    pub fn notify_failure(&self, endpoint: &str) {
        self.with(|f| {
            let c = f.notify_failures.entry(vec![endpoint.into()]).or_default();
            *c = c.saturating_add(1);
        });
    }

    /// Events waiting for `endpoint` (queued, and the one being delivered).
    pub fn notify_pending(&self, endpoint: &str, n: usize) {
        self.with(|f| {
            f.notify_pending.insert(vec![endpoint.into()], n as u64);
        });
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.with(|f| {
            counter(
                &mut out,
                "registry_http_requests_total",
                "HTTP requests answered, by status code, handler and method.",
                &["code", "handler", "method"],
                &f.requests,
            );
            histogram(
                &mut out,
                "registry_http_request_duration_seconds",
                "Time to answer an HTTP request (to its response head), by handler and method.",
                &["handler", "method"],
                &f.request_seconds,
            );
            counter(
                &mut out,
                "registry_http_request_bytes_total",
                "Request body bytes received, by handler.",
                &["handler"],
                &f.bytes_in,
            );
            counter(
                &mut out,
                "registry_http_response_bytes_total",
                "Response body bytes sent, by handler.",
                &["handler"],
                &f.bytes_out,
            );
            histogram(
                &mut out,
                "registry_storage_action_seconds",
                "Time of a storage driver call, by action.",
                &["action", "driver"],
                &f.storage_seconds,
            );
            counter(
                &mut out,
                "registry_storage_actions_total",
                "Storage driver calls, by action and outcome (ok, not-found, error).",
                &["action", "outcome"],
                &f.storage_calls,
            );
            counter(
                &mut out,
                "registry_ks3_requests_total",
                "Requests sent to KS3, by method and status class.",
                &["method", "status"],
                &f.ks3_requests,
            );
            if !f.notify_pending.is_empty() {
                counter(
                    &mut out,
                    "registry_notifications_events_total",
                    "Notification events by endpoint and outcome: delivered, or dropped (the oldest of a full queue).",
                    &["endpoint", "outcome"],
                    &f.notify_events,
                );
                counter(
                    &mut out,
                    "registry_notifications_failures_total",
                    "Failed deliveries of notification events (each retried), by endpoint.",
                    &["endpoint"],
                    &f.notify_failures,
                );
                header(
                    &mut out,
                    "registry_notifications_pending",
                    "Notification events waiting for delivery, by endpoint.",
                    "gauge",
                );
                for (values, n) in &f.notify_pending {
                    let _ = writeln!(
                        out,
                        "registry_notifications_pending{} {n}",
                        label_set(&["endpoint"], values, None)
                    );
                }
            }
        });
        gauge(
            &mut out,
            "registry_http_in_flight_requests",
            "HTTP requests being answered.",
            self.in_flight.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "registry_uploads_in_progress",
            "Blob upload requests carrying data being served.",
            self.uploads_in_progress.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP registry_ks3_retryable_failures_total Requests to KS3 that failed in a way the driver retries (a 500, 502, 503 or 504 answer, or none), each followed by a retry while maxretries allows.\n# TYPE registry_ks3_retryable_failures_total counter\nregistry_ks3_retryable_failures_total {}",
            self.ks3_retryable.load(Ordering::Relaxed)
        );
        out
    }
}

/// `{a="x",b="y"}` with the values escaped as the format asks.
fn label_set(names: &[&str], values: &[String], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, labels: &[&str], m: &BTreeMap<Labels, u64>) {
    header(out, name, help, "counter");
    for (values, n) in m {
        let _ = writeln!(out, "{name}{} {n}", label_set(labels, values, None));
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: i64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {v}");
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    labels: &[&str],
    m: &BTreeMap<Labels, Histogram>,
) {
    header(out, name, help, "histogram");
    for (values, h) in m {
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = h.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{} {n}",
                label_set(labels, values, Some(("le", format!("{b}"))))
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{} {}",
            label_set(labels, values, Some(("le", "+Inf".into()))),
            h.count
        );
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            label_set(labels, values, None),
            h.sum
        );
        let _ = writeln!(
            out,
            "{name}_count{} {}",
            label_set(labels, values, None),
            h.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        let guard = m.request_started();
        m.request_done("GET", "manifest", 200, Duration::from_millis(3));
        m.request_done("GET", "manifest", 200, Duration::from_millis(40));
        m.request_done("PUT", "blob_upload_chunk", 201, Duration::from_secs(2));
        m.bytes("blob_upload_chunk", 1000, 0);
        m.storage_call("stat", "ok", Duration::from_micros(900));
        m.ks3_request("GET", Some(200));
        m.ks3_request("PUT", None);
        m.ks3_retryable();
        let text = m.render();
        assert!(text.contains(
            "registry_http_requests_total{code=\"200\",handler=\"manifest\",method=\"GET\"} 2"
        ));
        assert!(text.contains(
            "registry_http_request_duration_seconds_bucket{handler=\"manifest\",method=\"GET\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "registry_http_request_duration_seconds_bucket{handler=\"manifest\",method=\"GET\",le=\"+Inf\"} 2"
        ));
        assert!(
            text.contains("registry_http_request_bytes_total{handler=\"blob_upload_chunk\"} 1000")
        );
        assert!(text.contains("registry_http_in_flight_requests 1"));
        assert!(text
            .contains("registry_storage_action_seconds_count{action=\"stat\",driver=\"ks3\"} 1"));
        assert!(text.contains("registry_ks3_requests_total{method=\"PUT\",status=\"error\"} 1"));
        assert!(text.contains("registry_ks3_retryable_failures_total 1"));
        drop(guard);
        assert!(m.render().contains("registry_http_in_flight_requests 0"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
