//! The blobstore component composed with a program that knows only `wasi:blobstore`
//! (`blobstore/consumer`), by the stock tools: `wac plug` composes them, `wasmtime run -S
//! http` runs the result against ks3-local with the driver's parameters in its
//! environment, and the bytes the program left are then read back through the host's
//! driver. The provider is the one `ks3-driver component save --world blobstore` writes
//! (built by `host/build.rs` and embedded in the host); the consumer is built here by a
//! nested cargo build into `target/wasm-blobstore`.
//!
//! `wac` and `wasmtime` missing fail the test (`.ci/run` installs both): a skipped test
//! would hide a broken promise.
use std::path::{Path, PathBuf};
use std::process::Command;

use ks3_blobstore_consumer::{pattern, BIG_LEN, BIG_NAME, BIG_SEED, HELLO, KEPT_NAME, REPORT_NAME};
use ks3_test_support::{server, tool, unique, ACCESS_KEY, BUCKET, SECRET_KEY};

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "wasm-release";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("blobstore/ has a parent")
        .to_path_buf()
}

/// Builds `package` for wasm32-wasip2 (alone: built with others, cargo would unify its
/// no-std wit-bindgen with theirs) and returns its component.
fn build(package: &str, artifact: &str) -> PathBuf {
    let ws = workspace();
    let target_dir = ws.join("target").join("wasm-blobstore");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws)
        .arg("build")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .args(["-p", package, "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    // What cargo sets for this test process and would change the nested build.
    for key in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(key);
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building {package} for {TARGET} failed ({}); the target is installed by `rustup target add {TARGET}`:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target_dir.join(TARGET).join(PROFILE).join(artifact);
    assert!(
        wasm.is_file(),
        "{} is missing after its build",
        wasm.display()
    );
    wasm
}

/// The component's imports and exports, as `wasm-tools component wit` would name them.
fn interfaces(wasm: &Path) -> (Vec<String>, Vec<String>) {
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::from_file(&engine, wasm).expect("load the component");
    let ty = component.component_type();
    let imports = ty
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let exports = ty
        .exports(&engine)
        .map(|(name, _)| name.to_string())
        .collect();
    (imports, exports)
}

/// `wasi:cli/environment@0.2.12` → `wasi:cli/environment`.
fn unversioned(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn blobstore_component_composed_with_a_consumer_runs_on_stock_wasmtime() {
    let wac = tool(
        "wac",
        "WAC",
        "cargo install --locked wac-cli --version 0.12.0",
    );
    let wasmtime = tool(
        "wasmtime",
        "WASMTIME",
        "cargo install --locked wasmtime-cli --version 48.0.8",
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let provider = dir.path().join("ks3_blobstore_component.wasm");
    assert!(
        !ks3_driver_host::EMBEDDED_BLOBSTORE_COMPONENT.is_empty(),
        "the host was built without the blobstore component (KS3_DRIVER_PREBUILT_COMPONENT \
         without KS3_DRIVER_PREBUILT_BLOBSTORE)"
    );
    std::fs::write(&provider, ks3_driver_host::EMBEDDED_BLOBSTORE_COMPONENT)
        .expect("write the provider");
    let consumer = build("ks3-blobstore-consumer", "ks3_blobstore_consumer.wasm");

    // The provider: exactly the blobstore world and the streams its values use; it reaches
    // out through wasi:http only.
    let (imports, exports) = interfaces(&provider);
    let exports_unversioned = unversioned(&exports);
    assert_eq!(
        exports_unversioned,
        [
            "wasi:blobstore/blobstore",
            "wasi:blobstore/container",
            "wasi:blobstore/types",
            "wasi:io/error",
            "wasi:io/poll",
            "wasi:io/streams",
        ],
        "the provider's exports: {exports:?}"
    );
    assert!(
        exports
            .iter()
            .all(|e| e.ends_with("@0.2.0-draft") || e.ends_with("@0.2.2")),
        "{exports:?}"
    );
    // wasi:http is its only way out; nothing else beyond its configuration, clocks and
    // randomness (no stdio, exit, terminal, filesystem or sockets).
    assert_eq!(
        unversioned(&imports),
        ks3_test_support::KS3_COMPONENT_IMPORTS,
        "the provider's imports: {imports:?}"
    );

    // The consumer: wasi:blobstore (and the streams it names) and its arguments, nothing
    // else (its linker names its wasi:io imports @0.2.6, to which wac plugs the provider's
    // @0.2.2 streams: the same interface, item for item).
    let (imports, exports) = interfaces(&consumer);
    assert_eq!(
        unversioned(&exports),
        ["wasi:cli/run"],
        "the consumer's exports"
    );
    assert_eq!(
        unversioned(&imports),
        [
            "wasi:blobstore/blobstore",
            "wasi:blobstore/container",
            "wasi:blobstore/types",
            "wasi:cli/environment",
            "wasi:io/error",
            "wasi:io/streams",
        ],
        "the consumer's imports: {imports:?}"
    );

    let composed = dir.path().join("composed.wasm");
    let out = Command::new(&wac)
        .arg("plug")
        .arg(&consumer)
        .arg("--plug")
        .arg(&provider)
        .arg("-o")
        .arg(&composed)
        .output()
        .expect("run wac");
    assert!(
        out.status.success(),
        "wac plug failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Everything the consumer imported from the blobstore is now inside.
    let (imports, exports) = interfaces(&composed);
    assert_eq!(unversioned(&exports), ["wasi:cli/run"]);
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:blobstore/")),
        "the composition still imports the blobstore: {imports:?}"
    );

    // The run: the stock CLI, the parameters in the environment (the secret key inherited,
    // never on the command line), the container's name as the argument.
    let root = format!("/blobstore-composition/{}", unique());
    let out = run_composed(&wasmtime, &composed, &root, &[], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);

    // What the program left, read through the driver (the host's, not the component
    // under test).
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let driver = ks3_driver_host::Driver::new(ks3_test_support::params(&root))
            .await
            .expect("the host's driver");
        let report = driver.get_content(&format!("/{REPORT_NAME}")).await;
        let report = report.map(|r| String::from_utf8_lossy(&r).to_string());
        assert!(
            out.status.success(),
            "the composed program failed ({}): its report {report:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        assert_eq!(report.as_deref().ok(), Some("ok"));
        let big = driver.get_content(&format!("/{BIG_NAME}")).await.expect("the 12 MiB object");
        assert_eq!(big.len(), BIG_LEN);
        assert!(big == pattern(BIG_LEN, BIG_SEED), "the 12 MiB object's bytes differ");
        let kept = driver.get_content(&format!("/{KEPT_NAME}")).await.expect("the small object");
        assert_eq!(kept, HELLO);
        // The program deleted the rest; values staged before their name was known were
        // moved, and nothing is left in the staging area.
        let mut top = driver.list("/").await.expect("list the root");
        top.sort();
        assert_eq!(top, ["/big", "/hello", &format!("/{REPORT_NAME}")], "the root after the run");
        let mut hello = driver.list("/hello").await.expect("list /hello");
        hello.sort();
        assert_eq!(hello, [format!("/{KEPT_NAME}")]);

        // A 128 MiB object written and read back through the streams, each component's
        // memory capped at 48 MiB: neither side holds a whole object.
        for mode in ["bench-write", "bench-read"] {
            let size = (128u64 << 20).to_string();
            let out = run_composed(&wasmtime, &composed, &root, &[mode, &size], Some(48 << 20));
            let report = driver.get_content(&format!("/{REPORT_NAME}")).await;
            let report = report.map(|r| String::from_utf8_lossy(&r).to_string());
            assert!(
                out.status.success() && report.as_deref().ok() == Some("ok"),
                "{mode} of 128 MiB under a 48 MiB memory limit failed ({}): {report:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let info = driver.stat("/bench/object.bin").await.expect("the streamed object");
        assert_eq!(info.size, 128 << 20);
    });
}

/// `wasmtime run -S http` of the composition with the driver's parameters in its
/// environment (the secret key inherited, never on the command line) and the container's
/// name, then `args`; `memory` caps each linear memory.
fn run_composed(
    wasmtime: &Path,
    composed: &Path,
    root: &str,
    args: &[&str],
    memory: Option<u64>,
) -> std::process::Output {
    let vars = [
        ("ACCESSKEY", ACCESS_KEY.to_string()),
        ("SECRETKEY", SECRET_KEY.to_string()),
        ("REGION", "ks3-cn-beijing".to_string()),
        ("BUCKET", BUCKET.to_string()),
        ("REGIONENDPOINT", server().endpoint()),
        ("ROOTDIRECTORY", root.to_string()),
        // 5 MiB parts: the 12 MiB object takes the writer's multipart path.
        ("CHUNKSIZE", (5 << 20).to_string()),
    ];
    let mut cmd = Command::new(wasmtime);
    cmd.args(["run", "-S", "http"]);
    if let Some(bytes) = memory {
        cmd.arg("-W").arg(format!("max-memory-size={bytes}"));
    }
    for (name, value) in &vars {
        let var = format!("REGISTRY_STORAGE_KS3_{name}");
        cmd.arg("--env").arg(&var).env(&var, value);
    }
    cmd.arg(composed).arg(BUCKET).args(args);
    let out = cmd.output().expect("run wasmtime");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY),
        "the secret key appeared in the output"
    );
    out
}
