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
//!
//! A library: it starts no other server, and writes nothing to stdout or stderr; configuration warnings and the upload purger's reports are
//! `tracing` events (target `ks3_registry::…`). With no storage configured
//! ([`Storage::Embedded`]) the caller supplies the driver ([`Registry::with_driver`]):
//! the `ks3-driver registry` command starts an in-memory `ks3-local` for it.
mod access;
mod app;
mod auth;
mod blobs;
pub mod config;
mod debug;
pub mod digest;
mod errors;
pub mod fence;
pub mod fsck;
pub mod gc;
mod health;
mod htpasswd;
mod http_io;
mod ids;
pub mod layout;
mod listen;
mod listing;
mod manifest;
mod manifests;
pub mod metrics;
mod notify;
mod proxy;
pub mod purge;
mod resumable_sha256;
mod route;
mod server;
mod store;
pub mod tls;
pub mod token_auth;
mod upload_guard;
mod uploads;

use std::sync::Arc;

use ks3_driver_host::{Driver, Runtime};
use tokio::net::TcpListener;

pub use app::StatsSnapshot;
pub use config::{
    Config, ConfigError, DebugConfig, HtpasswdConfig, Limits, LogConfig, Storage, StorageHealth,
    UploadPurging,
};

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
    #[error("{0}")]
    Htpasswd(String),
    /// `auth.token`'s or `http.tls`'s files could not be used.
    #[error("{0}")]
    Files(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A configured registry, ready to serve connections.
pub struct Registry {
    app: Arc<App>,
    /// The upload purger (`storage.maintenance.uploadpurging`); stopped with the registry.
    purger: Option<tokio::task::AbortHandle>,
    /// The background garbage collector (`storage.maintenance.gc`); stopped with the
    /// registry.
    collector: Option<tokio::task::AbortHandle>,
    /// The storage health check (`health.storagedriver`); stopped with the registry.
    health_check: Option<tokio::task::AbortHandle>,
    /// `proxy.ttl`'s expiry of cached content; stopped with the registry.
    proxy_expiry: Option<tokio::task::AbortHandle>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(p) = &self.purger {
            p.abort();
        }
        if let Some(c) = &self.collector {
            c.abort();
        }
        if let Some(h) = &self.health_check {
            h.abort();
        }
        if let Some(e) = &self.proxy_expiry {
            e.abort();
        }
    }
}

impl Registry {
    /// Builds the registry on the process-wide driver runtime, with the driver of
    /// `storage.ks3` ([`Storage::Ks3`]; with [`Storage::Embedded`], no storage, it is an
    /// error: see [`Registry::with_driver`]). Configuration warnings are logged.
    pub async fn new(config: Config) -> Result<Registry, StartError> {
        log_warnings(&config);
        let driver = Driver::new(ks3_params(&config)?).await?;
        Self::assemble(config, driver)
    }

    /// As [`Registry::new`], with the drivers on `runtime` (another component file,
    /// other sandbox limits).
    pub async fn with_runtime(config: Config, runtime: &Runtime) -> Result<Registry, StartError> {
        log_warnings(&config);
        let driver = Driver::with_runtime(runtime, ks3_params(&config)?).await?;
        Self::assemble(config, driver)
    }

    /// The registry on a ready `driver`, whatever `config.storage` says: the caller's
    /// storage (the command line's embedded in-memory server, a test's `ks3-local`).
    /// Starts the upload purger (a task on the current tokio runtime) when it is enabled.
    pub async fn with_driver(config: Config, driver: Driver) -> Result<Registry, StartError> {
        log_warnings(&config);
        Self::assemble(config, driver)
    }

