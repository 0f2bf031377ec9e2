//! distribution's layout as rules: every link names the digest its path names, a tag
//! names a manifest the repository has, a manifest's references exist with the sizes it
//! declares, a `_layers` link has its blob, an upload is younger than the purge age.
//!
//! A revision "exists" when its link is valid and its bytes are under `blobs/`: that is
//! what distribution's manifest service needs to serve it. A revision whose bytes are no
//! manifest still exists for its tags (the problem is the revision's, reported once).
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ks3_driver_host::Driver;

use super::report::{Fix, Guard, Kind, Problem};
use super::scan::{Link, Scan};
use super::FsckError;
use crate::digest::Digest;
use crate::layout;
use crate::manifest::{self, Kind as ManifestKind, Parsed, MAX_MANIFEST};
use crate::store::{read_document, try_fan_out, Document};

/// A link is a digest string (at most `sha512:` and 128 hex): anything much longer is
/// not read (a client cannot write links, but a broken tool can).
const MAX_LINK: u64 = 1024;
/// `startedat` is an RFC 3339 time.
const MAX_STARTED_AT: u64 = 256;

/// Records one problem: kind, path, message, repair.
type Push<'a> = dyn FnMut(Kind, &str, String, Option<Fix>) + 'a;

/// What a link file turned out to hold.
#[derive(Debug, Clone)]
pub(super) enum LinkState {
    /// Deleted since the walk (a concurrent delete): nothing to say.
    Gone,
    Invalid(String),
    Names(Digest),
}

fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(80)])
        .escape_debug()
        .to_string()
}

async fn read_link(driver: &Driver, l: &Link) -> Result<LinkState, FsckError> {
    if !l.path_ok {
        return Ok(LinkState::Invalid("its path names no digest".into()));
    }
    if l.size > MAX_LINK {
        return Ok(LinkState::Invalid(format!(
            "{} bytes: no digest is that long",
            l.size
        )));
    }
    let content = match driver.get_content(&l.path).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => return Ok(LinkState::Gone),
        Err(e) => return Err(FsckError::storage(format!("reading {}", l.path), e)),
    };
    let Some(d) = layout::parse_link(&content) else {
        return Ok(LinkState::Invalid(format!(
            "`{}` is not a digest",
            printable(&content)
        )));
    };
    Ok(match &l.expected {
        Some(e) if e != &d => LinkState::Invalid(format!("names {d}, its path {e}")),
        _ => LinkState::Names(d),
    })
}

/// Every link of every repository, read `conc` at a time: path → state.
pub(super) async fn read_links(
    driver: &Driver,
    scan: &Scan,
    conc: usize,
) -> Result<HashMap<String, LinkState>, FsckError> {
    let mut all: Vec<&Link> = Vec::new();
    for r in scan.repos.values() {
        all.extend(&r.revisions);
        all.extend(&r.layers);
        all.extend(&r.referrers);
        for t in r.tags.values() {
            all.extend(&t.current);
            all.extend(&t.index);
        }
    }
    let states = try_fan_out(all.iter().copied(), conc, |l| read_link(driver, l)).await?;
    Ok(all
        .into_iter()
        .map(|l| l.path.clone())
        .zip(states)
        .collect())
}

/// Every manifest a valid revision names whose bytes exist, read and parsed `conc` at a
/// time (once per digest, whatever the number of repositories holding it).
pub(super) async fn read_manifests(
    driver: &Driver,
    scan: &Scan,
    links: &HashMap<String, LinkState>,
    conc: usize,
) -> Result<HashMap<String, Result<Parsed, String>>, FsckError> {
    let mut wanted: Vec<(String, String, u64)> = Vec::new();
    let mut seen = HashSet::new();
    for r in scan.repos.values() {
        for l in &r.revisions {
            if let Some(LinkState::Names(d)) = links.get(&l.path) {
                let key = d.to_string();
                if let Some(b) = scan.blobs.get(&key) {
                    if seen.insert(key.clone()) {
                        wanted.push((key, b.path.clone(), b.size));
                    }
                }
            }
        }
    }
    let parsed = try_fan_out(wanted, conc, |(d, path, size)| async move {
        let too_large = |n: u64| {
            format!(
                "{n} bytes, over the {} MiB manifest limit",
                MAX_MANIFEST >> 20
            )
        };
        if size > MAX_MANIFEST {
            return Ok((d, Err(too_large(size))));
        }
        let body = match read_document(driver, &path, MAX_MANIFEST).await {
            Ok(Document::Found(b)) => b,
            Ok(Document::Missing) => return Ok((d, Err("its bytes are gone".into()))),
            Ok(Document::TooLarge(n)) => return Ok((d, Err(too_large(n)))),
            Err(e) => return Err(FsckError::storage(format!("reading manifest {d}"), e)),
        };
        let p = manifest::parse(&body, None).map_err(|e| match e {
            crate::errors::RegistryError::ManifestInvalid(m) => m,
            other => other.to_string(),
        });
        Ok::<_, FsckError>((d, p))
    })
    .await?;
    Ok(parsed.into_iter().collect())
}

