//! The collection's side of the sweep fence ([`crate::fence`]): announcing its
//! candidates in a sweep record, keeping the record fresh while it deletes, the re-scan
//! that spares what was linked meanwhile, and removing the record.
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use ks3_driver_host::Driver;

use super::mark::{Marker, Missing};
use super::scan::{enumerate_repositories, Repo};
use super::{storage, GcError};
use crate::fence::{SweepRecord, STALE_AFTER};
use crate::layout;

/// How often the record is rewritten while the collection deletes.
const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// A sweep in progress: its record, and when it was last written.
pub(super) struct Sweep {
    record: SweepRecord,
    written: Instant,
}

/// Writes the record naming the candidates.
pub(super) async fn announce<'a>(
    driver: &Driver,
    blobs: impl Iterator<Item = &'a String>,
    manifests: &[(String, String)],
) -> Result<Sweep, GcError> {
    let id = format!("{:032x}", rand::random::<u128>());
    let record = SweepRecord {
        id,
        started: crate::ids::rfc3339_now(),
        blobs: blobs.cloned().collect(),
        manifests: manifests.iter().cloned().collect(),
        ended: None,
    };
    let mut s = Sweep {
        record,
        written: Instant::now(),
    };
    s.write(driver).await?;
    Ok(s)
}

impl Sweep {
    async fn write(&mut self, driver: &Driver) -> Result<(), GcError> {
        let body = serde_json::to_vec(&self.record)
            .map_err(|e| GcError::Fence(format!("encoding the sweep record: {e}")))?;
        let began = Instant::now();
        driver
            .put_content_writerless(&self.record.path(), &body)
            .await
            .map_err(storage("writing the sweep record"))?;
        self.written = began;
        Ok(())
    }

    /// Rewrites the record when it is due, so registries keep seeing it; stops the
    /// collection when it could not for half the time after which they ignore it.
    pub async fn refresh_if_due(&mut self, driver: &Driver) -> Result<(), GcError> {
        if self.written.elapsed() < REFRESH_EVERY {
            return Ok(());
        }
        match self.write(driver).await {
            Ok(()) => Ok(()),
            Err(_) if self.written.elapsed() < STALE_AFTER / 2 => Ok(()),
            Err(e) => Err(GcError::Fence(format!(
                "the sweep record could not be refreshed for {} s ({e}); stopped deleting \
                 before registries could stop seeing it",
                self.written.elapsed().as_secs()
            ))),
        }
    }

    /// Marks the record ended (whatever the outcome of the sweep): it stays as a
    /// tombstone until stale, and a later collection removes it.
    pub async fn end(mut self, driver: &Driver) {
        self.record.ended = Some(crate::ids::rfc3339_now());
        if let Err(e) = self.write(driver).await {
            tracing::warn!(
                target: "ks3_registry::gc",
                record = %self.record.path(),
                "the sweep record could not be marked ended ({e}); registries wait for it \
                 until it is {} minutes old",
                STALE_AFTER.as_secs() / 60
            );
        }
    }
}

/// Removes the records that are stale (tombstones of ended sweeps, and the records of
/// collectors that died), which registries ignore anyway.
pub(super) async fn remove_stale(driver: &Driver) -> Result<(), GcError> {
    let stale = crate::fence::stale_records(driver)
        .await
        .map_err(storage("listing the sweep records"))?;
    for (path, _) in stale {
        crate::store::delete_if_present(driver, &path)
            .await
            .map_err(storage(format!("removing {path}")))?;
    }
    Ok(())
}

/// What the re-scan spares.
#[derive(Debug, Default)]
pub(super) struct Spared {
    pub blobs: HashSet<String>,
    pub manifests: HashSet<(String, String)>,
}

/// `alg/hex` path components back to `alg:hex`.
fn digest_of(components: &str) -> Option<String> {
    let (alg, hex) = components.rsplit_once('/')?;
    Some(format!("{}:{hex}", alg.replace('/', "+")))
}

/// Scans the repositories again and spares what was linked since `first`: every
/// manifest whose revision link or tag was written since (with its children and
/// everything they reference), and every blob linked since. Returns the new scan (whose
/// `_layers` links the sweep deletes) and what it spares.
pub(super) async fn rescan(
    driver: &Driver,
    first: &BTreeMap<String, Repo>,
    marker: &mut Marker<'_>,
) -> Result<(BTreeMap<String, Repo>, Spared), GcError> {
    let latest = enumerate_repositories(driver).await?;
    let empty = Repo::default();
    let mut spared = Spared::default();
    for (name, repo) in &latest {
        let before = first.get(name).unwrap_or(&empty);
        let old_revisions: HashSet<&(String, std::time::SystemTime)> =
            before.revision_links.iter().collect();
        let mut roots: Vec<String> = repo
            .revision_links
            .iter()
            .filter(|l| !old_revisions.contains(l))
            .filter_map(|(c, _)| digest_of(c))
            .collect();
        for (tag, t) in &repo.tags {
            let Some((path, written)) = &t.current_link else {
                continue;
            };
            let unchanged = before
                .tags
                .get(tag)
                .and_then(|old| old.current_link.as_ref())
                .is_some_and(|(_, w)| w == written);
            if !unchanged {
                if let Some(d) = read_link_lenient(driver, path).await? {
                    roots.push(d);
                }
            }
        }
        for (d, written) in &repo.layers {
            if before.layers.get(d) != Some(written) {
                spared.blobs.insert(d.clone());
            }
        }
        if roots.is_empty() {
            continue;
        }
        let kept = marker
            .closure(name, roots, |_| true, Missing::Skipped)
            .await?;
        for d in kept {
            if let Some((refs, _)) = marker.bodies.get(&d) {
                spared.blobs.extend(refs.iter().cloned());
            }
            spared.blobs.insert(d.clone());
            spared.manifests.insert((name.clone(), d));
        }
    }
    Ok((latest, spared))
}

/// A link written meanwhile, or `None` when it went again (or names no digest).
async fn read_link_lenient(driver: &Driver, path: &str) -> Result<Option<String>, GcError> {
    match driver.get_content(path).await {
        Ok(c) => Ok(layout::parse_link(&c).map(|d| d.to_string())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(storage(format!("reading {path}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn components_back_to_digests() {
        assert_eq!(
            super::digest_of("sha256/abc").as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(super::digest_of("nohex"), None);
    }
}