    fn assemble(config: Config, driver: Driver) -> Result<Registry, StartError> {
        // Every driver call and KS3 request, the purger's and the health check's too.
        let metrics = Arc::new(metrics::Metrics::default());
        let driver = driver.with_observer(Arc::clone(&metrics) as _);
        let htpasswd = match &config.htpasswd {
            Some(h) => Some(Htpasswd::open(h).map_err(StartError::Htpasswd)?),
            None => None,
        };
        let token = match &config.token {
            Some(t) => Some(token_auth::TokenVerifier::new(t.clone()).map_err(StartError::Files)?),
            None => None,
        };
        let tls = match &config.tls {
            Some(t) => Some(tls::acceptor(t).map_err(StartError::Files)?),
            None => None,
        };
        let proxy = match &config.proxy {
            Some(p) => Some(
                proxy::Proxy::new(p.clone(), driver.clone())
                    .map_err(|e| StartError::Files(format!("proxy: {e}")))?,
            ),
            None => None,
        };
        let proxy_expiry = match (&config.proxy, config.read_only) {
            (Some(p), false) => p
                .ttl
                .map(|ttl| tokio::spawn(proxy::run_expiry(driver.clone(), ttl)).abort_handle()),
            _ => None,
        };
        // Read-only mode is how an operator collects garbage on a live store: nothing is
        // written, not even by the purger.
        let purger = (config.upload_purging.enabled && !config.read_only).then(|| {
            tokio::spawn(purge::run_periodically(
                driver.clone(),
                config.upload_purging.clone(),
            ))
            .abort_handle()
        });
        let collector = (config.gc.enabled && !config.read_only).then(|| {
            tokio::spawn(gc::run_periodically(driver.clone(), config.gc.clone())).abort_handle()
        });
        let access = app::Access {
            htpasswd,
            token,
            tls,
        };
        let mut app = App::new(Store::new(driver), config, access);
        app.metrics = metrics;
        app.notifier = notify::Notifier::start(
            &app.config.notifications,
            Arc::clone(&app.metrics),
            app.tls.is_some(),
        )
        .map(Arc::new);
        let health_check = app.config.storage_health.clone().map(|h| {
            tokio::spawn(health::run(
                app.store.driver().clone(),
                h,
                Arc::clone(&app.health),
            ))
            .abort_handle()
        });
        app.proxy = proxy;
        Ok(Registry {
            app: Arc::new(app),
            purger,
            collector,
            health_check,
            proxy_expiry,
        })
    }

    /// Serves connections from `listener` until the future is dropped. Several calls
    /// (several listeners) may run at once.
    pub async fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        server::accept_loop(Arc::clone(&self.app), listener).await
    }

    /// Serves the debug endpoints (`/debug/health`, and the metrics with
    /// `http.debug.prometheus.enabled`) from `listener` until the future is dropped.
    /// Owns what it needs, so it can be spawned.
    pub fn serve_debug(
        &self,
        listener: TcpListener,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        debug::accept_loop(Arc::clone(&self.app), listener)
    }

    /// Where to bind the debug server (`http.debug.addr`, `:5001` meaning every
    /// interface), when one is configured.
    pub fn debug_bind_addr(&self) -> Option<String> {
        let addr = &self.app.config.debug.as_ref()?.addr;
        Some(if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.clone()
        })
    }

    /// The Prometheus text of this instance's metrics (what the debug port serves).
    pub fn metrics_text(&self) -> String {
        self.app.metrics.render()
    }

    /// `https` with `http.tls`, else `http`: what the listening line says.
    pub fn scheme(&self) -> &'static str {
        if self.app.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Asks every connection to finish the requests it has in flight and close, and
    /// waits for them up to `timeout` (`http.draintimeout`): `true` when all finished.
    /// Stop accepting first (drop the [`Registry::serve`] future).
    pub async fn drain(&self, timeout: std::time::Duration) -> bool {
        self.app.connections.drain(timeout).await
    }

    /// `http.draintimeout`.
    pub fn drain_timeout(&self) -> Option<std::time::Duration> {
        self.app.config.drain_timeout
    }

    /// The storage driver the registry uses.
    pub fn driver(&self) -> &Driver {
        self.app.store.driver()
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

/// What the configuration ignored, as warnings (shown by the command line without `-v`).
fn log_warnings(config: &Config) {
    for w in &config.warnings {
        tracing::warn!(target: "ks3_registry::config", "{w}");
    }
}

/// The driver parameters of `storage.ks3`; an error without a storage section (the
/// caller then supplies the driver: [`Registry::with_driver`]).
fn ks3_params(config: &Config) -> Result<ks3_driver_host::Params, ConfigError> {
    match &config.storage {
        Storage::Ks3(p) => Ok(p.clone()),
        Storage::Filesystem(_) => Err(ConfigError {
            parameter: "storage.filesystem".into(),
            message: "the filesystem driver is a component: load it with its directory \
                      preopened (`ks3-driver registry --component fs_driver_component.wasm`), \
                      or build the registry on it (Registry::with_driver)"
                .into(),
        }),
        Storage::Embedded => Err(ConfigError {
            parameter: "storage".into(),
            message: "no storage configured: set storage.ks3, or build the registry on a \
                      driver of your own (Registry::with_driver)"
                .into(),
        }),
    }
}
