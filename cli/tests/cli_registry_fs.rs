//! `ks3-driver registry --component fs_driver_component.wasm` with
//! `storage.filesystem.rootdirectory`: a registry on local disk through the filesystem
//! driver component (`fs-driver/`), with no KS3 anywhere. An OCI artifact (the filesystem
//! component itself, by `component push`) is pushed through it and pulled back over the
//! distribution API, and its bytes are on disk in distribution's layout.
mod common;

use std::path::Path;
use std::process::{Child, Stdio};

use common::*;
use sha2::{Digest, Sha256};

fn fs_component() -> &'static Path {
    ks3_driver_host::fs_driver_component_path()
        .expect("this build has no filesystem component (KS3_DRIVER_PREBUILT_COMPONENT)")
}

struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The registry with `config` and the filesystem component; its address from stdout.
fn start(config: &Path) -> Registry {
    let mut c = bare_cli();
    c.arg("--component")
        .arg(fs_component())
        .arg("-c")
        .arg(config);
    let (child, addr) = start_registry(c, Stdio::null());
    Registry { child, addr }
}

/// One HTTP/1.1 GET; the status and the body.
fn get(addr: &str, target: &str, accept: &str) -> (u16, Vec<u8>) {
    http_request(addr, "GET", target, &[&format!("Accept: {accept}")], b"")
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hex digests of a manifest's config and layers.
fn digests(manifest: &[u8]) -> Vec<String> {
    let m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let mut out = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
    out.into_iter()
        .map(|d| d.strip_prefix("sha256:").unwrap().to_string())
        .collect()
}

#[test]
fn an_artifact_is_pushed_to_and_pulled_from_a_registry_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry-data");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            root.display()
        ),
    )
    .unwrap();
    let registry = start(&config);

    let wasm = std::fs::read(fs_component()).unwrap();
    let reference = format!("{}/drivers/fs:1.0", registry.addr);
    let out = bare_cli()
        .arg("--component")
        .arg(fs_component())
        .args(["component", "push", &reference])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "push failed: {stderr}");
    let pushed = String::from_utf8(out.stdout).unwrap();
    let manifest_digest = pushed
        .trim()
        .rsplit_once("@sha256:")
        .unwrap_or_else(|| panic!("push printed {pushed:?}"))
        .1
        .to_string();

    // The pull, as any client does it: the manifest by tag, then its blobs.
    let (status, manifest) = get(
        &registry.addr,
        "/v2/drivers/fs/manifests/1.0",
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&manifest));
    assert_eq!(sha256(&manifest), manifest_digest, "the manifest pushed");
    let blobs = digests(&manifest);
    assert_eq!(blobs.len(), 2, "a config and one layer");
    for hex in &blobs {
        let (status, body) = get(
            &registry.addr,
            &format!("/v2/drivers/fs/blobs/sha256:{hex}"),
            "*/*",
        );
        assert_eq!(status, 200);
        assert_eq!(&sha256(&body), hex, "blob {hex} pulled back intact");
    }
    let layer = sha256(&wasm);
    assert!(blobs.contains(&layer), "the layer is the component's bytes");

    // What the pulled config says of the component: the contract only, and the
    // filesystem instead of the network.
    let (_, config) = get(
        &registry.addr,
        &format!("/v2/drivers/fs/blobs/sha256:{}", blobs[0]),
        "*/*",
    );
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let names = |k: &str| -> Vec<String> {
        config["component"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("exports"), ["registry:storage-driver/driver@1.1.0"]);
    let imports = names("imports");
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
        "{imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("wasi:http/")),
        "{imports:?}"
    );

    // On disk, in distribution's layout under rootdirectory: what distribution's own
    // filesystem driver would read.
    let v2 = root.join("docker/registry/v2");
    let data = v2.join(format!("blobs/sha256/{}/{layer}/data", &layer[..2]));
    assert!(std::fs::read(&data).unwrap() == wasm, "{}", data.display());
    let tag = v2.join("repositories/drivers/fs/_manifests/tags/1.0/current/link");
    assert_eq!(
        std::fs::read_to_string(&tag).unwrap(),
        format!("sha256:{manifest_digest}")
    );
    drop(registry);
}

#[test]
fn storage_filesystem_without_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  filesystem:\n    rootdirectory: {}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let out = bare_cli()
        .arg("-c")
        .arg(&config)
        .args(["registry", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--component"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing created");
}

/// `--component fs_driver_component.wasm --dir DIR`: the object commands on local disk, no
/// KS3 and no parameters; the bytes land in DIR as plain files.
#[test]
fn object_commands_run_on_a_directory_through_the_filesystem_component() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let src = dir.path().join("src.bin");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    std::fs::write(&src, &bytes).unwrap();
    let run = |args: &[&str]| {
        let out = bare_cli()
            .arg("--component")
            .arg(fs_component())
            .arg("--dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{args:?}: {stderr}");
        out.stdout
    };
    run(&["put", "/a/b.bin", src.to_str().unwrap()]);
    assert_eq!(std::fs::read(data.join("a/b.bin")).unwrap(), bytes);
    assert_eq!(run(&["get", "/a/b.bin"]), bytes);
    let stat = String::from_utf8(run(&["stat", "/a/b.bin"])).unwrap();
    assert!(stat.contains("size: 3000000"), "{stat}");
    let ls = String::from_utf8(run(&["ls", "/a"])).unwrap();
    assert_eq!(ls.trim(), "/a/b.bin");
    run(&["rm", "/a/b.bin"]);
    assert!(!data.join("a").exists(), "the emptied directory is removed");

    // Without --dir the component has no filesystem, and the message says what is missing.
    let out = bare_cli()
        .arg("--component")
        .arg(fs_component())
        .args(["ls", "/"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--dir DIR"), "{stderr}");

    // The registry takes its directory from storage.filesystem, not --dir.
    let out = bare_cli()
        .arg("--dir")
        .arg(&data)
        .args(["registry", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("storage.filesystem.rootdirectory"),
        "{stderr}"
    );
}
