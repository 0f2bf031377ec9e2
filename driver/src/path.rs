//! distribution's path rule and the mapping between driver paths and KS3 keys — one place,
//! as distribution's `base` wrapper does it, so no operation repeats it.
use crate::error::DriverError;

/// True when `p` matches `^(/[A-Za-z0-9._-]+)+$`.
pub fn is_valid_path(p: &str) -> bool {
    p.len() > 1
        && p.starts_with('/')
        && p[1..]
            .split('/')
            .all(|c| !c.is_empty() && c.bytes().all(valid_byte))
}

fn valid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Validates a file path (root not allowed).
pub fn check(p: &str) -> Result<(), DriverError> {
    if is_valid_path(p) {
        Ok(())
    } else {
        Err(DriverError::InvalidPath(p.to_string()))
    }
}

/// Validates a path where the root `/` is also allowed (stat, list, walk).
pub fn check_dir(p: &str) -> Result<(), DriverError> {
    if p == "/" {
        Ok(())
    } else {
        check(p)
    }
}

/// The hidden directory of saved upload tails, directly under the root.
const TAILS_DIR: &str = "~tails";

/// Maps driver paths to keys under the root directory and back.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `root/` or empty.
    prefix: String,
}

impl Keys {
    pub fn new(root_directory: &str) -> Self {
        let prefix = if root_directory.is_empty() {
            String::new()
        } else {
            format!("{root_directory}/")
        };
        Keys { prefix }
    }

    /// The object key of a (validated) path; `/` maps to the root prefix without its slash.
    pub fn key(&self, path: &str) -> String {
        let rel = path.trim_start_matches('/');
        if rel.is_empty() {
            self.prefix.trim_end_matches('/').to_string()
        } else {
            format!("{}{rel}", self.prefix)
        }
    }

    /// The listing prefix of everything under `path`: `key/`, or the root prefix for `/`.
    pub fn dir_prefix(&self, path: &str) -> String {
        let rel = path.trim_start_matches('/');
        if rel.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{rel}/", self.prefix)
        }
    }

    /// Where the writer keeps the saved state of `path`'s closed, uncommitted upload:
    /// `<root>/~tails/<path>`. `~` is outside the path alphabet, so no driver path names it,
    /// and keeping tails in a tree of their own means an upload in progress never makes a
    /// directory appear in `list`, `stat` or `walk`.
    pub fn tail_key(&self, path: &str) -> String {
        format!(
            "{}{TAILS_DIR}/{}",
            self.prefix,
            path.trim_start_matches('/')
        )
    }

    /// The listing prefix of the tails of everything under `path`.
    pub fn tail_dir_prefix(&self, path: &str) -> String {
        format!("{}/", self.tail_key(path))
    }

    /// The driver path of `key`, or `None` for a key outside the root or one no driver path
    /// maps to (a foreign key, a `dir/` placeholder, the driver's own hidden objects).
    pub fn path_of(&self, key: &str) -> Option<String> {
        let rel = key.strip_prefix(&self.prefix)?;
        let p = format!("/{}", rel.trim_end_matches('/'));
        // A trailing `/` is a directory placeholder of a common prefix; a key ending in
        // `/` is not a file (see `is_file_key`).
        is_valid_path(&p).then_some(p)
    }
}

/// A listed key is a file only if it maps to a valid path and does not end in `/`.
pub fn is_file_key(keys: &Keys, key: &str) -> Option<String> {
    if key.ends_with('/') {
        return None;
    }
    keys.path_of(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rule() {
        for ok in [
            "/a",
            "/2",
            "/a.a",
            "/0-9/abcdefg",
            "/abc/1.2.3.4.5-6_zyx/123.z/4",
            "/.abc",
            "/_.abc",
            "/Abc/Cba",
            "/a--b",
        ] {
            assert!(is_valid_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "abc",
            "123.abc",
            "//bcd",
            "/abc_123/",
            "/a b",
            "/a*",
            "/a~tail",
            "/path/is/invalid/",
            "/ü",
        ] {
            assert!(!is_valid_path(bad), "{bad}");
        }
        assert!(check_dir("/").is_ok());
        assert!(check("/").is_err());
    }

    #[test]
    fn keys_with_and_without_root() {
        let k = Keys::new("");
        assert_eq!(k.key("/a/b"), "a/b");
        assert_eq!(k.dir_prefix("/"), "");
        assert_eq!(k.dir_prefix("/a"), "a/");
        assert_eq!(k.path_of("a/b").as_deref(), Some("/a/b"));
        let k = Keys::new("reg/v2");
        assert_eq!(k.key("/a/b"), "reg/v2/a/b");
        assert_eq!(k.key("/"), "reg/v2");
        assert_eq!(k.dir_prefix("/"), "reg/v2/");
        assert_eq!(k.path_of("reg/v2/a").as_deref(), Some("/a"));
        assert_eq!(k.path_of("other/a"), None);
        assert_eq!(k.path_of("reg/v2/data~tail"), None);
        assert_eq!(k.tail_key("/a/b"), "reg/v2/~tails/a/b");
        assert_eq!(k.tail_dir_prefix("/a"), "reg/v2/~tails/a/");
        assert_eq!(k.path_of(&k.tail_key("/a/b")), None);
        assert_eq!(k.path_of("reg/v2/~tails/"), None);
        assert_eq!(Keys::new("").tail_key("/x"), "~tails/x");
        assert_eq!(is_file_key(&k, "reg/v2/dir/"), None);
    }
}