/// The directory a link lives in (`…/<hex>` of `…/<hex>/link`): what a repair deletes.
fn link_dir(path: &str) -> String {
    path.strip_suffix("/link").unwrap_or(path).to_string()
}

/// Checks every repository's links and manifests.
pub(super) fn check_repositories(
    scan: &Scan,
    links: &HashMap<String, LinkState>,
    manifests: &HashMap<String, Result<Parsed, String>>,
    problems: &mut Vec<Problem>,
) {
    let mut push = |kind: Kind, path: &str, message: String, fix: Option<Fix>| {
        problems.push(Problem {
            kind,
            path: path.to_string(),
            message,
            fix,
        })
    };
    let state = |l: &Link| links.get(&l.path).cloned().unwrap_or(LinkState::Gone);
    for (name, repo) in &scan.repos {
        // The repository's revisions whose bytes exist: what its tags may name.
        let mut present: HashSet<String> = HashSet::new();
        for l in &repo.revisions {
            match state(l) {
                LinkState::Gone => {}
                LinkState::Invalid(m) => push(Kind::LinkInvalid, &l.path, m, None),
                LinkState::Names(d) if !scan.blobs.contains_key(&d.to_string()) => push(
                    Kind::RevisionMissingBlob,
                    &l.path,
                    format!("manifest {d} of {name}: its bytes are not under blobs/"),
                    None,
                ),
                LinkState::Names(d) => {
                    present.insert(d.to_string());
                }
            }
        }
        let dangling = |l: &Link, kind: Kind, what: &str, target: String, push: &mut Push<'_>| {
            match state(l) {
                LinkState::Gone => {}
                LinkState::Invalid(m) => push(Kind::LinkInvalid, &l.path, m, None),
                LinkState::Names(d) if !present.contains(&d.to_string()) => {
                    let fix = Fix {
                        target,
                        guard: Guard::StillDangling {
                            repo: name.clone(),
                            link: l.path.clone(),
                            digest: d.to_string(),
                        },
                    };
                    push(
                        kind,
                        &l.path,
                        format!("{what} names manifest {d}, which {name} does not have"),
                        Some(fix),
                    )
                }
                LinkState::Names(_) => {}
            }
        };
        for (tag, t) in &repo.tags {
            if let Some(c) = &t.current {
                let what = format!("tag {tag}");
                dangling(
                    c,
                    Kind::TagDangling,
                    &what,
                    layout::tag_dir(name, tag),
                    &mut push,
                );
            }
            for l in &t.index {
                let what = format!("tag {tag}'s index");
                dangling(
                    l,
                    Kind::TagIndexDangling,
                    &what,
                    link_dir(&l.path),
                    &mut push,
                );
            }
        }
        for l in &repo.referrers {
            dangling(
                l,
                Kind::ReferrerDangling,
                "a referrers link",
                link_dir(&l.path),
                &mut push,
            );
        }
        for l in &repo.layers {
            match state(l) {
                LinkState::Gone => {}
                LinkState::Invalid(m) => push(Kind::LinkInvalid, &l.path, m, None),
                LinkState::Names(d) if !scan.blobs.contains_key(&d.to_string()) => {
                    let fix = Fix {
                        target: link_dir(&l.path),
                        guard: Guard::BlobMissing(d.to_string()),
                    };
                    push(
                        Kind::LayerLinkDangling,
                        &l.path,
                        format!("blob {d} is not under blobs/"),
                        Some(fix),
                    )
                }
                LinkState::Names(_) => {}
            }
        }
        for l in &repo.revisions {
            let LinkState::Names(d) = state(l) else {
                continue;
            };
            let Some(parsed) = manifests.get(&d.to_string()) else {
                continue;
            };
            match parsed {
                Err(m) => push(
                    Kind::RevisionNotManifest,
                    &l.path,
                    format!("manifest {d}: {m}"),
                    None,
                ),
                Ok(p) => check_references(scan, &present, &d, p, &l.path, &mut push),
            }
        }
    }
}

