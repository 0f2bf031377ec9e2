//! Garbage collection: distribution 2.8.2's `registry garbage-collect` on the driver.
//!
//! **Mark.** Every manifest of every repository (`_manifests/revisions/…/link`) is marked
//! with what it references: config and layers of an image manifest, the child manifests
//! of an index (as digests, as 2.8.2 does). With `delete_untagged`, a manifest that no
//! tag's `current/link` names is queued for deletion instead, unless a kept index of its
//! repository references it (distribution v3's rule; 2.8.2 would queue the children of a
//! tagged multi-platform image and then sweep their layers).
//!
//! **Sweep.** Queued manifests lose their tag index entries and their revision directory
//! (`vacuum.RemoveManifest`); then every blob under `blobs/` that is not marked has its
//! digest directory deleted (`vacuum.RemoveBlob`). `_layers` links stay, as in 2.8.2.
//!
//! **Safety.** Everything is read before anything is deleted, and any error while reading
//! (an unreadable link, a manifest that does not parse, a storage error) ends the run
//! before the sweep: blobs are never deleted on a partial mark. Only two absences are
//! tolerated, as in distribution: a revision whose manifest bytes are not in `blobs/` is
//! skipped, and a repository without `_manifests` has nothing to mark. Blobs are
//! enumerated *before* the mark, so a blob written while the collection runs is never a
//! candidate; a manifest pushed meanwhile can still lose a layer pushed before the run,
//! hence, as for distribution, run it with the registry stopped (or refusing pushes), or
//! keep recent blobs with `min_age`.
//!
//! The listings are the driver's flat walks (about one request per 1000 keys, `_layers`
//! and `_uploads` skipped); reads and deletes run `concurrency` at a time, within the
//! process-wide pool of driver calls ([`crate::store::fan_out`]). A manifest is read only
//! when its blob is within the manifest limit (a larger one stops the run: it is no
//! manifest, and a mark that skipped it could sweep what it references).
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use ks3_driver_host::{Driver, WalkControl};
use serde_json::Value;

use crate::layout::{self, RepoPath};
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, MAX_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::store::{delete_each, delete_if_present, fan_out, read_document, Document};

/// Reads and deletes in flight at once.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How a collection runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Mark and report, delete nothing.
    pub dry_run: bool,
    /// Also delete manifests that no tag points at (`--delete-untagged`).
    pub delete_untagged: bool,
    /// Unreferenced blobs modified less than this long ago are kept (zero: none kept,
    /// as distribution).
    pub min_age: Duration,
    /// Reads and deletes in flight at once (at least 1).
    pub concurrency: usize,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            min_age: Duration::ZERO,
            concurrency: DEFAULT_CONCURRENCY,
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
    pub manifests_deleted: usize,
    pub blobs_deleted: usize,
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

fn storage(what: impl Into<String>) -> impl FnOnce(ks3_driver_host::Error) -> GcError {
    let what = what.into();
    move |e| GcError::Storage {
        what,
        error: Box::new(e),
    }
}

/// A blob found under `blobs/`.
#[derive(Debug, Clone)]
struct Blob {
    /// `blobs/<alg>/<xx>/<hex>`: what `RemoveBlob` deletes.
    dir: String,
    size: u64,
    mod_time: SystemTime,
}

