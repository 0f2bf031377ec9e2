//! The HTTP side: accepting connections, authentication, routing, and the headers every
//! response carries.
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::app::{error_response, respond, set_headers, App, ClientAddr};
use crate::errors::{RegistryError, Result};
use crate::http_io::{percent_decode, query_pairs, Body};
use crate::route::{self, Route};
use crate::{blobs, listing, manifests, uploads};

/// Serves connections from `listener` until the returned future is dropped.
pub async fn accept_loop(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            // Out of file descriptors and the like: wait, do not spin or die.
            Err(e) => {
                tracing::warn!(target: "ks3_registry::server", "accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(crate::listen::serve_connection(
            Arc::clone(&app),
            stream,
            peer,
        ));
    }
}

/// One request: a `request` span (request id, method, path, status) around everything it
/// does, so the driver's per-call events (`ks3_driver::call`) and the detail of a failure
/// are attributed to the request that caused them; and one `ks3_registry::request` event
/// when the answer is ready. The query is left out: upload state tokens are not for logs.
pub(crate) async fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        target: "ks3_registry::request",
        "request",
        request_id = %request_id(&req),
        method = %req.method(),
        path = %req.uri().path(),
        status = tracing::field::Empty,
    );
    let resp = answer(app, req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    span.record("status", status);
    span.in_scope(|| {
        tracing::info!(
            target: "ks3_registry::request",
            status,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        );
    });
    resp
}

/// The longest `X-Request-Id` taken from a request.
const MAX_REQUEST_ID: usize = 128;

/// The id the log knows a request by: the `X-Request-Id` a proxy in front (or the client)
/// set, when it is a plain token, so both logs can be joined; otherwise a new random one
/// (distribution 2.8.2 always makes its own, `http.request.id`). It is never sent back:
/// like distribution, the answer carries no id.
fn request_id(req: &Request<Incoming>) -> String {
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

async fn answer(app: &App, req: Request<Incoming>) -> Response<Body> {
    let mut resp = match crate::auth::authorize(app, &req).await {
        Ok(()) => match dispatch(app, req).await {
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
                error_response(&e)
            }
        },
        Err(denied) => denied,
    };
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
    // Nothing this registry serves is meant to be sniffed into something a browser runs
    // (a blob or a manifest with HTML in it): nosniff on every answer, unless the operator
    // configured the header themselves (then theirs, once). distribution 2.8.2 sends it
    // only when configured (and on its plain 404 page).
    if !headers.contains_key(http::header::X_CONTENT_TYPE_OPTIONS) {
        headers.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        );
    }
    resp
}

async fn dispatch(app: &App, req: Request<Incoming>) -> Result<Response<Body>> {
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
