//! Which API endpoint a request path names. Repository names contain `/`, so the
//! endpoint is found from the end of the path, and the name is whatever precedes it.
use crate::errors::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
}

/// The longest repository name distribution accepts.
const MAX_NAME: usize = 255;

/// `None` when the path is no API endpoint (a 404); a name that breaks the spec's rule is
/// `NAME_INVALID`.
pub fn parse(path: &str) -> Result<Option<Route>, RegistryError> {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Ok((path == "/v2").then_some(Route::Base));
    };
    if rest.is_empty() {
        return Ok(Some(Route::Base));
    }
    if rest == "_catalog" {
        return Ok(Some(Route::Catalog));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let tail = |k: usize| segs[n - k];
    let name_of = |k: usize| -> Result<String, RegistryError> {
        let name = segs[..n - k].join("/");
        check_name(&name)?;
        Ok(name)
    };
    let route = if n >= 3 && tail(2) == "tags" && tail(1) == "list" {
        Route::Tags { name: name_of(2)? }
    } else if n >= 4 && tail(3) == "blobs" && tail(2) == "uploads" {
        let id = tail(1);
        let name = name_of(3)?;
        if id.is_empty() {
            Route::UploadStart { name }
        } else {
            Route::Upload {
                name,
                id: id.to_string(),
            }
        }
    } else if n >= 3 && tail(2) == "blobs" && tail(1) == "uploads" {
        Route::UploadStart { name: name_of(2)? }
    } else if n >= 3 && tail(2) == "blobs" {
        Route::Blob {
            name: name_of(2)?,
            digest: tail(1).to_string(),
        }
    } else if n >= 3 && tail(2) == "manifests" {
        Route::Manifest {
            name: name_of(2)?,
            reference: tail(1).to_string(),
        }
    } else if n >= 3 && tail(2) == "referrers" {
        Route::Referrers {
            name: name_of(2)?,
            digest: tail(1).to_string(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(route))
}

/// The spec's name rule: `/`-separated components of `[a-z0-9]+` joined by `.`, `_`,
/// `__` or runs of `-`.
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let valid = !name.is_empty() && name.len() <= MAX_NAME && name.split('/').all(valid_component);
    if valid {
        Ok(())
    } else {
        Err(RegistryError::NameInvalid(format!(
            "invalid repository name `{}`",
            printable(name)
        )))
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or `-+`, always followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

/// The spec's tag rule: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let first = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let rest = |x: u8| first(x) || x == b'.' || x == b'-';
    !b.is_empty() && b.len() <= 128 && first(b[0]) && b[1..].iter().all(|&x| rest(x))
}

/// A client-supplied string cut short and stripped of control characters, for messages.
pub fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_from_the_end() {
        let r = |p: &str| parse(p).ok().flatten();
        assert_eq!(r("/v2/"), Some(Route::Base));
        assert_eq!(r("/v2"), Some(Route::Base));
        assert_eq!(r("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            r("/v2/a/b/tags/list"),
            Some(Route::Tags { name: "a/b".into() })
        );
        assert_eq!(
            r("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart { name: "a".into() })
        );
        assert_eq!(
            r("/v2/a/blobs/uploads/xyz"),
            Some(Route::Upload {
                name: "a".into(),
                id: "xyz".into()
            })
        );
        // A repository may be called `blobs`.
        assert_eq!(
            r("/v2/x/blobs/blobs/sha256:1"),
            Some(Route::Blob {
                name: "x/blobs".into(),
                digest: "sha256:1".into()
            })
        );
        assert_eq!(
            r("/v2/x/manifests/latest"),
            Some(Route::Manifest {
                name: "x".into(),
                reference: "latest".into()
            })
        );
        assert_eq!(r("/v2/x/unknown/thing"), None);
        assert_eq!(r("/other"), None);
        assert!(matches!(
            parse("/v2/UPPER/tags/list"),
            Err(RegistryError::NameInvalid(_))
        ));
    }

    #[test]
    fn name_and_tag_rules() {
        for ok in [
            "a",
            "a/b",
            "a-b",
            "a--b",
            "a_b",
            "a__b",
            "a.b",
            "library/ubuntu1",
        ] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "-a", "a-", "a___b", "a..b", "_a", "a b",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(256)).is_err());
        assert!(valid_tag("v1.0_rc-1") && valid_tag("_x") && !valid_tag(".x"));
        assert!(!valid_tag(&"a".repeat(129)) && !valid_tag(""));
    }
}
