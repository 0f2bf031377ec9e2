//! Garbage collection while the registry serves: a collection and pushes interleaved on
//! purpose (each interleaving of `ks3_registry::fence` forced with ks3-local's injected
//! delays), and pushes racing a collection run in a loop. The oracle is the client's:
//! every push the registry acknowledged (201) pulls whole afterwards, and nothing
//! refused left a tag or a link behind.
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use ks3_driver_host::Driver;
use ks3_registry::gc::{collect_garbage, GcOptions, GcReport};
use ks3_registry::{Config, Storage};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry on the test binary's shared `ks3-local`, under its own root, whose
/// requests count on collections settling for `settle`.
async fn registry(root: &str, settle: &str) -> Served {
    let yaml = format!(
        "storage:\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n    gc:\n      settle: {settle}\n"
    );
    let mut config = Config::from_yaml(&yaml).expect("valid config");
    config.storage = Storage::Ks3(ks3_tests::params(root));
    serve(config).await
}

fn opts(settle: Duration, min_age: Duration) -> GcOptions {
    GcOptions {
        delete_untagged: true,
        min_age,
        settle,
        ..GcOptions::default()
    }
}

async fn gc(driver: &Driver, o: &GcOptions) -> GcReport {
    collect_garbage(driver, o, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("gc: {e}"))
}

/// Faults only for this test's keys (the server is shared by the binary's tests).
fn delay(root: &str, method: &str, path_part: &str, ms: u64) {
    ks3_tests::server().faults().inject(
        ks3_local::FaultRule::parse(&format!("{method}:{root}{path_part}:1:delay={ms}"))
            .expect("fault rule"),
    );
}

/// Waits until a collection has announced its candidates.
async fn sweep_announced(driver: &Driver) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let records = ks3_registry::fence::list_records(driver)
            .await
            .expect("records");
        if !records.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "no sweep record appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn put_manifest(base: &str, repo: &str, tag: &str, body: &[u8]) -> Resp {
    request(
        Method::PUT,
        &format!("{base}/v2/{repo}/manifests/{tag}"),
        &[("content-type", OCI_MANIFEST)],
        body.to_vec(),
    )
    .await
}

fn manifest_of(blobs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let layers: Vec<(&str, usize)> = blobs[1..]
        .iter()
        .map(|(d, b)| (d.as_str(), b.len()))
        .collect();
    oci_manifest((blobs[0].0.as_str(), blobs[0].1.len()), &layers, None, None)
}

async fn push_blobs(base: &str, repo: &str, seed: u64, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..n {
        // `bytes` ignores a seed's lowest bit: odd seeds only.
        let b = bytes(200 + i * 37, seed * 1000 + 2 * i as u64 + 1);
        out.push((push_blob(base, repo, &b).await, b));
    }
    out
}

