//! Basic authentication against an htpasswd file of bcrypt entries, as distribution's
//! `auth.htpasswd`: other hash formats never match, and the file is read again when it
//! changes (its modification time, size or inode, checked on every request).
//!
//! Two rules close what an attack found (issue 25):
//! - A revoked user is out as soon as the change is seen. Verified passwords are cached
//!   (bcrypt is slow on purpose, and clients send the same credentials with every
//!   request), but a success is cached only for the version of the file it was checked
//!   against (a generation bumped on every reload), a cache hit is only taken while the
//!   user's hash is still the one checked, and a check that ends after the file changed
//!   is judged against the new file. Without this, a login whose bcrypt was running when
//!   another request reloaded the file wrote the removed user into the freshly cleared
//!   cache, and they stayed in until the next change.
//! - A refusal takes as long for an unknown user (or one whose entry is not bcrypt) as for
//!   a known user's wrong password: the password is checked against a dummy hash of the
//!   file's highest cost, so the time of a 401 does not tell which user names exist.
//!   (distribution 2.8.2 answers an unknown user in about a millisecond and a known one
//!   after a full bcrypt.)
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::config::HtpasswdConfig;

pub struct Htpasswd {
    realm: String,
    path: PathBuf,
    state: Mutex<State>,
}

/// What identifies one version of the file: a rewrite changes the modification time
/// (unless the clock is coarser than the edits), the size or, for a file replaced by a
/// rename, the inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        }
    }
}

#[derive(Default)]
struct State {
    stamp: Option<Stamp>,
    /// Bumped on every reload (and on every failed one): a check remembers the generation
    /// it read the users under, and caches its success only if it is still current.
    generation: u64,
    users: HashMap<String, String>,
    /// What an unknown user's password is checked against (see [`dummy_hash`]).
    dummy: String,
    /// Verified users of this generation: the password's SHA-256 and the hash it matched.
    verified: HashMap<String, Verified>,
}

struct Verified {
    fingerprint: [u8; 32],
    hash: String,
}

/// The salt and hash part of a bcrypt hash (of nothing anyone can send: its own salt is
/// fixed, and a dummy check's result is ignored anyway).
const DUMMY_SALT_AND_HASH: &str = "L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u";

/// `htpasswd -B`'s default cost, for a file without one bcrypt entry.
const DEFAULT_COST: u32 = 5;

/// A bcrypt hash of the highest cost among `users`' entries: checking a password against
/// it costs what checking a real user's does.
fn dummy_hash(users: &HashMap<String, String>) -> String {
    let cost = users
        .values()
        .filter_map(|h| bcrypt_cost(h))
        .max()
        .unwrap_or(DEFAULT_COST);
    format!("$2b${cost:02}${DUMMY_SALT_AND_HASH}")
}

/// The cost of a well-formed bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`), within the
/// range bcrypt accepts; `None` for anything else, which can never match.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let parts: bcrypt::HashParts = hash.parse().ok()?;
    let cost = parts.get_cost();
    (4..=31).contains(&cost).then_some(cost)
}

impl Htpasswd {
    /// Reads the file now, so a missing or unreadable file stops the registry at start.
    pub fn open(cfg: &HtpasswdConfig) -> Result<Htpasswd, String> {
        let h = Htpasswd {
            realm: cfg.realm.clone(),
            path: cfg.path.clone(),
            state: Mutex::new(State::default()),
        };
        h.reload_if_changed()?;
        Ok(h)
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Reads the file again when its stamp changed. The stamp is taken under the lock, so
    /// two requests seeing different versions cannot store one's stamp with the other's
    /// users; a change between the stamp and the read only causes one more reload later.
    /// A file that cannot be read lets nobody in, and forgets every verified password.
    fn reload_if_changed(&self) -> Result<(), String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let read = std::fs::metadata(&self.path).and_then(|meta| {
            let stamp = Stamp::of(&meta);
            if st.stamp.as_ref() == Some(&stamp) {
                return Ok(None);
            }
            std::fs::read_to_string(&self.path).map(|text| Some((stamp, text)))
        });
        match read {
            Ok(None) => Ok(()),
            Ok(Some((stamp, text))) => {
                st.users = parse(&text);
                st.dummy = dummy_hash(&st.users);
                st.verified.clear();
                // Wrapping: 2^64 reloads do not happen; if they did, a stale check would
                // still be judged against the current users after its bcrypt.
                st.generation = st.generation.wrapping_add(1);
                st.stamp = Some(stamp);
                Ok(())
            }
            Err(e) => {
                st.users.clear();
                st.verified.clear();
                st.generation = st.generation.wrapping_add(1);
                st.stamp = None;
                Err(format!("auth.htpasswd.path {}: {e}", self.path.display()))
            }
        }
    }

