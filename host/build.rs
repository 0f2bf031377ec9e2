//! Builds the driver component (`driver/`) and puts it in `OUT_DIR` so the host embeds it
//! with `include_bytes!`.
//!
//! The KS3 components (the driver and the blobstore provider) are built for
//! `wasm32-unknown-unknown` and linked by the toolchain's own `wasm-component-ld` (the
//! linker of `wasm32-wasip2`), which makes the component. Without std's WASI support they
//! import exactly the interfaces their code calls through the `wasi` crate: Rust's std on
//! `wasm32-wasip2` links `wasi:cli/exit`, stdin, stdout, stderr and five terminal
//! interfaces into every component (for panic messages), which no host should need to
//! grant a storage driver. The filesystem driver uses `std::fs` and stays on `wasm32-wasip2`.
//!
//! The nested `cargo build` uses its own target directory (`target/wasm-component`) so it
//! never waits on the lock of the build that runs this script. Environment that cargo sets
//! for build scripts and that would leak into (and break) the nested build is removed.
//!
//! The same nested build also builds the filesystem driver (`fs-driver/`), which is not
//! embedded: its path is `FS_DRIVER_COMPONENT_PATH` for the host's users (tests, `ks3-driver
//! registry --component`), empty when the nested build is skipped.
//!
//! `KS3_DRIVER_PREBUILT_COMPONENT=/path/driver.wasm` skips the nested build and embeds that
//! file instead (for packagers and machines without the wasm target).
//!
//! A second nested build makes the `wasi:blobstore` provider (`blobstore/`), embedded too
//! (`ks3-blobstore-component.wasm`, for `ks3-driver component save|push --world
//! blobstore`). It has its own target directory (`target/wasm-blobstore`, the one
//! `blobstore/tests/composition.rs` builds into): it depends on the driver crate without its
//! `component` feature, which one invocation would unify with the driver component's, and
//! its build would overwrite the driver's cdylib there.
//! `KS3_DRIVER_PREBUILT_BLOBSTORE=/path/blobstore.wasm` embeds that file instead; with
//! `KS3_DRIVER_PREBUILT_COMPONENT` and without it, nothing is built and the embedded
//! blobstore component is empty (the binary then says it has none).
//!
//! Then the component is precompiled with wasmtime for this machine, with the engine
//! settings the runtime uses (`src/engine_config.rs`, the one definition of them), and the
//! artifact is put beside it (`ks3-driver-component.cwasm`), so the first start of an
//! installed `ks3-driver` loads compiled code instead of paying a Cranelift compile. The
//! artifact is left empty (the runtime then compiles, or uses its on-disk cache) when
//! * cross-compiling (`TARGET` ≠ `HOST`): wasmtime here compiles for the build machine, and
//!   only the machine that runs the binary knows its CPU's features;
//! * `KS3_DRIVER_NO_PRECOMPILE=1` is set (e.g. a package built on a newer CPU than the
//!   ones it is installed on, where the artifact would be refused at every start anyway).
//!
//! The artifact carries the build machine's CPU features; wasmtime refuses it on a CPU
//! without them, and the runtime falls back to compiling.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The KS3 components' target (see the header) and the filesystem driver's.
const TARGET: &str = "wasm32-unknown-unknown";
const FS_TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm-release";
const PACKAGE: &str = "ks3-driver-component";
const ARTIFACT: &str = "ks3_driver_component.wasm";
const FS_PACKAGE: &str = "fs-driver-component";
const FS_ARTIFACT: &str = "fs_driver_component.wasm";
const BLOBSTORE_PACKAGE: &str = "ks3-blobstore-component";
const BLOBSTORE_ARTIFACT: &str = "ks3_blobstore_component.wasm";

#[path = "src/engine_config.rs"]
mod engine_config;

