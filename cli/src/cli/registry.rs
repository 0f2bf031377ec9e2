//! `ks3-driver registry`: the reference OCI registry (`ks3-registry`) on the driver
//! component, configured the way distribution's registry is (`-c config.yml`,
//! `REGISTRY_*`), with the CLI's driver parameters (`-p`, `REGISTRY_STORAGE_KS3_*`, the
//! file's `storage.ks3`) as its storage; with none, on an embedded in-memory server. With
//! `storage.filesystem.rootdirectory` and `--component` a filesystem driver component
//! (`fs-driver/`), on that directory of local disk, which the component gets preopened.
//!
use std::process::ExitCode;

use ks3_driver_host::settings::Settings;
use ks3_driver_host::{Driver, Params, Runtime};
use ks3_registry::{Config, Registry, Storage};
use tokio::net::TcpListener;

use super::embedded::{Embedded, BUCKET};
use super::Cli;

#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// Listen on HOST:PORT (overrides `http.addr`; distribution's default is `:5000`).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
}

/// Runs until SIGINT or SIGTERM, on a multi-threaded runtime (many pushes and pulls at
/// once); errors are one line on stderr.
pub fn main(cli: &Cli, args: &RegistryArgs) -> ExitCode {
    let rt = match super::runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(run(cli, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("ks3-driver registry: {msg}");
            ExitCode::from(code)
        }
    }
}

/// A line for the operator, through the log (so `log.formatter: json` makes it JSON too):
/// shown whatever the level, as a warning.
fn say(line: &str) {
    tracing::warn!(target: "ks3_registry::cli", "{line}");
}

