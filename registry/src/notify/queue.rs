//! One endpoint's bounded queue and the task that delivers it: one event per POST, in
//! order, each retried until the endpoint takes it — at once while fewer than `threshold`
//! attempts in a row have failed, then once per `backoff` (distribution's retrying sink).
//! Adding to the queue never waits: when it is full the oldest waiting event is dropped,
//! counted and logged.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::event::EVENTS_MEDIA_TYPE;
use crate::config::NotificationEndpoint;
use crate::metrics::Metrics;

pub(super) type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The delivery client: plain HTTP and HTTPS (webpki's roots and the system's, which
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` can name), HTTP/1.1.
pub(super) fn client() -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        // ring offers the default versions; this does not happen.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// An endpoint's waiting events (each a ready POST body).
pub(super) struct Queue {
    pub endpoint: NotificationEndpoint,
    waiting: Mutex<VecDeque<Bytes>>,
    /// 1 while an event taken from `waiting` is being delivered.
    in_flight: AtomicUsize,
    wake: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    /// Events dropped since the last warning about it.
    dropped_unlogged: Mutex<(u64, Option<std::time::Instant>)>,
}

/// How often dropped events are logged at most (a full queue drops one per event).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

impl Queue {
    pub fn new(endpoint: NotificationEndpoint, metrics: Arc<Metrics>) -> Queue {
        Queue {
            endpoint,
            waiting: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            metrics,
            dropped_unlogged: Mutex::new((0, None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `body`; never waits. A full queue loses its oldest event.
    pub fn push(&self, body: Bytes) {
        let (dropped, len) = {
            let mut q = self.lock();
            let mut dropped = 0u64;
            while q.len() >= self.endpoint.queue_size.max(1) {
                q.pop_front();
                dropped += 1;
            }
            q.push_back(body);
            (dropped, q.len())
        };
        self.wake.notify_one();
        self.metrics.notify_pending(
            &self.endpoint.name,
            len + self.in_flight.load(Ordering::SeqCst),
        );
        if dropped > 0 {
            self.metrics
                .notify_events(&self.endpoint.name, "dropped", dropped);
            self.log_dropped(dropped);
        }
    }

    fn log_dropped(&self, n: u64) {
        let mut g = self
            .dropped_unlogged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        g.0 += n;
        let due = g.1.is_none_or(|t| t.elapsed() >= DROP_LOG_EVERY);
        if due {
            tracing::warn!(
                target: "ks3_registry::notify",
                endpoint = %self.endpoint.name,
                dropped = g.0,
                queue_size = self.endpoint.queue_size,
                "notification queue full: oldest events dropped"
            );
            *g = (0, Some(std::time::Instant::now()));
        }
    }

    /// The oldest event, which is in flight from then on.
    async fn next(&self) -> Bytes {
        loop {
            if let Some(b) = {
                let mut q = self.lock();
                let b = q.pop_front();
                if b.is_some() {
                    self.in_flight.store(1, Ordering::SeqCst);
                }
                b
            } {
                return b;
            }
            // `notify_one` keeps a permit when nobody waits: no wake-up is lost.
            self.wake.notified().await;
        }
    }

    /// Events waiting and being delivered.
    fn pending(&self) -> usize {
        self.lock().len() + self.in_flight.load(Ordering::SeqCst)
    }
}

/// Delivers `queue`'s events, forever (aborted with the registry).
pub(super) async fn deliver(queue: Arc<Queue>, client: HttpClient) {
    let e = &queue.endpoint;
    loop {
        let body = queue.next().await;
        let mut failures: u64 = 0;
        loop {
            match post(&client, e, body.clone()).await {
                Ok(()) => {
                    queue.metrics.notify_events(&e.name, "delivered", 1);
                    if failures > 0 {
                        tracing::info!(
                            target: "ks3_registry::notify",
                            endpoint = %e.name,
                            failures,
                            "notification endpoint recovered"
                        );
                    }
                    break;
                }
                Err(why) => {
                    failures += 1;
                    queue.metrics.notify_failure(&e.name);
                    if failures == 1 || failures == e.threshold {
                        tracing::warn!(
                            target: "ks3_registry::notify",
                            endpoint = %e.name,
                            failures,
                            error = %why,
                            "notification not delivered; retrying"
                        );
                    } else {
                        tracing::debug!(
                            target: "ks3_registry::notify",
                            endpoint = %e.name,
                            failures,
                            error = %why,
                            "notification not delivered; retrying"
                        );
                    }
                    if failures >= e.threshold {
                        tokio::time::sleep(e.backoff).await;
                    }
                }
            }
        }
        queue.in_flight.store(0, Ordering::SeqCst);
        queue.metrics.notify_pending(&e.name, queue.pending());
    }
}

/// One POST of one envelope: delivered when answered 2xx or 3xx within `timeout`.
async fn post(client: &HttpClient, e: &NotificationEndpoint, body: Bytes) -> Result<(), String> {
    let mut req = Request::post(&e.url)
        .header(http::header::CONTENT_TYPE, EVENTS_MEDIA_TYPE)
        .header(
            http::header::USER_AGENT,
            concat!("ks3-registry/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))
        .map_err(|err| format!("building the request: {err}"))?;
    for (k, v) in &e.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            if k == http::header::USER_AGENT || k == http::header::CONTENT_TYPE {
                req.headers_mut().insert(k, v);
            } else {
                req.headers_mut().append(k, v);
            }
        }
    }
    let sent = async {
        let resp = client.request(req).await.map_err(|err| {
            use std::error::Error as _;
            match err.source() {
                Some(s) => format!("{err}: {s}"),
                None => err.to_string(),
            }
        })?;
        let status = resp.status();
        // Read the answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        if status.is_success() || status.is_redirection() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    };
    match tokio::time::timeout(e.timeout, sent).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", e.timeout)),
    }
}