fn main() {
    if let Err(msg) = run() {
        // A build script reports failure by exiting non-zero; cargo shows stderr.
        eprintln!("\nerror: {msg}\n");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .ok_or("host/ has no parent directory")?
        .to_path_buf();
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let dest = out_dir.join("ks3-driver-component.wasm");
    let wasm = component(&workspace, &out_dir)?;
    write_if_changed(&dest, &wasm)?;
    let blobstore = blobstore_component(&workspace, &out_dir)?;
    write_if_changed(&out_dir.join("ks3-blobstore-component.wasm"), &blobstore)?;
    precompile(&wasm, &out_dir.join("ks3-driver-component.cwasm"))
}

/// The artifact of the component for this machine's engine, written to `dest`; an empty
/// file when cross-compiling or when `KS3_DRIVER_NO_PRECOMPILE` is set (see the header).
fn precompile(wasm: &[u8], dest: &Path) -> Result<(), String> {
    println!("cargo:rerun-if-env-changed=KS3_DRIVER_NO_PRECOMPILE");
    let skip = if env::var("TARGET").ok() != env::var("HOST").ok() {
        Some("cross-compiling".to_string())
    } else {
        env::var("KS3_DRIVER_NO_PRECOMPILE")
            .ok()
            .filter(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
            .map(|v| format!("KS3_DRIVER_NO_PRECOMPILE={v}"))
    };
    // What the runtime says when it has no artifact (its debug log, the tests).
    match &skip {
        Some(why) => println!("cargo:rustc-env=KS3_DRIVER_PRECOMPILED=no ({why})"),
        None => println!("cargo:rustc-env=KS3_DRIVER_PRECOMPILED=yes"),
    }
    if skip.is_some() {
        return write_if_changed(dest, &[]);
    }
    let engine = wasmtime::Engine::new(&engine_config::code_config())
        .map_err(|e| format!("creating the wasmtime engine to precompile the component: {e:#}"))?;
    let artifact = engine
        .precompile_component(wasm)
        .map_err(|e| format!("precompiling the driver component: {e:#}"))?;
    write_if_changed(dest, &artifact)
}

/// The component's bytes: the prebuilt file, or the nested build's output.
fn component(workspace: &Path, out_dir: &Path) -> Result<Vec<u8>, String> {
    println!("cargo:rerun-if-env-changed=KS3_DRIVER_PREBUILT_COMPONENT");
    if let Some(prebuilt) = env::var_os("KS3_DRIVER_PREBUILT_COMPONENT").filter(|v| !v.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        println!("cargo:rustc-env=FS_DRIVER_COMPONENT_PATH=");
        return read_wasm(&prebuilt);
    }

    // The build's own inputs; the component's sources come from the nested build's
    // dep-info below, so exactly what it read makes this script run again.
    // `wit` too: the bindings macro reads it, which dep-info may not record.
    for p in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml", "wit"] {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }

    ensure_target_installed(TARGET)?;
    ensure_target_installed(FS_TARGET)?;
    let target_dir = nested_build(workspace, out_dir, "wasm-component", &[PACKAGE], TARGET)?;
    nested_build(
        workspace,
        out_dir,
        "wasm-component",
        &[FS_PACKAGE],
        FS_TARGET,
    )?;

    let built = target_dir.join(TARGET).join(PROFILE).join(ARTIFACT);
    if !built.is_file() {
        return Err(format!(
            "the nested build succeeded but {} is missing",
            built.display()
        ));
    }
    rerun_on_dep_info(&built.with_extension("d"), workspace)?;
    let fs_built = target_dir.join(FS_TARGET).join(PROFILE).join(FS_ARTIFACT);
    read_wasm(&fs_built)?;
    rerun_on_dep_info(&fs_built.with_extension("d"), workspace)?;
    println!(
        "cargo:rustc-env=FS_DRIVER_COMPONENT_PATH={}",
        fs_built.display()
    );
    read_wasm(&built)
}

/// The blobstore provider's bytes: the prebuilt file, nothing when the driver component is
/// prebuilt (no wasm target assumed), or the second nested build's output.
fn blobstore_component(workspace: &Path, out_dir: &Path) -> Result<Vec<u8>, String> {
    println!("cargo:rerun-if-env-changed=KS3_DRIVER_PREBUILT_BLOBSTORE");
    if let Some(prebuilt) = env::var_os("KS3_DRIVER_PREBUILT_BLOBSTORE").filter(|v| !v.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        return read_wasm(&prebuilt);
    }
    if env::var_os("KS3_DRIVER_PREBUILT_COMPONENT").is_some_and(|v| !v.is_empty()) {
        return Ok(Vec::new());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("blobstore/Cargo.toml").display()
    );
    let target_dir = nested_build(
        workspace,
        out_dir,
        "wasm-blobstore",
        &[BLOBSTORE_PACKAGE],
        TARGET,
    )?;
    let built = target_dir
        .join(TARGET)
        .join(PROFILE)
        .join(BLOBSTORE_ARTIFACT);
    let wasm = read_wasm(&built)?;
    rerun_on_dep_info(&built.with_extension("d"), workspace)?;
    Ok(wasm)
}

/// `cargo build -p PACKAGE… --target TARGET --profile wasm-release` into
/// `<outer target>/<dir>`, with the build script's environment scrubbed; that directory.
/// For `wasm32-unknown-unknown` the linker is the toolchain's `wasm-component-ld`.
fn nested_build(
    workspace: &Path,
    out_dir: &Path,
    dir: &str,
    packages: &[&str],
    target: &str,
) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = outer_target_dir(out_dir)
        .unwrap_or_else(|| workspace.join("target"))
        .join(dir);
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"));
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.args(["--target", target, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    scrub_env(&mut cmd);
    if target == TARGET {
        cmd.env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER",
            component_linker()?,
        );
    }

    let output = cmd
        .output()
        .map_err(|e| format!("could not run `{}`: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            format!("\nThe {target} target is missing: run `rustup target add {target}`.")
        } else {
            String::new()
        };
        return Err(format!(
            "building {} failed ({}):\n{stderr}{hint}",
            packages.join(", "),
            output.status
        ));
    }
    Ok(target_dir)
}

/// `cargo:rerun-if-changed` for every file of the workspace that the nested build read,
/// from its dep-info (`artifact.d`: `target: dep dep …`, spaces in paths escaped as `\ `).
/// Files outside the workspace (the registry's crates) are pinned by Cargo.lock.
fn rerun_on_dep_info(dep_info: &Path, workspace: &Path) -> Result<(), String> {
    let text = fs::read_to_string(dep_info).map_err(|e| {
        format!(
            "reading the component's dep-info {}: {e}",
            dep_info.display()
        )
    })?;
    let Some((_, deps)) = text.split_once(": ") else {
        return Err(format!("{} is not a dep-info file", dep_info.display()));
    };
    let mut count = 0;
    for dep in split_unescaped(deps.lines().next().unwrap_or("")) {
        let path = PathBuf::from(dep);
        if path.starts_with(workspace) {
            println!("cargo:rerun-if-changed={}", path.display());
            count += 1;
        }
    }
    if count == 0 {
        return Err(format!(
            "{} names no file of the workspace",
            dep_info.display()
        ));
    }
    Ok(())
}

/// Splits a dep-info line at spaces that are not escaped.
fn split_unescaped(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            ' ' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The outer build's target directory (wherever `CARGO_TARGET_DIR`, `--target-dir` or
/// `build.target-dir` put it): `OUT_DIR` is `<target>[/<triple>]/<profile>/build/<pkg>/out`.
fn outer_target_dir(out_dir: &Path) -> Option<PathBuf> {
    let build = out_dir
        .ancestors()
        .find(|p| p.file_name() == Some("build".as_ref()))?;
    let profile_dir = build.parent()?;
    let mut target = profile_dir.parent()?;
    if let Ok(triple) = env::var("TARGET") {
        if target.file_name() == Some(triple.as_ref()) {
            target = target.parent()?;
        }
    }
    Some(target.to_path_buf())
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("{name} is not set (is this run by cargo?)"))
}

/// The toolchain's `wasm-component-ld` (`<sysroot>/lib/rustlib/<host>/bin/`), the linker
/// rustc uses for `wasm32-wasip2`: `wasm-ld`, then the module made a component from the
/// component types the bindings embed.
fn component_linker() -> Result<PathBuf, String> {
    let sysroot = sysroot().ok_or("`rustc --print sysroot` failed")?;
    let host = env_var("HOST")?;
    let linker = Path::new(&sysroot)
        .join("lib/rustlib")
        .join(&host)
        .join("bin/wasm-component-ld");
    if !linker.is_file() {
        return Err(format!(
            "{} is missing: Rust toolchains ship it beside rust-lld (it links \
             wasm32-wasip2); this toolchain is too old or incomplete",
            linker.display()
        ));
    }
    Ok(linker)
}

/// Installs the target's standard library through rustup when it is absent (rustup does
/// that by itself from rust-toolchain.toml only when auto-install is on), saying so; fails
/// with the fix when that is not possible.
fn ensure_target_installed(target: &str) -> Result<(), String> {
    let Some(sysroot) = sysroot() else {
        return Ok(()); // let cargo report it
    };
    if target_lib(&sysroot, target).is_dir() {
        return Ok(());
    }
    println!(
        "cargo:warning=the Rust target {target} is missing for {sysroot}: installing it with `rustup target add {target}`"
    );
    // RUSTUP_TOOLCHAIN, set by rustup's proxy, keeps the install on this build's toolchain.
    let installed = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if installed && target_lib(&sysroot, target).is_dir() {
        return Ok(());
    }
    Err(format!(
        "the Rust target {target} is not installed for the toolchain at {sysroot}, and          `rustup target add {target}` did not install it.\n\
         Install it (`rustup target add {target}`), or build the component elsewhere and          set KS3_DRIVER_PREBUILT_COMPONENT=/path/to/driver.wasm."
    ))
}

fn sysroot() -> Option<String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn target_lib(sysroot: &str, target: &str) -> PathBuf {
    Path::new(sysroot).join("lib/rustlib").join(target)
}

/// Removes what cargo sets for this build script that the nested cargo would otherwise
/// take as its own configuration.
fn scrub_env(cmd: &mut Command) {
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let drop = key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_ENCODED_")
            || key.starts_with("DEP_")
            || matches!(
                key,
                "RUSTFLAGS"
                    | "RUSTDOCFLAGS"
                    | "CARGO_TARGET_DIR"
                    | "CARGO_BUILD_TARGET"
                    | "CARGO_BUILD_TARGET_DIR"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_MANIFEST_LINKS"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTC_LINKER"
                    | "OUT_DIR"
                    | "TARGET"
                    | "HOST"
                    | "NUM_JOBS"
                    | "OPT_LEVEL"
                    | "DEBUG"
                    | "PROFILE"
                    | "CARGO_INCREMENTAL"
            );
        if drop {
            cmd.env_remove(key);
        }
    }
    // CARGO_MAKEFLAGS is kept on purpose: the nested cargo joins the outer build's
    // jobserver instead of starting as many jobs again on the same cores.
}

fn read_wasm(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(format!("{} is not a wasm file", path.display()));
    }
    Ok(bytes)
}

/// Writes `bytes` to `to` unless it holds them already (an unchanged file keeps its
/// mtime, so what embeds it is not rebuilt).
fn write_if_changed(to: &Path, bytes: &[u8]) -> Result<(), String> {
    if fs::read(to).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    fs::write(to, bytes).map_err(|e| format!("writing {}: {e}", to.display()))
}
