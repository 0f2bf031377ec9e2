//! CNCF distribution's own registry (Debian's `docker-registry` 2.8.2, its `s3` driver
//! signing AWS4) on ks3-local, and cross-compatibility with this registry on one bucket
//! and one `rootdirectory`: images pushed through either are served byte for byte by the
//! other, deletes through one are seen by the other, distribution's garbage collector
//! finds no broken reference, and each tolerates what the other leaves in the store.
//!
//! Real processes and sockets throughout: ks3-local, this registry on the real component,
//! `docker-registry serve` and `garbage-collect`, `skopeo` and `umoci`. A missing tool
//! fails the test with what to install (`.ci/run` installs them).
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::distribution::{Distribution, Options, S3Target};
use common::*;
use http::{Method, StatusCode};
use serde_json::Value;

/// The `rootdirectory` both registries use.
const ROOT: &str = "/reg";

const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

async fn skopeo(args: &[&str]) -> String {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all).await
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A ks3-local server, this registry on it (delete enabled, redirects on, `rootdirectory`
/// `root`) and distribution's on the same bucket and root.
/// fsck finds nothing wrong in the store both registries wrote.
async fn assert_fsck_clean(ours: &Served) {
    let opts = ks3_registry::fsck::FsckOptions::default();
    let r = ks3_registry::fsck::fsck(ours.registry.driver(), &opts)
        .await
        .expect("fsck");
    assert!(r.is_clean(), "{}: {:#?}", r.summary_line(), r.problems);
}

async fn both(root: &str) -> (SharedKs3, Served, Distribution) {
    let mut ks3 = shared_ks3();
    if !root.is_empty() {
        ks3.params.insert("rootdirectory".into(), root.into());
    }
    let ours = serve_shared(&ks3, "storage:\n  delete:\n    enabled: true\n").await;
    let dist = Distribution::start(&S3Target::of(&ks3, root), &Options::default());
    (ks3, ours, dist)
}

// ---------------------------------------------------------------------------------------
// Blob uploads through distribution's HTTP API.

/// `POST`, one `PATCH` per chunk, `PUT ?digest=` through distribution; returns the digest.
async fn dist_push_blob(base: &str, repo: &str, chunks: &[&[u8]]) -> String {
    let all: Vec<u8> = chunks.concat();
    let digest = sha256(&all);
    let r = request(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "POST: {:?}", r.body);
    let mut location = r.header("location").expect("POST Location").to_string();
    let mut offset = 0usize;
    for chunk in chunks {
        let range = format!("{offset}-{}", offset + chunk.len().max(1) - 1);
        let r = request(
            Method::PATCH,
            &location,
            &[
                ("content-type", "application/octet-stream"),
                ("content-range", &range),
            ],
            chunk.to_vec(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "PATCH of {} bytes at {offset}: {}",
            chunk.len(),
            String::from_utf8_lossy(&r.body)
        );
        offset += chunk.len();
        location = r.header("location").expect("PATCH Location").to_string();
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = request(
        Method::PUT,
        &format!("{location}{sep}digest={digest}"),
        &[("content-type", "application/octet-stream")],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "PUT of a {}-byte blob: {}",
        all.len(),
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    digest
}

/// A blob's bytes through a registry's `GET`, following one 307 to the storage.
async fn get_blob(base: &str, repo: &str, digest: &str) -> Vec<u8> {
    let r = request(
        Method::GET,
        &format!("{base}/v2/{repo}/blobs/{digest}"),
        &[],
        Vec::new(),
    )
    .await;
    let r = if r.status == StatusCode::TEMPORARY_REDIRECT {
        let to = r.header("location").expect("307 Location").to_string();
        request(Method::GET, &to, &[], Vec::new()).await
    } else {
        r
    };
    assert_eq!(
        r.status,
        StatusCode::OK,
        "GET blob {digest} of {repo} at {base}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.body
}

/// Waits until `cond` holds (at most `secs`).
async fn eventually(secs: u64, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 12: distribution's registry runs on ks3-local with AWS4. Its storage health check
/// passes (a twin with a wrong secret key shows the check runs and fails), and blobs go in
/// and out through its HTTP API: empty (its zero-part CompleteMultipartUpload), small, a
/// 40 MiB one (several 10 MiB parts, then a multipart copy to the blob path), and one in a
/// small and a large PATCH (its re-base: Complete, read back, new upload). Reads go through
/// its 307 to a presigned AWS4 URL of ks3-local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_registry_runs_on_ks3_local_with_aws4() {
    let ks3 = shared_ks3();
    let target = S3Target::of(&ks3, ROOT);
    let dist = Distribution::start(&target, &Options::default());
    let mut bad_target = target.clone();
    bad_target.secretkey = "not-the-secret".into();
    let bad = Distribution::start(&bad_target, &Options::default());

    // Health: the check runs every second with a threshold of 2. The twin with the wrong
    // key fails it (and then answers 503 to everything); the real one stays healthy.
    let bad_base = bad.base.clone();
    eventually(20, "the wrong-key twin's health check fails", async || {
        request(Method::GET, &format!("{bad_base}/v2/"), &[], Vec::new())
            .await
            .status
            == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let h = request(
        Method::GET,
        &format!("{}/debug/health", bad.debug_base),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        String::from_utf8_lossy(&h.body).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&h.body)
    );
    let h = request(
        Method::GET,
        &format!("{}/debug/health", dist.debug_base),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(
        (h.status, h.body.as_slice()),
        (StatusCode::OK, b"{}".as_slice()),
        "{}",
        String::from_utf8_lossy(&h.body)
    );
    drop(bad);
    // The healthy one's check reaches ks3-local: `Stat("/")`, a ListObjects of one key
    // under the root, every interval. (ks3-local's request log keeps parameter names, not
    // values: nothing else lists without a delimiter while the test sleeps.)
    let probe = "?max-keys=&prefix=";
    let before = ks3.server.requests_matching("GET", probe);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        ks3.server.requests_matching("GET", probe) >= before + 2,
        "distribution's health check lists the bucket every second"
    );

    let empty: &[u8] = b"";
    let small = b"hello from distribution\n".to_vec();
    let big = bytes(40 << 20, 12);
    let first = bytes(1 << 20, 13);
    let second = bytes(11 << 20, 14);
    let uploads: Vec<(&str, Vec<&[u8]>)> = vec![
        ("empty", vec![empty]),
        ("small", vec![&small]),
        ("40 MiB", vec![&big]),
        ("1 MiB + 11 MiB", vec![&first, &second]),
    ];
    for (what, chunks) in &uploads {
        let want: Vec<u8> = chunks.concat();
        let d = dist_push_blob(&dist.base, "issue12/blobs", chunks).await;
        let url = format!("{}/v2/issue12/blobs/blobs/{d}", dist.base);
        // HEAD redirects too, to a presigned HEAD.
        let head = request(Method::HEAD, &url, &[], Vec::new()).await;
        assert_eq!(
            head.status,
            StatusCode::TEMPORARY_REDIRECT,
            "HEAD of the {what} blob"
        );
        let to = head.header("location").expect("Location");
        let head = request(Method::HEAD, to, &[], Vec::new()).await;
        assert_eq!(
            head.status,
            StatusCode::OK,
            "presigned HEAD of the {what} blob"
        );
        assert_eq!(
            head.header("content-length"),
            Some(want.len().to_string().as_str())
        );
        let r = request(Method::GET, &url, &[], Vec::new()).await;
        assert_eq!(
            r.status,
            StatusCode::TEMPORARY_REDIRECT,
            "GET of the {what} blob redirects"
        );
        let to = r.header("location").expect("Location");
        assert!(
            to.starts_with(&format!("{}/", ks3.server.endpoint()))
                && to.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256")
                && to.contains("X-Amz-Signature="),
            "a presigned AWS4 URL of ks3-local: {to}"
        );
        let got = request(Method::GET, to, &[], Vec::new()).await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{what}: {:?}",
            got.header("x-kss-request-id")
        );
        assert!(
            got.body == want,
            "the {what} blob read back through the presigned URL is what was pushed"
        );
    }

    // Still healthy after many intervals, and no 5xx answered along the way.
    let h = request(
        Method::GET,
        &format!("{}/debug/health", dist.debug_base),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(h.status, StatusCode::OK);
    assert_no_server_errors(&dist);
}

/// Lines of distribution's log that report a 5xx answer or a panic.
fn assert_no_server_errors(dist: &Distribution) {
    let bad: Vec<String> = dist
        .log()
        .lines()
        .filter(|l| l.contains("http.response.status=5") || l.contains("level=panic"))
        .map(str::to_string)
        .collect();
    assert!(
        bad.is_empty(),
        "distribution answered 5xx:\n{}",
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Images: built with umoci, pushed and pulled with skopeo.

/// An OCI layout with tags `v1`, `v2`, `v3` (one more layer each: a small file, 24 MiB of
/// random bytes, so more than two of distribution's 10 MiB parts, a second small file) and
/// `multi`, an OCI index of `v2` (amd64) and `v3` (arm64).
async fn build_image(dir: &Path, seed: u64) -> PathBuf {
    let layout = dir.join("layout");
    let l = path_str(&layout);
    run("umoci", &["init", "--layout", l]).await;
    run("umoci", &["new", "--image", &format!("{l}:v0")]).await;
    let layers: [(&str, Vec<u8>); 3] = [
        ("etc/hello.txt", format!("hello {seed}\n").into_bytes()),
        ("data/random.bin", bytes(24 << 20, seed)),
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
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, content).expect("write layer file");
        run(
            "umoci",
            &["repack", "--image", &format!("{l}:v{}", i + 1), b],
        )
        .await;
    }
    // The index, written into the layout by hand (umoci makes image manifests only).
    let child = |tag: &str, arch: &str| {
        let (d, m) = layout_manifest(&layout, tag);
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d, "size": m.len(),
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [child("v2", "amd64"), child("v3", "arm64")],
    }))
    .expect("json");
    let d = sha256(&index);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        &index,
    )
    .expect("write index");
    let path = layout.join("index.json");
    let mut top: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("index.json")).expect("json");
    top["manifests"]
        .as_array_mut()
        .expect("manifests")
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&path, serde_json::to_vec(&top).expect("json")).expect("index.json");
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

/// Every digest a manifest references: config and layers, or an index's children.
fn references(manifest: &[u8]) -> Vec<String> {
    let m: Value = serde_json::from_slice(manifest).expect("manifest json");
    let mut out = Vec::new();
    if let Some(c) = m["config"]["digest"].as_str() {
        out.push(c.to_string());
    }
    for key in ["layers", "manifests"] {
        for d in m[key].as_array().into_iter().flatten() {
            out.push(d["digest"].as_str().expect("digest").to_string());
        }
    }
    out
}

/// A manifest through a registry's HTTP API: status, bytes, digest header, content type.
async fn get_manifest(base: &str, repo: &str, reference: &str) -> Resp {
    request(
        Method::GET,
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        &[("accept", ACCEPT_ALL)],
        Vec::new(),
    )
    .await
}

async fn tags_of(base: &str, repo: &str) -> Vec<String> {
    let r = request(
        Method::GET,
        &format!("{base}/v2/{repo}/tags/list"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut tags: Vec<String> = r.json()["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t.as_str().expect("tag").to_string())
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

async fn catalog_of(base: &str) -> Value {
    let r = request(Method::GET, &format!("{base}/v2/_catalog"), &[], Vec::new()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()["repositories"].clone()
}

/// The cross-check in one direction: an image pushed through `push` (tags `v1`, `v3`,
/// `multi` with `--all`, and `docker`: `v1` converted to Docker schema 2) is served byte for
/// byte by `pull`, through its HTTP API and through skopeo; a manifest deleted through
/// `pull` is gone through `push` and the other way round; distribution's garbage collector
/// (dry run) marks exactly what is still referenced and finds only the deleted images'
/// own blobs eligible; after its real sweep both serve what is left and neither the rest.
async fn cross_check(push: &str, pull: &str, dist: &Distribution, tmp: &Path, seed: u64) {
    require("umoci", "apt-get install -y umoci");
    require("skopeo", "apt-get install -y skopeo");
    let layout = build_image(tmp, seed).await;
    let l = path_str(&layout);
    let repo = "cross/app";
    let push_host = push.trim_start_matches("http://");
    let pull_host = pull.trim_start_matches("http://");
    let dest = |tag: &str| format!("docker://{push_host}/{repo}:{tag}");
    for tag in ["v1", "v3"] {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{l}:{tag}"),
            &dest(tag),
        ])
        .await;
    }
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{l}:multi"),
        &dest("multi"),
    ])
    .await;
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{l}:v1"),
        &dest("docker"),
    ])
    .await;

    // A Docker manifest list of the schema 2 manifest, through the HTTP API.
    let docker = get_manifest(push, repo, "docker").await;
    assert_eq!(
        docker.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    let dlist = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": sha256(&docker.body), "size": docker.body.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .expect("json");
    let r = request(
        Method::PUT,
        &format!("{push}/v2/{repo}/manifests/dlist"),
        &[(
            "content-type",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )],
        dlist.clone(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Manifests by tag and by digest, and every blob they reference, byte for byte.
    let mut manifests: Vec<(String, String, Vec<u8>)> = Vec::new(); // (tag, digest, bytes)
    for tag in ["v1", "v3", "multi", "docker", "dlist"] {
        let a = get_manifest(push, repo, tag).await;
        let b = get_manifest(pull, repo, tag).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{tag} through the pushing registry"
        );
        assert_eq!(
            b.status,
            StatusCode::OK,
            "{tag} through the other registry: {}",
            String::from_utf8_lossy(&b.body)
        );
        assert!(
            a.body == b.body,
            "manifest {tag}: the same bytes through both"
        );
        let d = sha256(&b.body);
        assert_eq!(b.header("docker-content-digest"), Some(d.as_str()), "{tag}");
        assert_eq!(a.header("content-type"), b.header("content-type"), "{tag}");
        if !tag.starts_with('d') {
            let (want_d, want) = layout_manifest(&layout, tag);
            assert_eq!(d, want_d, "{tag}: the layout's manifest");
            assert!(b.body == want, "{tag}: the layout's manifest bytes");
        }
        let by_digest = get_manifest(pull, repo, &d).await;
        assert_eq!(by_digest.status, StatusCode::OK, "{tag} by digest");
        assert!(by_digest.body == b.body);
        manifests.push((tag.to_string(), d, b.body));
    }
    let (_, multi_digest, multi) = manifests[2].clone();
    let mut children = Vec::new();
    for child in references(&multi) {
        let a = get_manifest(push, repo, &child).await;
        let b = get_manifest(pull, repo, &child).await;
        assert_eq!(
            (a.status, b.status),
            (StatusCode::OK, StatusCode::OK),
            "child {child}"
        );
        assert!(
            a.body == b.body && sha256(&b.body) == child,
            "child {child}"
        );
        children.push((child, b.body));
    }
    let mut blobs: BTreeSet<String> = BTreeSet::new();
    for (_, _, m) in &manifests {
        if !m.is_empty() && serde_json::from_slice::<Value>(m).expect("json")["config"].is_object()
        {
            blobs.extend(references(m));
        }
    }
    for (_, m) in &children {
        blobs.extend(references(m));
    }
    assert!(blobs.len() >= 6, "configs and three layers: {blobs:?}");
    for d in &blobs {
        let want = layout_blob(&layout, d);
        assert!(
            get_blob(pull, repo, d).await == want,
            "blob {d} through the other registry"
        );
        assert!(
            get_blob(push, repo, d).await == want,
            "blob {d} through the pushing one"
        );
    }

    // skopeo pulls the image and the whole index back out of the other registry.
    let out = tmp.join("out");
    let o = path_str(&out);
    let src = |tag: &str| format!("docker://{pull_host}/{repo}:{tag}");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &src("v3"),
        &format!("oci:{o}:v3"),
    ])
    .await;
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &src("multi"),
        &format!("oci:{o}:multi"),
    ])
    .await;
    for tag in ["v3", "multi"] {
        let (d, m) = layout_manifest(&out, tag);
        let (want_d, want) = layout_manifest(&layout, tag);
        assert_eq!(
            d, want_d,
            "skopeo's copy of {tag} out of the other registry"
        );
        assert!(m == want);
    }
    for d in blobs
        .iter()
        .filter(|d| out.join("blobs/sha256").join(&d[7..]).exists())
    {
        assert!(
            layout_blob(&out, d) == layout_blob(&layout, d),
            "{d} after the round trip"
        );
    }
    let inspect: Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &src("v3")]).await)
            .expect("inspect json");
    assert_eq!(inspect["Digest"], manifests[1].1.as_str());

    // Lists through the other registry.
    assert_eq!(
        tags_of(pull, repo).await,
        ["dlist", "docker", "multi", "v1", "v3"]
    );
    assert_eq!(catalog_of(pull).await, serde_json::json!([repo]));
    assert_eq!(catalog_of(push).await, catalog_of(pull).await);

    // A layer mounted into another repository through one is there through the other.
    let layer = references(&manifests[1].2)[1].clone();
    let r = request(
        Method::POST,
        &format!("{push}/v2/cross/mounted/blobs/uploads/?mount={layer}&from={repo}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "mount");
    assert!(get_blob(pull, "cross/mounted", &layer).await == layout_blob(&layout, &layer));
    let both_repos = serde_json::json!(["cross/app", "cross/mounted"]);
    assert_eq!(catalog_of(pull).await, both_repos);
    assert_eq!(catalog_of(push).await, both_repos);

    // Deletes: v1 through the other registry, the Docker ones through the pushing one.
    let deleted = [
        (pull, &manifests[0]),
        (push, &manifests[4]),
        (push, &manifests[3]),
    ];
    for (via, (tag, d, _)) in deleted {
        let r = request(
            Method::DELETE,
            &format!("{via}/v2/{repo}/manifests/{d}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "DELETE {tag} through {via}");
        for base in [push, pull] {
            let r = get_manifest(base, repo, d).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{tag} deleted, at {base}");
            let r = get_manifest(base, repo, tag).await;
            assert_eq!(
                r.status,
                StatusCode::NOT_FOUND,
                "tag {tag} went with it, at {base}"
            );
        }
    }
    for base in [push, pull] {
        assert_eq!(tags_of(base, repo).await, ["multi", "v3"], "at {base}");
        let r = get_manifest(base, repo, "v3").await;
        assert_eq!(r.status, StatusCode::OK);
    }

    // distribution's GC on the shared store: it marks every remaining manifest and blob,
    // and only the deleted manifests and v1's config (referenced by nothing else) are
    // eligible: no broken reference, nothing of ours it cannot read.
    let gc = dist.garbage_collect(true, false);
    assert!(
        gc.success,
        "garbage-collect --dry-run failed:\n{}\n{}",
        gc.stdout, gc.stderr
    );
    assert!(
        !gc.stderr.contains("level=error") && !gc.stderr.contains("level=fatal"),
        "{}",
        gc.stderr
    );
    let v1_config = references(&manifests[0].2)[0].clone();
    let docker_config = references(&manifests[3].2)[0].clone();
    let mut want_eligible: BTreeSet<String> = [
        manifests[0].1.clone(),
        manifests[3].1.clone(),
        manifests[4].1.clone(),
        v1_config.clone(),
    ]
    .into();
    // Converted to schema 2, the config keeps its bytes, so it is v1's config.
    want_eligible.insert(docker_config.clone());
    let mut want_marked: BTreeSet<String> = blobs.clone();
    want_marked.insert(manifests[1].1.clone());
    want_marked.insert(multi_digest.clone());
    want_marked.extend(children.iter().map(|(d, _)| d.clone()));
    want_marked.remove(&v1_config);
    want_marked.remove(&docker_config);
    assert_eq!(
        gc.eligible_blobs(),
        want_eligible,
        "eligible:\n{}",
        gc.stdout
    );
    assert_eq!(gc.marked(), want_marked, "marked:\n{}", gc.stdout);
    assert_eq!(
        gc.summary(),
        (want_marked.len(), want_eligible.len(), 0),
        "{}",
        gc.stdout
    );

    // The real sweep, then both registries serve what is left, and the swept blobs are
    // 404 through both (their `_layers` links stay: 2.8.2 does not remove them).
    let gc = dist.garbage_collect(false, false);
    assert!(gc.success, "{}\n{}", gc.stdout, gc.stderr);
    for base in [push, pull] {
        for tag in ["v3", "multi"] {
            let m = get_manifest(base, repo, tag).await;
            assert_eq!(m.status, StatusCode::OK, "{tag} at {base} after GC");
        }
        // (Manifests are not blobs of the repository: no `_layers` link.)
        for d in blobs.difference(&want_eligible) {
            let r = request(
                Method::HEAD,
                &format!("{base}/v2/{repo}/blobs/{d}"),
                &[],
                Vec::new(),
            )
            .await;
            assert!(
                matches!(r.status, StatusCode::OK | StatusCode::TEMPORARY_REDIRECT),
                "{d} kept, at {base}: {}",
                r.status
            );
        }
        for d in &want_eligible {
            let r = request(
                Method::GET,
                &format!("{base}/v2/{repo}/blobs/{d}"),
                &[],
                Vec::new(),
            )
            .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{d} swept, at {base}");
            assert_eq!(r.error_code(), "BLOB_UNKNOWN");
        }
    }
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &src("multi"),
        &format!("oci:{o}:after-gc"),
    ])
    .await;
    let gc = dist.garbage_collect(true, false);
    assert_eq!(gc.summary(), (want_marked.len(), 0, 0), "{}", gc.stdout);
    assert_no_server_errors(dist);
}

/// Issue 14: pushed through this registry, served by distribution's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_through_ours_is_served_by_distribution() {
    let (_ks3, ours, dist) = both(ROOT).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    cross_check(&ours.base, &dist.base, &dist, tmp.path(), 21).await;
    assert_fsck_clean(&ours).await;
}

