//! `ks3-driver registry`: the reference OCI registry (`ks3-registry`) on the driver
//! component, configured the way distribution's registry is (`-c config.yml`,
//! `REGISTRY_*`), with the CLI's driver parameters (`-p`, `REGISTRY_STORAGE_KS3_*`, the
//! file's `storage.ks3`) as its storage.
use std::process::ExitCode;

use ks3_registry::{Config, Registry, Storage};

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

async fn run(cli: &Cli, args: &RegistryArgs) -> Result<(), (u8, String)> {
    let usage = |m: String| (2u8, m);
    let mut config = Config::load(cli.config.as_deref())
        .map_err(|e| usage(format!("configuration: {}: {}", e.parameter, e.message)))?;
    // The same merge as every other command: when any driver parameter is set, that is
    // the storage; with none at all the registry runs on an embedded in-memory server.
    let settings = super::resolve_settings(cli).map_err(usage)?;
    if settings.iter().next().is_some() {
        config.storage = Storage::Ks3(settings.params());
    }
    if let Some(addr) = &args.addr {
        config.addr = addr.clone();
    }
    let addr = config.bind_addr();
    super::logging::install(cli.verbose);
    let registry = if cli.component.is_some() || cli.verbose {
        let runtime = ks3_driver_host::Runtime::new(ks3_driver_host::RuntimeOptions {
            component: cli.component.clone(),
            log_requests: cli.verbose,
            ..Default::default()
        })
        .map_err(|e| (1, format!("sandbox: {e:#}")))?;
        Registry::with_runtime(config, &runtime).await
    } else {
        Registry::new(config).await
    }
    .map_err(|e| (1, e.to_string()))?;
    ks3_registry::run_registry(registry, &addr)
        .await
        .map_err(|e| (1, e.to_string()))
}
