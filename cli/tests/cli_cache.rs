//! The compiled-component cache end to end: a group-writable cache directory is refused
//! with a warning on stderr, the component is compiled in memory, and the command works.
mod common;

use common::*;

#[cfg(unix)]
#[test]
fn a_group_writable_cache_dir_warns_and_the_command_still_succeeds() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o770)).unwrap();
    let root = format!("/cli-cache/{}", unique());
    let mut c = cli_for(&server().endpoint(), &root);
    let o = c
        .env("KS3_DRIVER_CACHE_DIR", &cache)
        .args(["ls", "/"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("WARN")
            && err.contains("not using the compiled-component cache")
            && err.contains("compiling in memory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        0,
        "nothing written"
    );
}
