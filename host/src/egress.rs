//! The guest's only door to the network: wasi:http requests pass [`EgressHooks::send_request`],
//! which refuses every destination but the configured endpoint, clamps the guest's
//! timeouts, logs the request line (a tracing event), and sends through a pooled keep-alive
//! client (hyper-util; hyper-rustls for https, HTTP/1.1 or HTTP/2 as ALPN decides) instead
//! of wasmtime's one-connection-per-request default. Trusted roots: the system's, webpki's
//! and the `cafile` parameter's.
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use ks3_driver_component::config::{Config, Endpoint};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::activity::Activity;
use crate::driver::{DriverObserver, Ks3Request};
use crate::error::{CertificateProblem, Error};

mod tls;
use tls::{certificate_problem, client_error, hyper_error, tls_config};

/// Longest a connection attempt may take, whatever the guest asks for.
const CONNECT_CAP: Duration = Duration::from_secs(30);
/// Idle pooled connections are closed after this long (KS3's own keep-alive is longer).
const POOL_IDLE: Duration = Duration::from_secs(50);

/// `scheme://host:port` the guest may reach, default ports made explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    https: bool,
    host: String,
    port: u16,
}

impl Destination {
    pub(crate) fn from_endpoint(e: &Endpoint) -> Self {
        Destination {
            https: e.scheme == ks3_driver_component::config::Scheme::Https,
            host: bare_host(&e.host),
            port: e.port_or_default(),
        }
    }

    /// Parses `http(s)://host[:port]` (a trailing `/` is allowed, nothing else).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let uri: Uri = s.parse().ok()?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return None;
        }
        Self::of_uri(&uri)
    }

    fn of_uri(uri: &Uri) -> Option<Self> {
        let https = match uri.scheme_str()?.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let auth = uri.authority()?;
        if auth.as_str().contains('@') {
            return None;
        }
        Some(Destination {
            https,
            host: bare_host(auth.host()),
            port: auth.port_u16().unwrap_or(if https { 443 } else { 80 }),
        })
    }

    fn describe_uri(uri: &Uri) -> String {
        match (uri.scheme_str(), uri.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}"),
            (None, Some(a)) => a.to_string(),
            _ => "<no authority>".to_string(),
        }
    }
}