/// The manifest and every blob pull byte for byte.
async fn assert_pulls(base: &str, repo: &str, tag: &str, body: &[u8], blobs: &[(String, Vec<u8>)]) {
    let m = request(
        Method::GET,
        &format!("{base}/v2/{repo}/manifests/{tag}"),
        &[("accept", OCI_MANIFEST)],
        vec![],
    )
    .await;
    assert_eq!(m.status, StatusCode::OK, "{repo}:{tag}");
    assert_eq!(m.body, body, "{repo}:{tag}'s manifest");
    for (d, b) in blobs {
        let r = request(
            Method::GET,
            &format!("{base}/v2/{repo}/blobs/{d}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{repo}:{tag}: blob {d}");
        assert_eq!(&r.body, b, "{repo}:{tag}: blob {d}");
    }
}

/// The push read the records before the collection wrote its own, and its links landed
/// while the collection settled: the re-scan spares the manifest and its blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_linked_while_the_collection_settles_is_spared() {
    let root = ks3_tests::unique_root("gc-online-spared");
    let reg = registry(&root, "4s").await;
    let blobs = push_blobs(&reg.base, "app", 1, 3).await;
    let body = manifest_of(&blobs);
    // The revision link's PUT lands 1.5 s late: the collection marks without it.
    delay(
        &root,
        "PUT",
        "/docker/registry/v2/repositories/app/_manifests/revisions",
        1500,
    );
    let base = reg.base.clone();
    let b2 = body.clone();
    let push = tokio::spawn(async move { put_manifest(&base, "app", "v1", &b2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = gc(
        reg.registry.driver(),
        &opts(Duration::from_secs(4), Duration::ZERO),
    )
    .await;
    let r = push.await.expect("push");
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        report.blobs_eligible.len() >= 3 && report.spared >= 3,
        "the blobs were candidates, then spared: {report:?}"
    );
    assert_eq!(
        report.blobs_deleted,
        report.blobs_eligible.len() - report.spared.min(report.blobs_eligible.len())
    );
    assert_pulls(&reg.base, "app", "v1", &body, &blobs).await;
    // A second collection now marks them through the tag.
    let again = gc(
        reg.registry.driver(),
        &opts(Duration::from_millis(100), Duration::ZERO),
    )
    .await;
    assert_eq!(again.blobs_deleted, 0, "{again:?}");
}

/// The push found the collection's record naming its blobs: it waits for the sweep,
/// then answers as for any missing blob, having written nothing; the client uploads
/// again and the push succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_that_finds_the_sweep_waits_and_is_refused_cleanly() {
    let root = ks3_tests::unique_root("gc-online-wait");
    let reg = registry(&root, "2s").await;
    let blobs = push_blobs(&reg.base, "app", 2, 2).await;
    let body = manifest_of(&blobs);
    let driver = reg.registry.driver().clone();
    let collection =
        tokio::spawn(
            async move { gc(&driver, &opts(Duration::from_secs(2), Duration::ZERO)).await },
        );
    sweep_announced(reg.registry.driver()).await;
    let began = Instant::now();
    let r = put_manifest(&reg.base, "app", "v1", &body).await;
    let report = collection.await.expect("gc");
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN");
    assert!(
        began.elapsed() >= Duration::from_millis(1500),
        "it waited for the sweep"
    );
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    let tag = request(
        Method::GET,
        &format!("{}/v2/app/manifests/v1", reg.base),
        &[("accept", OCI_MANIFEST)],
        vec![],
    )
    .await;
    assert_eq!(
        tag.status,
        StatusCode::NOT_FOUND,
        "the refused push left no tag"
    );
    // The client does what skopeo does: uploads the blobs again, pushes again.
    for (_, b) in &blobs {
        push_blob(&reg.base, "app", b).await;
    }
    let r = put_manifest(&reg.base, "app", "v1", &body).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_pulls(&reg.base, "app", "v1", &body, &blobs).await;
}

/// The push's links landed after the collection's re-scan (the request took longer
/// than `settle`): it reads the records again, finds the sweep's tombstone naming what it
/// relies on, and takes its push back instead of acknowledging a manifest whose layers
/// are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_slower_than_settle_checks_again_and_takes_itself_back() {
    let root = ks3_tests::unique_root("gc-online-slow");
    let reg = registry(&root, "1s").await;
    let blobs = push_blobs(&reg.base, "app", 3, 2).await;
    let body = manifest_of(&blobs);
    delay(
        &root,
        "PUT",
        "/docker/registry/v2/repositories/app/_manifests/revisions",
        3000,
    );
    let base = reg.base.clone();
    let b2 = body.clone();
    let push = tokio::spawn(async move { put_manifest(&base, "app", "v1", &b2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = gc(
        reg.registry.driver(),
        &opts(Duration::from_secs(1), Duration::ZERO),
    )
    .await;
    assert!(
        report.blobs_deleted >= 2 && report.spared == 0,
        "the re-scan came before the link: {report:?}"
    );
    let r = push.await.expect("push");
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.error_code(), "MANIFEST_BLOB_UNKNOWN");
    let tag = request(
        Method::GET,
        &format!("{}/v2/app/manifests/v1", reg.base),
        &[("accept", OCI_MANIFEST)],
        vec![],
    )
    .await;
    assert_eq!(
        tag.status,
        StatusCode::NOT_FOUND,
        "no tag names a manifest with missing layers"
    );
    let by_digest = request(
        Method::GET,
        &format!("{}/v2/app/manifests/{}", reg.base, sha256(&body)),
        &[("accept", OCI_MANIFEST)],
        vec![],
    )
    .await;
    assert_eq!(
        by_digest.status,
        StatusCode::NOT_FOUND,
        "nor does the repository link it"
    );
}

/// An upload of a blob that is already stored and a candidate, and a mount of one: both
/// wait for the sweep, then store the bytes again (the upload) or fall back to an upload
/// (the mount); both blobs are whole afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_mounts_of_a_candidate_wait_for_the_sweep() {
    let root = ks3_tests::unique_root("gc-online-upload");
    let reg = registry(&root, "2s").await;
    let blobs = push_blobs(&reg.base, "src", 4, 2).await;
    let driver = reg.registry.driver().clone();
    let collection =
        tokio::spawn(
            async move { gc(&driver, &opts(Duration::from_secs(2), Duration::ZERO)).await },
        );
    sweep_announced(reg.registry.driver()).await;
    let (d0, b0) = &blobs[0];
    let (d1, _) = &blobs[1];
    let up = push_blob(&reg.base, "dst", b0);
    let mount_url = format!("{}/v2/other/blobs/uploads/?mount={d1}&from=src", reg.base);
    let mount = request(Method::POST, &mount_url, &[], vec![]);
    let (up, mount) = tokio::join!(up, mount);
    let report = collection.await.expect("gc");
    assert_eq!(&up, d0);
    assert_eq!(report.blobs_deleted, 2, "{report:?}");
    assert_eq!(
        mount.status,
        StatusCode::ACCEPTED,
        "the mount's source was swept: an upload instead"
    );
    let r = request(
        Method::GET,
        &format!("{}/v2/dst/blobs/{d0}", reg.base),
        &[],
        vec![],
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the upload acknowledged during the sweep is stored"
    );
    assert_eq!(&r.body, b0);
}

/// The measurement: a client pushes images while `gc -m` runs in a loop. With
/// the default `min_age` no push fails; with none, a push may be refused (its blobs
/// swept before its manifest came) and the client uploads again — but every
/// acknowledged push pulls whole, and the loop did delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_racing_a_collection_loop_lose_nothing() {
    for (min_age, refusals_allowed) in [(Duration::from_secs(3600), false), (Duration::ZERO, true)]
    {
        let root = ks3_tests::unique_root("gc-online-loop");
        let reg = registry(&root, "300ms").await;
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let deleted = Arc::new(AtomicUsize::new(0));
        let collector = {
            let (driver, stop, runs, deleted) = (
                reg.registry.driver().clone(),
                stop.clone(),
                runs.clone(),
                deleted.clone(),
            );
            tokio::spawn(async move {
                let o = opts(Duration::from_millis(300), min_age);
                while !stop.load(Ordering::Relaxed) {
                    let r = gc(&driver, &o).await;
                    runs.fetch_add(1, Ordering::Relaxed);
                    deleted.fetch_add(r.blobs_deleted, Ordering::Relaxed);
                }
            })
        };
        let mut acknowledged = Vec::new();
        let mut refused = 0;
        // At least 40 images, and until the loop has collected at least 3 times.
        let mut i = 0u64;
        while i < 40 || (runs.load(Ordering::Relaxed) < 3 && i < 2_000) {
            i += 1;
            let repo = format!("app{}", i % 3);
            // A shared base layer, two of its own; and an orphan for the collector.
            let mut blobs = vec![(String::new(), bytes(100, 7_001 + 2 * i))];
            blobs.push((String::new(), bytes(3000, 42)));
            blobs.push((String::new(), bytes(500 + i as usize, 8_001 + 2 * i)));
            push_blob(&reg.base, &repo, &bytes(77, 9_001 + 2 * i)).await;
            let mut attempts = 0;
            loop {
                for (d, b) in blobs.iter_mut() {
                    *d = push_blob(&reg.base, &repo, b).await;
                }
                let body = manifest_of(&blobs);
                let tag = format!("t{i}");
                let r = put_manifest(&reg.base, &repo, &tag, &body).await;
                if r.status == StatusCode::CREATED {
                    acknowledged.push((repo.clone(), tag, body, blobs.clone()));
                    break;
                }
                assert_eq!(
                    r.error_code(),
                    "MANIFEST_BLOB_UNKNOWN",
                    "{}",
                    String::from_utf8_lossy(&r.body)
                );
                refused += 1;
                attempts += 1;
                assert!(attempts < 10, "a push kept being refused");
            }
        }
        stop.store(true, Ordering::Relaxed);
        collector.await.expect("collector");
        // One more collection with nothing in flight.
        let last = gc(
            reg.registry.driver(),
            &opts(Duration::from_millis(300), Duration::ZERO),
        )
        .await;
        eprintln!(
            "min_age {min_age:?}: {} collections, {} blobs deleted during the pushes, {} after; {refused} pushes refused, {} acknowledged",
            runs.load(Ordering::Relaxed),
            deleted.load(Ordering::Relaxed),
            last.blobs_deleted,
            acknowledged.len()
        );
        assert!(runs.load(Ordering::Relaxed) >= 3, "the loop ran");
        if !refusals_allowed {
            assert_eq!(refused, 0, "with the default min_age no push is refused");
        }
        assert!(
            deleted.load(Ordering::Relaxed) + last.blobs_deleted >= 40,
            "the orphans were collected: {last:?}"
        );
        for (repo, tag, body, blobs) in &acknowledged {
            assert_pulls(&reg.base, repo, tag, body, blobs).await;
        }
    }
}

/// A blob mounted into a repository a moment ago waits for its manifest as an uploaded
/// one does: `min_age` counts from its youngest `_layers` link, not only from its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blob_mounted_within_min_age_is_kept() {
    let root = ks3_tests::unique_root("gc-online-mount");
    let reg = registry(&root, "1s").await;
    let blobs = push_blobs(&reg.base, "src", 5, 2).await;
    // Older than the min_age below by the time the collection looks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (d0, b0) = &blobs[0];
    let mount = request(
        Method::POST,
        &format!("{}/v2/dst/blobs/uploads/?mount={d0}&from=src", reg.base),
        &[],
        vec![],
    )
    .await;
    assert_eq!(mount.status, StatusCode::CREATED);
    let report = gc(
        reg.registry.driver(),
        &opts(Duration::from_millis(200), Duration::from_secs(2)),
    )
    .await;
    assert_eq!(report.blobs_too_recent, 1, "{report:?}");
    assert_eq!(
        report.blobs_deleted, 1,
        "the other one is old and unlinked since"
    );
    let r = request(
        Method::GET,
        &format!("{}/v2/dst/blobs/{d0}", reg.base),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body, b0);
}
