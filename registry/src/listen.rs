//! One accepted connection: plain HTTP/1.1, or with `http.tls` a TLS session that speaks
//! HTTP/2 or HTTP/1.1 as ALPN decided.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::app::{App, ClientAddr};
use crate::tls::{is_tls_handshake, PLAIN_HTTP_ANSWER};

/// How long a client may take to send a request's headers (and, over TLS, to finish its
/// handshake).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The connections being served, and the signal that asks them to finish: on a drain,
/// each connection answers the requests it has in flight and then closes (idle
/// keep-alive connections close at once).
pub struct Connections {
    open: AtomicUsize,
    drain: watch::Sender<bool>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            open: AtomicUsize::new(0),
            drain: watch::channel(false).0,
        }
    }
}

impl Connections {
    /// Asks every connection to finish, and waits until all have or `timeout` passes;
    /// `true` when all finished.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.drain.send_replace(true);
        let deadline = tokio::time::Instant::now() + timeout;
        while self.open.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

/// Counts a connection while it is served.
struct Open<'a>(&'a AtomicUsize);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves a hyper connection (HTTP/1 or HTTP/2: they share no trait for it) until it
/// ends, or, once a drain is asked for, until it has finished its requests in flight.
macro_rules! serve_until_drained {
    ($conn:ident, $drain:ident) => {{
        tokio::pin!($conn);
        tokio::select! {
            _ = $conn.as_mut() => {}
            _ = drained(&mut $drain) => {
                $conn.as_mut().graceful_shutdown();
                let _ = $conn.await;
            }
        }
    }};
}

/// Serves one connection until it ends; errors are clients going away mid-request.
pub async fn serve_connection(app: Arc<App>, stream: TcpStream, peer: SocketAddr) {
    let connections = &app.connections;
    connections.open.fetch_add(1, Ordering::SeqCst);
    let _open = Open(&connections.open);
    let mut drain = connections.drain.subscribe();
    if *drain.borrow_and_update() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let local_port = stream.local_addr().ok().map(|a| a.port());
    let service = {
        let app = Arc::clone(&app);
        service_fn(move |mut req: Request<Incoming>| {
            // Per-client limits (upload slots) key on the peer's address.
            req.extensions_mut().insert(ClientAddr(peer.ip()));
            req.extensions_mut()
                .insert(crate::notify::Conn { peer, local_port });
            let app = Arc::clone(&app);
            async move { Ok::<_, Infallible>(crate::server::handle(&app, req).await) }
        })
    };
    let Some(acceptor) = app.tls.clone() else {
        let conn = http1_builder().serve_connection(TokioIo::new(stream), service);
        serve_until_drained!(conn, drain);
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
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tls), service);
        serve_until_drained!(conn, drain);
    } else {
        let conn = http1_builder().serve_connection(TokioIo::new(tls), service);
        serve_until_drained!(conn, drain);
    }
}

/// The next connection of `listener`. Running out of file descriptors and the like is
/// waited out (logged, 100 ms), never a spin or an exit.
pub(crate) async fn accept(listener: &TcpListener, port: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(s) => return s,
            Err(e) => {
                tracing::warn!(target: "ks3_registry::server", "{port} accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Returns once a drain was asked for (the receiver's guard is dropped here: it is not
/// `Send`).
async fn drained(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|d| *d).await.map(|_| ());
}

/// HTTP/1.1 with the header timeout (the main port's and the debug port's).
pub(crate) fn http1_builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    b
}