/// Lower-case, IPv6 brackets removed.
fn bare_host(h: &str) -> String {
    h.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

type Pool = Client<HttpsConnector<HttpConnector>, WasiBody>;

/// Shared by every store of one driver: the allow-list, the pools, the limits.
pub(crate) struct Egress {
    allowed: Destination,
    /// The pool of requests sent from the caller's runtime (readers, writers, walkers,
    /// the native transport).
    client: Pool,
    /// One pool per executor thread (`executors.rs`), made on its first request there: a
    /// connection's task runs on the runtime that opened it, so a stateless call whose
    /// connections were opened on its own thread never leaves that thread.
    executor_clients: Vec<std::sync::OnceLock<Pool>>,
    connector: HttpsConnector<HttpConnector>,
    /// Upper bound of the guest's first-byte and between-bytes timeouts.
    timeout_cap: Duration,
    /// What was wrong with the server's certificate the last time one was refused (the
    /// guest only learns "TLS certificate error"; the host names the problem).
    tls_problem: std::sync::Mutex<Option<(CertificateProblem, String)>>,
    /// The embedder's observer of calls and KS3 requests (`Driver::with_observer`); a
    /// read lock per request, uncontended once set.
    observer: std::sync::RwLock<Option<Arc<dyn DriverObserver>>>,
}

impl Egress {
    /// The last certificate problem seen, for the host-side error.
    pub(crate) fn tls_problem(&self) -> Option<(CertificateProblem, String)> {
        self.tls_problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn new(config: &Config, allowed: Destination) -> Result<Arc<Self>, Error> {
        // The guest asks for `requesttimeout`; never let it ask for more.
        let timeout_cap = Duration::from_secs(config.request_timeout_secs.max(1));
        Self::build(config.ca_file.as_deref(), allowed, timeout_cap)
    }

    /// An egress that lets nothing out, for a driver without network (a component whose
    /// `name` is not `ks3`, e.g. the filesystem driver): every request is denied.
    pub(crate) fn closed() -> Result<Arc<Self>, Error> {
        let nowhere = Destination {
            https: false,
            host: String::new(),
            port: 0,
        };
        Self::build(None, nowhere, Duration::from_secs(1))
    }

    fn build(
        ca_file: Option<&str>,
        allowed: Destination,
        timeout_cap: Duration,
    ) -> Result<Arc<Self>, Error> {
        let tls = tls_config(ca_file, allowed.https)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_CAP));
        http.set_keepalive(Some(Duration::from_secs(30)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = pool(connector.clone());
        Ok(Arc::new(Egress {
            allowed,
            client,
            executor_clients: (0..crate::executors::MAX_THREADS)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            connector,
            timeout_cap,
            tls_problem: std::sync::Mutex::new(None),
            observer: std::sync::RwLock::new(None),
        }))
    }

    pub(crate) fn set_observer(&self, o: Arc<dyn DriverObserver>) {
        *self.observer.write().unwrap_or_else(|e| e.into_inner()) = Some(o);
    }

    /// The observer, if one is set (cloned out so no lock is held while it runs).
    pub(crate) fn observer(&self) -> Option<Arc<dyn DriverObserver>> {
        self.observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Tells the observer about one request sent to KS3 (`status` `None`: no answer).
    fn observe(&self, method: &http::Method, status: Option<u16>, started: Instant) {
        if let Some(o) = self.observer() {
            o.ks3_request(&Ks3Request {
                method: method.as_str(),
                status,
                took: started.elapsed(),
                // What `driver/src/client.rs` retries on that the host can see: a 500,
                // 502, 503 (SlowDown included) or 504 answer, or none at all. A 400
                // RequestTimeout is retried too, but only its body says so.
                retryable: status.is_none_or(|s| matches!(s, 500 | 502 | 503 | 504)),
            });
        }
    }

    /// The pool of the thread this runs on.
    fn pool_here(&self) -> &Pool {
        match crate::executors::current().and_then(|i| self.executor_clients.get(i)) {
            Some(cell) => cell.get_or_init(|| pool(self.connector.clone())),
            None => &self.client,
        }
    }

    pub(crate) async fn send(
        self: Arc<Self>,
        req: Request<WasiBody>,
        options: Option<RequestOptions>,
        activity: Option<Activity>,
    ) -> Result<Response<WasiBody>, HttpError> {
        let o = options.unwrap_or_default();
        let first_byte = clamp(o.first_byte_timeout, self.timeout_cap);
        let between_bytes = clamp(o.between_bytes_timeout, self.timeout_cap);

        let method = req.method().clone();
        // The path only: a query string may carry a signature and is never logged.
        let path = req.uri().path().to_string();
        let started = Instant::now();
        let progress = Progress::new(activity.clone());
        let req = req.map(|b| {
            ProgressBody {
                inner: b,
                progress: progress.clone(),
            }
            .boxed_unsync()
        });
        let result = progress_timeout(self.pool_here().request(req), first_byte, &progress, |e| {
            if let Some(p) = certificate_problem(e) {
                *self.tls_problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            }
        })
        .await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                // Info, not a warning: the driver retries, and a final failure reaches the
                // caller as an error anyway.
                tracing::info!(
                    target: "ks3_driver::egress",
                    "{method} {path} failed after {:.1} ms: {e}",
                    ms(started)
                );
                self.observe(&method, None, started);
                return Err(e);
            }
        };
        self.observe(&method, Some(resp.status().as_u16()), started);
        // The request log: a library never writes to its embedder's stderr; a subscriber
        // (the CLI's `-v`) decides whether to show it.
        if tracing::enabled!(target: "ks3_driver::egress", tracing::Level::INFO) {
            let rid = resp
                .headers()
                .get("x-kss-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info!(
                target: "ks3_driver::egress",
                "{method} {path} {} {:.1} ms request-id {rid}",
                resp.status().as_u16(),
                ms(started)
            );
        }
        Ok(resp.map(|incoming| {
            ResponseBody {
                inner: incoming,
                timeout: between_bytes,
                last: Instant::now(),
                sleep: None,
                activity,
            }
            .boxed_unsync()
        }))
    }
}

/// The most an HTTP/1 connection reads from its socket at once (also the limit of a
/// response head, which KS3 keeps to a few KiB). hyper's default lets its read buffer grow
/// to ~400 KiB; each read then empties the socket in one large copy, and the CRC-64 that
/// follows reads the bytes back from beyond the L2 cache. Measured on a 512 MiB
/// `ks3-driver get` from ks3-local (30 runs): 178 ms mean by default, 139 ms at 64 KiB,
/// 154 ms at 96 KiB (curl: 130 ms); a 1 GiB in-process read went from a median of
/// ~2 300 MiB/s to ~3 300.
const MAX_READ_BUFFER: usize = 64 << 10;

/// A keep-alive pool over `connector`.
fn pool(connector: HttpsConnector<HttpConnector>) -> Pool {
    Client::builder(TokioExecutor::new())
        .http1_max_buf_size(MAX_READ_BUFFER)
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(64)
        .pool_timer(TokioTimer::new())
        .build(connector)
}

/// The guest's timeout, at most `cap` (and `cap` when it sets none).
fn clamp(asked: Option<Duration>, cap: Duration) -> Duration {
    asked
        .map_or(cap, |t| t.min(cap))
        .max(Duration::from_millis(1))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The per-store hook object: the shared [`Egress`] plus what this store was refused.
pub(crate) struct EgressHooks {
    egress: Arc<Egress>,
    /// Touched whenever this store's traffic moves (the wall-clock limit follows it).
    activity: Activity,
    /// Destinations refused during the current operation, for the host-side error.
    pub(crate) denied: Vec<String>,
}

impl EgressHooks {
    pub(crate) fn new(egress: Arc<Egress>, activity: Activity) -> Self {
        EgressHooks {
            egress,
            activity,
            denied: Vec::new(),
        }
    }

    /// The last certificate problem the egress saw (see [`Egress::tls_problem`]).
    pub(crate) fn tls_problem(&self) -> Option<(CertificateProblem, String)> {
        self.egress.tls_problem()
    }

    /// The embedder's observer (see [`Egress::observer`]).
    pub(crate) fn observer(&self) -> Option<Arc<dyn DriverObserver>> {
        self.egress.observer()
    }

    /// The one destination the guest may reach.
    pub(crate) fn allowed(&self) -> &Destination {
        &self.egress.allowed
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), HttpError>> + Send> {
        drop(fut);
        // A closed egress (empty host) matches nothing.
        let allowed = !self.egress.allowed.host.is_empty()
            && Destination::of_uri(request.uri()).as_ref() == Some(&self.egress.allowed);
        if !allowed {
            let dest = Destination::describe_uri(request.uri());
            // The call's error says so too (`denied_error`).
            tracing::info!(
                target: "ks3_driver::egress",
                "refused {} {dest}{} (only {} is allowed)",
                request.method(),
                request.uri().path(),
                self.egress.allowed
            );
            self.denied.push(dest);
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let egress = self.egress.clone();
        let activity = self.activity.clone();
        activity.touch();
        Box::new(async move {
            let resp = egress.send(request, options, Some(activity)).await?;
            // The pool drives the connection; nothing is left for the caller to poll.
            Ok((resp, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// When the request body last moved, in ms since `base`.
#[derive(Clone)]
struct Progress {
    base: Instant,
    last_ms: Arc<AtomicU64>,
    /// The calling store's activity, if any.
    activity: Option<Activity>,
}

impl Progress {
    fn new(activity: Option<Activity>) -> Self {
        Progress {
            base: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            activity,
        }
    }
    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
        if let Some(a) = &self.activity {
            a.touch();
        }
    }
    fn last(&self) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Waits for the response head. Fails when neither the request body moved nor the head
/// arrived for `timeout`: a long upload is not cut off by the first-byte timeout, a
/// stalled one is.
async fn progress_timeout(
    fut: impl Future<Output = Result<Response<Incoming>, hyper_util::client::legacy::Error>>,
    timeout: Duration,
    progress: &Progress,
    on_error: impl FnOnce(&hyper_util::client::legacy::Error),
) -> Result<Response<Incoming>, HttpError> {
    tokio::pin!(fut);
    let mut on_error = Some(on_error);
    loop {
        let last = progress.last();
        let sleep = tokio::time::sleep_until((last + timeout).into());
        tokio::select! {
            r = &mut fut => {
                progress.touch();
                return r.map_err(|e| {
                    if let Some(f) = on_error.take() {
                        f(&e);
                    }
                    client_error(e)
                });
            }
            _ = sleep => {
                if progress.last() == last {
                    return Err(HttpError::ConnectionReadTimeout);
                }
            }
        }
    }
}

/// The guest's request body, noting progress as it is pulled.
struct ProgressBody {
    inner: WasiBody,
    progress: Progress,
}

impl Body for ProgressBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &r {
            self.progress.touch();
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body with the between-bytes timeout; errors in wasi:http terms.
struct ResponseBody {
    inner: Incoming,
    timeout: Duration,
    last: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    activity: Option<Activity>,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.last = Instant::now();
                if let Some(a) = &self.activity {
                    a.touch();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(hyper_error(&e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                // One timer per body, re-armed only when it fires early (no timer churn
                // per frame).
                let deadline = self.last + self.timeout;
                let this = &mut *self;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
                loop {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let deadline = this.last + this.timeout;
                    if Instant::now() >= deadline {
                        return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
                    }
                    sleep.as_mut().reset(deadline.into());
                }
            }
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_normalise_default_ports() {
        let a = Destination::parse("http://127.0.0.1:80").unwrap();
        let b = Destination::parse("http://127.0.0.1/").unwrap();
        assert_eq!(a, b);
        let c = Destination::parse("https://Bucket.KS3-cn-beijing.ksyuncs.com").unwrap();
        let d = Destination::parse("https://bucket.ks3-cn-beijing.ksyuncs.com:443").unwrap();
        assert_eq!(c, d);
        assert_ne!(
            Destination::parse("http://h:80").unwrap(),
            Destination::parse("https://h:80").unwrap()
        );
        assert_ne!(
            Destination::parse("http://h:80").unwrap(),
            Destination::parse("http://h:81").unwrap()
        );
        assert!(Destination::parse("http://h/path").is_none());
        assert!(Destination::parse("ftp://h").is_none());
        assert!(Destination::parse("http://user@h").is_none());
        assert_eq!(a.to_string(), "http://127.0.0.1:80");
    }

    #[test]
    fn guest_timeouts_are_capped() {
        let cap = Duration::from_secs(60);
        assert_eq!(clamp(None, cap), cap);
        assert_eq!(clamp(Some(Duration::from_secs(600)), cap), cap);
        assert_eq!(
            clamp(Some(Duration::from_secs(5)), cap),
            Duration::from_secs(5)
        );
        assert_eq!(clamp(Some(Duration::ZERO), cap), Duration::from_millis(1));
    }

    #[test]
    fn endpoint_destination() {
        let mut p = ks3_driver_component::config::Params::new();
        for (k, v) in [
            ("accesskey", "a"),
            ("secretkey", "s"),
            ("region", "ks3-cn-beijing"),
            ("bucket", "reg"),
        ] {
            p.insert(k.into(), v.into());
        }
        let c = Config::from_params(&p, |_| None).unwrap();
        let d = Destination::from_endpoint(&c.endpoint);
        assert_eq!(
            Some(d),
            Destination::parse("https://reg.ks3-cn-beijing.ksyuncs.com")
        );
    }
}
