//! The sweep fence: how a garbage collection and the pushes of every registry instance
//! keep out of each other's way while the registry serves, through records in the store
//! itself (so it holds across instances and processes, with nothing else to run).
//!
//! **The collector** ([`crate::gc`]), once it knows what it would delete, writes a *sweep
//! record* `_gc/sweeps/<id>` naming its candidates (blobs, and with `-m` the manifests
//! of each repository it would delete), waits `settle`, re-scans the links written since
//! it started and spares everything they name, deletes, and removes its record.
//!
//! **A request that relies on something already stored** — a manifest PUT on the blobs
//! and child manifests it names and on its own bytes, an upload on the blob it finds
//! already stored, a mount on its source blob — *enters* the fence before checking that
//! those exist ([`Fence::enter`]): it reads the records and, while one names what it
//! relies on, waits for that sweep to end (then checks again; what was swept is then
//! simply absent, and the request answers as for any missing blob, before writing
//! anything). When the request's writes end within `settle` of that read
//! ([`Entered::leave`]), every collection whose record was not there yet re-scans after
//! those writes and sees them. A request that took longer reads the records again; a
//! sweep that appeared meanwhile and names what it relies on makes it wait for that sweep
//! to end and verify its writes ([`Left::Recheck`]).
//!
//! A request's checks may run at the same time as its read of the records (no round trip
//! is added to a push): a sweep that ended between the two left its tombstone, which
//! makes the request check again ([`Entered::recheck`]).
//!
//! Both sides read after they write (the collector its links after its record, the
//! request the records after its links), so on KS3's read-after-write consistency at
//! least one sees the other: either the collector spares what the request relies on,
//! or the request waits and checks. Blobs uploaded fresh need no fence: a collection's
//! candidates are the blobs it listed before its mark, and `min_age` spares young ones.
//!
//! A collector that dies leaves its record behind; records (and tombstones) not
//! rewritten for [`STALE_AFTER`] are ignored (the collector refreshes its record while it deletes and
//! stops deleting when it could not for [`STALE_AFTER`] / 2).
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ks3_driver_host::{Driver, WalkControl};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::errors::{RegistryError, Result};
use crate::layout;
use crate::store::{read_document, Document, Store};

/// How long a request may take from its read of the records to the end of its writes
/// before it must read them again; and how long a collector waits between writing its
/// record and re-scanning (the same value on both sides: `storage.maintenance.gc.settle`).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(10);

/// A record whose object was not rewritten for this long belongs to a collector that
/// died; it is ignored.
pub const STALE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How long a request waits for a sweep that names what it relies on before answering
/// 503 (the client retries; a sweep of thousands of blobs ends well within it).
const WAIT_MAX: Duration = Duration::from_secs(120);

/// How often a waiting request looks at the records again.
const POLL: Duration = Duration::from_millis(250);

/// A record larger than this is not read: it then names everything (safe, and only a
/// collection of millions of blobs writes one).
const RECORD_MAX: u64 = 64 << 20;

/// The directory of the sweep records (beside `blobs/` and `repositories/`, which is all
/// distribution lists, so it never sees them).
pub fn sweeps_dir() -> String {
    format!("{}/_gc/sweeps", layout::ROOT)
}

/// One collection's record: what it may delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepRecord {
    /// The collection's id (also the record's name).
    pub id: String,
    /// When it started (RFC 3339, for people reading the store).
    pub started: String,
    /// Candidate blobs: `<alg>:<hex>`.
    pub blobs: BTreeSet<String>,
    /// Candidate manifests: `(repository, digest)`.
    pub manifests: BTreeSet<(String, String)>,
    /// Set when the sweep has ended (RFC 3339): the record stays as a tombstone until
    /// it is stale, so that a request whose checks ran while the sweep was ending checks
    /// again what the sweep may have deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

impl SweepRecord {
    pub fn path(&self) -> String {
        format!("{}/{}", sweeps_dir(), self.id)
    }

    fn names(&self, p: &Protect) -> bool {
        p.blobs.iter().any(|b| self.blobs.contains(&b.to_string()))
            || p.manifests
                .iter()
                .any(|(r, d)| self.manifests.contains(&(r.to_string(), d.to_string())))
    }
}

/// What a request relies on.
#[derive(Debug, Default)]
pub struct Protect {
    pub blobs: Vec<Digest>,
    /// `(repository, manifest digest)`.
    pub manifests: Vec<(String, Digest)>,
}

