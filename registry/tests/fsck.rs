//! `ks3_registry::fsck` on real stores (the registry's HTTP API, the real component,
//! `ks3-local`): a store broken on purpose in every way fsck knows, each problem found
//! with its kind and path, `--repair` fixing exactly the safe ones (and leaving blob data
//! and revisions alone), a second run finding only the data losses; and a store pushed
//! by real traffic (images, an index, a mount, a deleted manifest, GC) clean.
mod common;

use std::collections::BTreeSet;

use common::*;
use http::{Method, StatusCode};
use ks3_registry::digest::Digest;
use ks3_registry::fsck::{fsck, FsckOptions, FsckReport, Kind, Outcome};
use ks3_registry::gc::{collect_garbage, GcOptions};
use ks3_registry::layout;
use ks3_registry::{Config, Storage};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

async fn registry(root: &str) -> Served {
    let yaml = "storage:\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n  \
                maintenance:\n    uploadpurging:\n      enabled: false\n";
    let mut config = Config::from_yaml(yaml).expect("valid config");
    config.storage = Storage::Ks3(ks3_tests::params(root));
    serve(config).await
}

fn d(s: &str) -> Digest {
    Digest::parse(s).expect("digest")
}

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

/// An image of `blobs` (config first) pushed to `repo:reference`: (manifest, blobs, body).
async fn push_image(
    base: &str,
    repo: &str,
    reference: &str,
    blobs: &[Vec<u8>],
) -> (String, Vec<String>, Vec<u8>) {
    let mut ds = Vec::new();
    for b in blobs {
        ds.push(push_blob(base, repo, b).await);
    }
    let layers: Vec<(&str, usize)> = ds[1..]
        .iter()
        .zip(&blobs[1..])
        .map(|(d, b)| (d.as_str(), b.len()))
        .collect();
    let body = oci_manifest((&ds[0], blobs[0].len()), &layers, None, None);
    let m = put_manifest(base, repo, reference, OCI_MANIFEST, &body).await;
    (m, ds, body)
}

fn index_of(children: &[(&str, usize)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": children.iter().map(|(d, s)| serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": s,
            "platform": {"architecture": "amd64", "os": "linux"}
        })).collect::<Vec<_>>(),
    }))
    .expect("json")
}

/// Starts an upload and sends `n` bytes in one PATCH (its writer closed: a tail); its id.
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
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .expect("id")
        .to_string();
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
    id
}

async fn check(reg: &Served, verify: bool, repair: bool) -> FsckReport {
    let opts = FsckOptions {
        verify_digests: verify,
        repair,
        ..FsckOptions::default()
    };
    fsck(reg.registry.driver(), &opts)
        .await
        .unwrap_or_else(|e| panic!("fsck: {e}"))
}

fn found(r: &FsckReport) -> BTreeSet<(String, String)> {
    r.problems
        .iter()
        .map(|p| (p.kind.as_str().to_string(), p.path.clone()))
        .collect()
}

fn set(items: &[(Kind, String)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(k, p)| (k.as_str().to_string(), p.clone()))
        .collect()
}

