//! Builds the driver component (`driver/`, `wasm32-wasip2`) and puts it in `OUT_DIR` so the
//! host embeds it with `include_bytes!`.
//!
//! The nested `cargo build` uses its own target directory (`target/wasm-component`) so it
//! never waits on the lock of the build that runs this script. Environment that cargo sets
//! for build scripts and that would leak into (and break) the nested build is removed.
//!
//! `KS3_DRIVER_PREBUILT_COMPONENT=/path/driver.wasm` skips the nested build and embeds that
//! file instead (for packagers and machines without the wasm target).
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm-release";
const PACKAGE: &str = "ks3-driver-component";
const ARTIFACT: &str = "ks3_driver_component.wasm";

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

    println!("cargo:rerun-if-env-changed=KS3_DRIVER_PREBUILT_COMPONENT");
    if let Some(prebuilt) = env::var_os("KS3_DRIVER_PREBUILT_COMPONENT").filter(|v| !v.is_empty()) {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy_if_changed(&prebuilt, &dest)?;
        return Ok(());
    }

    for p in [
        "driver/src",
        "driver/Cargo.toml",
        "wit",
        "ks3-proto/src",
        "ks3-proto/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    check_target_installed()?;

    let target_dir = outer_target_dir(&out_dir)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-component");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace)
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["-p", PACKAGE, "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    scrub_env(&mut cmd);

    let output = cmd
        .output()
        .map_err(|e| format!("could not run `{}`: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            format!("\nThe {TARGET} target is missing: run `rustup target add {TARGET}`.")
        } else {
            String::new()
        };
        return Err(format!(
            "building the driver component failed ({}):\n{stderr}{hint}",
            output.status
        ));
    }

    let built = target_dir.join(TARGET).join(PROFILE).join(ARTIFACT);
    if !built.is_file() {
        return Err(format!(
            "the nested build succeeded but {} is missing",
            built.display()
        ));
    }
    copy_if_changed(&built, &dest)
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

/// Fails early, with the fix, when the standard library for the target is absent.
fn check_target_installed() -> Result<(), String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
    else {
        return Ok(()); // let cargo report it
    };
    if !out.status.success() {
        return Ok(());
    }
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let lib = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
    if !lib.is_dir() {
        return Err(format!(
            "the Rust target {TARGET} is not installed for the toolchain at {sysroot}.\n\
             Run `rustup target add {TARGET}` (rust-toolchain.toml names it, so a rustup \
             that reads that file installs it on its own)."
        ));
    }
    Ok(())
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

fn copy_if_changed(from: &Path, to: &Path) -> Result<(), String> {
    let bytes = fs::read(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(format!("{} is not a wasm file", from.display()));
    }
    if fs::read(to).ok().as_deref() == Some(&bytes[..]) {
        return Ok(());
    }
    fs::write(to, &bytes).map_err(|e| format!("writing {}: {e}", to.display()))
}
