//! Basic authentication against an htpasswd file of bcrypt entries, as distribution's
//! `auth.htpasswd`: other hash formats never match, and the file is read again when its
//! modification time changes.
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

#[derive(Default)]
struct State {
    mtime: Option<SystemTime>,
    users: HashMap<String, String>,
    /// Verified `(user, sha256(password))` pairs: bcrypt is slow on purpose, and clients
    /// send the same credentials with every request. Cleared when the file changes.
    verified: HashMap<String, [u8; 32]>,
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

    fn reload_if_changed(&self) -> Result<(), String> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("auth.htpasswd.path {}: {e}", self.path.display()))?;
        let mtime = meta.modified().ok();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.mtime.is_some() && st.mtime == mtime {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("auth.htpasswd.path {}: {e}", self.path.display()))?;
        st.users = parse(&text);
        st.verified.clear();
        st.mtime = mtime;
        Ok(())
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
        let hash = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.verified.get(&user) == Some(&fingerprint) {
                return true;
            }
            match st.users.get(&user) {
                Some(h) => h.clone(),
                None => return false,
            }
        };
        let ok = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.verified.insert(user, fingerprint);
        }
        ok
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
