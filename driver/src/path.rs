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

/// A file path that matched distribution's rule: `/a/b`, never the root. Operations take
/// this type, so no operation can receive a path that was not checked; the WIT boundary
/// (and every other caller) parses once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilePath(String);

/// A directory path: the root `/` or a [`FilePath`] (stat, list, walk).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirPath(String);

impl FilePath {
    pub fn parse(p: &str) -> Result<Self, DriverError> {
        if is_valid_path(p) {
            Ok(FilePath(p.to_string()))
        } else {
            Err(DriverError::InvalidPath(p.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/`, never empty.
    fn relative(&self) -> &str {
        &self.0[1..]
    }
}

impl DirPath {
    pub fn root() -> Self {
        DirPath("/".to_string())
    }

    pub fn parse(p: &str) -> Result<Self, DriverError> {
        if p == "/" {
            Ok(Self::root())
        } else {
            FilePath::parse(p).map(Self::from)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as a file path; `None` for the root.
    pub fn as_file(&self) -> Option<FilePath> {
        (self.0 != "/").then(|| FilePath(self.0.clone()))
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }
}

impl From<FilePath> for DirPath {
    fn from(p: FilePath) -> Self {
        DirPath(p.0)
    }
}

impl std::ops::Deref for FilePath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DirPath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FilePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for DirPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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

    /// The object key of a file path.
    pub fn key(&self, path: &FilePath) -> String {
        format!("{}{}", self.prefix, path.relative())
    }

    /// The listing prefix of everything under `path`: `key/`, or the root prefix for `/`.
    pub fn dir_prefix(&self, path: &DirPath) -> String {
        match path.as_file() {
            Some(f) => self.file_dir_prefix(&f),
            None => self.prefix.clone(),
        }
    }

    /// The listing prefix of everything under the file path `path`: `key/`.
    pub fn file_dir_prefix(&self, path: &FilePath) -> String {
        format!("{}{}/", self.prefix, path.relative())
    }

    /// Where the writer keeps the saved state of `path`'s closed, uncommitted upload:
    /// `<root>/~tails/<path>`. `~` is outside the path alphabet, so no driver path names it,
    /// and keeping tails in a tree of their own means an upload in progress never makes a
    /// directory appear in `list`, `stat` or `walk`.
    pub fn tail_key(&self, path: &FilePath) -> String {
        format!("{}{TAILS_DIR}/{}", self.prefix, path.relative())
    }

    /// The listing prefix of the tails of everything under `path`.
    pub fn tail_dir_prefix(&self, path: &FilePath) -> String {
        format!("{}/", self.tail_key(path))
    }

    /// The driver path of `key`, or `None` for a key outside the root or one no driver path
    /// maps to (a foreign key, a `dir/` placeholder, the driver's own hidden objects).
    pub fn path_of(&self, key: &str) -> Option<FilePath> {
        let rel = key.strip_prefix(&self.prefix)?;
        // A trailing `/` is a directory placeholder of a common prefix; a key ending in
        // `/` is not a file (see `is_file_key`).
        FilePath::parse(&format!("/{}", rel.trim_end_matches('/'))).ok()
    }
}

/// A listed key is a file only if it maps to a valid path and does not end in `/`.
pub fn is_file_key(keys: &Keys, key: &str) -> Option<FilePath> {
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
        assert!(DirPath::parse("/").unwrap().is_root());
        assert!(DirPath::parse("/a").unwrap().as_file().is_some());
        assert!(FilePath::parse("/").is_err());
        assert!(matches!(FilePath::parse("/a b"), Err(DriverError::InvalidPath(p)) if p == "/a b"));
        assert!(DirPath::parse("//").is_err());
    }

    #[test]
    fn keys_with_and_without_root() {
        let f = |p: &str| FilePath::parse(p).unwrap();
        let d = |p: &str| DirPath::parse(p).unwrap();
        let path_of = |k: &Keys, key: &str| k.path_of(key).map(|p| p.to_string());
        let k = Keys::new("");
        assert_eq!(k.key(&f("/a/b")), "a/b");
        assert_eq!(k.dir_prefix(&d("/")), "");
        assert_eq!(k.dir_prefix(&d("/a")), "a/");
        assert_eq!(path_of(&k, "a/b").as_deref(), Some("/a/b"));
        let k = Keys::new("reg/v2");
        assert_eq!(k.key(&f("/a/b")), "reg/v2/a/b");
        assert_eq!(k.dir_prefix(&d("/")), "reg/v2/");
        assert_eq!(path_of(&k, "reg/v2/a").as_deref(), Some("/a"));
        assert_eq!(path_of(&k, "other/a"), None);
        assert_eq!(path_of(&k, "reg/v2/data~tail"), None);
        assert_eq!(k.tail_key(&f("/a/b")), "reg/v2/~tails/a/b");
        assert_eq!(k.tail_dir_prefix(&f("/a")), "reg/v2/~tails/a/");
        assert_eq!(path_of(&k, &k.tail_key(&f("/a/b"))), None);
        assert_eq!(path_of(&k, "reg/v2/~tails/"), None);
        assert_eq!(Keys::new("").tail_key(&f("/x")), "~tails/x");
        assert_eq!(is_file_key(&k, "reg/v2/dir/"), None);
    }
}