/// Every key under the test's root, hidden ones (tails) included.
async fn keys(root: &str) -> Vec<String> {
    ks3_tests::list_keys(&ks3_tests::key_prefix(root)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_each_kind_and_repairs_only_the_safe_ones() {
    let root = ks3_tests::unique_root("fsck-broken");
    let reg = registry(&root).await;
    let (base, drv) = (reg.base.as_str(), reg.registry.driver().clone());
    let b = |n: usize, seed: u64| bytes(n, seed);

    // A healthy image, then what gets broken.
    let (_, _, _) = push_image(base, "ok", "v1", &[b(200, 1), b(3000, 2)]).await;
    let (a, a_blobs, _) = push_image(base, "app", "v1", &[b(210, 3), b(4000, 4), b(5000, 5)]).await;
    let (bm, b_blobs, _) = push_image(base, "app", "v2", &[b(220, 6), b(6000, 7)]).await;
    let (gone, _, _) = push_image(base, "app", "gone", &[b(230, 8), b(7000, 9)]).await;
    let (c1, _, c1_body) = push_image(base, "multi", "c1", &[b(240, 10), b(800, 11)]).await;
    let (c2, _, c2_body) = push_image(base, "multi", "c2", &[b(250, 12), b(900, 13)]).await;
    let index = index_of(&[(&c1, c1_body.len()), (&c2, c2_body.len())]);
    let idx = put_manifest(base, "multi", "latest", OCI_INDEX, &index).await;
    let live = start_upload(base, "app", 1000).await;
    let stale = start_upload(base, "app", 1000).await;
    assert!(
        check(&reg, true, false).await.is_clean(),
        "the store is clean before it is broken"
    );

    // 1. A layer's data deleted: app's manifest misses it, app's _layers link dangles.
    let lost = d(&a_blobs[2]);
    drv.delete(layout::blob_data(&lost).trim_end_matches("/data"))
        .await
        .unwrap();
    // 2. A tag and a tag index entry naming a manifest nobody pushed.
    let ghost = Digest::of(ks3_registry::digest::Algorithm::Sha256, b"never pushed");
    drv.put_content(
        &layout::tag_current_link("app", "ghost"),
        ghost.to_string().as_bytes(),
    )
    .await
    .unwrap();
    drv.put_content(
        &layout::tag_index_link("app", "v1", &ghost),
        ghost.to_string().as_bytes(),
    )
    .await
    .unwrap();
    // 3. A manifest's own bytes deleted: its revision is lost, and its tag dangles.
    let gone_d = d(&gone);
    drv.delete(layout::blob_data(&gone_d).trim_end_matches("/data"))
        .await
        .unwrap();
    // 4. A revision naming a layer: not a manifest.
    let layer = d(&a_blobs[1]);
    drv.put_content(
        &layout::revision_link("app", &layer),
        layer.to_string().as_bytes(),
    )
    .await
    .unwrap();
    // 5. A config's bytes replaced by others of another size: the size disagrees, and
    //    the content no longer hashes to the path.
    let config = d(&b_blobs[0]);
    drv.put_content(&layout::blob_data(&config), b"corrupted!")
        .await
        .unwrap();
    // 6. An index's child revision deleted (its bytes stay).
    let c2d = d(&c2);
    drv.delete(layout::revision_link("multi", &c2d).trim_end_matches("/link"))
        .await
        .unwrap();
    // 7. Links that are no digest, or another digest than their path.
    let bad_layer_link = layout::layer_link("app", &d(&a_blobs[0]));
    drv.put_content(&bad_layer_link, b"garbage\n")
        .await
        .unwrap();
    let bad_rev = layout::revision_link("ok", &config);
    drv.put_content(&bad_rev, a.as_bytes()).await.unwrap();
    // 8. An upload started in 2020.
    drv.put_content(
        &layout::upload_started_at("app", &stale),
        b"2020-01-01T00:00:00Z",
    )
    .await
    .unwrap();
    // 9. A tail no upload owns: a writer closed, never committed, its upload never started.
    let orphan = layout::upload_data("app", "orphan-upload");
    let mut w = drv.writer(&orphan, false).await.unwrap();
    w.write(&b(1234, 14)).await.unwrap();
    w.close().await.unwrap();
    drop(w);
    // 10. Something under blobs/ that is no blob.
    let junk = format!("{}/blobs/sha256/zz/junk", layout::ROOT);
    drv.put_content(&junk, b"x").await.unwrap();

    let repairable = [
        (Kind::LayerLinkDangling, layout::layer_link("app", &lost)),
        (Kind::TagDangling, layout::tag_current_link("app", "ghost")),
        (
            Kind::TagIndexDangling,
            layout::tag_index_link("app", "v1", &ghost),
        ),
        (Kind::TagDangling, layout::tag_current_link("app", "gone")),
        (
            Kind::TagIndexDangling,
            layout::tag_index_link("app", "gone", &gone_d),
        ),
        // The child's tag goes with its revision.
        (Kind::TagDangling, layout::tag_current_link("multi", "c2")),
        (
            Kind::TagIndexDangling,
            layout::tag_index_link("multi", "c2", &c2d),
        ),
        (Kind::UploadStale, layout::upload_dir("app", &stale)),
        (Kind::TailOrphan, format!("~tails{orphan}")),
    ];
    let data_losses = [
        (
            Kind::ManifestMissingBlob,
            layout::revision_link("app", &d(&a)),
        ),
        (
            Kind::RevisionMissingBlob,
            layout::revision_link("app", &gone_d),
        ),
        (
            Kind::RevisionNotManifest,
            layout::revision_link("app", &layer),
        ),
        (
            Kind::ManifestSizeMismatch,
            layout::revision_link("app", &d(&bm)),
        ),
        (Kind::BlobDigestMismatch, layout::blob_data(&config)),
        (
            Kind::ManifestMissingChild,
            layout::revision_link("multi", &d(&idx)),
        ),
        (Kind::LinkInvalid, bad_layer_link.clone()),
        (Kind::LinkInvalid, bad_rev.clone()),
        (Kind::BlobBadPath, junk.clone()),
    ];
    let all: Vec<_> = repairable.iter().chain(&data_losses).cloned().collect();

    let r = check(&reg, true, false).await;
    assert_eq!(found(&r), set(&all), "{:#?}", r.problems);
    assert!(r.repairs.is_empty(), "no repair without repair");
    for p in &r.problems {
        assert_eq!(p.fix.is_some(), p.kind.repairable(), "{p:?}");
    }
    // Without --verify-digests the corrupted content is not seen (its size still is).
    let quick = check(&reg, false, false).await;
    assert!(quick.of(Kind::BlobDigestMismatch).is_empty());
    assert_eq!(quick.blobs_verified, 0);
    let tails_before: Vec<String> = keys(&root)
        .await
        .into_iter()
        .filter(|k| k.contains("/~tails/"))
        .collect();
    assert_eq!(
        tails_before.len(),
        3,
        "the live, the stale and the orphan upload's tails: {tails_before:?}"
    );

    let blobs_before: Vec<String> = keys(&root)
        .await
        .into_iter()
        .filter(|k| k.contains("/blobs/"))
        .collect();
    let r = check(&reg, false, true).await;
    let repaired: BTreeSet<(String, String)> = r
        .repairs
        .iter()
        .map(|x| {
            assert_eq!(x.outcome, Outcome::Deleted, "{x:?}");
            (x.kind.as_str().to_string(), x.path.clone())
        })
        .collect();
    assert_eq!(repaired, set(&repairable));
    let blobs_after: Vec<String> = keys(&root)
        .await
        .into_iter()
        .filter(|k| k.contains("/blobs/"))
        .collect();
    assert_eq!(blobs_before, blobs_after, "repair deletes no blob data");

    let r = check(&reg, true, false).await;
    assert_eq!(found(&r), set(&data_losses), "{:#?}", r.problems);
    // The live upload and its tail survived; the orphan's and the stale upload's are gone.
    let tails_after: Vec<String> = keys(&root)
        .await
        .into_iter()
        .filter(|k| k.contains("/~tails/"))
        .collect();
    assert_eq!(tails_after.len(), 1, "{tails_after:?}");
    assert!(tails_after[0].contains(&live), "{tails_after:?}");
    let prefix = ks3_tests::key_prefix(&root);
    let uploads = ks3_tests::list_uploads(&prefix).await;
    assert!(
        uploads
            .iter()
            .all(|u| !u.key.contains("orphan-upload") && !u.key.contains(&stale)),
        "{uploads:?}"
    );
    // The revisions are all still there, the lost one and the one that is no manifest too.
    for rev in [&gone_d, &layer, &d(&a)] {
        assert!(drv.stat(&layout::revision_link("app", rev)).await.is_ok());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_pushed_by_real_traffic_is_clean() {
    let root = ks3_tests::unique_root("fsck-traffic");
    let reg = registry(&root).await;
    let base = reg.base.as_str();
    let b = |n: usize, seed: u64| bytes(n, seed);
    let shared = b(70_000, 2);
    push_image(
        base,
        "app",
        "v1",
        &[b(300, 1), b(50_000, 11), shared.clone()],
    )
    .await;
    push_image(base, "lib/base", "latest", &[b(310, 3), shared.clone()]).await;
    let (c1, _, c1_body) = push_image(base, "multi", "c1", &[b(320, 5), b(1000, 6)]).await;
    let (c2, _, c2_body) = push_image(base, "multi", "c2", &[b(330, 7), b(2000, 8)]).await;
    put_manifest(
        base,
        "multi",
        "v1",
        OCI_INDEX,
        &index_of(&[(&c1, c1_body.len()), (&c2, c2_body.len())]),
    )
    .await;
    // A mount of a layer into another repository.
    let m = request(
        Method::POST,
        &format!(
            "{base}/v2/mounted/blobs/uploads/?mount={}&from=lib/base",
            sha256(&shared)
        ),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(m.status, StatusCode::CREATED);
    // v1 re-tagged, then a manifest deleted by digest.
    push_image(base, "app", "v1", &[b(340, 10), shared.clone()]).await;
    let (tmp, _, _) = push_image(base, "app", "tmp", &[b(350, 12), b(3000, 13)]).await;
    let r = request(
        Method::DELETE,
        &format!("{base}/v2/app/manifests/{tmp}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // An upload in progress (its tail is live) and an orphan blob for GC.
    start_upload(base, "app", 1000).await;
    push_blob(base, "app", &b(40_000, 9)).await;

    let r = check(&reg, true, false).await;
    assert!(r.is_clean_strict(), "{:#?}", r.problems);
    assert_eq!((r.repositories, r.tails), (4, 1), "{}", r.summary_line());
    assert!(
        r.blobs_verified > 10 && r.blobs_verified == r.blobs,
        "{}",
        r.summary_line()
    );

    let mut out = |_: &str| {};
    let opts = GcOptions {
        delete_untagged: true,
        ..GcOptions::default()
    };
    let g = collect_garbage(reg.registry.driver(), &opts, &mut out)
        .await
        .expect("gc");
    assert!(g.blobs_deleted > 0 && g.manifests_deleted > 0, "{g:?}");
    let r = check(&reg, true, false).await;
    assert!(r.is_clean(), "after gc: {:#?}", r.problems);
}