/// One tag: what `current/link` names (read later) and its index entries.
#[derive(Debug, Default)]
struct Tag {
    current_link: Option<String>,
    current: Option<String>,
    index: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Repo {
    /// `(alg, hex)` of each revision link, in key order.
    revision_links: Vec<String>,
    /// The digests the revision links name (read later), in the same order.
    revisions: Vec<String>,
    tags: BTreeMap<String, Tag>,
}

/// distribution's repository order: byte order with `/` before every other byte.
pub(crate) fn repo_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// Every `<alg>:<hex>` under `blobs/`, with its directory, size and modification time.
async fn enumerate_blobs(driver: &Driver) -> Result<BTreeMap<String, Blob>, GcError> {
    let root = format!("{}/blobs", layout::ROOT);
    let prefix = format!("{root}/");
    let mut blobs = BTreeMap::new();
    let mut bad: Option<String> = None;
    let walked = driver
        .walk(&root, None, |info| {
            if info.is_dir || !info.path.ends_with("/data") {
                return Ok(WalkControl::Continue);
            }
            let rel = info.path.strip_prefix(&prefix).unwrap_or(&info.path);
            let parts: Vec<&str> = rel.split('/').collect();
            // <alg…>/<first two hex>/<hex>/data (an algorithm may span components).
            let n = parts.len();
            let parsed = if n >= 4 && parts[n - 2].starts_with(parts[n - 3]) {
                let alg = parts[..n - 3].join("+");
                let d = format!("{alg}:{}", parts[n - 2]);
                crate::digest::Digest::parse(&d).map(|_| d)
            } else {
                None
            };
            match parsed {
                Some(d) => {
                    let dir = info.path[..info.path.len() - "/data".len()].to_string();
                    blobs.insert(
                        d,
                        Blob {
                            dir,
                            size: info.size,
                            mod_time: info.mod_time,
                        },
                    );
                    Ok(WalkControl::Continue)
                }
                None => {
                    bad = Some(info.path.clone());
                    Ok(WalkControl::Stop)
                }
            }
        })
        .await;
    match walked {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(storage("enumerating blobs")(e)),
    }
    if let Some(p) = bad {
        return Err(GcError::Invalid(format!(
            "{p}: not a blob of distribution's layout (blobs/<algorithm>/<2 hex>/<hex>/data); \
             nothing was deleted"
        )));
    }
    Ok(blobs)
}

/// Repositories with their revision links and tags, from one walk of `repositories/`.
async fn enumerate_repositories(driver: &Driver) -> Result<BTreeMap<String, Repo>, GcError> {
    let root = layout::repositories();
    let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
    let walked = driver
        .walk(&root, None, |info| {
            let (name, dir, rest) = match layout::split_repo_path(&info.path) {
                RepoPath::Above => return Ok(WalkControl::Continue),
                RepoPath::Unowned => return Ok(WalkControl::SkipDir),
                RepoPath::In { repo, dir, rest } => (repo, dir, rest),
            };
            match dir {
                // 2.8.2 finds repositories by `_layers`, v3 by `_manifests`: either will
                // do (a repository of manifests only still has references to keep).
                "_layers" => {
                    repos.entry(name).or_default();
                    return Ok(WalkControl::SkipDir);
                }
                "_manifests" => {}
                _ => return Ok(WalkControl::SkipDir),
            }
            let repo = repos.entry(name).or_default();
            match rest.as_slice() {
                [] => {}
                ["revisions", ..] if info.is_dir => {}
                ["revisions", alg @ .., hex, "link"] if !alg.is_empty() => {
                    repo.revision_links.push(format!("{}/{hex}", alg.join("/")));
                }
                ["tags", ..] if info.is_dir => {}
                ["tags", tag, "current", "link"] => {
                    repo.tags.entry(tag.to_string()).or_default().current_link =
                        Some(info.path.clone());
                }
                ["tags", tag, "index", alg @ .., hex, "link"] if !alg.is_empty() => {
                    repo.tags
                        .entry(tag.to_string())
                        .or_default()
                        .index
                        .insert(format!("{}:{hex}", alg.join("+")));
                }
                [_] if info.is_dir => return Ok(WalkControl::SkipDir),
                _ => {}
            }
            Ok(WalkControl::Continue)
        })
        .await;
    match walked {
        Ok(()) => Ok(repos),
        Err(e) if e.is_not_found() => Ok(repos),
        Err(e) => Err(storage("enumerating repositories")(e)),
    }
}

/// The digest a link names; a missing or unparsable link stops the run.
async fn read_link(driver: Driver, path: String) -> Result<String, GcError> {
    let content = driver
        .get_content(&path)
        .await
        .map_err(storage(format!("reading {path}")))?;
    layout::parse_link(&content)
        .map(|d| d.to_string())
        .ok_or_else(|| {
            GcError::Invalid(format!(
                "{path}: not a digest (`{}`); nothing was deleted",
                String::from_utf8_lossy(&content[..content.len().min(80)])
            ))
        })
}

/// Reads every link `paths` names, `concurrency` at a time, in order.
async fn read_links(
    driver: &Driver,
    paths: Vec<String>,
    concurrency: usize,
) -> Result<Vec<String>, GcError> {
    fan_out(paths, concurrency, |p| read_link(driver.clone(), p))
        .await
        .into_iter()
        .collect()
}

/// What a manifest references, in distribution's `References()` order, and whether it
/// is an index (its references are manifests).
fn references(body: &[u8]) -> Result<(Vec<String>, bool), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let digest_of = |d: &Value, what: &str| -> Result<String, String> {
        d.get("digest")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{what} has no digest"))
    };
    let list = |key: &str| -> Result<&[Value], String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a.as_slice()),
            Some(_) => Err(format!("{key} is not an array")),
        }
    };
    if obj.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        // Docker schema 1: the layers' blobSums.
        let layers = list("fsLayers")?;
        let sums = layers
            .iter()
            .map(|l| {
                l.get("blobSum")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| "fsLayers entry has no blobSum".to_string())
            })
            .collect::<Result<_, _>>()?;
        return Ok((sums, false));
    }
    let media_type = obj.get("mediaType").and_then(Value::as_str).unwrap_or("");
    let index = match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        OCI_INDEX | DOCKER_LIST => true,
        "" if obj.contains_key("manifests") => true,
        "" => false,
        other => return Err(format!("unrecognized manifest content type {other}")),
    };
    if index {
        let children = list("manifests")?
            .iter()
            .enumerate()
            .map(|(i, m)| digest_of(m, &format!("manifests[{i}]")))
            .collect::<Result<_, _>>()?;
        return Ok((children, true));
    }
    let config = obj.get("config").ok_or("an image manifest has no config")?;
    let mut refs = vec![digest_of(config, "config")?];
    for (i, l) in list("layers")?.iter().enumerate() {
        // Foreign layers (with `urls`) too: distribution marks every descriptor.
        refs.push(digest_of(l, &format!("layers[{i}]"))?);
    }
    Ok((refs, false))
}

