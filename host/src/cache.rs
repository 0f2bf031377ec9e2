//! The on-disk cache of the compiled component, so a new process does not pay a Cranelift
//! compile (~100 ms) before its first operation.
//!
//! One file per (component bytes, engine configuration): the name carries a SHA-256 of
//! the component and the engine's `precompile_compatibility_hash`, so a stale artifact is
//! never even opened. The file starts with a magic and the SHA-256 of the artifact that
//! follows; a file that fails the check (truncated, corrupt, someone else's) is ignored and
//! rewritten. Files are written to a temporary name and renamed into place. On Unix the
//! directory is created private (0700) and only files owned by the directory's owner and
//! not writable by others are loaded: compiled code is trusted, so only artifacts this
//! user wrote are.
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
    /// `hit`, `miss` (compiled and written), `miss-unwritable` (compiled, could not write),
    /// `disabled` (compiled, no cache).
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
    if let Some(c) = try_load(engine, dir, &path) {
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

fn try_load(engine: &Engine, dir: &Path, path: &Path) -> Option<Component> {
    if !trusted(dir, path) {
        return None;
    }
    let bytes = fs::read(path).ok()?;
    if bytes.len() <= HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (head, art) = bytes.split_at(HEADER);
    if Sha256::digest(art).as_slice() != &head[MAGIC.len()..] {
        return None;
    }
    // SAFETY: the artifact was written by this code (see `trusted` and the digest check
    // above) from `Component::serialize` of an engine with the same compatibility hash
    // (part of the file name); wasmtime re-checks the engine configuration itself.
    unsafe { Component::deserialize(engine, art) }.ok()
}

#[cfg(unix)]
fn trusted(dir: &Path, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(d), Ok(f)) = (fs::metadata(dir), fs::symlink_metadata(path)) else {
        return false;
    };
    f.file_type().is_file() && f.uid() == d.uid() && f.mode() & 0o022 == 0
}

#[cfg(not(unix))]
fn trusted(_dir: &Path, path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
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
        f.write_all(MAGIC)?;
        f.write_all(&Sha256::digest(artifact))?;
        f.write_all(artifact)?;
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

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}
