//! One accepted connection: plain HTTP/1.1, or with `http.tls` a TLS session that speaks
//! HTTP/2 or HTTP/1.1 as ALPN decided.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::app::{App, ClientAddr};
use crate::tls::{is_tls_handshake, PLAIN_HTTP_ANSWER};

/// How long a client may take to send a request's headers (and, over TLS, to finish its
/// handshake).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one connection until it ends; errors are clients going away mid-request.
pub async fn serve_connection(app: Arc<App>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let service = {
        let app = Arc::clone(&app);
        service_fn(move |mut req: Request<Incoming>| {
            // Per-client limits (upload slots) key on the peer's address.
            req.extensions_mut().insert(ClientAddr(peer.ip()));
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(crate::server::handle(&app, req).await) }
        })
    };
    let Some(acceptor) = app.tls.clone() else {
        let _ = http1_builder()
            .serve_connection(TokioIo::new(stream), service)
            .await;
        return;
    };
    // Plain HTTP on the TLS port gets distribution's plain answer, not a handshake error.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HEADER_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if !is_tls_handshake(first[0]) => {
            let mut stream = stream;
            let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return;
        }
        Ok(Ok(1)) => {}
        _ => return,
    }
    let tls = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(target: "ks3_registry::server", %peer, "TLS handshake: {e}");
            return;
        }
        Err(_) => return,
    };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        let _ = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tls), service)
            .await;
    } else {
        let _ = http1_builder()
            .serve_connection(TokioIo::new(tls), service)
            .await;
    }
}

fn http1_builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b
}
