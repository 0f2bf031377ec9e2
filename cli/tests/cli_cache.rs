//! The compiled-component cache end to end: a group-writable cache directory is refused
//! with a warning on stderr, the component is compiled in memory, and the command works.
//! (The cache is only looked at when the build's precompiled artifact is not used: these
//! runs switch it off with `KS3_DRIVER_EMBEDDED_ARTIFACT=off`.)
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
        .env("KS3_DRIVER_EMBEDDED_ARTIFACT", "off")
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

/// The first run after install loads the build's precompiled artifact: it compiles
/// nothing, so it writes no cache; with the artifact switched off it compiles and caches.
#[test]
fn the_first_run_loads_the_precompiled_artifact_and_writes_no_cache() {
    if ks3_driver_host::runtime::PRECOMPILED != "yes" {
        // A cross build or KS3_DRIVER_NO_PRECOMPILE: nothing to load.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let root = format!("/cli-cache/{}", unique());
    let run = |artifact: &str| {
        let o = cli_for(&server().endpoint(), &root)
            .env("KS3_DRIVER_CACHE_DIR", &cache)
            .env("KS3_DRIVER_EMBEDDED_ARTIFACT", artifact)
            .args(["ls", "/"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run("on");
    assert!(!cache.exists(), "the first run compiled and cached");
    run("off");
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached.len() == 1 && cached[0].ends_with(".cwasm"),
        "{cached:?}"
    );
}
