//! `ks3-driver gc`: distribution's `registry garbage-collect` on the configured bucket
//! (`ks3_registry::gc`), with distribution's output lines and a summary; and
//! `ks3-driver purge-uploads`, the registry's upload purging run once.
use std::io::Write;
use std::time::Duration;

use ks3_registry::gc::{collect_garbage, GcError, GcOptions, GcReport};
use ks3_registry::purge::{self, purge_uploads};

use super::{out_line, CliError, Context};

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Mark and report what would be deleted; delete nothing.
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Also delete manifests that no tag points at (and then the blobs only they used).
    #[arg(short = 'm', long)]
    pub delete_untagged: bool,
    /// Keep unreferenced blobs uploaded or linked (mounted), and untagged manifests
    /// written, less than DURATION ago:
    /// the time a client has between uploading a blob and pushing the manifest that
    /// names it. Default: the configuration's storage.maintenance.gc.minage, 1h. `0` is
    /// distribution's (a push in progress may then fail and have to upload again).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub min_age: Option<Duration>,
    /// How long to wait between announcing what would be deleted and looking again for
    /// what was pushed meanwhile, which is then kept. Default: the configuration's
    /// storage.maintenance.gc.settle, 10s, the same as the registries on this store
    /// (never less). `0` skips the announcement and the second look: only for a store
    /// no registry writes to (distribution's offline collection).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub settle: Option<Duration>,
    /// First purge uploads started more than AGE ago (default: the configuration's
    /// storage.maintenance.uploadpurging.age, 168h).
    #[arg(long, value_name = "AGE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub purge_uploads: Option<String>,
    /// Reads and deletes in flight at once.
    #[arg(long, value_name = "N", default_value_t = ks3_registry::gc::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    /// Purge uploads started more than AGE ago (default: the configuration's
    /// storage.maintenance.uploadpurging.age, 168h).
    #[arg(long, value_name = "AGE", value_parser = duration)]
    pub age: Option<Duration>,
    /// Report what would be purged; delete nothing (default: the configuration's
    /// storage.maintenance.uploadpurging.dryrun).
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// Reads and deletes in flight at once.
    #[arg(long, value_name = "N", default_value_t = ks3_registry::gc::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

fn duration(s: &str) -> Result<Duration, String> {
    ks3_registry::config::parse_go_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration such as 168h, 1h30m or 90s"))
}

/// A line to stdout; a closed stdout is noticed by the next `out_line`.
fn emit(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// The registry configuration of `-c` (distribution's config.yml) and `REGISTRY_*`.
fn registry_config(ctx: &Context) -> Result<ks3_registry::Config, CliError> {
    ks3_registry::Config::load(ctx.cli.config.as_deref())
        .map_err(|e| CliError::Usage(format!("{}: {}", e.parameter, e.message)))
}

fn gc_error(e: GcError) -> CliError {
    CliError::Other(format!("gc: {e}"))
}

pub async fn run(ctx: &Context, args: &GcArgs) -> Result<(), CliError> {
    let config = registry_config(ctx)?;
    let driver = ctx.driver().await?;
    if let Some(age) = &args.purge_uploads {
        let age = if age.is_empty() {
            config.upload_purging.age
        } else {
            duration(age).map_err(CliError::Usage)?
        };
        purge_once(&driver, age, args.dry_run, args.concurrency).await?;
    }
    let opts = GcOptions {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged,
        min_age: args.min_age.unwrap_or(config.gc.min_age),
        concurrency: args.concurrency,
        settle: args.settle.unwrap_or(config.gc.settle),
    };
    let mut out = |l: &str| emit(l);
    match collect_garbage(&driver, &opts, &mut out).await {
        Ok(report) => {
            out_line(&summary(&report, &opts))?;
            Ok(())
        }
        Err(GcError::BlobDelete {
            failed,
            total,
            first,
            report,
        }) => {
            out_line(&summary(&report, &opts))?;
            Err(CliError::Other(format!(
                "gc: {failed} of {total} blob deletions failed (run again to retry them); first: {first}"
            )))
        }
        Err(e) => Err(gc_error(e)),
    }
}

pub async fn run_purge(ctx: &Context, args: &PurgeArgs) -> Result<(), CliError> {
    let config = registry_config(ctx)?;
    let driver = ctx.driver().await?;
    let age = args.age.unwrap_or(config.upload_purging.age);
    let dry_run = args.dry_run || config.upload_purging.dry_run;
    purge_once(&driver, age, dry_run, args.concurrency).await
}

async fn purge_once(
    driver: &ks3_driver_host::Driver,
    age: Duration,
    dry_run: bool,
    concurrency: usize,
) -> Result<(), CliError> {
    let mut out = |l: &str| emit(l);
    let report = purge_uploads(driver, age, dry_run, concurrency, &mut out)
        .await
        .map_err(|e| CliError::Other(format!("purging uploads: {e}")))?;
    for e in &report.errors {
        let _ = writeln!(std::io::stderr(), "ks3-driver: purging uploads: {e}");
    }
    out_line(&purge::summary(&report, dry_run))?;
    if report.errors.iter().any(|e| e.starts_with("deleting")) {
        return Err(CliError::Other(
            "purging uploads: some deletions failed (see above)".into(),
        ));
    }
    Ok(())
}

fn summary(r: &GcReport, opts: &GcOptions) -> String {
    let mut recent = if r.blobs_too_recent > 0 {
        format!(
            "; {} unreferenced blobs kept (younger than --min-age)",
            r.blobs_too_recent
        )
    } else {
        String::new()
    };
    if r.spared > 0 {
        recent.push_str(&format!(
            "; {} candidates kept (pushed while the collection ran)",
            r.spared
        ));
    }
    if opts.dry_run {
        format!(
            "dry run: {} repositories, {} manifests kept; {} blobs ({} bytes) and {} manifests would be deleted{recent}",
            r.repositories.len(),
            r.manifests_marked,
            r.blobs_eligible.len(),
            r.bytes_eligible,
            r.manifests_eligible.len()
        )
    } else {
        format!(
            "{} repositories, {} manifests kept; deleted {} blobs ({} bytes) and {} manifests{recent}",
            r.repositories.len(),
            r.manifests_marked,
            r.blobs_deleted,
            r.bytes_eligible,
            r.manifests_deleted
        )
    }
}
