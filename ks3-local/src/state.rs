//! The state every request shares: configuration, objects, fault rules and statistics.
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::Method;

use crate::config::ServerConfig;
use crate::faults::FaultInjector;
use crate::store::Store;
use crate::sync::lock;

/// Longest path kept in a request-log entry (longer ones are cut at a character boundary).
const MAX_LOGGED_PATH: usize = 1024;

/// What the request log keeps of a request target: the path (at most
/// [`MAX_LOGGED_PATH`] bytes) and the query's parameter *names* with their values dropped
/// (`?partNumber=2&uploadId=` — `partNumber`'s small number is kept), so no presigned
/// signature, credential or upload id is ever kept or shown.
pub fn loggable_target(target: &str) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut cut = path.len().min(MAX_LOGGED_PATH);
    while !path.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out: String = path[..cut]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if let Some(q) = query {
        out.push('?');
        for (i, param) in q.split('&').take(32).enumerate() {
            if i > 0 {
                out.push('&');
            }
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (param, None),
            };
            let name: String = name
                .chars()
                .take(64)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            out.push_str(&name);
            if let Some(v) = value {
                out.push('=');
                if name == "partNumber" && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit()) {
                    out.push_str(v);
                }
            }
        }
    }
    out
}

/// Request counters and a bounded log of authenticated requests.
pub struct Stats {
    total: AtomicU64,
    /// TLS handshakes that failed (the client refused the certificate, or spoke no TLS).
    pub tls_handshake_failures: AtomicU64,
    /// Requests received over HTTP/2 (ALPN `h2`).
    pub http2_requests: AtomicU64,
    capacity: usize,
    /// A ring of `(method, loggable target)`; held only to push or to copy the `Arc`s out.
    log: Mutex<VecDeque<(Method, Arc<str>)>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::with_capacity(65_536)
    }
}

impl Stats {
    pub fn with_capacity(capacity: usize) -> Stats {
        Stats {
            total: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            http2_requests: AtomicU64::new(0),
            capacity,
            log: Mutex::new(VecDeque::new()),
        }
    }

    /// Counts a request (any request, authenticated or not).
    pub fn count(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Remembers an authenticated request (see [`loggable_target`]).
    pub fn record(&self, method: &Method, target: &str) {
        if self.capacity == 0 {
            return;
        }
        let entry: Arc<str> = loggable_target(target).into();
        let mut log = lock(&self.log);
        while log.len() >= self.capacity {
            log.pop_front();
        }
        log.push_back((method.clone(), entry));
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The logged requests, oldest first: `METHOD target` (see [`loggable_target`]).
    pub fn log(&self) -> Vec<String> {
        lock(&self.log)
            .iter()
            .map(|(m, t)| format!("{m} {t}"))
            .collect()
    }

    /// Logged requests whose method equals `method` (`""`/`"*"` = any) and whose loggable
    /// target (see [`loggable_target`]) contains `needle`. The scan runs on a copy of the
    /// log's handles: request handling never waits for it.
    pub fn matching(&self, method: &str, needle: &str) -> u64 {
        let snapshot: Vec<(Method, Arc<str>)> = lock(&self.log).iter().cloned().collect();
        snapshot
            .iter()
            .filter(|(m, t)| {
                (method.is_empty() || method == "*" || m.as_str().eq_ignore_ascii_case(method))
                    && t.contains(needle)
            })
            .count() as u64
    }
}

pub struct State {
    pub config: ServerConfig,
    pub store: Store,
    pub creds: HashMap<String, ks3_proto::Secret>,
    pub faults: FaultInjector,
    pub stats: Stats,
    seq: AtomicU64,
    id_prefix: u32,
}

impl State {
    pub fn new(config: ServerConfig) -> anyhow::Result<State> {
        let store = Store::open(config.data_dir.clone(), &config.buckets, config.fsync)?;
        let creds = config.credentials.iter().cloned().collect();
        let log_capacity = config.request_log_capacity;
        Ok(State {
            config,
            store,
            creds,
            faults: FaultInjector::new(),
            stats: Stats::with_capacity(log_capacity),
            seq: AtomicU64::new(0),
            id_prefix: rand::random(),
        })
    }

    pub fn request_id(&self) -> String {
        format!(
            "{:08X}{:016X}",
            self.id_prefix,
            self.seq.fetch_add(1, Ordering::Relaxed)
        )
    }
}
