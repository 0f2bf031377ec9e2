//! The on-disk cache of the compiled component, so a new process does not pay a Cranelift
//! compile (~1 s) before its first operation when the build's precompiled artifact
//! (`runtime::EMBEDDED_ARTIFACT`) is absent, refused (another CPU) or not wanted, or when
//! the component is another file (`RuntimeOptions::component`).
//!
//! One file per (component bytes, engine configuration): the name carries a SHA-256 of
//! the component and the engine's `precompile_compatibility_hash`, so a stale artifact is
//! never even opened. The file starts with a magic and the SHA-256 of the artifact that
//! follows; a file that fails the check (truncated, corrupt, someone else's) is ignored and
//! rewritten. Files are written to a temporary name and renamed into place. Compiled code
//! runs outside the sandbox, so on Unix an artifact is loaded only from a directory owned
//! by the current (effective) user and not writable by group or others (created 0700), and
//! only from a regular file, opened without following symlinks, owned by the current user
//! and not writable by group or others. A cache directory that fails the check is not used
//! at all: the component is compiled in memory and a warning printed.
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"KS3CWSM1";
const HEADER: usize = MAGIC.len() + 32;

/// How the component was obtained, for diagnostics and the benchmark.
#[derive(Debug, Clone)]
pub struct LoadInfo {
    /// `embedded` (the build's precompiled artifact, `runtime::EMBEDDED_ARTIFACT`; the
    /// cache is not looked at), `embedded-in-place` (the same, run where it lies in the
    /// binary: the process's first runtime on x86-64 Linux), `hit`, `miss` (compiled and written), `miss-unwritable`
    /// (compiled, could not write), `untrusted` (compiled in memory: the directory is
    /// another user's or writable by group/others), `disabled` (compiled, no cache).
    pub cache: &'static str,
    /// The cache file used or written, if any.
    pub path: Option<PathBuf>,
    /// Time to obtain the `Component` (read + check + deserialize, or compile).
    pub elapsed: Duration,
}

