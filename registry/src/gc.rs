//! Garbage collection: distribution 2.8.2's `registry garbage-collect` on the driver, safe
//! while registries serve.
//!
//! **Mark.** Every manifest of every repository (`_manifests/revisions/…/link`) is marked
//! with what it references: config and layers of an image manifest, the child manifests
//! of an index (as digests, as 2.8.2 does). With `delete_untagged`, a manifest that no
//! tag's `current/link` names is queued for deletion instead, unless a kept index of its
//! repository references it (distribution v3's rule; 2.8.2 would queue the children of a
//! tagged multi-platform image and then sweep their layers), or its revision link is
//! younger than `min_age`.
//!
//! **Sweep.** Queued manifests lose their tag index entries and their revision directory
//! (`vacuum.RemoveManifest`); then every blob under `blobs/` that is not marked, older
//! than `min_age` and not linked into a repository within `min_age` loses its `_layers` links and its digest directory (`vacuum.RemoveBlob`;
//! 2.8.2 leaves the links, which then name nothing).
//!
//! **While registries serve** (`settle` > 0, the default): before deleting, the
//! collection announces its candidates in a sweep record, waits `settle`, scans the
//! repositories again and spares everything linked since its first scan — a manifest
//! pushed or tagged meanwhile and all it references, a blob linked meanwhile (uploaded
//! again, or mounted) — then deletes and removes its record. Requests that rely on a
//! stored blob or manifest look for such records first ([`crate::fence`] explains why
//! the two sides cannot miss each other). `min_age` keeps blobs that were just uploaded
//! and wait for the manifest that will name them. With `settle` zero the collection is
//! distribution's, for a store no registry writes to.
//!
//! **Safety.** Everything is read before anything is deleted, and any error while reading
//! (an unreadable link, a manifest that does not parse, a storage error) ends the run
//! before the sweep: blobs are never deleted on a partial mark. Only two absences are
//! tolerated, as in distribution: a revision whose manifest bytes are gone is skipped
//! (one whose bytes were not listed is read again first: they may have been pushed after
//! the listing), and a repository without `_manifests` has nothing to mark. Blobs are
//! enumerated *before* the mark, so a blob written while the collection runs is never a
//! candidate.
//!
//! The listings are the driver's flat walks (about one request per 1000 keys, `_uploads`
//! skipped); reads and deletes run `concurrency` at a time, within the process-wide pool
//! of driver calls ([`crate::store::fan_out`]). A manifest is read only when its blob is
//! within the manifest limit (a larger one stops the run: it is no manifest, and a mark
//! that skipped it could sweep what it references).
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use ks3_driver_host::Driver;

use crate::layout;
use crate::store::{delete_if_present, fan_out};

mod mark;
mod scan;
mod sweep;

use mark::{Marker, Missing};
pub(crate) use scan::repo_order;
use scan::{components, enumerate_blobs, enumerate_repositories, read_links, Blob, Repo};

/// Reads and deletes in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How a collection runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Mark and report, delete nothing.
    pub dry_run: bool,
    /// Also delete manifests that no tag points at (`--delete-untagged`).
    pub delete_untagged: bool,
    /// Unreferenced blobs modified or linked into a repository less than this long ago,
    /// and untagged manifests written less than this long ago, are kept (zero: none kept,
    /// as distribution).
    pub min_age: Duration,
    /// Reads and deletes in flight at once (at least 1).
    pub concurrency: usize,
    /// How long to wait between announcing the candidates and re-scanning for what was
    /// pushed meanwhile (see the module docs); zero for a store no registry writes to.
    pub settle: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            min_age: Duration::ZERO,
            concurrency: DEFAULT_CONCURRENCY,
            settle: crate::fence::DEFAULT_SETTLE,
        }
    }
}

/// What a collection found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Repositories, in distribution's catalog order.
    pub repositories: Vec<String>,
    /// The mark set: every manifest kept and every digest they reference.
    pub marked: BTreeSet<String>,
    /// Manifests kept (per repository, so one digest in two repositories counts twice).
    pub manifests_marked: usize,
    /// Untagged manifests queued for deletion: `(repository, digest)`.
    pub manifests_eligible: Vec<(String, String)>,
    /// Blobs not marked (and old enough), sorted.
    pub blobs_eligible: Vec<String>,
    /// Their total size in bytes.
    pub bytes_eligible: u64,
    /// Unreferenced blobs kept because they are younger than `min_age`.
    pub blobs_too_recent: usize,
    /// Candidates (manifests and blobs) spared because they were linked while the
    /// collection ran.
    pub spared: usize,
    pub manifests_deleted: usize,
    pub blobs_deleted: usize,
    /// `_layers` links of deleted blobs, deleted with them.
    pub layer_links_deleted: usize,
}