impl Protect {
    pub fn blob(d: &Digest) -> Protect {
        Protect {
            blobs: vec![d.clone()],
            manifests: Vec::new(),
        }
    }
}

/// A record as found: parsed, or too large / unreadable (then it names everything).
#[derive(Debug, Clone)]
enum Found {
    Record(Arc<SweepRecord>),
    Everything,
}

impl Found {
    fn names(&self, p: &Protect) -> bool {
        match self {
            Found::Record(r) => r.names(p),
            Found::Everything => true,
        }
    }

    fn ended(&self) -> bool {
        matches!(self, Found::Record(r) if r.ended.is_some())
    }
}

/// The registry's side of the fence: the settle bound and a cache of the records read
/// (by path, size and modification time: a sweep's record is read once per instance).
pub struct Fence {
    settle: Duration,
    cache: Mutex<HashMap<String, (u64, SystemTime, Found)>>,
}

/// A request inside the fence: when it read the records, and whether it must check
/// again what it relies on.
#[must_use = "a request that entered the fence leaves it after its writes"]
pub struct Entered {
    read_at: Instant,
    recheck: bool,
}

impl Entered {
    /// Whether checks made before or while the records were read may be out of date: a
    /// sweep naming what the request relies on ended meanwhile (the request waited for
    /// it, or found its tombstone). Checks made after [`Fence::enter`] returned are not.
    pub fn recheck(&self) -> bool {
        self.recheck
    }
}

/// How a request left the fence.
#[derive(Debug, PartialEq, Eq)]
pub enum Left {
    /// Every collection sees (or saw) its writes.
    Safe,
    /// A sweep that may not have seen its writes named what it relies on and has ended:
    /// the request must check that it still exists.
    Recheck,
}

