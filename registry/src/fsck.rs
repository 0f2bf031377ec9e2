//! `fsck`: checks a registry's store against distribution's layout and reports every
//! inconsistency (see [`Kind`] for the list), optionally repairing what is safe to remove.
//!
//! **Order.** The driver's tails are listed first, then the store is walked once: a tail
//! made by an upload that starts after the listing is not seen at all, and one listed
//! before its upload's `startedat` existed cannot be: the registry writes `startedat`
//! before it opens the upload's writer. Links are then read, then the manifests their
//! revisions name (each digest once), everything through [`crate::store`]'s bounded
//! fan-out and capped reads, as GC reads.
//!
//! **Reads only, unless `repair`.** A problem found on a serving registry may be a write
//! in flight (a tag whose manifest is being deleted); repairs check again just before
//! they delete ([`repair`]), and never touch blob data or a manifest revision.
//!
//! **Errors.** A storage error (other than a path deleted since the walk) ends the run:
//! fsck reports what it could check completely, or nothing.
mod repair;
pub mod report;
mod rules;
mod scan;
mod tails;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use ks3_driver_host::Driver;

pub use report::{Fix, FsckReport, Guard, Kind, Outcome, Problem, Repair};

use crate::layout::{self, RepoPath};

/// Reads in flight at once (as GC).
pub const DEFAULT_CONCURRENCY: usize = crate::gc::DEFAULT_CONCURRENCY;

/// Told how re-hashing goes (`verify_digests`): a progress display.
pub trait VerifyProgress: Send + Sync {
    /// Before the first blob: how many, how many bytes in all.
    fn start(&self, blobs: usize, bytes: u64);
    /// `bytes` more hashed.
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// How a check runs.
#[derive(Clone)]
pub struct FsckOptions {
    /// Re-hash every blob (reads the whole store).
    pub verify_digests: bool,
    /// Uploads started longer ago are problems (`storage.maintenance.uploadpurging.age`).
    pub upload_age: Duration,
    /// Delete what repairable problems name (see [`Kind::repairable`]).
    pub repair: bool,
    /// Reads (and repairs) in flight at once (at least 1).
    pub concurrency: usize,
    /// List the driver's tails (a signed listing of `~tails/`, outside the driver's API).
    pub check_tails: bool,
    pub progress: Option<Arc<dyn VerifyProgress>>,
}

impl Default for FsckOptions {
    fn default() -> Self {
        FsckOptions {
            verify_digests: false,
            upload_age: Duration::from_secs(168 * 3600),
            repair: false,
            concurrency: DEFAULT_CONCURRENCY,
            check_tails: true,
            progress: None,
        }
    }
}

/// Why a check could not be completed: the store could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    #[error("{what}: {error}")]
    Storage {
        what: String,
        error: Box<ks3_driver_host::Error>,
    },
    /// The signed listing of the driver's tails failed.
    #[error("{0}")]
    Listing(String),
}

impl FsckError {
    fn storage(what: impl Into<String>, error: ks3_driver_host::Error) -> FsckError {
        FsckError::Storage {
            what: what.into(),
            error: Box::new(error),
        }
    }
}

/// Checks the store of `driver` (and repairs it with `opts.repair`).
pub async fn fsck(driver: &Driver, opts: &FsckOptions) -> Result<FsckReport, FsckError> {
    let conc = opts.concurrency.max(1);
    let tails = if opts.check_tails {
        tails::list_tails(driver).await?
    } else {
        Vec::new()
    };
    let scan = scan::scan(driver)
        .await
        .map_err(|e| FsckError::storage("walking the store", e))?;
    let links = rules::read_links(driver, &scan, conc).await?;
    let manifests = rules::read_manifests(driver, &scan, &links, conc).await?;

    let mut problems = Vec::new();
    rules::check_blob_paths(&scan, &mut problems);
    rules::check_repositories(&scan, &links, &manifests, &mut problems);
    rules::check_uploads(driver, &scan, opts.upload_age, conc, &mut problems).await?;
    check_tails(&scan, &tails, &mut problems);
    for (path, age) in crate::fence::abandoned_records(driver)
        .await
        .map_err(|e| FsckError::storage("listing the garbage collector's records", e))?
    {
        problems.push(Problem {
            kind: Kind::GcRecordAbandoned,
            message: format!(
                "a garbage collector's sweep record, not rewritten for {} minutes and never \
                 marked ended: its collector died mid-sweep",
                age.as_secs() / 60
            ),
            fix: Some(Fix {
                target: path.clone(),
                guard: Guard::None,
            }),
            path,
        });
    }
    let mut report = FsckReport {
        repositories: scan.repos.len(),
        manifests: scan.repos.values().map(|r| r.revisions.len()).sum(),
        blobs: scan.blobs.len(),
        uploads: scan.repos.values().map(|r| r.uploads.len()).sum(),
        tails: tails.len(),
        ..FsckReport::default()
    };
    if opts.verify_digests {
        report.blobs_verified =
            verify::verify_blobs(driver, &scan, conc, opts.progress.as_deref(), &mut problems)
                .await?;
    }
    problems.sort_by(|a, b| (&a.path, a.kind).cmp(&(&b.path, b.kind)));
    if opts.repair {
        report.repairs = repair::repair(driver, &problems, conc).await;
    }
    report.problems = problems;
    Ok(report)
}

/// A tail belongs to an upload in progress when it lies in `<repo>/_uploads/<id>/` and
/// the walk found that upload (the registry writes tails nowhere else). An orphan is
/// repaired by deleting the upload's directory (or the tail's own path, outside an
/// upload) through the driver, which removes the tail and aborts its multipart upload;
/// only once that directory is still absent, so nothing but the tail is deleted.
fn check_tails(scan: &scan::Scan, tails: &[String], problems: &mut Vec<Problem>) {
    for path in tails {
        let owner = match layout::split_repo_path(path) {
            RepoPath::In {
                repo,
                dir: "_uploads",
                rest,
            } if rest.len() >= 2 => Some((repo, rest[0].to_string())),
            _ => None,
        };
        let (target, live) = match &owner {
            Some((repo, id)) => (
                layout::upload_dir(repo, id),
                scan.repos
                    .get(repo)
                    .is_some_and(|r| r.uploads.contains_key(id)),
            ),
            None => (path.clone(), false),
        };
        if live {
            continue;
        }
        let message = match owner {
            Some((repo, id)) => {
                format!("the saved tail of upload {id} of {repo}, which no longer exists")
            }
            None => "a saved tail outside any upload".to_string(),
        };
        problems.push(Problem {
            kind: Kind::TailOrphan,
            // Not a driver path: the tail's key under the root.
            path: format!("~tails{path}"),
            message,
            fix: Some(Fix {
                target: target.clone(),
                guard: Guard::Absent(target),
            }),
        });
    }
}
