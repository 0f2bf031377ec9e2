//! What makes a finished upload trustworthy when several requests touch one upload at once
//! (a client racing two `PATCH`es, or requests of one upload landing on two instances).
//!
//! The attack this closes: two `PATCH`es of equal length start from the same offset; the
//! one whose `close` lands last decides the stored bytes, the one whose hash state is saved
//! last decides `hashstates/sha256/<offset>`, and a `PUT ?digest=` that trusted that state
//! stored one body's bytes under the other's digest. A CRC-64 recorded with the state
//! would not close it: CRC-64 is linear, so an attacker who races a body of its own
//! against a known one can give both the same length and CRC.
//!
//! The construction, in three parts:
//! * **One request at a time per upload in this process** ([`UploadLocks`]).
//! * **Writer markers.** Every request that changes an upload's data writes
//!   `_uploads/<id>/writers/<offset>-<random>` after resuming the writer (so at its start
//!   offset) and before its `close` or `commit`. In a history where each request starts
//!   where the previous one ended, the start offsets are all different; two requests that
//!   started from the same stored state share an offset. Any request whose bytes or hash
//!   state a `PUT` sees wrote its marker before that (marker, then close, then state), so
//!   a listing taken after them shows every such request.
//! * **The bytes checked are the bytes linked.** A `PUT` never moves the shared upload
//!   path into `blobs/` after checking it (another instance could commit over it in
//!   between). A small upload is read back (bounded), hashed, and written to its blob
//!   path from those very bytes. A large one is first moved to a path only this request
//!   knows (`_uploads/<id>/verify-<random>`); the saved hash state is trusted only when
//!   the markers listed after that move show one linear history ending at this request,
//!   otherwise that private copy is hashed again; only then does it move into `blobs/`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

use crate::layout;

/// The largest upload verified by reading it back into memory (see the module comment).
pub const READ_BACK_MAX: u64 = 4 << 20;

/// Per-upload locks of this process. An entry lives while some request holds or waits for
/// its lock.
#[derive(Default)]
pub struct UploadLocks {
    map: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl UploadLocks {
    /// Waits until no other request of this process works on upload `id` of `name`.
    pub async fn lock(&self, name: &str, id: &str) -> OwnedMutexGuard<()> {
        let m = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            let key = format!("{name}\n{id}");
            match map.get(&key).and_then(Weak::upgrade) {
                Some(m) => m,
                None => {
                    let m = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key, Arc::downgrade(&m));
                    m
                }
            }
        };
        m.lock_owned().await
    }

    /// Uploads with a request holding or waiting for their lock.
    #[cfg(test)]
    fn held(&self) -> usize {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// `_uploads/<id>/writers`: the markers of the requests that changed the upload's data.
pub fn writers_dir(name: &str, id: &str) -> String {
    format!("{}/writers", layout::upload_dir(name, id))
}

/// A new marker for a request that resumed the upload at `offset`.
pub fn new_marker(name: &str, id: &str, offset: u64) -> String {
    format!(
        "{}/{offset:020}-{:016x}",
        writers_dir(name, id),
        rand::random::<u64>()
    )
}

/// A path under the upload that only the request that draws it knows.
pub fn private_copy(name: &str, id: &str) -> String {
    format!(
        "{}/verify-{:032x}",
        layout::upload_dir(name, id),
        rand::random::<u128>()
    )
}

/// The start offset a marker's base name records.
fn marker_offset(base: &str) -> Option<u64> {
    let (offset, nonce) = base.split_once('-')?;
    if offset.len() != 20 || nonce.is_empty() {
        return None;
    }
    offset.parse().ok()
}

/// Whether the markers listed (base names) prove that every request before this one
/// (whose marker is `own`, at `offset`) started where the previous one ended: no two share
/// a start offset and none started after this one. Anything unreadable proves nothing.
pub fn linear_history(listed: &[String], own: &str, offset: u64) -> bool {
    let own_base = own.rsplit('/').next().unwrap_or(own);
    if !listed.iter().any(|b| b == own_base) {
        return false;
    }
    let mut seen = std::collections::HashSet::new();
    for base in listed {
        match marker_offset(base) {
            Some(o) if o <= offset && seen.insert(o) => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(p: &str) -> String {
        p.rsplit('/').next().unwrap().to_string()
    }

    #[test]
    fn markers_prove_a_linear_history_only() {
        let own = new_marker("a", "u", 100);
        let earlier = [
            base(&new_marker("a", "u", 0)),
            base(&new_marker("a", "u", 40)),
        ];
        let mut listed = earlier.to_vec();
        listed.push(base(&own));
        assert!(linear_history(&listed, &own, 100));
        // Without this request's own marker the listing is not the one taken after it.
        assert!(!linear_history(&earlier, &own, 100));
        // Two requests from the same offset: a fork.
        let mut forked = listed.clone();
        forked.push(base(&new_marker("a", "u", 40)));
        assert!(!linear_history(&forked, &own, 100));
        let mut same_as_own = listed.clone();
        same_as_own.push(base(&new_marker("a", "u", 100)));
        assert!(!linear_history(&same_as_own, &own, 100));
        // A request that started past this one's start.
        let mut later = listed.clone();
        later.push(base(&new_marker("a", "u", 101)));
        assert!(!linear_history(&later, &own, 100));
        // Anything else in the directory.
        let mut junk = listed;
        junk.push("x".into());
        assert!(!linear_history(&junk, &own, 100));
        assert_eq!(marker_offset("00000000000000000042-ab"), Some(42));
        assert_eq!(marker_offset("42-ab"), None);
        assert_eq!(marker_offset("00000000000000000042-"), None);
    }

    #[tokio::test]
    async fn one_request_per_upload_at_a_time() {
        let locks = Arc::new(UploadLocks::default());
        let g = locks.lock("a", "u").await;
        let other = locks.lock("a", "v").await; // another upload is not held up
        let l2 = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let _g = l2.lock("a", "u").await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "a second request on the upload waits"
        );
        drop(g);
        waiter.await.unwrap();
        drop(other);
        assert_eq!(locks.held(), 0);
    }
}
