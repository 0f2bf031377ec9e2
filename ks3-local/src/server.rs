//! Accept loop, per-request pipeline (stats, faults, addressing, auth, dispatch, errors).
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{authenticate, AuthInput};
use crate::body::{drain, full, set, ReqBody, RespBody, Truncate};
use crate::config::ServerConfig;
use crate::error::S3Error;
use crate::faults::FaultAction;
use crate::handlers::{self, Req};
use crate::query::Query;
use crate::state::{loggable_target, State};
use ks3_proto::sign_v4::EMPTY_SHA256;
use ks3_proto::{SigningScheme, V4Namespace};

/// Headers larger than this get hyper's 431.
/// (Idle keep-alive connections close after 75 s without a new request head, as nginx.)
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Unread request bodies up to this size are drained before an early answer.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Returned by the service to make hyper close the connection without (more of) a response.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped (fault injection)")
    }
}
impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` flips (or its sender goes away); with `tls`, each
/// connection is a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    match &tls {
                        None => serve_connection(stream, state.clone(), shutdown.clone(), Protocol::Http1),
                        Some(acceptor) => {
                            let (acceptor, state, shutdown) =
                                (acceptor.clone(), state.clone(), shutdown.clone());
                            tokio::spawn(async move {
                                let hs = tokio::time::timeout(
                                    Duration::from_secs(10),
                                    acceptor.accept(stream),
                                )
                                .await;
                                match hs {
                                    Ok(Ok(tls)) => {
                                        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                                        let protocol = if h2 { Protocol::Http2 } else { Protocol::Http1 };
                                        serve_connection(tls, state, shutdown, protocol)
                                    }
                                    Ok(Err(e)) => {
                                        state
                                            .stats
                                            .tls_handshake_failures
                                            .fetch_add(1, Ordering::Relaxed);
                                        if state.config.verbose {
                                            tracing::warn!(
                                                target: "ks3_local::server",
                                                "TLS handshake: {e}"
                                            );
                                        }
                                    }
                                    Err(_) => {
                                        state
                                            .stats
                                            .tls_handshake_failures
                                            .fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    if state.config.verbose {
                        tracing::warn!(target: "ks3_local::server", "accept: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

/// What a connection speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    /// HTTP/1.1 that keeps answering the requests already received after the client shut
    /// its side (the fuzzing harness does; real clients get hyper's default).
    Http1HalfClose,
    /// Chosen by ALPN over TLS.
    Http2,
}

pub(crate) fn serve_connection<S>(
    stream: S,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    protocol: Protocol,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            async move {
                let latency = state.config.latency;
                let admin =
                    state.config.admin && req.uri().path().starts_with(crate::admin::PREFIX);
                let resp = handle(state, req).await;
                // After the answer is ready, so the delay is the network's, not a slower
                // server's: what the client waits on is one round trip more per request.
                if !latency.is_zero() && !admin {
                    tokio::time::sleep(latency).await;
                }
                resp
            }
        });
        let io = TokioIo::new(stream);
        // Either connection runs until it ends or the server shuts down.
        let conn: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match protocol {
            Protocol::Http2 => {
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_header_list_size(MAX_HEADER_BYTES as u32)
                    .serve_connection(io, svc);
                Box::pin(async move {
                    let _ = conn.await;
                })
            }
            Protocol::Http1 | Protocol::Http1HalfClose => {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(75))
                    .max_header_size(MAX_HEADER_BYTES)
                    .half_close(protocol == Protocol::Http1HalfClose)
                    .serve_connection(io, svc);
                Box::pin(async move {
                    let _ = conn.await;
                })
            }
        };
        tokio::select! {
            _ = conn => {}
            _ = shutdown.changed() => {}
        }
    });
}

/// The TLS acceptor for `--tls-cert` / `--tls-key`.
pub fn tls_acceptor(
    files: &crate::config::TlsFiles,
    http2: bool,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| anyhow::anyhow!("--tls-cert {}: {e}", files.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--tls-cert {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("--tls-cert {}: no PEM certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow::anyhow!("--tls-key {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?;
    cfg.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

fn host_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// The bucket addressed by a virtual-hosted `Host: bucket.<anything>`, if any.
fn vhost_bucket(state: &State, host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return None; // an IPv6 literal
    }
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host.as_str(),
    };
    state
        .store
        .buckets()
        .into_iter()
        .map(|b| b.name.clone())
        .filter(|b| {
            name.len() > b.len() + 1
                && name.starts_with(b.as_str())
                && name.as_bytes()[b.len()] == b'.'
        })
        .max_by_key(|b| b.len())
}

/// `(bucket, key)` of a request path (raw, percent-encoded).
fn address(state: &State, host: &str, path: &str) -> Result<(String, String), S3Error> {
    let decode = |s: &str| ks3_proto::encode::decode(s, false).ok_or_else(S3Error::invalid_uri);
    let rest = path.strip_prefix('/').ok_or_else(S3Error::invalid_uri)?;
    if let Some(b) = vhost_bucket(state, host) {
        return Ok((b, decode(rest)?));
    }
    match rest.split_once('/') {
        Some((b, k)) => Ok((decode(b)?, decode(k)?)),
        None => Ok((decode(rest)?, String::new())),
    }
}

fn error_response(e: &S3Error, resource: &str, request_id: &str, head: bool) -> Response<RespBody> {
    let mut r = if head {
        let mut r = Response::new(crate::body::empty());
        set(&mut r, "content-length", "0");
        r
    } else {
        let body = e.body(resource, request_id);
        let len = body.len();
        let mut r = Response::new(full(body));
        set(&mut r, "content-type", "application/xml");
        set(&mut r, "content-length", &len.to_string());
        r
    };
    *r.status_mut() = e.status;
    for (n, v) in &e.headers {
        set(&mut r, n, v);
    }
    if e.close {
        r.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn now_secs() -> i64 {
    crate::store::now_ms().div_euclid(1000)
}

/// Everything below the connection: one request in, one response out (or a dropped
/// connection for fault injection).
async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, DropConnection> {
    let request_id = state.request_id();
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let host = host_of(&req);
    let head = method == Method::HEAD;
    if req.version() == http::Version::HTTP_2 {
        state.stats.http2_requests.fetch_add(1, Ordering::Relaxed);
    }

    if state.config.admin
        && target.starts_with(crate::admin::PREFIX)
        && vhost_bucket(&state, &host).is_none()
    {
        let mut resp = crate::admin::handle(&state, req).await;
        set(&mut resp, "x-kss-request-id", &request_id);
        return Ok(resp);
    }

    state.stats.count();
    // Authentication first (it reads only the head), so that only authenticated requests
    // are logged; faults apply to every request as before.
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let mut resource = path.clone();
    let result = (|| {
        let (bucket, key) = address(&state, &host, &path)?;
        resource = if bucket.is_empty() {
            "/".to_string()
        } else {
            format!("/{bucket}/{key}")
        };
        let auth = authenticate(
            &AuthInput {
                method: method.as_str(),
                path: &path,
                headers: req.headers(),
                bucket: &bucket,
                key: &key,
                raw_query: &raw_query,
            },
            &state.creds,
            now_secs(),
        )?;
        let query = Query::parse(&raw_query)?;
        Ok::<_, S3Error>((bucket, key, query, auth))
    })();
    if result.is_ok() {
        state.stats.record(&method, &target);
    }
    let mut drop_response = false;
    let mut lose_response = false;
    let mut corrupt_checksum = false;
    match state.faults.take(method.as_str(), &target) {
        None => {}
        Some(FaultAction::CorruptChecksum) => corrupt_checksum = true,
        Some(FaultAction::LoseResponse) => lose_response = true,
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultAction::Error { status, code }) => {
            let (_, mut body) = req.into_parts();
            let drained = drain(&mut body, DRAIN_LIMIT).await;
            let mut e = S3Error::new(status, &code, "Fault injected by ks3-local.");
            e.close = !drained;
            let mut resp = error_response(&e, &target, &request_id, head);
            set(&mut resp, "x-kss-request-id", &request_id);
            log(&state, &method, &target, resp.status());
            return Ok(resp);
        }
        Some(FaultAction::DropMidBody) => {
            let declared = req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let chunked = req.headers().contains_key(http::header::TRANSFER_ENCODING);
            if declared.unwrap_or(0) > 0 || chunked {
                use http_body_util::BodyExt;
                let (_, mut body) = req.into_parts();
                let half = declared.unwrap_or(1).div_ceil(2);
                let mut got = 0u64;
                while got < half {
                    match body.frame().await {
                        Some(Ok(f)) => got += f.data_ref().map_or(0, |d| d.len() as u64),
                        _ => break,
                    }
                }
                log(
                    &state,
                    &method,
                    &target,
                    StatusCode::from_u16(499).unwrap_or_default(),
                );
                return Err(DropConnection);
            }
            drop_response = true;
        }
    }

    let (parts, body) = req.into_parts();
    let expect_continue = parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let aws4 = matches!(&result, Ok((.., a)) if a.scheme == SigningScheme::V4(V4Namespace::Aws4));
    let mut headers = parts.headers;
    let result = result.and_then(|(bucket, key, query, auth)| {
        if aws4 {
            crate::amz::to_kss_names(&mut headers)?;
        }
        match auth.payload_sha256.as_deref() {
            // Handlers that take no body never read it: check an empty one here.
            Some(h) if body.is_end_stream() && h != EMPTY_SHA256 => {
                Err(crate::body::sha256_mismatch(h, EMPTY_SHA256))
            }
            _ => Ok((bucket, key, query, auth.payload_sha256)),
        }
    });
    let (mut resp, body) = match result {
        Err(e) => (
            error_response(&e, &resource, &request_id, head),
            ReqBody::unchecked(body),
        ),
        Ok((bucket, key, query, payload)) => {
            let body = match payload {
                Some(h) => ReqBody::checked(body, &h),
                None => ReqBody::unchecked(body),
            }
            .with_idle_timeout(state.config.body_timeout);
            let mut r = Req {
                method: method.clone(),
                headers,
                query,
                bucket,
                key,
                body,
                host: host.clone(),
            };
            let resp = match handlers::dispatch(&state, &mut r).await {
                Ok(resp) => resp,
                Err(e) => error_response(&e, &resource, &request_id, head),
            };
            (resp, r.body)
        }
    };
    // Never leave a half-read body on a keep-alive connection. A client waiting for
    // `100 Continue` is not made to send a body we would throw away.
    let mut body = body;
    if !body.is_end_stream() && (expect_continue || !drain(&mut body, DRAIN_LIMIT).await) {
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    set(&mut resp, "x-kss-request-id", &request_id);
    set(&mut resp, "server", "ks3-local");
    if aws4 {
        crate::amz::mirror_response(resp.headers_mut());
    }
    log(&state, &method, &target, resp.status());
    if lose_response {
        // The operation took effect; the client never hears so.
        return Err(DropConnection);
    }

    if corrupt_checksum {
        let wrong = resp
            .headers()
            .get("x-kss-checksum-crc64ecma")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|crc| (crc ^ 1).to_string());
        if let Some(wrong) = wrong {
            set(&mut resp, "x-kss-checksum-crc64ecma", &wrong);
        }
    }
    if drop_response {
        let size = resp.body().size_hint().exact().unwrap_or(0);
        if size == 0 {
            return Err(DropConnection);
        }
        let (p, b) = resp.into_parts();
        use http_body_util::BodyExt;
        return Ok(Response::from_parts(
            p,
            Truncate::new(b, size / 2).boxed_unsync(),
        ));
    }
    Ok(resp)
}

fn log(state: &State, method: &Method, target: &str, status: StatusCode) {
    if state.config.verbose {
        // Query values (presigned signatures, credentials, upload ids) are never printed.
        tracing::info!(
            target: "ks3_local::request",
            "{method} {} -> {}",
            loggable_target(target),
            status.as_u16()
        );
    }
}

/// Binds and starts serving on the current runtime.
pub async fn launch(
    config: ServerConfig,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, Arc<State>)> {
    let addr = config.addr;
    let tls = config
        .tls
        .as_ref()
        .map(|files| tls_acceptor(files, config.http2))
        .transpose()?;
    let state = Arc::new(State::new(config)?);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener, state.clone(), tls, shutdown));
    Ok((local, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_host_detection() {
        let state = State::new(ServerConfig {
            buckets: vec!["reg".into(), "reg.x".into()],
            ..ServerConfig::default()
        })
        .unwrap();
        assert_eq!(
            vhost_bucket(&state, "reg.localhost:9000").as_deref(),
            Some("reg")
        );
        assert_eq!(
            vhost_bucket(&state, "reg.x.localhost").as_deref(),
            Some("reg.x")
        );
        assert_eq!(
            vhost_bucket(&state, "REG.ks3-cn-beijing.ksyuncs.com").as_deref(),
            Some("reg")
        );
        assert_eq!(vhost_bucket(&state, "127.0.0.1:9000"), None);
        assert_eq!(vhost_bucket(&state, "reg"), None);
        assert_eq!(vhost_bucket(&state, "other.localhost"), None);
        assert_eq!(vhost_bucket(&state, "[::1]:9000"), None);
        assert_eq!(
            address(&state, "127.0.0.1", "/reg/a%20b/c").unwrap(),
            ("reg".to_string(), "a b/c".to_string())
        );
        assert_eq!(
            address(&state, "reg.localhost", "/a%2Bb").unwrap(),
            ("reg".to_string(), "a+b".to_string())
        );
        assert_eq!(
            address(&state, "h", "/").unwrap(),
            (String::new(), String::new())
        );
        assert_eq!(
            address(&state, "h", "/reg").unwrap(),
            ("reg".to_string(), String::new())
        );
        assert!(address(&state, "h", "/reg/%FF").is_err());
    }
}