/// Why a collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A storage operation failed while reading: nothing was deleted.
    #[error("{what}: {error}")]
    Storage {
        what: String,
        error: Box<ks3_driver_host::Error>,
    },
    /// Something in the store is not what distribution's layout allows: nothing was
    /// deleted.
    #[error("{0}")]
    Invalid(String),
    /// The collection could not keep its sweep record, so registries could stop seeing
    /// it: it stopped deleting.
    #[error("{0}")]
    Fence(String),
    /// Deleting an untagged manifest failed: no blob was deleted.
    #[error("failed to delete manifest {digest} of {repo}: {error}")]
    ManifestDelete {
        repo: String,
        digest: String,
        error: Box<ks3_driver_host::Error>,
    },
    /// Some blob deletions failed (the others happened).
    #[error("{failed} of {total} blob deletions failed (run again to retry them); first: {first}")]
    BlobDelete {
        failed: usize,
        total: usize,
        first: String,
        report: Box<GcReport>,
    },
}

pub(crate) fn storage(what: impl Into<String>) -> impl FnOnce(ks3_driver_host::Error) -> GcError {
    let what = what.into();
    move |e| GcError::Storage {
        what,
        error: Box::new(e),
    }
}

/// Runs a collection, writing distribution's lines (§ "Stdout format") to `out`:
/// `<repo>`, `<repo>: marking manifest <d> ` (trailing space included),
/// `<repo>: marking blob <d>`, `manifest eligible for deletion: <d>`, then an empty line
/// and `N blobs marked, N blobs and N manifests eligible for deletion`, then
/// `blob eligible for deletion: <d>` for each; while registries serve, a last line
/// `N candidates spared: linked while the collection ran` when some were. A summary is
/// the caller's to print.
pub async fn collect_garbage(
    driver: &Driver,
    opts: &GcOptions,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<GcReport, GcError> {
    let conc = opts.concurrency.max(1);
    let now = SystemTime::now();
    let young = |t: SystemTime| {
        !opts.min_age.is_zero() && now.duration_since(t).unwrap_or(Duration::ZERO) < opts.min_age
    };
    // Blobs first: one written while the mark runs is then never a candidate.
    let blobs = enumerate_blobs(driver).await?;
    let mut repos = enumerate_repositories(driver).await?;

    let mut report = GcReport::default();
    let mut names: Vec<String> = repos.keys().cloned().collect();
    names.sort_by(|a, b| repo_order(a, b));
    let mut marker = Marker::new(driver, conc);
    let mut queued: Vec<(String, String)> = Vec::new();

    for name in &names {
        let Some(repo) = repos.get_mut(name) else {
            continue;
        };
        out(name);
        read_repository(driver, name, repo, conc).await?;

        // Revisions whose bytes exist (distribution's enumerator skips the others).
        let mut present: Vec<String> = Vec::new();
        let mut young_revisions = HashSet::new();
        let mut seen = HashSet::new();
        for (d, (_, written)) in repo.revisions.iter().zip(&repo.revision_links) {
            let Some(d) = d else {
                continue;
            };
            if young(*written) {
                young_revisions.insert(d.clone());
            }
            if seen.insert(d.clone()) {
                present.push(d.clone());
            }
        }
        // A revision whose bytes were not listed under `blobs/` may have been pushed
        // after that listing (its bytes, then its link, both before the repositories were
        // listed): read now, its bytes count if they exist, or the blobs it references
        // would be swept from under a manifest the registry just acknowledged. Only one
        // whose bytes are gone is skipped, as distribution's enumerator skips it.
        let late: Vec<String> = present
            .iter()
            .filter(|d| !blobs.contains_key(*d))
            .cloned()
            .collect();
        marker.read_if_present(name, &late).await?;
        present.retain(|d| blobs.contains_key(d) || marker.bodies.contains_key(d));
        let tagged: HashSet<&String> = repo
            .tags
            .values()
            .filter_map(|t| t.current.as_ref())
            .collect();
        let roots: Vec<String> = present
            .iter()
            .filter(|d| !opts.delete_untagged || tagged.contains(d) || young_revisions.contains(*d))
            .cloned()
            .collect();
        let present_set: HashSet<&String> = present.iter().collect();
        let kept = marker
            .closure(
                name,
                roots,
                |c| present_set.contains(&c.to_string()),
                Missing::Fails,
            )
            .await?;
        for d in &present {
            if kept.contains(d) {
                out(&format!("{name}: marking manifest {d} "));
                report.marked.insert(d.clone());
                report.manifests_marked += 1;
                if let Some((refs, _)) = marker.bodies.get(d) {
                    for r in refs {
                        report.marked.insert(r.clone());
                        out(&format!("{name}: marking blob {r}"));
                    }
                }
            } else {
                out(&format!("manifest eligible for deletion: {d}"));
                queued.push((name.clone(), d.clone()));
            }
        }
    }
    report.repositories = names;
    report.manifests_eligible = queued.clone();

    // A blob is as young as its youngest `_layers` link: a blob mounted (or uploaded
    // again) into a repository a moment ago waits for its manifest as a new one does.
    let mut linked_at: HashMap<&str, SystemTime> = HashMap::new();
    for repo in repos.values() {
        for (d, t) in &repo.layers {
            let e = linked_at.entry(d.as_str()).or_insert(*t);
            *e = (*e).max(*t);
        }
    }
    let mut eligible: BTreeMap<String, Blob> = BTreeMap::new();
    for (d, b) in &blobs {
        if report.marked.contains(d) {
            continue;
        }
        if young(b.mod_time) || linked_at.get(d.as_str()).is_some_and(|t| young(*t)) {
            report.blobs_too_recent += 1;
            continue;
        }
        eligible.insert(d.clone(), b.clone());
    }
    out(&format!(
        "\n{} blobs marked, {} blobs and {} manifests eligible for deletion",
        report.marked.len(),
        eligible.len(),
        queued.len()
    ));
    for (d, b) in &eligible {
        out(&format!("blob eligible for deletion: {d}"));
        report.blobs_eligible.push(d.clone());
        report.bytes_eligible += b.size;
    }
    if opts.dry_run {
        return Ok(report);
    }

    if opts.settle.is_zero() {
        return delete(driver, &repos, &queued, &eligible, conc, None, report).await;
    }
    sweep::remove_stale(driver).await?;
    let mut sweep = sweep::announce(driver, eligible.keys(), &queued).await?;
    let result = async {
        tokio::time::sleep(opts.settle).await;
        let (latest, spared) = sweep::rescan(driver, &repos, &mut marker).await?;
        let before = queued.len() + eligible.len();
        queued.retain(|(r, d)| !spared.manifests.contains(&(r.clone(), d.clone())));
        eligible.retain(|d, _| !spared.blobs.contains(d));
        report.spared = before - queued.len() - eligible.len();
        if report.spared > 0 {
            out(&format!(
                "{} candidates spared: linked while the collection ran",
                report.spared
            ));
        }
        delete(
            driver,
            &latest,
            &queued,
            &eligible,
            conc,
            Some(&mut sweep),
            report,
        )
        .await
    }
    .await;
    sweep.end(driver).await;
    result
}

/// Reads a repository's revision links and its tags' current links.
async fn read_repository(
    driver: &Driver,
    name: &str,
    repo: &mut Repo,
    conc: usize,
) -> Result<(), GcError> {
    let repo_dir = layout::repo(name);
    let link_paths: Vec<String> = repo
        .revision_links
        .iter()
        .map(|(c, _)| format!("{repo_dir}/_manifests/revisions/{c}/link"))
        .collect();
    repo.revisions = read_links(driver, link_paths, conc).await?;
    let tag_links: Vec<(String, String)> = repo
        .tags
        .iter()
        .filter_map(|(t, i)| i.current_link.as_ref().map(|(p, _)| (t.clone(), p.clone())))
        .collect();
    let currents = read_links(
        driver,
        tag_links.iter().map(|(_, p)| p.clone()).collect(),
        conc,
    )
    .await?;
    for ((tag, _), d) in tag_links.into_iter().zip(currents) {
        if let Some(t) = repo.tags.get_mut(&tag) {
            t.current = d;
        }
    }
    Ok(())
}

/// The sweep: queued manifests first (a failure stops before any blob), then each blob's
/// `_layers` links (as `repos` lists them) and its directory, refreshing the sweep record
/// between batches.
async fn delete(
    driver: &Driver,
    repos: &BTreeMap<String, Repo>,
    queued: &[(String, String)],
    eligible: &BTreeMap<String, Blob>,
    conc: usize,
    mut sweep: Option<&mut sweep::Sweep>,
    mut report: GcReport,
) -> Result<GcReport, GcError> {
    for (name, d) in queued {
        let Some((alg, hex)) = components(d) else {
            continue;
        };
        let mut paths: Vec<String> = repos
            .get(name)
            .map(|repo| {
                repo.tags
                    .iter()
                    .filter(|(_, t)| t.index.contains(d))
                    .map(|(tag, _)| format!("{}/index/{alg}/{hex}", layout::tag_dir(name, tag)))
                    .collect()
            })
            .unwrap_or_default();
        paths.push(format!(
            "{}/_manifests/revisions/{alg}/{hex}",
            layout::repo(name)
        ));
        for p in paths {
            if let Err(e) = delete_if_present(driver, &p).await {
                return Err(GcError::ManifestDelete {
                    repo: name.clone(),
                    digest: d.clone(),
                    error: Box::new(e),
                });
            }
        }
        report.manifests_deleted += 1;
    }

    // Which repositories link each blob: their links go first, so a blob is never left
    // linked after its data is gone, even if the run stops between the two.
    let mut linked_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, repo) in repos {
        for d in repo.layers.keys() {
            if eligible.contains_key(d) {
                linked_by.entry(d.as_str()).or_default().push(name.as_str());
            }
        }
    }
    let targets: Vec<(&String, &Blob)> = eligible.iter().collect();
    let total = targets.len();
    let mut failures: Vec<String> = Vec::new();
    for batch in targets.chunks(BATCH) {
        if let Some(s) = sweep.as_deref_mut() {
            s.refresh_if_due(driver).await?;
        }
        let results = fan_out(batch.to_vec(), conc, |(d, b)| {
            let links: Vec<String> = linked_by
                .get(d.as_str())
                .map(|repos| {
                    let (alg, hex) = components(d).unwrap_or_default();
                    repos
                        .iter()
                        .map(|r| format!("{}/_layers/{alg}/{hex}", layout::repo(r)))
                        .collect()
                })
                .unwrap_or_default();
            async move {
                let mut links_deleted = 0;
                for l in &links {
                    delete_if_present(driver, l)
                        .await
                        .map_err(|e| format!("{d}: {e}"))?;
                    links_deleted += 1;
                }
                delete_if_present(driver, &b.dir)
                    .await
                    .map_err(|e| format!("{d}: {e}"))?;
                Ok::<usize, String>(links_deleted)
            }
        })
        .await;
        for r in results {
            match r {
                Ok(links) => {
                    report.blobs_deleted += 1;
                    report.layer_links_deleted += links;
                }
                Err(e) => failures.push(e),
            }
        }
    }
    if let Some(first) = failures.first() {
        return Err(GcError::BlobDelete {
            failed: failures.len(),
            total,
            first: first.clone(),
            report: Box::new(report),
        });
    }
    Ok(report)
}

