//! The component as an OCI artifact: `component save`, `component push` to a
//! `ks3-driver registry` (on its embedded in-memory KS3 server), `--component oci://…`
//! pulled, verified, cached and run against ks3-local (and again with the registry
//! stopped), refusals (tampered digests, lying registries, wrong media types, a component
//! that is not a driver), and interop both ways with `wkg` (wasm-pkg-tools).
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use common::*;
use sha2::{Digest, Sha256};

const DRIVER: &str = "registry:storage-driver/driver@1.1.0";
/// The smallest valid component: the preamble of component-model layer 1, no sections.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

fn digest(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// `ks3-driver registry` on its embedded in-memory KS3 server, and its `HOST:PORT`.
struct Registry {
    child: Child,
    addr: String,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(bare_cli())
    }

    fn start_with(c: Command) -> Registry {
        let (child, addr) = start_registry(c, Stdio::null());
        Registry { child, addr }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Nothing answers there any more.
        assert!(
            TcpStream::connect(&self.addr).is_err(),
            "{} still up",
            self.addr
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private cache directory (`KS3_DRIVER_CACHE_DIR`) for one test.
fn cache() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn run(mut c: Command) -> Output {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    o
}

fn ok(c: Command) -> Output {
    let o = run(c);
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `ks3-driver` for the shared ks3-local under `root`, with the OCI cache in `cache`.
fn driver_cli(cache: &Path, root: &str, component: &str) -> Command {
    let mut c = cli_for(&server().endpoint(), root);
    c.env("KS3_DRIVER_CACHE_DIR", cache)
        .arg("--component")
        .arg(component);
    c
}

/// `component push` of the embedded component (or of `file`); the printed `REF@DIGEST`.
fn push(reference: &str, file: Option<&Path>) -> String {
    let mut c = bare_cli();
    if let Some(f) = file {
        c.arg("--component").arg(f);
    }
    c.args(["component", "push", reference]);
    let o = ok(c);
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A put and a get of a 1 MiB object through the component `oci`, checked.
fn put_and_get(cache: &Path, oci: &str, test: &str) {
    let root = unique_root_for(test);
    let body = data(MIB, 31);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in");
    std::fs::write(&file, &body).unwrap();
    let mut c = driver_cli(cache, &root, oci);
    c.args(["put", "/obj"]).arg(&file);
    ok(c);
    let mut c = driver_cli(cache, &root, oci);
    c.args(["get", "/obj"]);
    assert!(ok(c).stdout == body, "the bytes read back differ");
}

fn unique_root_for(test: &str) -> String {
    format!("/oci-{test}/{}", unique())
}

/// One HTTP/1.1 GET; the status and the body.
fn get(addr: &str, target: &str, accept: &str) -> (u16, Vec<u8>) {
    http_request(addr, "GET", target, &[&format!("Accept: {accept}")], b"")
}

/// The component's export names, read by wasmtime as `component push` reads them.
fn exports_of(wasm: &[u8]) -> Vec<String> {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, wasm).unwrap();
    let ty = component.component_type();
    let mut v: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    v.sort();
    v
}

/// The component's imports without their versions (`wasi:io/poll@0.2.4` → `wasi:io/poll`),
/// sorted, as `wasm-tools component wit` lists them.
fn unversioned_imports_of(wasm: &[u8]) -> Vec<String> {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::new(&engine, wasm).unwrap();
    let ty = component.component_type();
    let mut v: Vec<String> = ty
        .imports(&engine)
        .map(|(n, _)| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn save_writes_the_embedded_components_and_refuses_other_worlds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("driver.wasm");
    let mut c = bare_cli();
    c.args(["component", "save", "-o"]).arg(&out);
    ok(c);
    let saved = std::fs::read(&out).unwrap();
    assert!(saved == ks3_driver_host::EMBEDDED_COMPONENT);
    // The driver also imports its contract's `types` interface (types only, nothing for a
    // host to provide).
    let mut expected = ks3_test_support::KS3_COMPONENT_IMPORTS.to_vec();
    expected.insert(0, "registry:storage-driver/types");
    assert_eq!(unversioned_imports_of(&saved), expected);

    // The wasi:blobstore provider: a component of its own, not a storage driver.
    let blob = dir.path().join("b.wasm");
    let mut c = bare_cli();
    c.args(["component", "save", "--world", "blobstore", "-o"])
        .arg(&blob);
    ok(c);
    let bytes = std::fs::read(&blob).unwrap();
    assert!(bytes == ks3_driver_host::EMBEDDED_BLOBSTORE_COMPONENT);
    assert!(bytes != ks3_driver_host::EMBEDDED_COMPONENT);
    assert_eq!(
        unversioned_imports_of(&bytes),
        ks3_test_support::KS3_COMPONENT_IMPORTS
    );
    let exports = exports_of(&bytes);
    assert!(
        exports
            .iter()
            .any(|e| e == "wasi:blobstore/blobstore@0.2.0-draft"),
        "{exports:?}"
    );
    assert!(!exports.iter().any(|e| e == DRIVER), "{exports:?}");
    assert!(
        !exports.iter().any(|e| e.starts_with("registry:")),
        "{exports:?}"
    );

    let mut c = bare_cli();
    c.args(["component", "save", "--world", "proxy", "-o"])
        .arg(dir.path().join("p.wasm"));
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("storage-driver"));

    let mut c = bare_cli();
    c.args(["component", "save", "--help"]);
    let help = String::from_utf8(ok(c).stdout).unwrap();
    assert!(
        help.contains("registry:storage-driver/driver@1.1.0"),
        "{help}"
    );
    assert!(
        help.contains("registry:storage-driver/fast-path@1.1.0"),
        "{help}"
    );
    assert!(
        help.contains("wasi:blobstore/blobstore@0.2.0-draft"),
        "{help}"
    );
    assert!(!help.contains("not built yet"), "{help}");
}

#[test]
fn pushed_pulled_run_and_then_run_from_the_cache_with_the_registry_stopped() {
    let registry = Registry::start();
    let addr = registry.addr.clone();
    let started = std::time::Instant::now();
    let pinned = push(&format!("{addr}/drivers/ks3:1.0"), None);
    eprintln!("push: {:?}", started.elapsed());
    let (name, manifest_digest) = pinned.split_once('@').unwrap();
    assert_eq!(name, format!("{addr}/drivers/ks3"));

    // The artifact, as the registry serves it: the Wasm OCI Artifact layout.
    let (status, manifest) = get(
        &addr,
        &format!("/v2/drivers/ks3/manifests/{manifest_digest}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200);
    assert_eq!(digest(&manifest), manifest_digest);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    let wasm = ks3_driver_host::EMBEDDED_COMPONENT;
    assert_eq!(layers[0]["digest"], digest(wasm));
    assert_eq!(layers[0]["size"], wasm.len());
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let (status, config) = get(
        &addr,
        &format!("/v2/drivers/ks3/blobs/{config_digest}"),
        "*/*",
    );
    assert_eq!(status, 200);
    assert_eq!(digest(&config), config_digest);
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert!(config["created"].as_str().is_some_and(|c| c.ends_with('Z')));
    assert_eq!(config["layerDigests"], serde_json::json!([digest(wasm)]));
    let names = |k: &str| -> Vec<String> {
        config["component"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let mut exports = names("exports");
    exports.sort();
    assert_eq!(exports, [DRIVER, "registry:storage-driver/fast-path@1.1.0"]);
    let imports = names("imports");
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@0.2.")),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:filesystem")),
        "{imports:?}"
    );
    let (status, layer) = get(
        &addr,
        &format!("/v2/drivers/ks3/blobs/{}", digest(wasm)),
        "*/*",
    );
    assert_eq!(status, 200);
    assert!(layer == wasm, "the layer is the component, byte for byte");

    // Pulled by digest, cached, run.
    let cache = cache();
    let oci = format!("oci://{pinned}");
    let started = std::time::Instant::now();
    put_and_get(cache.path(), &oci, "pinned");
    eprintln!("pull + put + get: {:?}", started.elapsed());
    let cached = cache
        .path()
        .join("oci/sha256")
        .join(format!("{}.wasm", &digest(wasm)["sha256:".len()..]));
    assert!(std::fs::read(&cached).unwrap() == wasm);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cached), 0o600);
        assert_eq!(mode(&cache.path().join("oci")), 0o700);
        assert_eq!(mode(&cache.path().join("oci/sha256")), 0o700);
    }

    // By tag: runs, and warns once with the digest to pin.
    let root = unique_root_for("tag");
    let mut c = driver_cli(
        cache.path(),
        &root,
        &format!("oci://{addr}/drivers/ks3:1.0"),
    );
    c.args(["stat", "/"]);
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("--component:"), "{err}");
    assert_eq!(err.matches("not pinned").count(), 1, "{err}");
    assert!(err.contains(&oci), "names the digest to pin: {err}");

    // The registry gone: the pinned reference runs from the cache; a tag cannot.
    registry.stop();
    put_and_get(cache.path(), &oci, "offline");
    let mut c = driver_cli(
        cache.path(),
        &root,
        &format!("oci://{addr}/drivers/ks3:1.0"),
    );
    c.args(["stat", "/"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    // …and neither can a pinned one with an empty cache.
    let empty = tempfile::tempdir().unwrap();
    let mut c = driver_cli(empty.path(), &root, &oci);
    c.args(["stat", "/"]);
    assert_eq!(run(c).status.code(), Some(1));
}

#[test]
fn a_tampered_digest_is_refused() {
    let registry = Registry::start();
    let pinned = push(&format!("{}/drivers/ks3:t", registry.addr), None);
    let (name, d) = pinned.split_once('@').unwrap();
    let last = d.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &d[..d.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let cache = cache();
    let mut c = driver_cli(cache.path(), "/unused", &format!("oci://{name}@{flipped}"));
    c.args(["stat", "/"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&flipped), "{err}");
    assert!(std::fs::read_dir(cache.path().join("oci/sha256"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

#[test]
fn a_component_that_is_not_a_driver_is_refused() {
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, EMPTY_COMPONENT).unwrap();
    let pinned = push(&format!("{}/not/a-driver:1", registry.addr), Some(&empty));
    let cache = cache();
    let mut c = driver_cli(cache.path(), "/unused", &format!("oci://{pinned}"));
    c.args(["stat", "/"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(DRIVER), "names the interface: {err}");

    // Nor is the embedded wasi:blobstore provider, pushed by `--world blobstore`: its
    // config names its own world.
    let mut c = bare_cli();
    c.args([
        "component",
        "push",
        "--world",
        "blobstore",
        &format!("{}/blobstore/ks3:1", registry.addr),
    ]);
    let pinned = String::from_utf8(ok(c).stdout).unwrap().trim().to_string();
    let (name, manifest_digest) = pinned.split_once('@').unwrap();
    assert_eq!(name, format!("{}/blobstore/ks3", registry.addr));
    let (status, manifest) = get(
        &registry.addr,
        &format!("/v2/blobstore/ks3/manifests/{manifest_digest}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200);
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let wasm = ks3_driver_host::EMBEDDED_BLOBSTORE_COMPONENT;
    assert_eq!(m["layers"][0]["digest"], digest(wasm));
    let (status, config) = get(
        &registry.addr,
        &format!(
            "/v2/blobstore/ks3/blobs/{}",
            m["config"]["digest"].as_str().unwrap()
        ),
        "*/*",
    );
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        config["component"]["target"],
        "ks3:blobstore/provider@0.1.0"
    );
    let exports = config["component"]["exports"].as_array().unwrap();
    assert!(exports
        .iter()
        .any(|e| e == "wasi:blobstore/blobstore@0.2.0-draft"));
    assert!(!exports.iter().any(|e| e == DRIVER));
    let mut c = driver_cli(cache.path(), "/unused", &format!("oci://{pinned}"));
    c.args(["stat", "/"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(DRIVER), "names the interface: {err}");

    // --world and --component together are refused.
    let mut c = bare_cli();
    c.arg("--component").arg(&empty).args([
        "component",
        "push",
        "--world",
        "blobstore",
        &format!("{}/both:1", registry.addr),
    ]);
    assert_eq!(run(c).status.code(), Some(2));

    // Bytes that are not a component are not pushed.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let mut c = bare_cli();
    c.arg("--component").arg(&junk).args([
        "component",
        "push",
        &format!("{}/junk:1", registry.addr),
    ]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a valid component"));
}

#[test]
fn bad_references_are_refused_without_a_panic() {
    let cache = cache();
    for r in [
        "oci://",
        "oci://Bad/Ref:!",
        "oci://127.0.0.1:1/repo@sha256:abc",
        "oci://127.0.0.1:1/repo@md5:0123456789abcdef0123456789abcdef",
    ] {
        let mut c = driver_cli(cache.path(), "/unused", r);
        c.args(["stat", "/"]);
        let o = run(c);
        assert_eq!(o.status.code(), Some(1), "{r}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--component"), "{r}: {err}");
    }
    // A registry that is not there.
    let mut c = driver_cli(
        cache.path(),
        "/unused",
        &format!("oci://127.0.0.1:1/repo@{}", digest(b"x")),
    );
    c.args(["stat", "/"]);
    assert_eq!(run(c).status.code(), Some(1));
}

/// A registry that serves what it is given whatever is asked for: the manifest for any
/// manifest reference, blobs by the digest in the URL, so the client's own checks are
/// what refuses a lie.
fn lying_registry(manifest: Vec<u8>, blobs: HashMap<String, Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let blobs = Arc::new(blobs);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            let path = first.split(' ').nth(1).unwrap_or("").to_string();
            let (status, ctype, body) = if path == "/v2/" {
                ("200 OK", "application/json", b"{}".to_vec())
            } else if path.contains("/manifests/") {
                (
                    "200 OK",
                    "application/vnd.oci.image.manifest.v1+json",
                    manifest.clone(),
                )
            } else if let Some(b) = path.rsplit_once("/blobs/").and_then(|(_, d)| blobs.get(d)) {
                ("200 OK", "application/octet-stream", b.clone())
            } else {
                ("404 Not Found", "application/json", b"{}".to_vec())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    addr
}

fn manifest(config_type: &str, layers: &[(&str, &str, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(mt, d, size)| serde_json::json!({"mediaType": mt, "digest": d, "size": size}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": digest(b"{}"), "size": 2},
        "layers": layers,
    }))
    .unwrap()
}

/// What a lying registry serves: its name, the manifest, the blobs, the digest the
/// client pins (default: the manifest's), and what the refusal says.
type Lie = (
    &'static str,
    Vec<u8>,
    HashMap<String, Vec<u8>>,
    Option<String>,
    &'static str,
);

#[test]
fn a_lying_registry_is_refused() {
    let wasm = ks3_driver_host::EMBEDDED_COMPONENT;
    let wasm_d = digest(wasm);
    let other = b"\0asm\x0d\x00\x01\x00-other".to_vec();
    let cases: Vec<Lie> = vec![
        // The manifest served is not the one pinned.
        (
            "manifest digest",
            manifest(
                "application/vnd.wasm.config.v0+json",
                &[("application/wasm", &wasm_d, wasm.len())],
            ),
            HashMap::from([(wasm_d.clone(), wasm.to_vec())]),
            Some(digest(b"another manifest")),
            "digest",
        ),
        // The layer's bytes are not the ones the manifest names.
        (
            "layer digest",
            manifest(
                "application/vnd.wasm.config.v0+json",
                &[("application/wasm", &wasm_d, wasm.len())],
            ),
            HashMap::from([(wasm_d.clone(), other.clone())]),
            None,
            "digest",
        ),
        (
            "two wasm layers",
            manifest(
                "application/vnd.wasm.config.v0+json",
                &[
                    ("application/wasm", &wasm_d, wasm.len()),
                    ("application/wasm", &digest(&other), other.len()),
                ],
            ),
            HashMap::new(),
            None,
            "2 `application/wasm` layers",
        ),
        (
            "an image, not a component",
            manifest(
                "application/vnd.oci.image.config.v1+json",
                &[(
                    "application/vnd.oci.image.layer.v1.tar",
                    &wasm_d,
                    wasm.len(),
                )],
            ),
            HashMap::new(),
            None,
            "config media type",
        ),
        (
            "no wasm layer",
            manifest(
                "application/vnd.wasm.config.v0+json",
                &[(
                    "application/vnd.oci.image.layer.v1.tar",
                    &wasm_d,
                    wasm.len(),
                )],
            ),
            HashMap::new(),
            None,
            "no `application/wasm` layer",
        ),
    ];
    for (what, m, blobs, pin, says) in cases {
        let pin = pin.unwrap_or_else(|| digest(&m));
        let addr = lying_registry(m, blobs);
        let cache = cache();
        let mut c = driver_cli(cache.path(), "/unused", &format!("oci://{addr}/lie@{pin}"));
        c.args(["stat", "/"]);
        let o = run(c);
        let err = String::from_utf8_lossy(&o.stderr);
        eprintln!("{what}: {}", err.trim());
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
        let stored = std::fs::read_dir(cache.path().join("oci/sha256"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".wasm"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(stored, 0, "{what}: nothing cached");
    }
}

/// `wkg`, or `None` (with the reason printed) when it is not installed outside CI; on CI
/// (`CI` set) a missing `wkg` fails the test.
fn wkg() -> Option<&'static str> {
    let installed = Command::new("wkg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("wkg"));
    if installed {
        return Some("wkg");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "wkg is not installed (CI installs it: cargo install wkg --version 0.16.1 --locked)"
    );
    eprintln!("SKIPPED: wkg is not installed (cargo install wkg --version 0.16.1 --locked)");
    None
}

/// `wkg oci …` with plain HTTP to `addr` (wkg asks for it even on loopback) and a
/// private home (no config or credentials of the user's).
fn wkg_cmd(wkg: &str, home: &Path, addr: &str) -> Command {
    let mut c = Command::new(wkg);
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env_remove("WKG_OCI_USERNAME")
        .env_remove("WKG_OCI_PASSWORD")
        .env("WKG_OCI_INSECURE", addr)
        .arg("oci");
    c
}

#[test]
fn wkg_pulls_what_component_push_pushed_byte_for_byte() {
    let Some(wkg) = wkg() else { return };
    let registry = Registry::start();
    let pinned = push(&format!("{}/drivers/ks3:wkg", registry.addr), None);
    let home = tempfile::tempdir().unwrap();
    for reference in [pinned.clone(), format!("{}/drivers/ks3:wkg", registry.addr)] {
        let out = home.path().join("pulled.wasm");
        let _ = std::fs::remove_file(&out);
        let mut c = wkg_cmd(wkg, home.path(), &registry.addr);
        c.arg("pull").arg(&reference).arg("-o").arg(&out);
        ok(c);
        assert!(
            std::fs::read(&out).unwrap() == ks3_driver_host::EMBEDDED_COMPONENT,
            "{reference}: wkg's file is the component, byte for byte"
        );
    }
}

#[test]
fn what_wkg_pushed_is_loaded_and_run() {
    let Some(wkg) = wkg() else { return };
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("driver.wasm");
    std::fs::write(&file, ks3_driver_host::EMBEDDED_COMPONENT).unwrap();
    let reference = format!("{}/from-wkg/ks3:1", registry.addr);
    let mut c = wkg_cmd(wkg, home.path(), &registry.addr);
    c.arg("push").arg(&reference).arg(&file);
    let o = ok(c);
    let out = String::from_utf8_lossy(&o.stdout);
    let d = out
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .unwrap_or_else(|| panic!("wkg printed no digest: {out}"))
        .trim()
        .to_string();
    // What wkg wrote is a wasm artifact, not ours.
    let (status, manifest) = get(
        &registry.addr,
        &format!("/v2/from-wkg/ks3/manifests/{d}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200);
    assert_eq!(digest(&manifest), d);
    // A fresh cache: the component is pulled from what wkg pushed.
    let cache = cache();
    put_and_get(
        cache.path(),
        &format!("oci://{}/from-wkg/ks3@{d}", registry.addr),
        "wkg",
    );
    assert!(cache
        .path()
        .join("oci/sha256")
        .join(format!("{}.manifest.json", &d["sha256:".len()..]))
        .exists());
}

/// Credentials from the Docker config (`DOCKER_CONFIG`): a registry behind htpasswd
/// refuses the anonymous push and takes the configured one, the pull by digest too; the
/// password is in no output.
#[test]
fn docker_config_credentials_are_used_and_never_printed() {
    use base64::Engine as _;
    const PASSWORD: &str = "pw-Docker-Config-7f3a";
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nauth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            htpasswd.display()
        ),
    )
    .unwrap();
    let mut c = bare_cli();
    c.arg("-c").arg(&config);
    let registry = Registry::start_with(c);
    let addr = registry.addr.clone();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    let docker = dir.path().join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({"auths": {addr.clone(): {"auth": encoded}}}).to_string(),
    )
    .unwrap();
    let nobody = dir.path().join("nobody");
    std::fs::create_dir(&nobody).unwrap();
    let leaked = |o: &Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        all.contains(PASSWORD) || all.contains(&encoded)
    };

    let reference = format!("{addr}/private/ks3:1");
    let mut c = bare_cli();
    c.env("DOCKER_CONFIG", &nobody)
        .args(["component", "push", &reference]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "anonymous: refused");
    assert!(!leaked(&o));

    let mut c = bare_cli();
    c.env("DOCKER_CONFIG", &docker)
        .args(["component", "push", &reference]);
    let o = ok(c);
    assert!(!leaked(&o));
    let pinned = String::from_utf8(o.stdout).unwrap().trim().to_string();

    let cache = cache();
    let mut c = driver_cli(cache.path(), "/unused", &format!("oci://{pinned}"));
    c.env("DOCKER_CONFIG", &nobody).args(["stat", "/"]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(1), "anonymous: refused");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--component:"));
    assert!(!leaked(&o));

    let root = unique_root_for("auth");
    let body = data(4096, 7);
    let file = dir.path().join("in");
    std::fs::write(&file, &body).unwrap();
    let mut c = driver_cli(cache.path(), &root, &format!("oci://{pinned}"));
    c.env("DOCKER_CONFIG", &docker)
        .args(["put", "/o"])
        .arg(&file);
    assert!(!leaked(&ok(c)));
    let mut c = driver_cli(cache.path(), &root, &format!("oci://{pinned}"));
    c.env("DOCKER_CONFIG", &docker).args(["get", "/o"]);
    assert!(ok(c).stdout == body);
}