async fn run(cli: &Cli, args: &RegistryArgs) -> Result<(), (u8, String)> {
    let usage = |m: String| (2u8, m);
    let mut config = Config::load(cli.config.as_deref())
        .map_err(|e| usage(format!("configuration: {}: {}", e.parameter, e.message)))?;
    // The same merge as every other command: when any driver parameter is set, that is
    // the storage; with none at all the registry runs on an embedded in-memory server.
    // With `storage.filesystem` in the file, the file has no KS3 parameters to merge;
    // any from `-p` or `REGISTRY_STORAGE_KS3_*` would be a second driver.
    if matches!(config.storage, Storage::Filesystem(_)) {
        let ks3 = Settings::resolve(None, &Settings::process_env(), &cli.params)
            .map_err(|e| usage(e.message))?;
        if ks3.iter().next().is_some() {
            return Err(usage(
                "storage.filesystem and KS3 parameters (-p, REGISTRY_STORAGE_KS3_*) are both set: configure one driver".into(),
            ));
        }
    } else {
        let settings = super::resolve_settings(cli).map_err(usage)?;
        if settings.iter().next().is_some() {
            config.storage = Storage::Ks3(settings.params());
        }
    }
    if let Some(addr) = &args.addr {
        config.addr = addr.clone();
    }
    let addr = config.bind_addr();
    super::logging::install_for_registry(cli.verbose, &config.log);
    let failed = |e: ks3_registry::StartError| (1, e.to_string());
    if cli.dir.is_some() {
        return Err(usage(
            "registry: the filesystem driver's directory is storage.filesystem.rootdirectory in the configuration, not --dir"
                .into(),
        ));
    }
    // `storage.filesystem`: the directory the filesystem component stores in, as its `/`.
    let preopen = match &config.storage {
        Storage::Filesystem(root) if cli.component.is_some() => {
            std::fs::create_dir_all(root).map_err(|e| {
                (
                    1,
                    format!(
                        "storage.filesystem.rootdirectory {}: {e}",
                        root.display()
                    ),
                )
            })?;
            Some(root.clone())
        }
        Storage::Filesystem(_) => {
            return Err(usage(
                "storage.filesystem needs --component with a filesystem driver component (fs_driver_component.wasm); the embedded driver is KS3's"
                    .into(),
            ))
        }
        _ => None,
    };
    let runtime = if cli.component.is_some() || cli.verbose {
        let options = ks3_driver_host::RuntimeOptions {
            component: cli.component.clone(),
            log_requests: cli.verbose,
            preopen,
            ..Default::default()
        };
        Some(Runtime::new(options).map_err(|e| (1, format!("sandbox: {e:#}")))?)
    } else {
        None
    };
    // The embedded server lives as long as the registry serves.
    let mut _embedded = None;
    let registry = match (&config.storage, &runtime) {
        (Storage::Ks3(_), Some(rt)) => Registry::with_runtime(config, rt).await,
        (Storage::Ks3(_), None) => Registry::new(config).await,
        (Storage::Filesystem(root), Some(rt)) => {
            // Its parameters: none; its root is the preopened directory's `/`.
            let driver = Driver::with_runtime(rt, Params::new())
                .await
                .map_err(|e| failed(e.into()))?;
            if driver.name() != "filesystem" {
                return Err(usage(format!(
                    "storage.filesystem: the component given with --component is the `{}` driver, not a filesystem driver",
                    driver.name()
                )));
            }
            say(&format!(
                "ks3-registry: storage: the filesystem driver component on {}",
                root.display()
            ));
            Registry::with_driver(config, driver).await
        }
        (Storage::Filesystem(_), None) => {
            return Err(usage("storage.filesystem needs --component".into()))
        }
        (Storage::Embedded, rt) => {
            let e = Embedded::start(BUCKET, "AKLTlocal").map_err(|m| (1, m))?;
            say(&format!(
                "ks3-registry: no storage configured: started an in-memory KS3 server (ks3-local) at {}, bucket {BUCKET}; its content is lost when the registry stops",
                e.server.endpoint()
            ));
            // The embedded server listens on loopback only: a redirect to it would
            // fail for every client on another host.
            if !config.redirect_disabled {
                config.redirect_disabled = true;
                say("ks3-registry: blob downloads are served by the registry itself (no redirects to the embedded KS3 server)");
            }
            let driver = match rt {
                Some(rt) => Driver::with_runtime(rt, e.params.clone()).await,
                None => Driver::new(e.params.clone()).await,
            }
            .map_err(|e| failed(e.into()))?;
            _embedded = Some(e.server);
            Registry::with_driver(config, driver).await
        }
    }
    .map_err(failed)?;
    // `http.debug`: health and metrics on a port of their own while the registry serves.
    if let Some(debug_addr) = registry.debug_bind_addr() {
        let listener = TcpListener::bind(&debug_addr).await.map_err(|e| {
            (
                1,
                format!("cannot listen on {debug_addr} (http.debug.addr): {e}"),
            )
        })?;
        tokio::spawn(registry.serve_debug(listener));
    }
    serve(registry, &addr).await
}

/// Binds `addr`, prints `listening on http(s)://HOST:PORT` on stdout once connections are
/// accepted, and serves until SIGINT or SIGTERM. On SIGTERM with `http.draintimeout`, it
/// stops accepting at once and lets the requests in flight finish for up to that long
/// (as distribution 2.8.2): all finished, exit 0; one cut, exit 1. SIGINT, and SIGTERM
/// without a drain timeout, stop at once.
async fn serve(registry: Registry, addr: &str) -> Result<(), (u8, String)> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| (1, format!("cannot listen on {addr}: {e}")))?;
    let local = listener.local_addr().map_err(|e| (1, e.to_string()))?;
    println!("listening on {}://{local}", registry.scheme());
    let terminated = tokio::select! {
        r = registry.serve(listener) => {
            r.map_err(|e| (1, e.to_string()))?;
            false
        }
        sigterm = stop_signal() => sigterm,
    };
    // The listener is closed here: new connections are refused from now on.
    match registry.drain_timeout() {
        Some(timeout) if terminated => {
            say(&format!(
                "ks3-registry: stopping gracefully: draining connections for {timeout:?}"
            ));
            if registry.drain(timeout).await {
                Ok(())
            } else {
                Err((
                    1,
                    format!("requests still in flight after {timeout:?} were cut"),
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Waits for SIGINT or SIGTERM; `true` for SIGTERM.
async fn stop_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = tokio::signal::ctrl_c() => false,
                _ = term.recv() => true,
            };
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    false
}
