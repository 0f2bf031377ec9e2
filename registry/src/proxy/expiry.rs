//! `proxy.ttl`: cached content expires that long after it was cached.
//!
//! The schedule lives in the store, one object per cached item:
//! `/docker/registry/v2/_proxy/expiry/<expiry, unix seconds, 12 digits>-<id>`, where `id`
//! names the item (a hash of its kind, repository and digest) and the content is the
//! entry in the shape of distribution's `scheduler-state.json` entries (`Key`
//! `<repo>@<digest>`, `ExpiryData`, `EntryType` 0 blob / 1 manifest). One object per
//! entry, not one state file: every instance on the bucket adds entries without
//! rewriting another's, and a restart finds them all. Caching an item again adds an
//! entry with a later expiry; an item expires when its latest entry is due.
//!
//! The task ([`run_expiry`]) lists the directory (names only: the expiry is in the name)
//! every `ttl / 4` (between 1 s and 1 min), and for each item whose latest entry is due:
//! a blob's `_layers` link is deleted (its bytes stay for the garbage collector or the
//! bucket's lifecycle rule, as in distribution: other repositories may hold the same
//! blob); a manifest's revision link and the tags that name it are deleted. Then its
//! entries are deleted. Instances doing this at once delete the same things; deletes of
//! what is gone are no errors.
use std::collections::BTreeMap;
use std::time::Duration;

use ks3_driver_host::Driver;
use serde::{Deserialize, Serialize};

use super::{Proxy, LOG};
use crate::digest::Digest;
use crate::ids::unix_now;
use crate::layout;
use crate::store::{fan_out, Store, FAN_OUT_WIDTH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Blob,
    Manifest,
}

/// One entry, as distribution's scheduler writes them.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "ExpiryData")]
    expiry: String,
    #[serde(rename = "EntryType")]
    kind: u8,
}

pub fn dir() -> String {
    format!("{}/_proxy/expiry", layout::ROOT)
}

fn item_id(kind: Kind, key: &str) -> String {
    let d = Digest::of(
        crate::digest::Algorithm::Sha256,
        format!("{}:{key}", kind as u8).as_bytes(),
    );
    d.hex()[..32].to_string()
}

/// Records that `name@d` was cached now (nothing without a ttl). A failure is logged:
/// the item is then kept until cached again.
pub async fn schedule(p: &Proxy, kind: Kind, name: &str, d: &Digest) {
    let Some(ttl) = p.config.ttl else {
        return;
    };
    let key = format!("{name}@{d}");
    let at = unix_now().saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
    let entry = Entry {
        key: key.clone(),
        expiry: ks3_proto::date::rfc3339(at),
        kind: kind as u8,
    };
    let path = format!("{}/{at:012}-{}", dir(), item_id(kind, &key));
    let body = serde_json::to_vec(&entry).unwrap_or_default();
    if let Err(e) = p.store.driver().put_content_writerless(&path, &body).await {
        tracing::warn!(target: LOG, "scheduling the expiry of {key}: {e}");
    }
}

/// Expires what is due every `ttl / 4` (1 s to 1 min) until dropped.
pub async fn run_expiry(driver: Driver, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let store = Store::new(driver);
    loop {
        if let Err(e) = expire_due(&store).await {
            tracing::warn!(target: LOG, "expiring cached content: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

/// One pass: every item whose latest entry is due is expired, its entries deleted (and
/// the superseded entries of items not due).
pub async fn expire_due(store: &Store) -> crate::errors::Result<usize> {
    let Some(names) = store.list_names(&dir()).await? else {
        return Ok(0);
    };
    let now = unix_now();
    let mut items: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for n in names {
        if let Some((at, id)) = n.split_once('-') {
            if let Ok(at) = at.parse::<i64>() {
                items
                    .entry(id.to_string())
                    .or_default()
                    .push((at, n.clone()));
            }
        }
    }
    let mut due = Vec::new();
    let mut superseded = Vec::new();
    for (_, mut entries) in items {
        entries.sort();
        let (latest, latest_name) = entries.pop().unwrap_or_default();
        let old = entries.into_iter().map(|(_, n)| n);
        if latest <= now {
            due.push(latest_name.clone());
            superseded.extend(old);
            superseded.push(latest_name);
        } else {
            superseded.extend(old);
        }
    }
    let expired = fan_out(due, FAN_OUT_WIDTH, |n| async move {
        let path = format!("{}/{n}", dir());
        let entry = match store.get_small(&path).await {
            Ok(Some(b)) => serde_json::from_slice::<Entry>(&b).ok(),
            _ => None,
        };
        match entry {
            Some(e) => expire(store, &e).await,
            None => Ok(()),
        }
    })
    .await;
    let mut count = 0;
    for r in expired {
        r?;
        count += 1;
    }
    // Entries are dropped once what they name is gone (a failed expiry keeps them).
    let paths: Vec<((), String)> = superseded
        .into_iter()
        .map(|n| ((), format!("{}/{n}", dir())))
        .collect();
    for (_, path, r) in crate::store::delete_each(store.driver(), paths, FAN_OUT_WIDTH).await {
        if let Err(e) = r {
            tracing::warn!(target: LOG, "deleting expiry entry {path}: {e}");
        }
    }
    Ok(count)
}

async fn expire(store: &Store, e: &Entry) -> crate::errors::Result<()> {
    let Some((name, digest)) = e.key.split_once('@') else {
        return Ok(());
    };
    let Some(d) = Digest::parse(digest) else {
        return Ok(());
    };
    if e.kind == Kind::Blob as u8 {
        tracing::info!(target: LOG, "expired blob {d} of {name}");
        return store.delete_if_present(&layout::layer_link(name, &d)).await;
    }
    // A manifest: the tags naming it, then its revision link.
    let tags = store
        .list_names(&layout::tags_dir(name))
        .await?
        .unwrap_or_default();
    let naming = fan_out(tags, FAN_OUT_WIDTH, |t| async move {
        let link = store.read_link(&layout::tag_current_link(name, &t)).await;
        (t, link)
    })
    .await;
    for (t, link) in naming {
        if link? == Some(d.clone()) {
            store.delete_if_present(&layout::tag_dir(name, &t)).await?;
        }
    }
    tracing::info!(target: LOG, "expired manifest {d} of {name}");
    store
        .delete_if_present(&layout::revision_link(name, &d))
        .await
}
