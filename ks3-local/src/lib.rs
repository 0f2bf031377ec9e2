//! `ks3-local`: a strict KS3-compatible object server, for local use and as the backend of
//! every test of the project.
//!
//! * KSS V2, KSS4 and AWS4 authentication (header and presigned URL), `x-amz-*` header
//!   names under AWS4, path-style and virtual-hosted addressing, KS3's error codes and
//!   limits;
//! * objects in RAM (`data_dir: None`) or under a directory (atomic temp file + rename);
//! * fault injection in-process ([`RunningServer::faults`]), on the command line
//!   (`--fault`) or over HTTP (`--admin`: the `/_ks3local/` endpoint, see the README).
//!
//! ```no_run
//! let server = ks3_local::start_in_background(ks3_local::ServerConfig::memory("bucket", "AK", "SK")).unwrap();
//! println!("{}", server.endpoint()); // http://127.0.0.1:PORT
//! ```
//!
//! # Layers
//!
//! Every module is private but the entry points re-exported here. Imports point down
//! this list only (within a line, left to right):
//!
//! 1. the entry points: `cli` (the command line, re-exported here) → this root ([`start`],
//!    [`RunningServer`]); `fuzzing` (the fuzz targets' socket-less entry);
//! 2. `server`: the accept loop and one request's pipeline (addressing, authentication,
//!    faults, dispatch, error responses, the request log);
//! 3. `handlers` (one function per KS3 operation, and the one mapping of store errors to
//!    KS3's) and `admin` (the unauthenticated test endpoint);
//! 4. `state`: what every request shares — configuration, store, fault rules, statistics;
//! 5. `auth` (V2, and V4 in `auth::v4`), `amz` (`x-amz-*` names), `query`, `body` →
//!    `store` (a façade over `store::memory` and `store::disk`, with its own
//!    `StoreError`), `faults`;
//! 6. `error` (KS3's error responses), `config`, `limits` (KS3's limits), `sync`.
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

mod admin;
mod amz;
mod auth;
mod body;
mod cli;
mod config;
mod error;
mod faults;
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod limits;
mod query;
mod server;
mod state;
mod store;
mod sync;

pub use cli::{cli_main, run_cli, wait_for_signal, Cli};
pub use config::{ServerConfig, TlsFiles};
pub use faults::{FaultAction, FaultInjector, FaultRule};

/// A server that is accepting connections. Dropping it shuts it down.
pub struct RunningServer {
    addr: SocketAddr,
    state: Arc<state::State>,
    shutdown: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT` (`https://` when serving TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.state.config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// TLS handshakes that failed so far (HTTPS servers only).
    pub fn tls_handshake_failures(&self) -> u64 {
        self.state
            .stats
            .tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests received over HTTP/2 so far (HTTPS with ALPN `h2`, see
    /// [`ServerConfig::http2`]).
    pub fn http2_requests(&self) -> u64 {
        self.state
            .stats
            .http2_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the HTTP admin endpoint `/_ks3local/` is served ([`ServerConfig::admin`]).
    pub fn admin_enabled(&self) -> bool {
        self.state.config.admin
    }

    /// The fault injector of this server (a cheap clone handle).
    pub fn faults(&self) -> FaultInjector {
        self.state.faults.clone()
    }

    /// Requests received so far (admin requests excluded).
    pub fn request_count(&self) -> u64 {
        self.state.stats.total()
    }

    /// Authenticated requests with this method (`""` or `"*"` = any) whose logged target
    /// contains `query_contains`, e.g. `("GET", "prefix=")`. The log keeps the path and the
    /// query's parameter names without their values (`partNumber`'s excepted):
    /// `/b/k?partNumber=2&uploadId=`; it holds the last [`ServerConfig::request_log_capacity`]
    /// requests.
    pub fn requests_matching(&self, method: &str, query_contains: &str) -> u64 {
        self.state.stats.matching(method, query_contains)
    }

    /// The logged requests, oldest first, each `METHOD target` (the path, and the query's
    /// parameter names without their values: see [`RunningServer::requests_matching`]).
    pub fn request_log(&self) -> Vec<String> {
        self.state.stats.log()
    }

    /// Stops accepting and closes connections.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a server on the current tokio runtime.
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let (tx, rx) = watch::channel(false);
    let (addr, state) = server::launch(config, rx).await?;
    Ok(RunningServer {
        addr,
        state,
        shutdown: Some(tx),
        thread: None,
    })
}

/// Starts a server on its own thread with its own 2-worker tokio runtime; usable from
/// synchronous code and from tests that run their own runtime.
pub fn start_in_background(config: ServerConfig) -> anyhow::Result<RunningServer> {
    let (tx, rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("ks3-local".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("ks3-local-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            let mut wait = rx.clone();
            rt.block_on(async move {
                match server::launch(config, rx).await {
                    Ok(started) => {
                        let _ = ready_tx.send(Ok(started));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                while !*wait.borrow_and_update() {
                    if wait.changed().await.is_err() {
                        break;
                    }
                }
            });
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        })?;
    match ready_rx.recv() {
        Ok(Ok((addr, state))) => Ok(RunningServer {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            anyhow::bail!("the ks3-local server thread died while starting")
        }
    }
}
