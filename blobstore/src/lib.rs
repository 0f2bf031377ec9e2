//! The KS3 driver as a `wasi:blobstore@0.2.0-draft` provider.
//!
//! One container: the configured bucket (`REGISTRY_STORAGE_KS3_BUCKET`). Object names are
//! the driver's paths under `rootdirectory` without their leading slash (`a/b` is the
//! path `/a/b`). Reads and writes go through the driver's reader and writer, chunk by
//! chunk, through streams this component implements itself (`wasi:io/streams@0.2.2` is
//! one of its exports): under composition a component cannot hand out a host stream it
//! did not get from the host, and the bytes must go through the driver anyway (multipart
//! uploads, verified reads). The rules that do not touch the network are here and tested
//! natively; the component is `provider` (wasm32 only).
#[cfg(target_arch = "wasm32")]
mod provider;

/// Where values written before their name is known are staged (`write-data` may come
/// after the body was written); never an object name, never listed.
pub const STAGING_DIR: &str = "_blobstore-staging";

/// The driver path of an object name (`a/b` → `/a/b`), or why the name is refused.
pub fn object_path(name: &str) -> Result<String, String> {
    let path = format!("/{name}");
    if !ks3_driver_component::path::is_valid_path(&path) {
        return Err(format!(
            "invalid object name `{name}`: a name is one or more `/`-separated segments of \
             A-Z, a-z, 0-9, `.`, `_` and `-`"
        ));
    }
    if is_staging(name) {
        return Err(format!(
            "invalid object name `{name}`: `{STAGING_DIR}/` is where this provider stages writes"
        ));
    }
    Ok(path)
}

/// The object name of a driver path (`/a/b` → `a/b`); `None` for the staging area.
pub fn object_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?;
    (!name.is_empty() && !is_staging(name)).then_some(name)
}

fn is_staging(name: &str) -> bool {
    name == STAGING_DIR
        || name
            .strip_prefix(STAGING_DIR)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The bytes `start..=end` of an object of `size` bytes select: `(offset, length)`.
/// `end` past the object's end (`u64::MAX`: to the end) stops at its end. An empty object
/// read from 0 is empty; a `start` past the end, or after `end`, is refused.
pub fn byte_range(start: u64, end: u64, size: u64) -> Result<(u64, u64), String> {
    if start > end {
        return Err(format!("invalid range: start {start} is after end {end}"));
    }
    if size == 0 && start == 0 {
        return Ok((0, 0));
    }
    if start >= size {
        return Err(format!(
            "invalid range: start {start} is past the end of the object ({size} bytes)"
        ));
    }
    // start < size, so size - 1 and the subtraction below cannot wrap.
    let last = end.min(size - 1);
    Ok((start, last - start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_paths() {
        assert_eq!(object_path("a/b.txt").unwrap(), "/a/b.txt");
        assert_eq!(object_path("x").unwrap(), "/x");
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a b",
            "é",
            "a/../b/",
            "_blobstore-staging",
            "_blobstore-staging/x",
        ] {
            assert!(object_path(bad).is_err(), "{bad}");
        }
        assert!(object_path("_blobstore-staging2").is_ok());
        assert_eq!(object_name("/a/b"), Some("a/b"));
        assert_eq!(object_name("/_blobstore-staging/u1"), None);
        assert_eq!(object_name("/"), None);
    }

    #[test]
    fn ranges_are_inclusive() {
        assert_eq!(byte_range(0, u64::MAX, 10), Ok((0, 10)));
        assert_eq!(byte_range(0, 9, 10), Ok((0, 10)));
        assert_eq!(byte_range(2, 4, 10), Ok((2, 3)));
        assert_eq!(byte_range(9, 9, 10), Ok((9, 1)));
        assert_eq!(byte_range(3, 100, 10), Ok((3, 7)));
        assert_eq!(byte_range(0, u64::MAX, 0), Ok((0, 0)));
        assert_eq!(byte_range(0, 0, 0), Ok((0, 0)));
        assert!(byte_range(10, 20, 10).is_err());
        assert!(byte_range(5, 4, 10).is_err());
        assert!(byte_range(u64::MAX, u64::MAX, u64::MAX).is_err());
        assert_eq!(
            byte_range(u64::MAX - 1, u64::MAX, u64::MAX),
            Ok((u64::MAX - 1, 1))
        );
        assert!(byte_range(1, 1, 0).is_err());
    }
}
