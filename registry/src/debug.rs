//! The debug server on `http.debug.addr`: `/debug/health` and, with
//! `http.debug.prometheus.enabled`, the metrics at its `path`. Plain HTTP/1.1, as
//! distribution's; the main port answers 404 for both.
use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::app::{respond, App};
use crate::http_io::Body;

/// Serves the debug endpoints from `listener` until the future is dropped.
pub async fn accept_loop(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = crate::listen::accept(&listener, "debug port").await;
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(answer(&app, &req)) }
            });
            let _ = crate::listen::http1_builder()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let get_or_head = req.method() == Method::GET || req.method() == Method::HEAD;
    let metrics_path = app
        .config
        .debug
        .as_ref()
        .filter(|d| d.prometheus)
        .map(|d| d.prometheus_path.as_str());
    if get_or_head && path == "/debug/health" {
        app.health.debug_response()
    } else if get_or_head && Some(path) == metrics_path {
        respond(
            StatusCode::OK,
            &[("content-type", "text/plain; version=0.0.4".into())],
            Body::full(app.metrics.render()),
        )
    } else {
        respond(
            StatusCode::NOT_FOUND,
            &[("content-type", "text/plain; charset=utf-8".into())],
            Body::full("404 page not found\n"),
        )
    }
}
