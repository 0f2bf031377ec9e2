//! [`Secret`]: a credential that never shows in `Debug`, `Display`, logs or errors.

use std::fmt;

/// A secret string (a KS3 secret key). `Debug` and `Display` print `****` (or `""` when it
/// is empty, so that "missing" stays visible); only [`Secret::expose`] gives the text, for
/// signing. Every crate of the project holds its secret keys in this type.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

/// What `Debug` and `Display` print for a non-empty secret.
pub const MASK: &str = "****";

impl Secret {
    /// A secret key from a file (`-` = stdin), surrounding whitespace removed. Errors never
    /// show the content.
    /// Shared by `ks3-driver --secret-key-file` and `ks3-local --secret-key-file`.
    pub fn read_file(path: &std::path::Path) -> Result<Secret, String> {
        let text = if path.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut s)
                .map_err(|e| format!("--secret-key-file -: reading stdin: {e}"))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| format!("--secret-key-file {}: {e}", path.display()))?
        };
        let sk = text.trim();
        if sk.is_empty() {
            return Err(format!("--secret-key-file {}: empty", path.display()));
        }
        Ok(Secret::new(sk))
    }

    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself: only for signing and for handing it to the sandboxed driver.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(MASK)
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            f.write_str(MASK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shown() {
        let s = Secret::new("TOPSECRETvalue");
        assert_eq!(format!("{s:?}"), "****");
        assert_eq!(format!("{s}"), "****");
        assert_eq!(format!("{:?}", Some(&s)), "Some(****)");
        assert_eq!(format!("{s:#?}"), "****");
        assert_eq!(s.expose(), "TOPSECRETvalue");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
        assert!(Secret::from("").is_empty());
    }
}
