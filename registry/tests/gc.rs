//! Garbage collection and upload purging on a real store: images pushed through the
//! registry's HTTP API (real sockets, the real component, `ks3-local`), then collected
//! with `ks3_registry::gc`, then pulled again; uploads purged with their KS3 multipart
//! uploads, checked with signed listings straight to the server. When
//! `docker-registry` (distribution 2.8.2) is installed, its `garbage-collect --dry-run`
//! runs on the same store and must print the same lines.
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use ks3_registry::gc::{collect_garbage, GcError, GcOptions, GcReport};
use ks3_registry::purge::purge_uploads;
use ks3_registry::{Config, Storage};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry on the test binary's shared `ks3-local`, under its own root.
async fn registry(root: &str, extra_yaml: &str) -> Served {
    let yaml = format!(
        "storage:\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n{extra_yaml}"
    );
    let mut config = Config::from_yaml(&yaml).expect("valid config");
    config.storage = Storage::Ks3(ks3_tests::params(root));
    serve(config).await
}

fn no_purging() -> &'static str {
    "  maintenance:\n    uploadpurging:\n      enabled: false\n"
}

/// Pushes a manifest; returns its digest.
async fn put_manifest(base: &str, repo: &str, reference: &str, media: &str, body: &[u8]) -> String {
    let r = request(
        Method::PUT,
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        &[("content-type", media)],
        body.to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    sha256(body)
}

/// An image: its blobs (config first) and its manifest, pushed to `repo` under
/// `reference`.
struct Image {
    blobs: Vec<(String, Vec<u8>)>,
    manifest: String,
    body: Vec<u8>,
}

async fn push_image(base: &str, repo: &str, reference: &str, blobs: &[Vec<u8>]) -> Image {
    let mut pushed = Vec::new();
    for b in blobs {
        pushed.push((push_blob(base, repo, b).await, b.clone()));
    }
    let layers: Vec<(&str, usize)> = pushed[1..]
        .iter()
        .map(|(d, b)| (d.as_str(), b.len()))
        .collect();
    let body = oci_manifest(
        (pushed[0].0.as_str(), pushed[0].1.len()),
        &layers,
        None,
        None,
    );
    let manifest = put_manifest(base, repo, reference, OCI_MANIFEST, &body).await;
    Image {
        blobs: pushed,
        manifest,
        body,
    }
}

fn index_of(children: &[&Image]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().enumerate().map(|(i, c)| {
            let arch = ["amd64", "arm64"][i % 2];
            serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": c.manifest, "size": c.body.len(),
                "platform": {"architecture": arch, "os": "linux"}
            })
        }).collect::<Vec<_>>(),
    }))
    .expect("json")
}

async fn gc(reg: &Served, dry_run: bool, delete_untagged: bool) -> (GcReport, Vec<String>) {
    let mut lines = Vec::new();
    let opts = GcOptions {
        dry_run,
        delete_untagged,
        ..GcOptions::default()
    };
    let mut out = |l: &str| lines.extend(l.split('\n').map(str::to_string));
    let report = collect_garbage(reg.registry.driver(), &opts, &mut out)
        .await
        .unwrap_or_else(|e| panic!("gc: {e}"));
    (report, lines)
}

/// Every object key under the test's root, hidden ones included.
async fn keys(root: &str) -> Vec<String> {
    ks3_tests::list_keys(&ks3_tests::key_prefix(root)).await
}

fn blob_key(root: &str, d: &str) -> String {
    let hex = d.strip_prefix("sha256:").expect("sha256");
    format!(
        "{}docker/registry/v2/blobs/sha256/{}/{hex}/data",
        ks3_tests::key_prefix(root),
        &hex[..2]
    )
}

