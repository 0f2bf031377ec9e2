//! `ks3-driver bench`: the command line's side of the benchmark (its arguments, the
//! configuration, where its output goes); the benchmark itself is the `ks3-bench` crate.
use std::sync::Arc;

use crate::cli::{CliError, Context};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Small sizes (64 MiB streams, 200 small objects, 1000 keys, 4 writers × 8 MiB): a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Leave out the official Python SDK's figures.
    #[arg(long)]
    pub no_sdk: bool,
    /// Only the "At 20 ms" table: both registries on a ks3-local 20 ms away.
    #[arg(long)]
    pub only_distance: bool,
    /// Only the "Mirror" table: the registry in proxy mode in front of distribution 2.8.2.
    #[arg(long)]
    pub only_mirror: bool,
    /// Only N stats of one 4 KiB object, one at a time, through the component then natively:
    /// the per-call path alone, for a profiler (docs/benchmarks.md).
    #[arg(long, value_name = "N")]
    pub stat_loop: Option<usize>,
    /// With --stat-loop: through one side only, `component` or `native`.
    #[arg(long, value_name = "SIDE", requires = "stat_loop")]
    pub side: Option<String>,
    /// Internal: run the benchmark's local server (until stdin closes).
    #[arg(long, hide = true)]
    pub serve_local: bool,
    /// Internal: one native stat in a fresh process (the native cold start).
    #[arg(long, hide = true, value_name = "PATH")]
    pub native_stat: Option<String>,
}

pub async fn run(ctx: &Context, args: &BenchArgs) -> Result<(), CliError> {
    if args.serve_local {
        return ks3_bench::serve_local().map_err(CliError::Other);
    }
    let configured = ctx.settings()?.params();
    if let Some(path) = &args.native_stat {
        let config = ks3_driver_host::Config::from_params(&configured, |k| std::env::var(k).ok())
            .map_err(|e| CliError::Usage(e.to_string()))?;
        return ks3_bench::native_stat(config, path.clone())
            .await
            .map_err(CliError::Other);
    }
    let runtime = ctx.runtime()?;
    if let Some(n) = args.stat_loop {
        let report = ks3_bench::stat_loop(runtime, configured, n, args.side.clone())
            .await
            .map_err(CliError::Other)?;
        print!("{report}");
        return Ok(());
    }
    let options = ks3_bench::Options {
        quick: args.quick,
        no_sdk: args.no_sdk,
        only_distance: args.only_distance,
        only_mirror: args.only_mirror,
        child_args: child_args(ctx),
    };
    let progress: ks3_bench::Progress = Arc::new(|line| eprintln!("ks3-driver bench: {line}"));
    let report = ks3_bench::run(runtime, configured, options, progress)
        .await
        .map_err(CliError::Other)?;
    print!("{report}");
    Ok(())
}

/// The global options a child `ks3-driver` needs to reach the same configuration.
fn child_args(ctx: &Context) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(c) = &ctx.cli.config {
        a.push("-c".to_string());
        a.push(c.display().to_string());
    }
    for p in &ctx.cli.params {
        a.push("-p".to_string());
        a.push(p.clone());
    }
    if let Some(c) = &ctx.cli.component {
        a.push("--component".to_string());
        a.push(c.display().to_string());
    }
    a
}