/// A manifest's config and layers (image) or children (index): present, right size.
fn check_references(
    scan: &Scan,
    present: &HashSet<String>,
    d: &Digest,
    p: &Parsed,
    path: &str,
    push: &mut Push<'_>,
) {
    for (i, r) in p.references.iter().enumerate() {
        let what = match (p.kind, i) {
            (ManifestKind::Image, 0) => "config".to_string(),
            (ManifestKind::Image, _) => "a layer".to_string(),
            (ManifestKind::Index, _) => "child manifest".to_string(),
        };
        let rd = r.digest.to_string();
        let blob = scan.blobs.get(&rd);
        if p.kind == ManifestKind::Index && !(present.contains(&rd) && blob.is_some()) {
            let why = if blob.is_none() {
                "its bytes are not under blobs/"
            } else {
                "the repository has no revision of it"
            };
            push(
                Kind::ManifestMissingChild,
                path,
                format!("manifest {d}: {what} {rd}: {why}"),
                None,
            );
            continue;
        }
        let Some(b) = blob else {
            push(
                Kind::ManifestMissingBlob,
                path,
                format!("manifest {d}: {what} {rd} is not under blobs/"),
                None,
            );
            continue;
        };
        if let Some(size) = r.size.filter(|s| *s != b.size) {
            push(
                Kind::ManifestSizeMismatch,
                path,
                format!(
                    "manifest {d}: {what} {rd} is declared {size} bytes, the blob has {}",
                    b.size
                ),
                None,
            );
        }
    }
}

/// Objects under `blobs/` that are no blob.
pub(super) fn check_blob_paths(scan: &Scan, problems: &mut Vec<Problem>) {
    for p in &scan.bad_blob_paths {
        problems.push(Problem {
            kind: Kind::BlobBadPath,
            path: p.clone(),
            message: "not a blob of distribution's layout (blobs/<algorithm>/<2 hex>/<hex>/data)"
                .into(),
            fix: None,
        });
    }
}

/// Uploads started more than `age` ago (`startedat` read `conc` at a time). An upload
/// without a readable `startedat` is left alone, as the purger leaves it.
pub(super) async fn check_uploads(
    driver: &Driver,
    scan: &Scan,
    age: Duration,
    conc: usize,
    problems: &mut Vec<Problem>,
) -> Result<(), FsckError> {
    let cutoff = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut wanted = Vec::new();
    for (name, repo) in &scan.repos {
        for (id, u) in &repo.uploads {
            if let Some((path, size)) = &u.started_at {
                if *size <= MAX_STARTED_AT {
                    wanted.push((name.clone(), id.clone(), path.clone()));
                }
            }
        }
    }
    let read = try_fan_out(wanted, conc, |(name, id, path)| async move {
        match driver.get_content(&path).await {
            Ok(c) => Ok((name, id, Some(String::from_utf8_lossy(&c).into_owned()))),
            Err(e) if e.is_not_found() => Ok((name, id, None)),
            Err(e) => Err(FsckError::storage(format!("reading {path}"), e)),
        }
    })
    .await?;
    for (name, id, started) in read {
        let Some(s) = started else { continue };
        let Some(t) = ks3_proto::date::parse_rfc3339(s.trim()) else {
            continue;
        };
        if t < cutoff {
            let dir = layout::upload_dir(&name, &id);
            problems.push(Problem {
                kind: Kind::UploadStale,
                path: dir.clone(),
                message: format!(
                    "upload {id} of {name} started {}, over the purge age ({}s)",
                    s.trim(),
                    age.as_secs()
                ),
                fix: Some(Fix {
                    target: dir,
                    guard: Guard::None,
                }),
            });
        }
    }
    Ok(())
}