async fn assert_pullable(base: &str, repo: &str, reference: &str, media: &str, image: &Image) {
    let r = request(
        Method::GET,
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        &[("accept", media)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{repo}:{reference}");
    assert_eq!(r.body, image.body, "{repo}:{reference}");
    for (d, bytes) in &image.blobs {
        let r = request(
            Method::GET,
            &format!("{base}/v2/{repo}/blobs/{d}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{repo} blob {d}");
        assert!(r.body == *bytes, "{repo} blob {d}: bytes differ");
    }
}

/// The store of the GC tests: three repositories, a layer shared across two of them, an
/// OCI index with two children, a re-tagged (so untagged) image, an image pushed by
/// digest only, and an orphan blob.
struct Store {
    app_v1_old: Image,
    app_v1: Image,
    app_untagged: Image,
    base: Image,
    child_a: Image,
    child_b: Image,
    index: Image,
    orphan: String,
}

async fn fill(base_url: &str) -> Store {
    let b = |n: usize, seed: u64| bytes(n, seed);
    let shared = b(70_000, 2);
    let app_v1_old = push_image(
        base_url,
        "app",
        "v1",
        &[b(300, 1), b(50_000, 11), shared.clone()],
    )
    .await;
    let base = push_image(
        base_url,
        "lib/base",
        "latest",
        &[b(310, 3), shared.clone(), b(90_000, 4)],
    )
    .await;
    let child_a = push_image(base_url, "multi", "placeholder", &[b(320, 5), b(1000, 6)]).await;
    let child_b = push_image(base_url, "multi", "placeholder", &[b(330, 7), b(2000, 8)]).await;
    let index_body = index_of(&[&child_a, &child_b]);
    let index_digest = put_manifest(base_url, "multi", "v1", OCI_INDEX, &index_body).await;
    // The children keep no tag of their own.
    let r = request(
        Method::DELETE,
        &format!("{base_url}/v2/multi/manifests/placeholder"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let index = Image {
        blobs: Vec::new(),
        manifest: index_digest,
        body: index_body,
    };
    let orphan = push_blob(base_url, "app", &b(40_000, 9)).await;
    // v1 moves to a new image that keeps one of the old layers.
    let app_v1 = push_image(
        base_url,
        "app",
        "v1",
        &[b(340, 10), app_v1_old.blobs[1].1.clone()],
    )
    .await;
    // Pushed under a tag that is then deleted: the manifest stays, untagged.
    let app_untagged = push_image(base_url, "app", "tmp", &[b(350, 12), b(3000, 13)]).await;
    let r = request(
        Method::DELETE,
        &format!("{base_url}/v2/app/manifests/tmp"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    Store {
        app_v1_old,
        app_v1,
        app_untagged,
        base,
        child_a,
        child_b,
        index,
        orphan,
    }
}

/// fsck finds nothing wrong in what the test left (`_layers` links to swept blobs are
/// leftovers, kept by GC as by distribution 2.8.2).
async fn assert_fsck_clean(reg: &Served) {
    let opts = ks3_registry::fsck::FsckOptions::default();
    let r = ks3_registry::fsck::fsck(reg.registry.driver(), &opts)
        .await
        .expect("fsck");
    assert!(r.is_clean(), "{}: {:#?}", r.summary_line(), r.problems);
}

fn marked_set(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| {
            l.split_once(": marking manifest ")
                .or_else(|| l.split_once(": marking blob "))
                .map(|(_, d)| d.trim_end().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_what_is_referenced_and_sweeps_the_rest() {
    let root = ks3_tests::unique_root("gc");
    let reg = registry(&root, no_purging()).await;
    let base = reg.base.clone();
    let s = fill(&base).await;
    let before = keys(&root).await;

    // Dry run with --delete-untagged: everything reported, nothing deleted.
    let (report, lines) = gc(&reg, true, true).await;
    assert_eq!(keys(&root).await, before, "a dry run deletes nothing");
    let eligible_manifests: BTreeSet<&str> = report
        .manifests_eligible
        .iter()
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(
        eligible_manifests,
        BTreeSet::from([
            s.app_v1_old.manifest.as_str(),
            s.app_untagged.manifest.as_str()
        ]),
        "the untagged manifests; the index's children are kept by it"
    );
    let expect_eligible: BTreeSet<String> = [
        s.orphan.clone(),
        s.app_v1_old.manifest.clone(),
        s.app_v1_old.blobs[0].0.clone(),
        s.app_untagged.manifest.clone(),
        s.app_untagged.blobs[0].0.clone(),
        s.app_untagged.blobs[1].0.clone(),
    ]
    .into();
    assert_eq!(
        report
            .blobs_eligible
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        expect_eligible
    );
    assert!(lines.contains(&format!(
        "manifest eligible for deletion: {}",
        s.app_v1_old.manifest
    )));
    assert!(
        lines.contains(
            &"14 blobs marked, 6 blobs and 2 manifests eligible for deletion".to_string()
        ),
        "{lines:#?}"
    );

    // Without --delete-untagged: every manifest is marked, only the orphan goes.
    let (report, lines) = gc(&reg, false, false).await;
    assert_eq!(report.repositories, ["app", "lib/base", "multi"]);
    assert_eq!(report.blobs_eligible, std::slice::from_ref(&s.orphan));
    assert_eq!(report.blobs_deleted, 1);
    // distribution's lines, in its order for the first repository.
    let app_lines: Vec<&str> = lines.iter().take(4).map(String::as_str).collect();
    let first = [&s.app_v1_old, &s.app_v1, &s.app_untagged]
        .into_iter()
        .min_by_key(|i| i.manifest.clone())
        .expect("three");
    assert_eq!(app_lines[0], "app");
    assert_eq!(
        app_lines[1],
        format!("app: marking manifest {} ", first.manifest)
    );
    assert_eq!(
        app_lines[2],
        format!("app: marking blob {}", first.blobs[0].0)
    );
    assert!(lines.contains(&"lib/base".to_string()));
    assert!(lines.contains(&format!("multi: marking blob {}", s.child_b.manifest)));
    let count_at = lines
        .iter()
        .position(|l| l == "19 blobs marked, 1 blobs and 0 manifests eligible for deletion")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(lines[count_at - 1], "", "the count follows an empty line");
    assert_eq!(
        lines[count_at + 1],
        format!("blob eligible for deletion: {}", s.orphan)
    );
    let after = keys(&root).await;
    assert!(!after.contains(&blob_key(&root, &s.orphan)));
    assert_eq!(after.len(), before.len() - 1, "only the orphan's data went");

    // With --delete-untagged: the untagged manifests go, then their blobs in the same run.
    let (report, lines) = gc(&reg, false, true).await;
    assert_eq!(report.manifests_deleted, 2);
    assert_eq!(report.blobs_deleted, 5);
    assert!(lines
        .contains(&"14 blobs marked, 5 blobs and 2 manifests eligible for deletion".to_string()));
    let after = keys(&root).await;
    for gone in [
        &s.app_v1_old.manifest,
        &s.app_v1_old.blobs[0].0,
        &s.app_untagged.manifest,
        &s.app_untagged.blobs[1].0,
    ] {
        assert!(!after.contains(&blob_key(&root, gone)), "{gone} swept");
    }
    let r = request(
        Method::GET,
        &format!("{base}/v2/app/manifests/{}", s.app_untagged.manifest),
        &[("accept", OCI_MANIFEST)],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "an untagged manifest is gone"
    );
    let tag_index_left = after.iter().any(|k| {
        k.contains("/tags/v1/index/")
            && k.contains(s.app_v1_old.manifest.trim_start_matches("sha256:"))
    });
    assert!(!tag_index_left, "its tag history entry went with it");

    // Everything kept is still served, byte for byte.
    assert_pullable(&base, "app", "v1", OCI_MANIFEST, &s.app_v1).await;
    assert_pullable(&base, "lib/base", "latest", OCI_MANIFEST, &s.base).await;
    assert_pullable(&base, "multi", "v1", OCI_INDEX, &s.index).await;
    assert_pullable(
        &base,
        "multi",
        &s.child_a.manifest,
        OCI_MANIFEST,
        &s.child_a,
    )
    .await;
    assert_pullable(
        &base,
        "multi",
        &s.child_b.manifest,
        OCI_MANIFEST,
        &s.child_b,
    )
    .await;

    // Nothing left to collect.
    let (report, lines) = gc(&reg, false, true).await;
    assert!(report.blobs_eligible.is_empty() && report.manifests_eligible.is_empty());
    assert!(lines
        .contains(&"14 blobs marked, 0 blobs and 0 manifests eligible for deletion".to_string()));
    assert_eq!(marked_set(&lines), report.marked);
    assert_fsck_clean(&reg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_deletes_nothing_when_a_manifest_cannot_be_read() {
    let root = ks3_tests::unique_root("gc-bad");
    let reg = registry(&root, no_purging()).await;
    let orphan = push_blob(&reg.base, "app", &bytes(1000, 1)).await;
    // A revision whose bytes are not a manifest (written straight into the bucket).
    let junk = b"{\"schemaVersion\":2,\"mediaType\":\"application/x-unknown\"}";
    let d = sha256(junk);
    let hex = d.trim_start_matches("sha256:");
    let driver = reg.registry.driver();
    driver
        .put_content(
            &format!("/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]),
            junk,
        )
        .await
        .expect("put");
    driver
        .put_content(
            &format!("/docker/registry/v2/repositories/app/_manifests/revisions/sha256/{hex}/link"),
            d.as_bytes(),
        )
        .await
        .expect("put");
    let before = keys(&root).await;
    let mut out = |_: &str| {};
    let e = collect_garbage(driver, &GcOptions::default(), &mut out)
        .await
        .expect_err("an unreadable manifest stops the collection");
    assert!(matches!(e, GcError::Invalid(_)), "{e}");
    assert!(e.to_string().contains(&d), "{e}");
    assert_eq!(keys(&root).await, before, "nothing deleted");
    assert!(before.contains(&blob_key(&root, &orphan)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_min_age_keeps_recent_blobs() {
    let root = ks3_tests::unique_root("gc-age");
    let reg = registry(&root, no_purging()).await;
    let orphan = push_blob(&reg.base, "app", &bytes(1000, 1)).await;
    let mut out = |_: &str| {};
    let opts = GcOptions {
        min_age: Duration::from_secs(3600),
        ..GcOptions::default()
    };
    let r = collect_garbage(reg.registry.driver(), &opts, &mut out)
        .await
        .expect("gc");
    assert_eq!(r.blobs_too_recent, 1);
    assert!(r.blobs_eligible.is_empty());
    assert!(keys(&root).await.contains(&blob_key(&root, &orphan)));
    let r = collect_garbage(reg.registry.driver(), &GcOptions::default(), &mut out)
        .await
        .expect("gc");
    assert_eq!(r.blobs_deleted, 1);
    assert_fsck_clean(&reg).await;
}

/// Starts an upload and sends `n` bytes in one PATCH (closed, so resumable); its id.
async fn start_upload(base: &str, repo: &str, n: usize) -> String {
    let r = request(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").expect("location").to_string();
    let id = location
        .split('/')
        .next_back()
        .and_then(|s| s.split('?').next())
        .expect("id")
        .to_string();
    if n > 0 {
        let r = request(
            Method::PATCH,
            &format!("{base}/v2/{repo}/blobs/uploads/{id}"),
            &[
                ("content-type", "application/octet-stream"),
                ("content-range", &format!("0-{}", n - 1)),
            ],
            bytes(n, 42),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    id
}

async fn age_upload(reg: &Served, repo: &str, id: &str) {
    reg.registry
        .driver()
        .put_content(
            &format!("/docker/registry/v2/repositories/{repo}/_uploads/{id}/startedat"),
            b"2020-01-01T00:00:00Z",
        )
        .await
        .expect("startedat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purging_removes_old_uploads_with_their_multipart_uploads() {
    let root = ks3_tests::unique_root("purge");
    let prefix = ks3_tests::key_prefix(&root);
    let reg = registry(&root, no_purging()).await;
    let big = 6 * (1 << 20);
    let old = start_upload(&reg.base, "app", big).await;
    let old_empty = start_upload(&reg.base, "lib/base", 0).await;
    let young = start_upload(&reg.base, "app", big).await;
    age_upload(&reg, "app", &old).await;
    age_upload(&reg, "lib/base", &old_empty).await;
    let uploads_before = ks3_tests::list_uploads(&prefix).await;
    assert!(
        uploads_before.iter().any(|u| u.key.contains(&old)),
        "the old upload holds a multipart upload: {uploads_before:?}"
    );
    let keys_before = keys(&root).await;

    let age = Duration::from_secs(168 * 3600);
    let mut lines = Vec::new();
    let mut out = |l: &str| lines.push(l.to_string());
    let r = purge_uploads(reg.registry.driver(), age, true, 4, &mut out)
        .await
        .expect("dry run");
    let mut eligible: Vec<&str> = r.eligible.iter().map(|u| u.id.as_str()).collect();
    eligible.sort();
    let mut expect = vec![old.as_str(), old_empty.as_str()];
    expect.sort();
    assert_eq!(eligible, expect);
    assert_eq!((r.deleted, r.kept), (0, 1));
    assert!(lines.contains(&format!(
        "app: upload eligible for deletion: {old} (started 2020-01-01T00:00:00Z)"
    )));
    assert_eq!(keys(&root).await, keys_before, "a dry run deletes nothing");
    assert_eq!(ks3_tests::list_uploads(&prefix).await, uploads_before);

    let mut out = |_: &str| {};
    let r = purge_uploads(reg.registry.driver(), age, false, 4, &mut out)
        .await
        .expect("purge");
    assert_eq!((r.deleted, r.kept), (2, 1), "{:?}", r.errors);
    let left = keys(&root).await;
    assert!(
        !left
            .iter()
            .any(|k| k.contains(&old) || k.contains(&old_empty)),
        "nothing of the old uploads is left, tails included: {left:#?}"
    );
    let uploads = ks3_tests::list_uploads(&prefix).await;
    assert!(
        !uploads.iter().any(|u| u.key.contains(&old)),
        "the old multipart upload is aborted: {uploads:?}"
    );
    assert!(
        uploads.iter().any(|u| u.key.contains(&young)),
        "{uploads:?}"
    );

    // The young upload is intact: it finishes.
    let data = bytes(big, 42);
    let r = request(
        Method::PUT,
        &format!(
            "{}/v2/app/blobs/uploads/{young}?digest={}",
            reg.base,
            sha256(&data)
        ),
        &[("content-type", "application/octet-stream")],
        Vec::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_fsck_clean(&reg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_purges_in_the_background() {
    let root = ks3_tests::unique_root("purge-bg");
    let prefix = ks3_tests::key_prefix(&root);
    let setup = registry(&root, no_purging()).await;
    let old = start_upload(&setup.base, "app", 6 * (1 << 20)).await;
    let young = start_upload(&setup.base, "app", 10).await;
    age_upload(&setup, "app", &old).await;
    drop(setup);

    // A dry-run purger leaves it alone...
    let dry = registry(
        &root,
        "  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 1h\n      dryrun: true\n      initialdelay: 0s\n",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(keys(&root).await.iter().any(|k| k.contains(&old)));
    drop(dry);

    // ...a real one removes it (and its multipart upload), and keeps the young one.
    let reg = registry(
        &root,
        "  maintenance:\n    uploadpurging:\n      enabled: true\n      age: 168h\n      interval: 1h\n      dryrun: false\n      initialdelay: 0s\n",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let k = keys(&root).await;
        if !k.iter().any(|k| k.contains(&old)) {
            assert!(
                k.iter().any(|k| k.contains(&young)),
                "the young upload is kept"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old upload is still there: {k:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let uploads = ks3_tests::list_uploads(&prefix).await;
    assert!(!uploads.iter().any(|u| u.key.contains(&old)), "{uploads:?}");
    assert_fsck_clean(&reg).await;
}

/// distribution 2.8.2's `garbage-collect --dry-run` on the same store prints the same
/// lines (the eligible blobs in another order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_marks_the_same_set() {
    let bin = "/usr/bin/docker-registry";
    if !std::path::Path::new(bin).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "docker-registry (distribution 2.8.2) is not installed and CI is set"
        );
        eprintln!("skipped: {bin} is not installed (apt-get install docker-registry)");
        return;
    }
    let root = ks3_tests::unique_root("gc-dist");
    let reg = registry(&root, no_purging()).await;
    let s = fill(&reg.base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  s3:\n    accesskey: {}\n    secretkey: {}\n    region: us-east-1\n    regionendpoint: {}\n    bucket: {}\n    rootdirectory: {root}\n    secure: false\n    v4auth: true\n",
            ks3_tests::ACCESS_KEY,
            ks3_tests::SECRET_KEY,
            ks3_tests::server().endpoint(),
            ks3_tests::BUCKET,
        ),
    )
    .expect("config");
    for untagged in [false, true] {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_remove("AWS_CA_BUNDLE")
            .arg("garbage-collect")
            .arg("--dry-run");
        if untagged {
            cmd.arg("--delete-untagged");
        }
        let output = cmd
            .arg(&config)
            .output()
            .await
            .expect("docker-registry runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "docker-registry garbage-collect failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "docker-registry garbage-collect --dry-run (delete-untagged: {untagged}):\n{stdout}"
        );
        let theirs: Vec<String> = stdout.lines().map(str::to_string).collect();
        let (report, ours) = gc(&reg, true, untagged).await;
        if !untagged {
            assert_eq!(
                marked_set(&theirs),
                report.marked,
                "distribution marks what we mark"
            );
            // Line for line, but for the order of the eligible blobs (a Go map's).
            let mut a = theirs.clone();
            let mut b = ours.clone();
            a.sort();
            b.sort();
            assert_eq!(a, b, "distribution:\n{stdout}\nours:\n{}", ours.join("\n"));
            assert!(theirs.contains(&format!("blob eligible for deletion: {}", s.orphan)));
        } else {
            // 2.8.2 also queues the untagged children of the tagged index, so it marks
            // them only as the index's references and not their config and layers
            // (which it would sweep); we keep them, as distribution v3 does.
            let children_blobs: BTreeSet<String> = [&s.child_a, &s.child_b]
                .iter()
                .flat_map(|c| c.blobs.iter().map(|(d, _)| d.clone()))
                .collect();
            let ours_minus: BTreeSet<String> =
                report.marked.difference(&children_blobs).cloned().collect();
            assert_eq!(marked_set(&theirs), ours_minus);
            for child in [&s.child_a.manifest, &s.child_b.manifest] {
                assert!(theirs.contains(&format!("manifest eligible for deletion: {child}")));
                assert!(!ours.contains(&format!("manifest eligible for deletion: {child}")));
            }
        }
    }
    assert_fsck_clean(&reg).await;
}
