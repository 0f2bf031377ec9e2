//! `ks3-driver fsck`: checks the registry's store (`ks3_registry::fsck`) and prints one
//! line per problem (or one JSON object per line), what `--repair` did, and a summary.
//! Exit status: 0 clean (leftovers allowed, unless `--strict`), 1 problems found, 2 the store could not be read (or a repair
//! could not delete) or a usage error.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ks3_registry::fsck::{fsck, FsckOptions, FsckReport, Outcome, VerifyProgress};

use super::progress::Progress;
use super::{out_line, CliError, Context};

#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Also re-hash every blob and compare with its path (reads the whole store).
    #[arg(long)]
    pub verify_digests: bool,
    /// Delete what is safe to delete: tags, tag index entries and referrers links naming
    /// a missing manifest, `_layers` links to missing blobs, stale uploads, orphan tails.
    /// Never blob data nor a manifest revision.
    #[arg(long)]
    pub repair: bool,
    /// Leftovers (`_layers` links to swept blobs, which distribution's GC and this
    /// registry's keep by design) make the exit status 1 too.
    #[arg(long)]
    pub strict: bool,
    /// One JSON object per line: each problem, each repair, then a summary object.
    #[arg(long)]
    pub json: bool,
    /// Uploads started more than AGE ago are problems (default: the configuration's
    /// storage.maintenance.uploadpurging.age, 168h).
    #[arg(long, value_name = "AGE", value_parser = duration)]
    pub upload_age: Option<Duration>,
    /// Reads (and repairs) in flight at once.
    #[arg(long, value_name = "N", default_value_t = ks3_registry::fsck::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
}

fn duration(s: &str) -> Result<Duration, String> {
    ks3_registry::config::parse_go_duration(s)
        .ok_or_else(|| format!("`{s}` is not a duration such as 168h, 1h30m or 90s"))
}

/// The byte bar of `--verify-digests` (when stderr is a terminal and the store is large
/// enough: see `progress.rs`); blobs are hashed concurrently, hence the lock.
struct Bar(Mutex<Option<Progress>>);

impl VerifyProgress for Bar {
    fn start(&self, blobs: usize, bytes: u64) {
        let label = format!("fsck: re-hashing {blobs} blobs");
        if let Ok(mut p) = self.0.lock() {
            *p = Progress::start(&label, Some(bytes));
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(mut p) = self.0.lock() {
            if let Some(p) = p.as_mut() {
                p.add(bytes);
            }
        }
    }
    fn finish(&self) {
        if let Some(p) = self.0.lock().ok().and_then(|mut p| p.take()) {
            p.finish();
        }
    }
}

pub async fn run(ctx: &Context, args: &FsckArgs) -> Result<(), CliError> {
    let config = ks3_registry::Config::load(ctx.cli.config.as_deref())
        .map_err(|e| CliError::Usage(format!("{}: {}", e.parameter, e.message)))?;
    let driver = ctx.driver().await?;
    let opts = FsckOptions {
        verify_digests: args.verify_digests,
        upload_age: args.upload_age.unwrap_or(config.upload_purging.age),
        repair: args.repair,
        concurrency: args.concurrency,
        progress: Some(Arc::new(Bar(Mutex::new(None)))),
        ..FsckOptions::default()
    };
    let report = fsck(&driver, &opts).await.map_err(|e| CliError::Status {
        code: 2,
        message: format!("fsck: could not read the store: {e}"),
    })?;
    print(&report, args.json)?;
    let failed = report
        .repairs
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed(_)));
    if failed {
        return Err(CliError::Status {
            code: 2,
            message: "fsck: some repairs failed (see above)".into(),
        });
    }
    let clean = if args.strict {
        report.is_clean_strict()
    } else {
        report.is_clean()
    };
    if !clean {
        // The lines said it all.
        return Err(CliError::Status {
            code: 1,
            message: String::new(),
        });
    }
    Ok(())
}

fn print(report: &FsckReport, json: bool) -> Result<(), CliError> {
    for p in &report.problems {
        out_line(&if json { p.json() } else { p.line() })?;
    }
    for r in &report.repairs {
        out_line(&if json { r.json() } else { r.line() })?;
    }
    out_line(&if json {
        report.summary_json()
    } else {
        report.summary_line()
    })
}
