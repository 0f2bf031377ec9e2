//! What a collection reads: the blobs under `blobs/`, and per repository its revision
//! links, tags and `_layers` links (with their modification times, so a second scan can
//! tell what was written since), each from one flat walk; links; manifests' references.
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use ks3_driver_host::{Driver, WalkControl};
use serde_json::Value;

use super::{storage, GcError};
use crate::layout::{self, RepoPath};
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::store::fan_out;

/// A blob found under `blobs/`.
#[derive(Debug, Clone)]
pub(super) struct Blob {
    /// `blobs/<alg>/<xx>/<hex>`: what `RemoveBlob` deletes.
    pub dir: String,
    pub size: u64,
    pub mod_time: SystemTime,
}

/// One tag: its `current/link` (path and modification time), what it names (read
/// later) and its index entries.
#[derive(Debug, Default)]
pub(super) struct Tag {
    pub current_link: Option<(String, SystemTime)>,
    pub current: Option<String>,
    pub index: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub(super) struct Repo {
    /// `(alg path, hex)` components of each revision link with its modification time, in
    /// key order.
    pub revision_links: Vec<(String, SystemTime)>,
    /// The digests the revision links name (read later), in the same order; `None` for a
    /// link deleted since the listing.
    pub revisions: Vec<Option<String>>,
    pub tags: BTreeMap<String, Tag>,
    /// The blobs its `_layers` links name, with the links' modification times.
    pub layers: BTreeMap<String, SystemTime>,
}

/// distribution's repository order: byte order with `/` before every other byte.
pub(crate) fn repo_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// `<alg>:<hex>` of the path components `alg…/hex` (an algorithm may span components).
fn digest_of_components(alg: &[&str], hex: &str) -> String {
    format!("{}:{hex}", alg.join("+"))
}

/// Every `<alg>:<hex>` under `blobs/`, with its directory, size and modification time.
pub(super) async fn enumerate_blobs(driver: &Driver) -> Result<BTreeMap<String, Blob>, GcError> {
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
pub(super) async fn enumerate_repositories(
    driver: &Driver,
) -> Result<BTreeMap<String, Repo>, GcError> {
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
                // Its links are listed too: a collection deletes the links of the blobs
                // it deletes, and spares a blob linked while it runs.
                "_layers" => {
                    let repo = repos.entry(name).or_default();
                    if let [alg @ .., hex, "link"] = rest.as_slice() {
                        if !alg.is_empty() && !info.is_dir {
                            repo.layers
                                .insert(digest_of_components(alg, hex), info.mod_time);
                        }
                    }
                    return Ok(WalkControl::Continue);
                }
                "_manifests" => {}
                _ => return Ok(WalkControl::SkipDir),
            }
            let repo = repos.entry(name).or_default();
            match rest.as_slice() {
                [] => {}
                ["revisions", ..] if info.is_dir => {}
                ["revisions", alg @ .., hex, "link"] if !alg.is_empty() => {
                    repo.revision_links
                        .push((format!("{}/{hex}", alg.join("/")), info.mod_time));
                }
                ["tags", ..] if info.is_dir => {}
                ["tags", tag, "current", "link"] => {
                    repo.tags.entry(tag.to_string()).or_default().current_link =
                        Some((info.path.clone(), info.mod_time));
                }
                ["tags", tag, "index", alg @ .., hex, "link"] if !alg.is_empty() => {
                    repo.tags
                        .entry(tag.to_string())
                        .or_default()
                        .index
                        .insert(digest_of_components(alg, hex));
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

/// The digest a link names, `None` when it is gone; an unparsable link stops the run.
async fn read_link(driver: Driver, path: String) -> Result<Option<String>, GcError> {
    let content = match driver.get_content(&path).await {
        Ok(c) => c,
        // Deleted since the listing (a manifest or tag deleted while the collection
        // runs): it keeps nothing; what is linked again meanwhile, the re-scan sees.
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(storage(format!("reading {path}"))(e)),
    };
    layout::parse_link(&content)
        .map(|d| Some(d.to_string()))
        .ok_or_else(|| {
            GcError::Invalid(format!(
                "{path}: not a digest (`{}`); nothing was deleted",
                String::from_utf8_lossy(&content[..content.len().min(80)])
            ))
        })
}

/// Reads every link `paths` names, `concurrency` at a time, in order (`None` for one
/// deleted since it was listed).
pub(super) async fn read_links(
    driver: &Driver,
    paths: Vec<String>,
    concurrency: usize,
) -> Result<Vec<Option<String>>, GcError> {
    fan_out(paths, concurrency, |p| read_link(driver.clone(), p))
        .await
        .into_iter()
        .collect()
}

/// What a manifest references, in distribution's `References()` order, and whether it
/// is an index (its references are manifests).
pub(super) fn references(body: &[u8]) -> Result<(Vec<String>, bool), String> {
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
pub(super) fn components(d: &str) -> Option<(String, &str)> {
    let (alg, hex) = d.split_once(':')?;
    Some((alg.replace(['+', '.', ';'], "/"), hex))
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