/// The cache directory: explicit, else `KS3_DRIVER_CACHE_DIR` (`off` disables), else
/// `$XDG_CACHE_HOME/ks3-driver`, else `$HOME/.cache/ks3-driver`.
pub fn cache_dir(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(v) = std::env::var_os("KS3_DRIVER_CACHE_DIR") {
        if v == "off" || v == "0" || v == "none" {
            return None;
        }
        if !v.is_empty() {
            return Some(PathBuf::from(v));
        }
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("ks3-driver"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("ks3-driver"))
}

/// The file name for `wasm` under `engine`.
pub fn cache_file_name(engine: &Engine, wasm: &[u8]) -> String {
    let digest = Sha256::digest(wasm);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    format!("driver-{}-{:016x}.cwasm", hex(&digest[..16]), h.finish())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Loads the compiled `wasm` from the cache in `dir`, or compiles it and stores it there.
pub fn load_or_compile(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> anyhow::Result<(Component, LoadInfo)> {
    let started = Instant::now();
    let Some(dir) = dir else {
        let c = Component::new(engine, wasm)?;
        return Ok((
            c,
            LoadInfo {
                cache: "disabled",
                path: None,
                elapsed: started.elapsed(),
            },
        ));
    };
    let path = dir.join(cache_file_name(engine, wasm));
    if let Err(why) = trusted_dir(dir, current_uid()) {
        tracing::warn!(
            target: "ks3_driver::cache",
            "not using the compiled-component cache {}: {why}; compiling in memory",
            dir.display()
        );
        let c = Component::new(engine, wasm)?;
        return Ok((
            c,
            LoadInfo {
                cache: "untrusted",
                path: None,
                elapsed: started.elapsed(),
            },
        ));
    }
    if let Some(c) = try_load(engine, &path) {
        return Ok((
            c,
            LoadInfo {
                cache: "hit",
                path: Some(path),
                elapsed: started.elapsed(),
            },
        ));
    }
    let component = Component::new(engine, wasm)?;
    let written = component
        .serialize()
        .ok()
        .and_then(|art| store(dir, &path, &art).ok());
    if written.is_some() {
        prune(dir, &path);
    }
    Ok((
        component,
        LoadInfo {
            cache: if written.is_some() {
                "miss"
            } else {
                "miss-unwritable"
            },
            path: written.map(|_| path),
            elapsed: started.elapsed(),
        },
    ))
}

fn try_load(engine: &Engine, path: &Path) -> Option<Component> {
    let bytes = read_trusted(path, current_uid()).ok()?;
    if bytes.len() <= HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (head, art) = bytes.split_at(HEADER);
    if Sha256::digest(art).as_slice() != &head[MAGIC.len()..] {
        return None;
    }
    // SAFETY: the artifact was written by this code (see `read_trusted`, `trusted_dir` and
    // the digest check above) from `Component::serialize` of an engine with the same
    // compatibility hash (part of the file name); wasmtime re-checks the engine
    // configuration itself.
    unsafe { Component::deserialize(engine, art) }.ok()
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

/// Whether `dir` may hold artifacts we load: `Ok` when it does not exist yet (it is then
/// created 0700) or is a real directory owned by `uid` and not writable by group or others.
#[cfg(unix)]
fn trusted_dir(dir: &Path, uid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let d = match fs::symlink_metadata(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !d.file_type().is_dir() {
        return Err("not a directory (symlinks are not followed)".into());
    }
    if d.uid() != uid {
        return Err(format!(
            "owned by uid {}, not by the current user (uid {uid})",
            d.uid()
        ));
    }
    if d.mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o})",
            d.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn trusted_dir(_dir: &Path, _uid: u32) -> Result<(), String> {
    Ok(())
}

/// The bytes of an artifact file, opened without following a symlink and checked on the
/// open handle: a regular file owned by `uid`, not writable by group or others.
#[cfg(unix)]
fn read_trusted(path: &Path, uid: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let untrusted = |m: &str| std::io::Error::new(std::io::ErrorKind::PermissionDenied, m);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(untrusted("not a regular file"));
    }
    if m.uid() != uid {
        return Err(untrusted("owned by another user"));
    }
    if m.mode() & 0o022 != 0 {
        return Err(untrusted("writable by group or others"));
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(not(unix))]
fn read_trusted(path: &Path, _uid: u32) -> std::io::Result<Vec<u8>> {
    if !fs::symlink_metadata(path)?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    fs::read(path)
}

fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    write_private_file(dir, path, &[MAGIC, &Sha256::digest(artifact), artifact])
}

/// The cache's trust rules for other files kept under the cache directory (the CLI's
/// cache of components pulled from OCI registries): `dir` is usable when it does not exist
/// yet or is a real directory of the current user that group and others cannot write.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    trusted_dir(dir, current_uid())
}

/// The bytes of `path` when it is a regular file of the current user that group and
/// others cannot write, opened without following a symlink.
pub fn read_private_file(path: &Path) -> std::io::Result<Vec<u8>> {
    read_trusted(path, current_uid())
}

/// Writes `parts` to `path` in `dir` (created 0700 if missing): a new file, 0600, under a
/// temporary name in the same directory, synced, then renamed into place.
pub fn write_private_file(dir: &Path, path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let result = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        for part in parts {
            f.write_all(part)?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes artifacts of other builds (and stray temporary files) untouched for a week.
fn prune(dir: &Path, keep: &Path) {
    const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours =
            (name.starts_with("driver-") && name.ends_with(".cwasm")) || name.starts_with(".tmp-");
        if !ours || p == keep {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > MAX_AGE);
        if old {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Creates `dir` and its missing parents, 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn directory_must_be_ours_and_private() {
        let base = tempfile::tempdir().unwrap();
        let me = current_uid();
        let dir = base.path().join("cache");
        assert!(
            trusted_dir(&dir, me).is_ok(),
            "a missing directory is created private"
        );
        create_private_dir(&dir).unwrap();
        assert!(trusted_dir(&dir, me).is_ok());
        chmod(&dir, 0o770);
        let e = trusted_dir(&dir, me).unwrap_err();
        assert!(e.contains("writable by group"), "{e}");
        chmod(&dir, 0o707);
        assert!(trusted_dir(&dir, me).is_err());
        chmod(&dir, 0o755);
        assert!(trusted_dir(&dir, me).is_ok());
        // Another user's directory (as seen by a user with another uid).
        let e = trusted_dir(&dir, me.wrapping_add(1)).unwrap_err();
        assert!(e.contains("not by the current user"), "{e}");
        // A symlink to a good directory is not followed.
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(trusted_dir(&link, me).is_err());
    }

    #[test]
    fn artifact_must_be_our_private_regular_file() {
        let base = tempfile::tempdir().unwrap();
        let me = current_uid();
        let dir = base.path().join("cache");
        create_private_dir(&dir).unwrap();
        let file = dir.join("driver-x.cwasm");
        store(&dir, &file, b"artifact").unwrap();
        assert!(read_trusted(&file, me).unwrap().ends_with(b"artifact"));
        // Another user's file.
        assert!(read_trusted(&file, me.wrapping_add(1)).is_err());
        // Writable by group or others.
        chmod(&file, 0o620);
        assert!(read_trusted(&file, me).is_err());
        chmod(&file, 0o602);
        assert!(read_trusted(&file, me).is_err());
        chmod(&file, 0o600);
        // A symlink planted at the artifact's name is not followed.
        let planted = dir.join("driver-y.cwasm");
        std::os::unix::fs::symlink(&file, &planted).unwrap();
        assert!(read_trusted(&planted, me).is_err());
        // A directory or a FIFO is not a regular file (and opening the FIFO never blocks).
        assert!(read_trusted(&dir, me).is_err());
        let fifo = dir.join("driver-z.cwasm");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(read_trusted(&fifo, me).is_err());
    }
}