/// Issue 14: pushed through distribution's registry, served by this one; both with no
/// `rootdirectory` (keys `docker/registry/v2/…` at the top of the bucket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_through_distribution_is_served_by_ours() {
    let (_ks3, ours, dist) = both("").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    cross_check(&dist.base, &ours.base, &dist, tmp.path(), 22).await;
    assert_fsck_clean(&ours).await;
}

// ---------------------------------------------------------------------------------------
// What each leaves in the store.

/// `POST` then one `PATCH` of `data`, never finished; returns the upload's id and the
/// `PATCH` answer's `Location`.
async fn abandon_upload(base: &str, repo: &str, data: &[u8]) -> (String, String) {
    let r = request(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").expect("Location").to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let r = request(
        Method::PATCH,
        &location,
        &[("content-type", "application/octet-stream")],
        data.to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let id = r
        .header("docker-upload-uuid")
        .expect("Docker-Upload-UUID")
        .to_string();
    let next = r.header("location").expect("Location").to_string();
    let next = if next.starts_with('/') {
        format!("{base}{next}")
    } else {
        next
    };
    (id, next)
}

/// Issue 14: each registry tolerates what the other leaves. distribution's abandoned
/// uploads (`startedat`, `hashstates/sha256/<offset>`, an in-progress multipart upload) and
/// ours (the same files, plus the driver's `<root>/~tails/` objects) sit beside an image;
/// both catalogs, tag lists, manifests and blobs agree, distribution's health check and its
/// garbage collector (dry run: nothing eligible, nothing broken) are unaffected. And an
/// upload distribution started is finished here: more data appended, the digest verified
/// from distribution's own saved hash state, the blob then served by distribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tolerates_what_the_other_leaves() {
    let (ks3, ours, dist) = both(ROOT).await;
    let repo = "tol/app";
    // An image, pushed through distribution.
    let layer = bytes(3 << 20, 31);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer_d = dist_push_blob(&dist.base, repo, &[&layer]).await;
    let config_d = dist_push_blob(&dist.base, repo, &[config]).await;
    let manifest = oci_manifest(
        (&config_d, config.len()),
        &[(&layer_d, layer.len())],
        None,
        None,
    );
    let manifest_d = sha256(&manifest);
    let r = request(
        Method::PUT,
        &format!("{}/v2/{repo}/manifests/v1", dist.base),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.clone(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Leftovers. distribution's: 12 MiB into the image's repository (one part of an
    // in-progress multipart upload, hash states at 0 and 12 MiB), 1 KiB into a repository
    // that has nothing else. Ours: the same, which leaves tails.
    let started = bytes(12 << 20, 32);
    let (dist_id, _) = abandon_upload(&dist.base, repo, &started).await;
    let (dist_small_id, dist_small_loc) =
        abandon_upload(&dist.base, "tol/dist-upload-only", &bytes(1024, 33)).await;
    let tails_before = ks3.server.requests_matching("PUT", "/reg/~tails/");
    let ours_started = bytes(12 << 20, 34);
    let (ours_id, ours_loc) = abandon_upload(&ours.base, repo, &ours_started).await;
    abandon_upload(&ours.base, "tol/our-upload-only", &bytes(1024, 35)).await;
    assert!(
        ks3.server.requests_matching("PUT", "/reg/~tails/") > tails_before,
        "our uploads left tails under <root>/~tails/"
    );

    // Both see the same store.
    for base in [&ours.base, &dist.base] {
        assert_eq!(
            catalog_of(base).await,
            serde_json::json!([repo]),
            "catalog at {base}"
        );
        assert_eq!(tags_of(base, repo).await, ["v1"], "tags at {base}");
        let m = get_manifest(base, repo, "v1").await;
        assert_eq!(m.status, StatusCode::OK, "manifest at {base}");
        assert!(m.body == manifest);
        assert!(
            get_blob(base, repo, &layer_d).await == layer,
            "layer at {base}"
        );
    }
    let gc = dist.garbage_collect(true, false);
    assert!(gc.success, "{}\n{}", gc.stdout, gc.stderr);
    assert!(!gc.stderr.contains("level=error"), "{}", gc.stderr);
    assert_eq!(gc.summary(), (3, 0, 0), "{}", gc.stdout);
    assert_eq!(
        gc.marked(),
        [manifest_d.clone(), layer_d.clone(), config_d.clone()].into()
    );

    // distribution's upload, finished here: its status, 3 MiB more, and the PUT whose
    // digest comes from distribution's saved state at 12 MiB plus ours at 15 MiB.
    let up = format!("{}/v2/{repo}/blobs/uploads/{dist_id}", ours.base);
    let s = request(Method::GET, &up, &[], Vec::new()).await;
    assert_eq!(
        s.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&s.body)
    );
    assert_eq!(
        s.header("range"),
        Some(format!("0-{}", (12 << 20) - 1).as_str())
    );
    let more = bytes(3 << 20, 36);
    let range = format!("{}-{}", 12 << 20, (15 << 20) - 1);
    let r = request(
        Method::PATCH,
        &up,
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &range),
        ],
        more.clone(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let whole = [started.as_slice(), more.as_slice()].concat();
    let whole_d = sha256(&whole);
    let before = ours.registry.stats();
    let r = request(
        Method::PUT,
        &format!("{up}?digest={whole_d}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let after = ours.registry.stats();
    assert_eq!(
        (
            after.digests_from_saved_state - before.digests_from_saved_state,
            after.digests_from_reread - before.digests_from_reread
        ),
        (1, 0),
        "the digest came from the saved hash states, nothing was read back"
    );
    assert!(
        get_blob(&dist.base, repo, &whole_d).await == whole,
        "served by distribution"
    );

    // distribution's other upload, cancelled here: its multipart upload is aborted and
    // distribution no longer knows it.
    let r = request(
        Method::DELETE,
        &format!(
            "{}/v2/tol/dist-upload-only/blobs/uploads/{dist_small_id}",
            ours.base
        ),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let r = request(Method::GET, &dist_small_loc, &[], Vec::new()).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // Ours, sent to distribution (a client moved mid-upload, without the `_state` token
    // only distribution issues): refused as unknown, and no harm done; finished here.
    let more = bytes(1 << 20, 37);
    let r = request(
        Method::PATCH,
        &format!("{}/v2/{repo}/blobs/uploads/{ours_id}", dist.base),
        &[("content-type", "application/octet-stream")],
        more.clone(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.error_code().starts_with("BLOB_UPLOAD_"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let whole = [ours_started.as_slice(), more.as_slice()].concat();
    let whole_d = sha256(&whole);
    let r = request(
        Method::PUT,
        &format!("{ours_loc}?digest={whole_d}"),
        &[("content-type", "application/octet-stream")],
        more,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        get_blob(&dist.base, repo, &whole_d).await == whole,
        "served by distribution"
    );

    let h = request(
        Method::GET,
        &format!("{}/debug/health", dist.debug_base),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(h.status, StatusCode::OK);
    assert_no_server_errors(&dist);
    assert_fsck_clean(&ours).await;
}

/// A closing `PUT` whose blob cannot be stored (every attempt at the blob's path answered
/// 500) fails in both registries, and in both the session is gone afterwards: 2.8.2
/// cancels an upload whose commit failed, and this registry drops a small upload's
/// directory beside the blob's writes (its bytes are in memory by then). Asked about the
/// session, this registry answers 404 `BLOB_UPLOAD_UNKNOWN` and 2.8.2 a 500 naming the
/// missing data. In both a new upload of the same bytes then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_whose_blob_cannot_be_stored_ends_its_session_in_both() {
    let (ks3, ours, dist) = both(ROOT).await;
    for (who, base, seed) in [
        ("ours", ours.base.as_str(), 77),
        ("2.8.2", dist.base.as_str(), 78),
    ] {
        // Bytes of its own for each: one registry's blob is the other's on one root.
        let data = bytes(64 * 1024, seed);
        let digest = sha256(&data);
        let absolute = |l: &str| {
            if l.starts_with('/') {
                format!("{base}{l}")
            } else {
                l.to_string()
            }
        };
        let repo = format!("failing/{}", if who == "ours" { "a" } else { "b" });
        let r = request(
            Method::POST,
            &format!("{base}/v2/{repo}/blobs/uploads/"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{who} POST");
        let location = absolute(r.header("location").expect("Location"));
        let r = request(
            Method::PATCH,
            &location,
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{who} PATCH");
        let location = absolute(r.header("location").expect("Location"));
        // Every write at the blob's path fails, through either registry's retries (a PUT
        // of the bytes for ours, a PUT with a copy source for 2.8.2's move).
        ks3.server.faults().inject(
            ks3_local::FaultRule::parse("PUT:/blobs/sha256/:1000:500:InternalError")
                .expect("fault rule"),
        );
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = request(
            Method::PUT,
            &format!("{location}{sep}digest={digest}"),
            &[],
            Vec::new(),
        )
        .await;
        ks3.server.faults().clear();
        assert!(
            put.status.is_server_error(),
            "{who}: PUT answered {} {}",
            put.status,
            String::from_utf8_lossy(&put.body)
        );
        let status = request(Method::GET, &location, &[], Vec::new()).await;
        let said = String::from_utf8_lossy(&status.body).to_string();
        if who == "ours" {
            assert_eq!(status.status, StatusCode::NOT_FOUND, "{who}: {said}");
            assert_eq!(status.error_code(), "BLOB_UPLOAD_UNKNOWN", "{who}");
        } else {
            // 2.8.2 cancelled the upload too, but its status request then fails on the
            // missing data (500 UNKNOWN, the driver's PathNotFound as the detail) where
            // the spec says 404 BLOB_UPLOAD_UNKNOWN.
            assert_eq!(
                status.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{who}: {said}"
            );
            assert!(
                said.contains("\"Path\"") && said.contains("/_uploads/"),
                "{who}: {said}"
            );
        }
        // A new upload of the same bytes goes through: POST, then PUT with the body.
        let r = request(
            Method::POST,
            &format!("{base}/v2/{repo}/blobs/uploads/"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{who} POST again");
        let location = absolute(r.header("location").expect("Location"));
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = request(
            Method::PUT,
            &format!("{location}{sep}digest={digest}"),
            &[("content-type", "application/octet-stream")],
            data.clone(),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{who} PUT again");
        assert!(
            get_blob(base, &repo, &digest).await == data,
            "{who}: the bytes"
        );
    }
}