/// `(alg, hex)` of a digest string, the path components of its links.
fn components(d: &str) -> Option<(String, &str)> {
    let (alg, hex) = d.split_once(':')?;
    Some((alg.replace(['+', '.', ';'], "/"), hex))
}

/// Runs a collection, writing distribution's lines (§ "Stdout format") to `out`:
/// `<repo>`, `<repo>: marking manifest <d> ` (trailing space included),
/// `<repo>: marking blob <d>`, `manifest eligible for deletion: <d>`, then an empty line
/// and `N blobs marked, N blobs and N manifests eligible for deletion`, then
/// `blob eligible for deletion: <d>` for each. A summary is the caller's to print.
pub async fn collect_garbage(
    driver: &Driver,
    opts: &GcOptions,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<GcReport, GcError> {
    let conc = opts.concurrency.max(1);
    // Blobs first: one written while the mark runs is then never a candidate.
    let blobs = enumerate_blobs(driver).await?;
    let mut repos = enumerate_repositories(driver).await?;

    let mut report = GcReport::default();
    let mut names: Vec<String> = repos.keys().cloned().collect();
    names.sort_by(|a, b| repo_order(a, b));
    let mut bodies: HashMap<String, (Vec<String>, bool)> = HashMap::new();
    let mut queued: Vec<(String, String)> = Vec::new();

    for name in &names {
        let Some(repo) = repos.get_mut(name) else {
            continue;
        };
        out(name);
        let repo_dir = layout::repo(name);
        let link_paths: Vec<String> = repo
            .revision_links
            .iter()
            .map(|c| format!("{repo_dir}/_manifests/revisions/{c}/link"))
            .collect();
        repo.revisions = read_links(driver, link_paths, conc).await?;
        let tag_links: Vec<(String, String)> = repo
            .tags
            .iter()
            .filter_map(|(t, i)| i.current_link.clone().map(|p| (t.clone(), p)))
            .collect();
        let currents = read_links(
            driver,
            tag_links.iter().map(|(_, p)| p.clone()).collect(),
            conc,
        )
        .await?;
        for ((tag, _), d) in tag_links.into_iter().zip(currents) {
            if let Some(t) = repo.tags.get_mut(&tag) {
                t.current = Some(d);
            }
        }

        // Revisions whose bytes exist (distribution's enumerator skips the others).
        let mut present: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for d in &repo.revisions {
            if blobs.contains_key(d) && seen.insert(d.clone()) {
                present.push(d.clone());
            }
        }
        let tagged: HashSet<&String> = repo
            .tags
            .values()
            .filter_map(|t| t.current.as_ref())
            .collect();
        let mut frontier: Vec<String> = present
            .iter()
            .filter(|d| !opts.delete_untagged || tagged.contains(d))
            .cloned()
            .collect();
        let mut kept: HashSet<String> = frontier.iter().cloned().collect();
        let present_set: HashSet<&String> = present.iter().collect();
        while !frontier.is_empty() {
            let missing: Vec<(String, String)> = frontier
                .iter()
                .filter(|d| !bodies.contains_key(*d))
                .filter_map(|d| blobs.get(d).map(|b| (d.clone(), format!("{}/data", b.dir))))
                .collect();
            let fetched = fan_out(missing, conc, |(d, path)| {
                let name = name.clone();
                async move {
                    let invalid = |why: String| {
                        GcError::Invalid(format!(
                            "failed to retrieve manifest for digest {d} of {name}: {why}; \
                             nothing was deleted"
                        ))
                    };
                    let body = match read_document(driver, &path, MAX_MANIFEST).await {
                        Ok(Document::Found(b)) => b,
                        Ok(Document::Missing) => {
                            return Err(invalid("its blob is gone".to_string()))
                        }
                        Ok(Document::TooLarge(size)) => {
                            return Err(invalid(format!(
                                "{size} bytes, over the {} MiB manifest limit",
                                MAX_MANIFEST >> 20
                            )))
                        }
                        Err(e) => return Err(storage(format!("reading manifest {d}"))(e)),
                    };
                    let refs = references(&body).map_err(invalid)?;
                    Ok::<_, GcError>((d, refs))
                }
            })
            .await;
            for r in fetched {
                let (d, refs) = r?;
                bodies.insert(d, refs);
            }
            let mut next = Vec::new();
            for d in &frontier {
                if let Some((refs, true)) = bodies.get(d) {
                    for child in refs {
                        if present_set.contains(child) && kept.insert(child.clone()) {
                            next.push(child.clone());
                        }
                    }
                }
            }
            frontier = next;
        }
        for d in &present {
            if kept.contains(d) {
                out(&format!("{name}: marking manifest {d} "));
                report.marked.insert(d.clone());
                report.manifests_marked += 1;
                if let Some((refs, _)) = bodies.get(d) {
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

    // Untagged manifests go before any blob, as in distribution; a failure stops here.
    if !opts.dry_run {
        for (name, d) in &queued {
            let Some((alg, hex)) = components(d) else {
                continue;
            };
            let repo = &repos[name];
            let mut paths: Vec<String> = repo
                .tags
                .iter()
                .filter(|(_, t)| t.index.contains(d))
                .map(|(tag, _)| format!("{}/index/{alg}/{hex}", layout::tag_dir(name, tag)))
                .collect();
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
    }

    let now = SystemTime::now();
    let mut eligible: Vec<(&String, &Blob)> = Vec::new();
    for (d, b) in &blobs {
        if report.marked.contains(d) {
            continue;
        }
        let age = now.duration_since(b.mod_time).unwrap_or(Duration::ZERO);
        if !opts.min_age.is_zero() && age < opts.min_age {
            report.blobs_too_recent += 1;
            continue;
        }
        eligible.push((d, b));
    }
    out(&format!(
        "\n{} blobs marked, {} blobs and {} manifests eligible for deletion",
        report.marked.len(),
        eligible.len(),
        queued.len()
    ));
    for (d, b) in &eligible {
        out(&format!("blob eligible for deletion: {d}"));
        report.blobs_eligible.push((*d).clone());
        report.bytes_eligible += b.size;
    }
    if opts.dry_run {
        return Ok(report);
    }
    let targets: Vec<(String, String)> = eligible
        .iter()
        .map(|(d, b)| ((*d).clone(), b.dir.clone()))
        .collect();
    let results = delete_each(driver, targets, conc).await;
    let total = results.len();
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(d, _, r)| r.err().map(|e| format!("{d}: {e}")))
        .collect();
    report.blobs_deleted = total - failures.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const B: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn references_in_distributions_order() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"digest":"{A}"}},
            "layers":[{{"digest":"{B}"}},{{"digest":"{A}","urls":["http://x"]}}]}}"#
        );
        assert_eq!(
            references(image.as_bytes()),
            Ok((vec![A.to_string(), B.to_string(), A.to_string()], false))
        );
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{B}"}}]}}"#);
        assert_eq!(
            references(index.as_bytes()),
            Ok((vec![B.to_string()], true))
        );
        let v1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{A}"}}]}}"#);
        assert_eq!(references(v1.as_bytes()), Ok((vec![A.to_string()], false)));
        for bad in [
            "nope",
            r#"{"schemaVersion":2,"mediaType":"application/x-other"}"#,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
            r#"{"schemaVersion":2,"manifests":[{"size":1}]}"#,
        ] {
            assert!(references(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn catalog_order() {
        assert_eq!(repo_order("a/b", "a-b"), Ordering::Less);
        assert_eq!(components(A).map(|(a, _)| a), Some("sha256".to_string()));
    }
}