/// Blobs deleted between two refreshes of the sweep record (at most).
const BATCH: usize = 256;

/// The registry's background collector (`storage.maintenance.gc`): waits
/// `initial_delay` (default a random 0–59 minutes, so instances started together do not
/// collect at once), collects, then again every `interval`, forever. Reports as
/// `tracing` events (target `ks3_registry::gc`; failures are warnings).
pub(crate) async fn run_periodically(driver: Driver, cfg: crate::config::GcSchedule) {
    let first = cfg.initial_delay.unwrap_or_else(|| {
        use rand::Rng;
        Duration::from_secs(60 * rand::thread_rng().gen_range(0..60u64))
    });
    tracing::info!(
        target: "ks3_registry::gc",
        "garbage collection: first run in {}s, then every {}s (min age {}s, settle {}s{}{})",
        first.as_secs(),
        cfg.interval.as_secs(),
        cfg.min_age.as_secs(),
        cfg.settle.as_secs(),
        if cfg.delete_untagged { ", deleting untagged manifests" } else { "" },
        if cfg.dry_run { ", dry run" } else { "" }
    );
    tokio::time::sleep(first).await;
    let opts = GcOptions {
        dry_run: cfg.dry_run,
        delete_untagged: cfg.delete_untagged,
        min_age: cfg.min_age,
        concurrency: DEFAULT_CONCURRENCY,
        // Never less than the registry's own bound: its requests count on it.
        settle: cfg.settle,
    };
    loop {
        let mut lines = |_: &str| {};
        match collect_garbage(&driver, &opts, &mut lines).await {
            Ok(r) => {
                tracing::info!(target: "ks3_registry::gc", "garbage collection: {}", summary(&r, opts.dry_run))
            }
            Err(e) => tracing::warn!(target: "ks3_registry::gc", "garbage collection failed: {e}"),
        }
        tokio::time::sleep(cfg.interval).await;
    }
}

/// One line: what a collection did.
pub fn summary(r: &GcReport, dry_run: bool) -> String {
    if dry_run {
        format!(
            "{} blobs marked; {} blobs ({} bytes) and {} manifests eligible for deletion (dry run: none deleted); {} blobs kept as too recent",
            r.marked.len(),
            r.blobs_eligible.len(),
            r.bytes_eligible,
            r.manifests_eligible.len(),
            r.blobs_too_recent
        )
    } else {
        format!(
            "{} blobs marked; {} manifests and {} blobs deleted ({} layer links with them); {} candidates spared (pushed meanwhile); {} blobs kept as too recent",
            r.marked.len(),
            r.manifests_deleted,
            r.blobs_deleted,
            r.layer_links_deleted,
            r.spared,
            r.blobs_too_recent
        )
    }
}
