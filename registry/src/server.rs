//! The HTTP side: accepting connections, authentication, routing, and the headers every
//! response carries.
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::auth::User;
use crate::metrics::{Metrics, RECEIVED};

use crate::app::{error_response, respond, set_headers, App, ClientAddr};
use crate::errors::{RegistryError, Result};
use crate::http_io::{percent_decode, query_pairs, Body, RequestBody};
use crate::route::{self, Route};
use crate::{blobs, listing, manifests, notify, uploads};

/// Serves connections from `listener` until the returned future is dropped.
pub async fn accept_loop(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, peer) = crate::listen::accept(&listener, "main port").await;
        tokio::spawn(crate::listen::serve_connection(
            Arc::clone(&app),
            stream,
            peer,
        ));
    }
}

/// One request: a `request` span (request id, method, path, status) around everything it
/// does, so the driver's per-call events (`ks3_driver::call`) and the detail of a failure
/// are attributed to the request that caused them; its metrics; and, once the response
/// body has been sent (or the client went away), the access-log event
/// (`ks3_registry::request`: method, route, status, bytes in and out, duration, request
/// id, user) unless `log.accesslog.disabled`. The query is left out: upload state tokens
/// are not for logs. While the storage health check fails, every request gets
/// distribution's 503 `UNAVAILABLE`; without a failing check, a request that needs KS3
/// and cannot reach it gets the same 503 from its handler (`RegistryError::is_unavailable`),
/// both with a `Retry-After`.
pub(crate) async fn handle(app: &App, req: Request<Incoming>) -> Response<Counted> {
    let started = Instant::now();
    let in_flight = app.metrics.request_started();
    let handler = handler_of(req.uri().path());
    let method = method_label(req.method());
    let request_id = request_id(&req);
    let span = tracing::info_span!(
        target: "ks3_registry::request",
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
    );
    let notice = app.notifier.as_ref().map(|n| n.notice(&req, &request_id));
    let received = Arc::new(AtomicU64::new(0));
    // The body lives until the response is done (see `RequestBody`).
    let (parts, body) = req.into_parts();
    let (body, keep_body) = RequestBody::new(body);
    let req = Request::from_parts(parts, body);
    let resp = if app.health.is_failing() {
        // Failing implies a health check is configured: its interval is the Retry-After.
        let interval = app
            .config
            .storage_health
            .as_ref()
            .map_or(std::time::Duration::from_secs(1), |h| h.interval);
        let mut r = crate::health::unavailable_response(interval);
        nosniff(r.headers_mut());
        r
    } else {
        RECEIVED
            .scope(
                Arc::clone(&received),
                notify::around(notice, answer(app, req)),
            )
            .instrument(span.clone())
            .await
    };
    keep_body.drain().await;
    drop(keep_body);
    let status = resp.status().as_u16();
    span.record("status", status);
    app.metrics
        .request_done(method, handler, status, started.elapsed());
    drop(in_flight);
    let user = resp.extensions().get::<User>().map(|u| u.0.clone());
    let done = Done {
        metrics: Arc::clone(&app.metrics),
        access_log: !app.config.log.access_log_disabled,
        span,
        request_id,
        method,
        handler,
        status,
        user,
        received,
        started,
    };
    resp.map(|inner| Counted {
        inner,
        sent: 0,
        done: Some(done),
    })
}

/// distribution's handler name of a path (its metrics' `handler` label and the access
/// log's `route`); `none` for a path that is no API endpoint.
fn handler_of(raw_path: &str) -> &'static str {
    match route::parse(&percent_decode(raw_path)) {
        Ok(Some(r)) => match r {
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::UploadStart { .. } => "blob_upload",
            Route::Upload { .. } => "blob_upload_chunk",
            Route::Referrers { .. } => "referrers",
        },
        _ => "none",
    }
}

/// The method as a label: any other than the API's own is `other`, so a client cannot
/// add series at will.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What is recorded once a response body is finished.
struct Done {
    metrics: Arc<Metrics>,
    access_log: bool,
    span: tracing::Span,
    request_id: String,
    method: &'static str,
    handler: &'static str,
    status: u16,
    user: Option<String>,
    /// Request body bytes the handlers read (counted by `http_io::BodyReader`).
    received: Arc<AtomicU64>,
    started: Instant,
}

/// A response body that counts the bytes sent; dropped (all sent, or the client gone),
/// it records the request's bytes and writes the access-log event.
pub(crate) struct Counted {
    inner: Body,
    sent: u64,
    done: Option<Done>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        let p = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &p {
            if let Some(d) = f.data_ref() {
                self.sent = self.sent.saturating_add(d.len() as u64);
            }
        }
        p
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let Some(d) = self.done.take() else {
            return;
        };
        let received = d.received.load(Ordering::Relaxed);
        d.metrics.bytes(d.handler, received, self.sent);
        if d.access_log {
            d.span.in_scope(|| {
                tracing::info!(
                    target: "ks3_registry::request",
                    request_id = %d.request_id,
                    method = d.method,
                    route = d.handler,
                    status = d.status,
                    bytes_in = received,
                    bytes_out = self.sent,
                    micros = u64::try_from(d.started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    user = d.user.as_deref(),
                    "response completed"
                );
            });
        }
    }
}