    /// Whether the `Authorization` header carries a user and password of the file.
    pub async fn check(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        if self.reload_if_changed().is_err() {
            // The file went away: nobody gets in until it is back.
            return false;
        }
        let fingerprint: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let (generation, hash, real) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let current = st.users.get(&user);
            if let (Some(v), Some(h)) = (st.verified.get(&user), current) {
                // The cache is emptied on every reload; the hash is compared as well so a
                // hit can only ever confirm the entry the file holds now.
                if v.fingerprint == fingerprint && v.hash == *h {
                    return true;
                }
            }
            match current {
                Some(h) if bcrypt_cost(h).is_some() => (st.generation, h.clone(), true),
                // Unknown, or no bcrypt entry: the same work against the dummy hash.
                _ => (st.generation, st.dummy.clone(), false),
            }
        };
        let checked = hash.clone();
        let matched = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &checked).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(real && matched) {
            return false;
        }
        // The bcrypt took a while: judge it against the file as it is now.
        if self.reload_if_changed().is_err() {
            return false;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.users.get(&user) != Some(&hash) {
            // Removed, or given another password, while this check ran.
            return false;
        }
        if st.generation == generation {
            st.verified.insert(user, Verified { fingerprint, hash });
        }
        true
    }
}

/// `user:hash` lines; blank lines and `#` comments skipped.
fn parse(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(u, h)| (u.to_string(), h.trim().to_string()))
        .collect()
}

/// `Basic base64(user:password)`.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic_credentials() {
        // "user:pa:ss" — the password may contain ':'.
        assert_eq!(
            basic_credentials("Basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(
            basic_credentials("basic YTpi"),
            Some(("a".into(), "b".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!!"), None);
        assert_eq!(basic_credentials("Basic YQ="), None);
    }

    #[test]
    fn the_dummy_hash_costs_what_the_dearest_entry_does() {
        let users = parse("a:$2y$12$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u\nb:plain\nc:$2b$04$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u\n");
        let dummy = dummy_hash(&users);
        assert_eq!(bcrypt_cost(&dummy), Some(12));
        assert_eq!(
            bcrypt_cost(&dummy_hash(&HashMap::new())),
            Some(DEFAULT_COST)
        );
        assert_eq!(bcrypt_cost("plain"), None);
        assert_eq!(bcrypt_cost("$apr1$abc$def"), None);
        // Checking against it runs bcrypt and never matches.
        assert!(!bcrypt::verify("", &dummy_hash(&HashMap::new())).unwrap_or(true));
    }

    #[tokio::test]
    async fn checks_bcrypt_entries_and_rereads_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("secret", 4).expect("hash");
        std::fs::write(&path, format!("# users\nalice:{hash}\nbob:plaintext\n")).expect("write");
        let h = Htpasswd::open(&HtpasswdConfig {
            realm: "r".into(),
            path: path.clone(),
        })
        .expect("open");
        let basic = |u: &str, p: &str| {
            let raw = format!("{u}:{p}");
            format!("Basic {}", STANDARD.encode(raw.as_bytes()))
        };
        assert!(h.check(Some(&basic("alice", "secret"))).await);
        assert!(h.check(Some(&basic("alice", "secret"))).await);
        assert!(!h.check(Some(&basic("alice", "wrong"))).await);
        assert!(!h.check(Some(&basic("bob", "plaintext"))).await);
        assert!(!h.check(None).await);
        // A rewritten file (new mtime) drops alice.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "carol:x\n").expect("rewrite");
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        assert!(!h.check(Some(&basic("alice", "secret"))).await);
    }
}
