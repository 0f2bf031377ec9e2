//! One flat walk of the registry's root (`blobs/` and `repositories/`, `_layers` and
//! `_uploads` included: fsck checks what GC skips), sorted into what each rule needs.
//! Nothing is read here but the listing; links and manifests are read by the rules.
use std::collections::BTreeMap;

use ks3_driver_host::{Driver, WalkControl};

use crate::digest::Digest;
use crate::layout::{self, RepoPath};

/// A link file found by the walk.
#[derive(Debug, Clone)]
pub(super) struct Link {
    pub path: String,
    pub size: u64,
    /// The digest its path names (`…/<alg>/<hex>/link`), `None` for a tag's
    /// `current/link` or a path that names no digest (`path_ok` tells which).
    pub expected: Option<Digest>,
    /// False when the path should name a digest and does not.
    pub path_ok: bool,
}

#[derive(Debug, Default)]
pub(super) struct Tag {
    pub current: Option<Link>,
    pub index: Vec<Link>,
}

#[derive(Debug, Default)]
pub(super) struct Upload {
    /// `startedat`: its path and size.
    pub started_at: Option<(String, u64)>,
}

#[derive(Debug, Default)]
pub(super) struct Repo {
    pub revisions: Vec<Link>,
    pub tags: BTreeMap<String, Tag>,
    pub layers: Vec<Link>,
    pub referrers: Vec<Link>,
    pub uploads: BTreeMap<String, Upload>,
}

#[derive(Debug)]
pub(super) struct Blob {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Default)]
pub(super) struct Scan {
    pub blobs: BTreeMap<String, Blob>,
    /// Objects under `blobs/` that are no blob of distribution's layout.
    pub bad_blob_paths: Vec<String>,
    pub repos: BTreeMap<String, Repo>,
}

/// `<alg…>/<hex>` path components as a digest (an algorithm spanning components is
/// joined with `+`, as distribution writes `sha256+b64u`; this registry knows none).
fn digest_of(alg: &[&str], hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{}:{hex}", alg.join("+")))
}

fn link(path: &str, size: u64, alg: &[&str], hex: &str) -> Link {
    let expected = digest_of(alg, hex);
    Link {
        path: path.to_string(),
        size,
        path_ok: expected.is_some(),
        expected,
    }
}

/// `blobs/<alg>/<first two hex>/<hex>/data` → the digest, or `None`.
fn blob_digest(rel: &str) -> Option<Digest> {
    let parts: Vec<&str> = rel.split('/').collect();
    let n = parts.len();
    if n < 4 || parts[n - 1] != "data" || !parts[n - 2].starts_with(parts[n - 3]) {
        return None;
    }
    let d = digest_of(&parts[..n - 3], parts[n - 2])?;
    // The two-character directory must be the hex's first two characters exactly.
    (parts[n - 3].len() == 2).then_some(d)
}

/// Walks the registry's root once. A missing root is an empty store.
pub(super) async fn scan(driver: &Driver) -> Result<Scan, ks3_driver_host::Error> {
    let blobs_prefix = format!("{}/blobs/", layout::ROOT);
    let mut s = Scan::default();
    let walked = driver
        .walk(layout::ROOT, None, |info| {
            if let Some(rel) = info.path.strip_prefix(&blobs_prefix) {
                if !info.is_dir {
                    match blob_digest(rel) {
                        Some(d) => {
                            s.blobs.insert(
                                d.to_string(),
                                Blob {
                                    path: info.path.clone(),
                                    size: info.size,
                                },
                            );
                        }
                        None => s.bad_blob_paths.push(info.path.clone()),
                    }
                }
                return Ok(WalkControl::Continue);
            }
            let (name, dir, rest) = match layout::split_repo_path(&info.path) {
                RepoPath::Above => return Ok(WalkControl::Continue),
                RepoPath::Unowned => return Ok(WalkControl::SkipDir),
                RepoPath::In { repo, dir, rest } => (repo, dir, rest),
            };
            let repo = s.repos.entry(name).or_default();
            if !matches!(dir, "_manifests" | "_layers" | "_uploads") {
                return Ok(WalkControl::SkipDir);
            }
            if info.is_dir {
                if let ("_uploads", [id]) = (dir, rest.as_slice()) {
                    repo.uploads.entry(id.to_string()).or_default();
                }
                return Ok(WalkControl::Continue);
            }
            let (p, size) = (info.path.as_str(), info.size);
            match (dir, rest.as_slice()) {
                ("_manifests", ["revisions", alg @ .., hex, "link"]) if !alg.is_empty() => {
                    repo.revisions.push(link(p, size, alg, hex));
                }
                ("_manifests", ["tags", tag, "current", "link"]) => {
                    repo.tags.entry(tag.to_string()).or_default().current = Some(Link {
                        path: p.to_string(),
                        size,
                        expected: None,
                        path_ok: true,
                    });
                }
                ("_manifests", ["tags", tag, "index", alg @ .., hex, "link"])
                    if !alg.is_empty() =>
                {
                    let l = link(p, size, alg, hex);
                    repo.tags.entry(tag.to_string()).or_default().index.push(l);
                }
                ("_manifests", ["referrers", _, _, alg, hex, "link"]) => {
                    repo.referrers.push(link(p, size, &[alg], hex));
                }
                ("_layers", [alg @ .., hex, "link"]) if !alg.is_empty() => {
                    repo.layers.push(link(p, size, alg, hex));
                }
                ("_uploads", [id, "startedat"]) => {
                    repo.uploads.entry(id.to_string()).or_default().started_at =
                        Some((p.to_string(), size));
                }
                ("_uploads", [id, ..]) => {
                    repo.uploads.entry(id.to_string()).or_default();
                }
                _ => {}
            }
            Ok(WalkControl::Continue)
        })
        .await;
    match walked {
        Ok(()) => Ok(s),
        Err(e) if e.is_not_found() => Ok(s),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths() {
        let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(blob_digest(&format!("sha256/e3/{h}/data")).is_some());
        assert!(blob_digest(&format!("sha256/e/{h}/data")).is_none());
        assert!(blob_digest(&format!("sha256/e4/{h}/data")).is_none());
        assert!(blob_digest(&format!("sha256/e3/{h}/other")).is_none());
        assert!(blob_digest(&format!("md5/e3/{h}/data")).is_none());
    }
}
