//! `ks3-registry`: an OCI Distribution Spec v1.1 registry whose every byte of storage goes
//! through the sandboxed KS3 driver component (`ks3_driver_host::Driver`), in distribution's
//! storage layout, so a bucket filled by distribution can be served by this registry and
//! the other way round.
//!
//! ```no_run
//! # async fn run() -> Result<(), ks3_registry::StartError> {
//! let config = ks3_registry::Config::load(Some(std::path::Path::new("config.yml")))?;
//! let registry = ks3_registry::Registry::new(config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! println!("listening on http://{}", listener.local_addr()?);
//! registry.serve(listener).await?;
//! # Ok(()) }
//! ```
//!
//! The registry keeps nothing that another instance would need outside KS3: uploads,
//! their hash states, tags and links are all objects, so several instances behind a load
//! balancer serve one bucket, and an upload started on one finishes on another.
mod app;
mod blobs;
pub mod config;
pub mod digest;
mod embedded;
mod errors;
pub mod gc;
mod htpasswd;
mod http_io;
pub mod layout;
mod listing;
mod manifest;
mod manifests;
pub mod purge;
mod resumable_sha256;
mod route;
mod server;
mod store;
mod upload_guard;
mod uploads;

use std::sync::Arc;
pub mod token_auth;

use ks3_driver_host::{Driver, Runtime};
use tokio::net::TcpListener;

pub use app::StatsSnapshot;
pub use config::{Config, ConfigError, HtpasswdConfig, Limits, Storage, UploadPurging};
pub use embedded::Embedded;

use app::App;
use htpasswd::Htpasswd;
use store::Store;

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("storage driver: {0}")]
    Driver(#[from] ks3_driver_host::Error),
    #[error("embedded KS3 server: {0}")]
    Embedded(String),
    #[error("{0}")]
    Htpasswd(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A configured registry, ready to serve connections.
pub struct Registry {
    app: Arc<App>,
    /// The in-memory KS3 server of the embedded default; it stops with the registry.
    embedded: Option<ks3_local::RunningServer>,
    /// The upload purger (`storage.maintenance.uploadpurging`); stopped with the registry.
    purger: Option<tokio::task::AbortHandle>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(p) = &self.purger {
            p.abort();
        }
    }
}

impl Registry {
    /// Builds the registry on the process-wide driver runtime. With
    /// [`Storage::Embedded`] it first starts an in-memory `ks3-local` (on loopback, so
    /// blob downloads are then served directly rather than redirected) and says so on
    /// stderr. Configuration warnings are printed to stderr.
    pub async fn new(config: Config) -> Result<Registry, StartError> {
        Self::build(config, None).await
    }

    /// As [`Registry::new`], with the drivers on `runtime` (another component file,
    /// other sandbox limits).
    pub async fn with_runtime(config: Config, runtime: &Runtime) -> Result<Registry, StartError> {
        Self::build(config, Some(runtime)).await
    }

    async fn build(mut config: Config, runtime: Option<&Runtime>) -> Result<Registry, StartError> {
        for w in &config.warnings {
            eprintln!("ks3-registry: warning: {w}");
        }
        let (params, embedded) = match &config.storage {
            config::Storage::Ks3(p) => (p.clone(), None),
            config::Storage::Embedded => {
                let e = embedded::start()?;
                // The embedded server listens on loopback only: a redirect to it would
                // fail for every client on another host.
                if !config.redirect_disabled {
                    config.redirect_disabled = true;
                    eprintln!("ks3-registry: blob downloads are served by the registry itself (no redirects to the embedded KS3 server)");
                }
                (e.params.clone(), Some(e.server))
            }
        };
        let driver = match runtime {
            Some(rt) => Driver::with_runtime(rt, params).await?,
            None => Driver::new(params).await?,
        };
        let htpasswd = match &config.htpasswd {
            Some(h) => Some(Htpasswd::open(h).map_err(StartError::Htpasswd)?),
            None => None,
        };
        let purger = config.upload_purging.enabled.then(|| {
            tokio::spawn(purge::run_periodically(
                driver.clone(),
                config.upload_purging.clone(),
            ))
            .abort_handle()
        });
        let app = App::new(Store::new(driver), config, htpasswd);
        Ok(Registry {
            app: Arc::new(app),
            embedded,
            purger,
        })
    }

    /// Serves connections from `listener` until the future is dropped. Several calls
    /// (several listeners) may run at once.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        server::accept_loop(Arc::clone(&self.app), listener).await
    }

    /// The storage driver the registry uses.
    pub fn driver(&self) -> &Driver {
        self.app.store.driver()
    }

    /// `http://HOST:PORT` of the embedded KS3 server, when there is one.
    pub fn embedded_endpoint(&self) -> Option<String> {
        self.embedded.as_ref().map(|s| s.endpoint())
    }

    /// This instance's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.app.stats.snapshot()
    }
}

/// Builds the registry and serves `listener` until the future is dropped.
pub async fn serve(config: Config, listener: TcpListener) -> Result<(), StartError> {
    let registry = Registry::new(config).await?;
    registry.serve(listener).await?;
    Ok(())
}

/// The whole program: builds the registry, binds `http.addr`, prints
/// `listening on http://HOST:PORT` on stdout once connections are accepted, and serves
/// until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartError> {
    let addr = config.bind_addr();
    run_registry(Registry::new(config).await?, &addr).await
}

/// [`run`] for a registry built by the caller (e.g. on its own [`Runtime`]): binds
/// `addr`, prints `listening on http://HOST:PORT` once connections are accepted, and
/// serves until SIGINT or SIGTERM.
pub async fn run_registry(registry: Registry, addr: &str) -> Result<(), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    println!("listening on http://{}", listener.local_addr()?);
    tokio::select! {
        r = registry.serve(listener) => r?,
        _ = ks3_local::wait_for_signal() => {}
    }
    Ok(())
}
