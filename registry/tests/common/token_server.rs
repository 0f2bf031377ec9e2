//! The PyJWT token server of `clients/token_server.py` (distribution's `auth.token`
//! protocol), for the tests of token authentication and of a proxy in front of it.
use std::path::{Path, PathBuf};
use std::process::Command;

use super::require_python_module;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/token_server.py")
}

/// The token server, serving `users` until dropped.
pub struct TokenServer {
    child: std::process::Child,
    pub url: String,
    keys: tempfile::TempDir,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TokenServer {
    pub fn start(users: serde_json::Value) -> TokenServer {
        use std::io::BufRead;
        for module in ["jwt", "cryptography"] {
            require_python_module(module, "python3 -m pip install PyJWT cryptography");
        }
        let keys = tempfile::tempdir().expect("keys");
        let users_file = keys.path().join("users.json");
        std::fs::write(&users_file, users.to_string()).expect("users");
        let mut child = Command::new("python3")
            .arg(script())
            .args(["serve", path_str(keys.path()), path_str(&users_file)])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("token server starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("token server said {line:?}"))
            .to_string();
        TokenServer { child, url, keys }
    }

    /// The certificate bundle tokens are verified with (`auth.token.rootcertbundle`).
    pub fn bundle(&self) -> PathBuf {
        self.keys.path().join("ca.pem")
    }

    /// The key set of `auth.token.jwks`.
    pub fn jwks(&self) -> PathBuf {
        self.keys.path().join("jwks.json")
    }

    /// One token minted outside the server: `kind` x5c, libtrust, jwks or foreign.
    pub fn mint(
        &self,
        alg: &str,
        kind: &str,
        exp_offset: i64,
        access: serde_json::Value,
    ) -> String {
        mint_token(self.keys.path(), alg, kind, exp_offset, "tester", &access)
    }

    /// The `auth.token` section of a registry's configuration (with `jwks` when asked).
    pub fn yaml(&self, jwks: bool) -> String {
        let mut y = format!(
            "auth:\n  token:\n    realm: {}/token\n    service: registry.test\n    issuer: token.test\n    rootcertbundle: {}\n",
            self.url,
            path_str(&self.bundle())
        );
        if jwks {
            y.push_str(&format!("    jwks: {}\n", path_str(&self.jwks())));
        }
        y
    }
}

/// One token minted by the script alone (no server): signed with the keys in `keys` (made
/// there on first use, `ca.pem` among them), `kind` x5c, libtrust, jwks or foreign, for
/// `subject` with `access`, expiring `exp_offset` seconds from now.
pub fn mint_token(
    keys: &Path,
    alg: &str,
    kind: &str,
    exp_offset: i64,
    subject: &str,
    access: &serde_json::Value,
) -> String {
    require_python_module("jwt", "python3 -m pip install PyJWT cryptography");
    let out = Command::new("python3")
        .arg(script())
        .args([
            "mint",
            path_str(keys),
            alg,
            kind,
            &exp_offset.to_string(),
            subject,
            &access.to_string(),
        ])
        .output()
        .expect("python3 runs the token script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