/// The longest `X-Request-Id` taken from a request.
const MAX_REQUEST_ID: usize = 128;

/// The id the log knows a request by: the `X-Request-Id` a proxy in front (or the client)
/// set, when it is a plain token, so both logs can be joined; otherwise a new random one
/// (distribution 2.8.2 always makes its own, `http.request.id`). It is never sent back:
/// like distribution, the answer carries no id.
fn request_id<B>(req: &Request<B>) -> String {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        });
    match given {
        Some(id) => id.to_string(),
        None => format!("{:032x}", rand::random::<u128>()),
    }
}

async fn answer(app: &App, mut req: Request<RequestBody>) -> Response<Body> {
    if let Err(denied) = crate::auth::authorize(app, &mut req).await {
        return finish(app, denied, None);
    }
    // Who was authenticated, for the access log (the response carries it to `handle`).
    let user = req.extensions().get::<User>().cloned();
    let resp = match dispatch(app, req).await {
        Ok(r) => r,
        Err(e) => {
            // The client gets the generic error; the detail (KS3 key, request id, retries)
            // goes to the log, in this request's span and so with its id.
            if let Some(detail) = e.log_detail() {
                tracing::error!(
                    target: "ks3_registry::request",
                    error = %detail,
                    "request failed"
                );
            }
            let mut r = error_response(&e);
            // KS3 unreachable: a 503 a client may retry, and when.
            if let Some(secs) = e.retry_after() {
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
            }
            r
        }
    };
    finish(app, resp, user)
}

/// The headers every answer carries.
fn finish(app: &App, mut resp: Response<Body>, user: Option<User>) -> Response<Body> {
    let headers = resp.headers_mut();
    set_headers(
        headers,
        &[(
            "docker-distribution-api-version",
            "registry/2.0".to_string(),
        )],
    );
    let extra: Vec<(&str, String)> = app
        .config
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    set_headers(headers, &extra);
    nosniff(headers);
    if let Some(u) = user {
        resp.extensions_mut().insert(u);
    }
    resp
}

/// Nothing this registry serves is meant to be sniffed into something a browser runs (a
/// blob or a manifest with HTML in it): nosniff on every answer, unless the operator
/// configured the header themselves (then theirs, once). distribution 2.8.2 sends it only
/// when configured (and on its plain 404 page).
fn nosniff(headers: &mut http::HeaderMap) {
    if !headers.contains_key(http::header::X_CONTENT_TYPE_OPTIONS) {
        headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        );
    }
}

async fn dispatch(app: &App, req: Request<RequestBody>) -> Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let client = parts.extensions.get::<ClientAddr>().copied();
    let path = percent_decode(parts.uri.path());
    let query = query_pairs(parts.uri.query());
    let method = &parts.method;
    let headers = &parts.headers;
    let Some(route) = route::parse(&path)? else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            &[("content-type", "text/plain".into())],
            Body::full("404 page not found\n"),
        ));
    };
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if app.config.read_only && !get_or_head {
        // distribution 2.8.2's answer to every write in read-only mode: 405, `Allow`, and
        // a plain-text body (not a JSON error).
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            &[
                ("allow", "GET, HEAD".into()),
                ("content-type", "text/plain; charset=utf-8".into()),
            ],
            Body::full("Method not allowed\n"),
        ));
    }
    crate::proxy::refuse_write(app, method)?;
    match route {
        Route::Base if get_or_head => Ok(respond(
            StatusCode::OK,
            &[("content-type", "application/json; charset=utf-8".into())],
            Body::full(if method == Method::HEAD { "" } else { "{}" }),
        )),
        Route::Catalog if method == Method::GET => listing::catalog(app, &query).await,
        Route::Tags { name } if method == Method::GET => listing::tags(app, &name, &query).await,
        Route::Referrers { name, digest } if method == Method::GET => {
            listing::referrers(app, &name, &digest, &query).await
        }
        Route::Blob { name, digest } if get_or_head => {
            blobs::get(app, method, headers, &name, &digest).await
        }
        Route::Blob { name, digest } if method == Method::DELETE => {
            blobs::delete(app, &name, &digest).await
        }
        Route::Manifest { name, reference } if get_or_head => {
            manifests::get(app, method, headers, &name, &reference).await
        }
        Route::Manifest { name, reference } if method == Method::PUT => {
            manifests::put(app, headers, &name, &reference, &query, body).await
        }
        Route::Manifest { name, reference } if method == Method::DELETE => {
            manifests::delete(app, &name, &reference).await
        }
        Route::UploadStart { name } if method == Method::POST => {
            uploads::start(app, &name, &query, client, body).await
        }
        Route::Upload { name, id } if method == Method::PATCH => {
            uploads::patch(app, &name, &id, headers, client, body).await
        }
        Route::Upload { name, id } if method == Method::PUT => {
            uploads::put(app, &name, &id, headers, &query, client, body).await
        }
        Route::Upload { name, id } if method == Method::GET => {
            uploads::status(app, &name, &id).await
        }
        Route::Upload { name, id } if method == Method::DELETE => {
            uploads::cancel(app, &name, &id).await
        }
        _ => Err(RegistryError::Unsupported(format!(
            "{method} is not supported on {}",
            route::printable(&path)
        ))),
    }
}
