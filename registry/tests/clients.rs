//! Real clients against the registry: an image built offline with `umoci` (several layers,
//! one over 50 MiB of random data) copied in and out with `skopeo`, and the `oras` Python
//! package pushing an artifact with a subject. The tools are installed by `.ci/run`; a
//! missing tool fails the test with what to install (it never passes silently).
mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;
use tokio::process::Command;

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// An OCI layout with tag `v3`: three layers (a small text file, 52 MiB of random bytes,
/// a second small file), built with umoci one layer at a time.
async fn build_image(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let l = path_str(&layout);
    run("umoci", &["init", "--layout", l]).await;
    run("umoci", &["new", "--image", &format!("{l}:v0")]).await;
    let layers: [(&str, Vec<u8>); 3] = [
        ("etc/hello.txt", b"hello from umoci\n".to_vec()),
        ("data/random.bin", bytes(52 << 20, 11)),
        ("etc/second.txt", b"a second layer\n".to_vec()),
    ];
    for (i, (file, content)) in layers.iter().enumerate() {
        let bundle = dir.join(format!("bundle{i}"));
        let b = path_str(&bundle);
        run(
            "umoci",
            &["unpack", "--rootless", "--image", &format!("{l}:v{i}"), b],
        )
        .await;
        let target = bundle.join("rootfs").join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&target, content).expect("write layer file");
        run(
            "umoci",
            &["repack", "--image", &format!("{l}:v{}", i + 1), b],
        )
        .await;
    }
    layout
}

/// The manifest digest a tag of an OCI layout names, and the manifest's bytes.
fn layout_manifest(layout: &Path, tag: &str) -> (String, Vec<u8>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index json");
    let entry = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag} in {}", layout.display()));
    let digest = entry["digest"].as_str().expect("digest").to_string();
    (digest.clone(), layout_blob(layout, &digest))
}

fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", layout.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_an_umoci_image_in_and_out() {
    require("umoci", "apt-get install -y umoci");
    require("skopeo", "apt-get install -y skopeo");
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = build_image(tmp.path()).await;
    let (src_digest, src_manifest) = layout_manifest(&layout, "v3");
    let manifest: Value = serde_json::from_slice(&src_manifest).expect("manifest json");
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect();
    assert_eq!(layers.len(), 3);
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .to_string();
    let biggest = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["size"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        biggest > 50 << 20,
        "one layer over 50 MiB ({biggest} bytes)"
    );

    // Redirects on (the default with configured storage): skopeo follows 307s to
    // presigned ks3-local URLs.
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "storage:\n  delete:\n    enabled: true\n").await;
    let host = r.host.clone();
    let src = format!("oci:{}:v3", path_str(&layout));
    let dest = format!("docker://{host}/test/img:v1");
    let t = std::time::Instant::now();
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            &src,
            &dest,
        ],
    )
    .await;
    eprintln!("skopeo push of {} MiB: {:?}", biggest >> 20, t.elapsed());
    let pushed = r.registry.stats();
    assert!(
        pushed.blobs_uploaded >= 4,
        "three layers and the config uploaded"
    );
    assert_eq!(
        (
            pushed.digests_from_saved_state + pushed.digests_from_small_read_back,
            pushed.digests_from_reread
        ),
        (pushed.blobs_uploaded, 0),
        "every upload verified from its saved hash state or, small, from its bytes read back; none re-hashed"
    );
    assert!(
        pushed.digests_from_saved_state >= 1,
        "the layer over 50 MiB verified from its saved state"
    );

    let inspect: Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--tls-verify=false", &dest]).await)
            .expect("inspect json");
    assert_eq!(inspect["Digest"], src_digest.as_str());
    assert_eq!(inspect["Layers"], serde_json::json!(layers));
    let raw = run("skopeo", &["inspect", "--raw", "--tls-verify=false", &dest]).await;
    assert!(
        raw.as_bytes() == src_manifest.as_slice(),
        "the manifest bytes as pushed"
    );

    // Copy back out and compare every blob byte for byte.
    let out = tmp.path().join("out");
    let out_ref = format!("oci:{}:v1", path_str(&out));
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            &dest,
            &out_ref,
        ],
    )
    .await;
    let (out_digest, out_manifest) = layout_manifest(&out, "v1");
    assert_eq!(out_digest, src_digest);
    assert!(out_manifest == src_manifest);
    for d in layers.iter().chain([&config_digest]) {
        assert!(
            layout_blob(&out, d) == layout_blob(&layout, d),
            "blob {d} is byte-identical after the round trip"
        );
    }

    // A second tag, registry to registry.
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &dest,
            &format!("docker://{host}/test/img:v2"),
        ],
    )
    .await;
    let tags: Value = serde_json::from_str(
        &run(
            "skopeo",
            &[
                "list-tags",
                "--tls-verify=false",
                &format!("docker://{host}/test/img"),
            ],
        )
        .await,
    )
    .expect("list-tags json");
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2"]));

    // Another repository: skopeo mounts the layers it knows are in test/img.
    let before = r.registry.stats();
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://{host}/test/other:v1"),
        ],
    )
    .await;
    let after = r.registry.stats();
    assert!(
        after.blobs_mounted >= before.blobs_mounted + 3,
        "the three layers were mounted, not uploaded again ({before:?} -> {after:?})"
    );
    let other: Value = serde_json::from_str(
        &run(
            "skopeo",
            &[
                "inspect",
                "--tls-verify=false",
                &format!("docker://{host}/test/other:v1"),
            ],
        )
        .await,
    )
    .expect("inspect json");
    assert_eq!(other["Digest"], src_digest.as_str());

    // Delete (storage.delete.enabled): the manifest goes, and with it its tags.
    run(
        "skopeo",
        &[
            "delete",
            "--tls-verify=false",
            &format!("docker://{host}/test/img:v2"),
        ],
    )
    .await;
    let tags: Value = serde_json::from_str(
        &run(
            "skopeo",
            &[
                "list-tags",
                "--tls-verify=false",
                &format!("docker://{host}/test/img"),
            ],
        )
        .await,
    )
    .expect("list-tags json");
    assert_eq!(tags["Tags"], serde_json::json!([]));
    let gone = Command::new("skopeo")
        .envs(no_stored_credentials())
        .args(["inspect", "--tls-verify=false", &dest])
        .output()
        .await
        .expect("skopeo runs");
    assert!(!gone.status.success(), "the deleted image is gone");
    // The other repository still has its image.
    run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/test/other:v1"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_pushes_a_referrer_and_finds_it() {
    require("python3", "apt-get install -y python3");
    require_python_module("oras.client", "python3 -m pip install oras");
    let r = serve_yaml("").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/oras_referrers.py");
    let out = run(
        "python3",
        &[path_str(&script), &r.host, path_str(tmp.path())],
    )
    .await;
    let v: Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("script output is not JSON ({e}): {out}"));
    let subject = v["subject"].as_str().expect("subject");
    assert_eq!(v["oci_subject"], subject, "OCI-Subject on the manifest PUT");
    assert_eq!(v["referrers_status"], 200);
    let pushed = v["pushed_digest"].as_str().expect("pushed digest");
    let list = v["referrers"]["manifests"].as_array().expect("manifests");
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["digest"], pushed);
    assert_eq!(list[0]["artifactType"], "application/vnd.example.signature");
    assert_eq!(v["filtered"]["manifests"], serde_json::json!([]));
    assert_eq!(v["filters_applied"], "artifactType");
}