impl Fence {
    pub fn new(settle: Duration) -> Fence {
        Fence {
            settle,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the records, waiting while a live one names what `p` relies on; then the
    /// request may check that it exists and write. Its checks may run concurrently with
    /// this; they must be made again when [`Entered::recheck`] says so.
    pub async fn enter(&self, store: &Store, p: &Protect) -> Result<Entered> {
        let (recheck, read_at) = self.wait_out(store, p).await?;
        Ok(Entered { read_at, recheck })
    }

    /// After the request's writes: whether it must verify what it relies on.
    pub async fn leave(&self, store: &Store, entered: Entered, p: &Protect) -> Result<Left> {
        if entered.read_at.elapsed() < self.settle {
            return Ok(Left::Safe);
        }
        let (recheck, _) = self.wait_out(store, p).await?;
        Ok(if recheck { Left::Recheck } else { Left::Safe })
    }

    /// Waits until no live record names what `p` relies on: whether a record named it
    /// (live, or the tombstone of a sweep that ended lately), and when the read that
    /// found no live one began (the instant a request's settle bound counts from: a
    /// record written after it began may have been missed by it).
    async fn wait_out(&self, store: &Store, p: &Protect) -> Result<(bool, Instant)> {
        let deadline = Instant::now() + WAIT_MAX;
        let mut named = false;
        loop {
            let began = Instant::now();
            let records = self.records(store.driver()).await?;
            let naming: Vec<&Found> = records.iter().filter(|r| r.names(p)).collect();
            named |= !naming.is_empty();
            if naming.iter().all(|r| r.ended()) {
                return Ok((named, began));
            }
            if Instant::now() >= deadline {
                return Err(RegistryError::Unavailable(
                    "a garbage collection is deleting what this request needs; retry".into(),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The live records (one listing; a record is fetched only when it changed).
    async fn records(&self, driver: &Driver) -> Result<Vec<Found>> {
        let listed = list_records(driver)
            .await
            .map_err(|e| RegistryError::storage("reading the garbage collector's records", e))?;
        let now = SystemTime::now();
        let mut out = Vec::new();
        for (path, size, mod_time) in listed {
            // A tombstone, or the record of a collector that died.
            if is_stale(now, mod_time) {
                continue;
            }
            let cached = self
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(&path).cloned())
                .filter(|(s, m, _)| *s == size && *m == mod_time)
                .map(|(_, _, f)| f);
            let found = match cached {
                Some(f) => f,
                None => match read_record(driver, &path).await {
                    Ok(Some(f)) => {
                        if let Ok(mut c) = self.cache.lock() {
                            c.retain(|p, _| p != &path);
                            c.insert(path.clone(), (size, mod_time, f.clone()));
                        }
                        f
                    }
                    // Gone since the listing: its sweep ended.
                    Ok(None) => continue,
                    Err(e) => {
                        return Err(RegistryError::storage(
                            "reading a garbage collector's record",
                            e,
                        ))
                    }
                },
            };
            out.push(found);
        }
        Ok(out)
    }
}

fn is_stale(now: SystemTime, mod_time: SystemTime) -> bool {
    now.duration_since(mod_time)
        .map(|age| age > STALE_AFTER)
        .unwrap_or(false)
}

/// `(path, size, modification time)` of every record (one listing request).
pub async fn list_records(
    driver: &Driver,
) -> std::result::Result<Vec<(String, u64, SystemTime)>, ks3_driver_host::Error> {
    let mut out = Vec::new();
    let walked = driver
        .walk(&sweeps_dir(), None, |info| {
            if !info.is_dir {
                out.push((info.path.clone(), info.size, info.mod_time));
            }
            Ok(WalkControl::Continue)
        })
        .await;
    match walked {
        Ok(()) => Ok(out),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Reads one record; `None` when it is gone. A record that is too large or does not
/// parse names everything: a request then waits for it, never trusts it.
async fn read_record(
    driver: &Driver,
    path: &str,
) -> std::result::Result<Option<Found>, ks3_driver_host::Error> {
    Ok(match read_document(driver, path, RECORD_MAX).await? {
        Document::Missing => None,
        Document::TooLarge(_) => Some(Found::Everything),
        Document::Found(bytes) => Some(match serde_json::from_slice::<SweepRecord>(&bytes) {
            Ok(r) => Found::Record(Arc::new(r)),
            Err(_) => Found::Everything,
        }),
    })
}

/// The records of collectors that died mid-sweep (stale and never marked ended), for
/// `fsck`: `(path, age)`. Registries already ignore them.
pub async fn abandoned_records(
    driver: &Driver,
) -> std::result::Result<Vec<(String, Duration)>, ks3_driver_host::Error> {
    let mut out = Vec::new();
    for (path, age) in stale_records(driver).await? {
        match read_record(driver, &path).await? {
            Some(Found::Record(r)) if r.ended.is_some() => {}
            Some(_) => out.push((path, age)),
            None => {}
        }
    }
    Ok(out)
}

/// The stale records (tombstones and abandoned ones): `(path, age)`.
pub async fn stale_records(
    driver: &Driver,
) -> std::result::Result<Vec<(String, Duration)>, ks3_driver_host::Error> {
    let now = SystemTime::now();
    Ok(list_records(driver)
        .await?
        .into_iter()
        .filter(|(_, _, m)| is_stale(now, *m))
        .map(|(p, _, m)| (p, now.duration_since(m).unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const B: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_record_names_its_blobs_and_its_repositories_manifests() {
        let r = SweepRecord {
            id: "x".into(),
            started: String::new(),
            ended: None,
            blobs: BTreeSet::from([A.to_string()]),
            manifests: BTreeSet::from([("app".to_string(), B.to_string())]),
        };
        let a = Digest::parse(A).unwrap();
        let b = Digest::parse(B).unwrap();
        assert!(r.names(&Protect::blob(&a)));
        assert!(!r.names(&Protect::blob(&b)));
        let in_repo = |repo: &str| Protect {
            blobs: vec![],
            manifests: vec![(repo.to_string(), b.clone())],
        };
        assert!(r.names(&in_repo("app")));
        assert!(
            !r.names(&in_repo("other")),
            "the same digest elsewhere is kept"
        );
        let json = serde_json::to_vec(&r).unwrap();
        assert_eq!(serde_json::from_slice::<SweepRecord>(&json).unwrap(), r);
    }

    #[test]
    fn stale_means_not_refreshed_for_ten_minutes() {
        let now = SystemTime::now();
        assert!(!is_stale(now, now - Duration::from_secs(60)));
        assert!(is_stale(now, now - STALE_AFTER - Duration::from_secs(1)));
        // A record from the future (clock skew) is live.
        assert!(!is_stale(now, now + Duration::from_secs(60)));
    }
}
