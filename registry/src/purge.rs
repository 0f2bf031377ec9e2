//! Upload purging: distribution's `PurgeUploads` (D282 `storage/purgeuploads.go`) on the
//! driver, and the background task that runs it in the registry.
//!
//! One walk of `repositories/` finds every `<repo>/_uploads/<id>/` directory (other `_`
//! directories are skipped); an upload whose `startedat` (RFC 3339) is older than the
//! cutoff has its directory deleted. An upload without a readable `startedat` is kept,
//! as distribution keeps it. Unlike distribution's, the driver's delete of the directory
//! also aborts the KS3 multipart upload in progress at `_uploads/<id>/data` and removes
//! its saved tail, so a purged upload leaves nothing billed behind. Ids need not be
//! UUIDs (distribution purges only those).
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use ks3_driver_host::{Driver, WalkControl};
use ks3_proto::date::parse_rfc3339;

use crate::config::UploadPurging;
use crate::gc::GcError;
use crate::layout::{self, RepoPath};
use crate::store::delete_each;

/// An upload directory found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub repo: String,
    pub id: String,
    /// `startedat` as stored, when there is one.
    pub started_at: Option<String>,
}

/// What a purge found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Uploads older than the cutoff (deleted unless dry-run).
    pub eligible: Vec<Upload>,
    /// Of those, deleted.
    pub deleted: usize,
    /// Uploads kept: younger, or without a readable `startedat`.
    pub kept: usize,
    /// One line per problem (an unreadable `startedat`, a failed delete).
    pub errors: Vec<String>,
}

/// Purges the uploads started more than `age` ago, writing one line per eligible upload
/// to `out`: `<repo>: upload eligible for deletion: <id> (started <startedat>)`.
/// A failed listing is an error; a failed read or delete of one upload is recorded in
/// the report and the others go on.
pub async fn purge_uploads(
    driver: &Driver,
    age: Duration,
    dry_run: bool,
    concurrency: usize,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<PurgeReport, GcError> {
    let cutoff = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let uploads = enumerate(driver).await?;
    let conc = concurrency.max(1);
    let reads: Vec<(String, bool)> = uploads
        .iter()
        .map(|((repo, id), has)| (layout::upload_started_at(repo, id), *has))
        .collect();
    let started = stream::iter(reads)
        .map(|(path, has)| {
            let driver = driver.clone();
            async move {
                if !has {
                    return Ok(None);
                }
                match driver.get_content(&path).await {
                    Ok(c) => Ok(Some(String::from_utf8_lossy(&c).into_owned())),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(format!("{path}: {e}")),
                }
            }
        })
        .buffered(conc)
        .collect::<Vec<_>>()
        .await;
    let mut report = PurgeReport::default();
    for (((repo, id), _), s) in uploads.iter().zip(started) {
        let started_at = match s {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(e);
                report.kept += 1;
                continue;
            }
        };
        let when = started_at.as_deref().map(|s| (s, parse_rfc3339(s.trim())));
        match when {
            Some((_, Some(t))) if t < cutoff => {
                let u = Upload {
                    repo: repo.clone(),
                    id: id.clone(),
                    started_at: started_at.clone(),
                };
                out(&format!(
                    "{repo}: upload eligible for deletion: {id} (started {})",
                    started_at.as_deref().unwrap_or("")
                ));
                report.eligible.push(u);
            }
            Some((s, None)) => {
                report.errors.push(format!(
                    "{}: `{}` is not an RFC 3339 time; kept",
                    layout::upload_started_at(repo, id),
                    s.chars().take(40).collect::<String>()
                ));
                report.kept += 1;
            }
            _ => report.kept += 1,
        }
    }
    if dry_run {
        return Ok(report);
    }
    let dirs: Vec<((), String)> = report
        .eligible
        .iter()
        .map(|u| ((), layout::upload_dir(&u.repo, &u.id)))
        .collect();
    for (_, dir, r) in delete_each(driver, dirs, conc).await {
        match r {
            Ok(()) => report.deleted += 1,
            Err(e) => report.errors.push(format!("deleting {dir}: {e}")),
        }
    }
    Ok(report)
}

/// Every `(repo, id)` with an `_uploads/<id>/` directory, and whether it has a
/// `startedat`.
async fn enumerate(driver: &Driver) -> Result<BTreeMap<(String, String), bool>, GcError> {
    let root = layout::repositories();
    let mut uploads: BTreeMap<(String, String), bool> = BTreeMap::new();
    let walked = driver
        .walk(&root, None, |info| {
            let (repo, rest) = match layout::split_repo_path(&info.path) {
                RepoPath::Above => return Ok(WalkControl::Continue),
                RepoPath::In {
                    repo,
                    dir: "_uploads",
                    rest,
                } => (repo, rest),
                RepoPath::Unowned | RepoPath::In { .. } => return Ok(WalkControl::SkipDir),
            };
            match rest.as_slice() {
                [id] if info.is_dir => {
                    uploads.entry((repo, id.to_string())).or_insert(false);
                }
                [id, "startedat"] if !info.is_dir => {
                    uploads.insert((repo, id.to_string()), true);
                }
                _ => {}
            }
            Ok(WalkControl::Continue)
        })
        .await;
    match walked {
        Ok(()) => Ok(uploads),
        Err(e) if e.is_not_found() => Ok(uploads),
        Err(e) => Err(GcError::Storage {
            what: "walking the uploads".into(),
            error: Box::new(e),
        }),
    }
}

/// The registry's purger: waits `initial_delay` (default: a random 0–59 minutes, as
/// distribution), purges, then again every `interval`, forever. Reports as `tracing`
/// events (target `ks3_registry::purge`; failures are warnings).
pub(crate) async fn run_periodically(driver: Driver, cfg: UploadPurging) {
    let first = cfg.initial_delay.unwrap_or_else(|| {
        use rand::Rng;
        Duration::from_secs(60 * rand::thread_rng().gen_range(0..60u64))
    });
    tracing::info!(
        target: "ks3_registry::purge",
        "upload purging: first run in {}s, then every {}s (age {}s{})",
        first.as_secs(),
        cfg.interval.as_secs(),
        cfg.age.as_secs(),
        if cfg.dry_run { ", dry run" } else { "" }
    );
    tokio::time::sleep(first).await;
    loop {
        let mut lines =
            |l: &str| tracing::info!(target: "ks3_registry::purge", "upload purging: {l}");
        match purge_uploads(
            &driver,
            cfg.age,
            cfg.dry_run,
            crate::gc::DEFAULT_CONCURRENCY,
            &mut lines,
        )
        .await
        {
            Ok(r) => {
                for e in &r.errors {
                    tracing::warn!(target: "ks3_registry::purge", "upload purging: {e}");
                }
                tracing::info!(
                    target: "ks3_registry::purge",
                    "upload purging: {}",
                    summary(&r, cfg.dry_run)
                );
            }
            Err(e) => tracing::warn!(target: "ks3_registry::purge", "upload purging failed: {e}"),
        }
        tokio::time::sleep(cfg.interval).await;
    }
}

/// One line: what a purge did.
pub fn summary(r: &PurgeReport, dry_run: bool) -> String {
    if dry_run {
        format!(
            "{} uploads eligible for deletion (dry run: none deleted), {} kept, {} errors",
            r.eligible.len(),
            r.kept,
            r.errors.len()
        )
    } else {
        format!(
            "{} uploads purged, {} kept, {} errors",
            r.deleted,
            r.kept,
            r.errors.len()
        )
    }
}
