//! The OCI Distribution Spec flows over real HTTP against registries served on the real
//! driver component, backed by ks3-local.
mod common;

use common::*;
use http::{Method, StatusCode};
use ks3_registry::layout;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn digest_of(s: &str) -> ks3_registry::digest::Digest {
    ks3_registry::digest::Digest::parse(s).expect("digest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_endpoint_and_common_headers() {
    let r = serve_yaml("http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n").await;
    let resp = request(Method::GET, &format!("{}/v2/", r.base), &[], "").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body, b"{}");
    assert_eq!(
        resp.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    let resp = request(Method::GET, &format!("{}/nowhere", r.base), &[], "").await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_upload_then_head_get_range_and_redirect() {
    // Redirects on (the default with configured storage): GET answers 307 to a
    // presigned KS3 URL.
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let data = bytes(300_000, 1);
    let d = push_blob(&r.base, "lib/app", &data).await;
    let url = format!("{}/v2/lib/app/blobs/{d}", r.base);

    let head = request(Method::HEAD, &url, &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert_eq!(head.header("docker-content-digest"), Some(d.as_str()));

    let get = request(Method::GET, &url, &[], "").await;
    assert_eq!(get.status, StatusCode::TEMPORARY_REDIRECT);
    let location = get.header("location").expect("location").to_string();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let fetched = request(Method::GET, &location, &[], "").await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert!(fetched.body == data, "presigned URL serves the blob");

    // Redirects off: the registry streams the bytes, with Range.
    let r = serve_yaml("storage:\n  redirect:\n    disable: true\n").await;
    let d = push_blob(&r.base, "lib/app", &data).await;
    let url = format!("{}/v2/lib/app/blobs/{d}", r.base);
    let get = request(Method::GET, &url, &[], "").await;
    assert_eq!(get.status, StatusCode::OK);
    assert!(get.body == data);
    let part = request(Method::GET, &url, &[("range", "bytes=1000-1999")], "").await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/300000"));
    assert!(part.body == data[1000..2000]);
    let tail = request(Method::GET, &url, &[("range", "bytes=-10")], "").await;
    assert!(tail.body == data[data.len() - 10..]);
    let past = request(Method::GET, &url, &[("range", "bytes=300000-")], "").await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Layout: the blob is where distribution keeps it, the link is the bare digest.
    let dg = digest_of(&d);
    let link = r
        .registry
        .driver()
        .get_content(&layout::layer_link("lib/app", &dg))
        .await
        .expect("link");
    assert_eq!(link, d.as_bytes());
    let info = r
        .registry
        .driver()
        .stat(&layout::blob_data(&dg))
        .await
        .expect("blob data");
    assert_eq!(info.size, 300_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_with_gap_status_and_saved_hash_state() {
    let r = serve_yaml("storage:\n  redirect:\n    disable: true\n").await;
    let data = bytes(6 << 20, 2); // over one 5 MiB part is not needed: parts are 10 MiB
    let d = sha256(&data);
    let start = request(
        Method::POST,
        &format!("{}/v2/chunky/blobs/uploads/", r.base),
        &[("content-length", "0")],
        "",
    )
    .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    assert_eq!(start.header("range"), Some("0-0"));
    let id = start
        .header("docker-upload-uuid")
        .expect("uuid")
        .to_string();
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));

    // distribution's file: startedat (RFC 3339, no newline). Nothing else yet: the data
    // comes with the first write, and the state at offset 0 is not needed (distribution
    // resumes at offset 0 without one too).
    let drv = r.registry.driver();
    let started = drv
        .get_content(&layout::upload_started_at("chunky", &id))
        .await
        .expect("startedat");
    let started = String::from_utf8(started).expect("text");
    assert_eq!(started.len(), 20, "{started}");
    assert!(started.ends_with('Z'));
    assert!(drv
        .get_content(&layout::upload_hash_state("chunky", &id, 0))
        .await
        .is_err_and(|e| e.is_not_found()));

    let (a, b) = data.split_at(4 << 20);
    let p1 = request(
        Method::PATCH,
        &loc,
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &format!("0-{}", a.len() - 1)),
        ],
        a.to_vec(),
    )
    .await;
    assert_eq!(
        p1.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&p1.body)
    );
    assert_eq!(
        p1.header("range"),
        Some(format!("0-{}", a.len() - 1).as_str())
    );

    // A chunk that leaves a gap: 416, and the upload is unchanged.
    let gap = request(
        Method::PATCH,
        &loc,
        &[(
            "content-range",
            &format!("{}-{}", a.len() + 10, a.len() + 19),
        )],
        vec![0u8; 10],
    )
    .await;
    assert_eq!(gap.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        gap.header("range"),
        Some(format!("0-{}", a.len() - 1).as_str())
    );

    let status = request(Method::GET, &loc, &[], "").await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(
        status.header("range"),
        Some(format!("0-{}", a.len() - 1).as_str())
    );
    assert_eq!(status.header("docker-upload-uuid"), Some(id.as_str()));

    let p2 = request(
        Method::PATCH,
        &loc,
        &[("content-range", &format!("{}-{}", a.len(), data.len() - 1))],
        b.to_vec(),
    )
    .await;
    assert_eq!(p2.status, StatusCode::ACCEPTED);

    let before = r.registry.stats();
    let put = request(Method::PUT, &format!("{loc}?digest={d}"), &[], "").await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(put.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(
        put.header("location"),
        Some(format!("/v2/chunky/blobs/{d}").as_str())
    );
    let after = r.registry.stats();
    assert_eq!(
        after.digests_from_saved_state,
        before.digests_from_saved_state + 1,
        "verified from the saved state, without reading the upload back"
    );
    assert_eq!(after.digests_from_reread, before.digests_from_reread);

    let get = request(
        Method::GET,
        &format!("{}/v2/chunky/blobs/{d}", r.base),
        &[],
        "",
    )
    .await;
    assert!(get.body == data);
    // The upload directory is gone.
    assert!(drv
        .get_content(&layout::upload_started_at("chunky", &id))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_patch_final_chunk_in_put_and_cancel() {
    let r = serve_yaml("").await;
    let data = bytes(2 << 20, 3);
    let d = sha256(&data);
    let start = request(
        Method::POST,
        &format!("{}/v2/s/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    // No Content-Range: the body is appended (skopeo's way).
    let p = request(Method::PATCH, &loc, &[], data[..1_500_000].to_vec()).await;
    assert_eq!(p.status, StatusCode::ACCEPTED);
    let put = request(
        Method::PUT,
        &format!("{loc}?digest={d}"),
        &[("content-type", "application/octet-stream")],
        data[1_500_000..].to_vec(),
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    let head = request(Method::HEAD, &format!("{}/v2/s/blobs/{d}", r.base), &[], "").await;
    assert_eq!(head.header("content-length"), Some("2097152"));

    // The embedded server is on loopback: the registry serves blobs itself, no 307.
    let get = request(Method::GET, &format!("{}/v2/s/blobs/{d}", r.base), &[], "").await;
    assert_eq!(get.status, StatusCode::OK);
    assert!(get.body == data);

    // Cancel: 204, then the upload is unknown.
    let start = request(
        Method::POST,
        &format!("{}/v2/s/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    request(Method::PATCH, &loc, &[], vec![1u8; 1000]).await;
    let del = request(Method::DELETE, &loc, &[], "").await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = request(Method::GET, &loc, &[], "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "BLOB_UPLOAD_UNKNOWN");
    let patch_gone = request(Method::PATCH, &loc, &[], vec![1u8; 10]).await;
    assert_eq!(patch_gone.error_code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes() {
    let r = serve_yaml("").await;
    let unknown = sha256(b"never pushed");
    let resp = request(
        Method::GET,
        &format!("{}/v2/repo/blobs/{unknown}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.error_code(), "BLOB_UNKNOWN");
    assert_eq!(
        resp.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let resp = request(
        Method::GET,
        &format!("{}/v2/repo/blobs/sha256:zz", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.error_code(), "DIGEST_INVALID");

    // A digest that does not match the bytes: refused, and nothing is stored.
    let resp = request(
        Method::POST,
        &format!("{}/v2/repo/blobs/uploads/?digest={unknown}", r.base),
        &[],
        b"other bytes".to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.error_code(), "DIGEST_INVALID");
    let head = request(
        Method::HEAD,
        &format!("{}/v2/repo/blobs/{unknown}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);

    // Same through a session.
    let start = request(
        Method::POST,
        &format!("{}/v2/repo/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    request(Method::PATCH, &loc, &[], b"abc".to_vec()).await;
    let put = request(Method::PUT, &format!("{loc}?digest={unknown}"), &[], "").await;
    assert_eq!(put.error_code(), "DIGEST_INVALID");
    let put = request(Method::PUT, &loc, &[], "").await;
    assert_eq!(put.error_code(), "DIGEST_INVALID", "no digest parameter");

    // A broken upload: unknown id, a first chunk not at 0.
    let resp = request(
        Method::PATCH,
        &format!(
            "{}/v2/repo/blobs/uploads/00000000-0000-4000-8000-000000000000",
            r.base
        ),
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.error_code(), "BLOB_UPLOAD_UNKNOWN");
    let start = request(
        Method::POST,
        &format!("{}/v2/repo/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    let resp = request(
        Method::PATCH,
        &loc,
        &[("content-range", "5-9")],
        b"12345".to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(resp.error_code(), "BLOB_UPLOAD_INVALID");
    let resp = request(
        Method::PATCH,
        &loc,
        &[("content-range", "garbage")],
        b"1".to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.error_code(), "BLOB_UPLOAD_INVALID");

    let resp = request(
        Method::GET,
        &format!("{}/v2/repo/manifests/latest", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.error_code(), "MANIFEST_UNKNOWN");

    for bad in [
        "/v2/Upper/tags/list",
        "/v2/a--/manifests/x",
        "/v2/a//b/blobs/uploads/",
    ] {
        let resp = request(Method::GET, &format!("{}{bad}", r.base), &[], "").await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(resp.error_code(), "NAME_INVALID", "{bad}");
    }
    let resp = request(
        Method::GET,
        &format!("{}/v2/nobody/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    assert_eq!(resp.error_code(), "NAME_UNKNOWN");

    // A manifest naming a blob the repository does not have.
    let cfg = push_blob(&r.base, "repo", b"{}").await;
    let m = oci_manifest((&cfg, 2), &[(&unknown, 12)], None, None);
    let resp = request(
        Method::PUT,
        &format!("{}/v2/repo/manifests/v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        m,
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(resp.error_code(), "MANIFEST_BLOB_UNKNOWN");
    // A blob of another repository is not this one's.
    let other = push_blob(&r.base, "other", b"layer").await;
    let m = oci_manifest((&cfg, 2), &[(&other, 5)], None, None);
    let resp = request(
        Method::PUT,
        &format!("{}/v2/repo/manifests/v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        m,
    )
    .await;
    assert_eq!(resp.error_code(), "MANIFEST_BLOB_UNKNOWN");
    let resp = request(
        Method::PUT,
        &format!("{}/v2/repo/manifests/v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(resp.error_code(), "MANIFEST_INVALID");

    // Manifests are limited to 4 MiB: 413.
    let resp = request(
        Method::PUT,
        &format!("{}/v2/repo/manifests/huge", r.base),
        &[("content-type", OCI_MANIFEST)],
        vec![b' '; (4 << 20) + 1],
    )
    .await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(resp.error_code(), "SIZE_INVALID");

    // Deletes are off by default.
    let resp = request(
        Method::DELETE,
        &format!("{}/v2/repo/blobs/{cfg}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.error_code(), "UNSUPPORTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_of_every_kind_tags_and_accept() {
    let r = serve_yaml("").await;
    let cfg = push_blob(&r.base, "img", b"{\"architecture\":\"amd64\"}").await;
    let layer = push_blob(&r.base, "img", &bytes(1000, 4)).await;
    let m = oci_manifest((&cfg, 24), &[(&layer, 1000)], None, None);
    let md = sha256(&m);
    let put = request(
        Method::PUT,
        &format!("{}/v2/img/manifests/v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        m.clone(),
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(put.header("docker-content-digest"), Some(md.as_str()));
    assert_eq!(
        put.header("location"),
        Some(format!("/v2/img/manifests/{md}").as_str())
    );

    for reference in ["v1", md.as_str()] {
        let get = request(
            Method::GET,
            &format!("{}/v2/img/manifests/{reference}", r.base),
            &[("accept", OCI_MANIFEST)],
            "",
        )
        .await;
        assert_eq!(get.status, StatusCode::OK);
        assert!(get.body == m, "the exact bytes pushed");
        assert_eq!(get.header("content-type"), Some(OCI_MANIFEST));
        assert_eq!(get.header("docker-content-digest"), Some(md.as_str()));
    }
    let head = request(
        Method::HEAD,
        &format!("{}/v2/img/manifests/v1", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        head.header("content-length"),
        Some(m.len().to_string().as_str())
    );
    // An Accept that names only Docker types does not get an OCI manifest (distribution).
    let refused = request(
        Method::GET,
        &format!("{}/v2/img/manifests/v1", r.base),
        &[("accept", DOCKER_MANIFEST)],
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);

    // Docker schema 2, pushed by digest and by tag.
    let docker = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cfg, "size": 24},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer, "size": 1000}]
    }))
    .expect("json");
    let dd = sha256(&docker);
    let put = request(
        Method::PUT,
        &format!("{}/v2/img/manifests/{dd}", r.base),
        &[("content-type", DOCKER_MANIFEST)],
        docker.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    // A digest reference that is not the body's digest.
    let wrong = request(
        Method::PUT,
        &format!("{}/v2/img/manifests/{md}", r.base),
        &[("content-type", DOCKER_MANIFEST)],
        docker.clone(),
    )
    .await;
    assert_eq!(wrong.error_code(), "DIGEST_INVALID");

    // An OCI index and a Docker list over both; children must exist.
    for (mt, tag) in [(OCI_INDEX, "multi"), (DOCKER_LIST, "list")] {
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": md, "size": m.len(), "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": DOCKER_MANIFEST, "digest": dd, "size": docker.len(), "platform": {"architecture": "arm64", "os": "linux"}}
            ]
        }))
        .expect("json");
        let put = request(
            Method::PUT,
            &format!("{}/v2/img/manifests/{tag}", r.base),
            &[("content-type", mt)],
            index.clone(),
        )
        .await;
        assert_eq!(
            put.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&put.body)
        );
        let get = request(
            Method::GET,
            &format!("{}/v2/img/manifests/{tag}", r.base),
            &[("accept", &format!("{OCI_MANIFEST}, {mt}"))],
            "",
        )
        .await;
        assert_eq!(get.header("content-type"), Some(mt));
        assert!(get.body == index);
    }
    let missing_child = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}]
    }))
    .expect("json");
    let resp = request(
        Method::PUT,
        &format!("{}/v2/img/manifests/broken", r.base),
        &[("content-type", OCI_INDEX)],
        missing_child,
    )
    .await;
    assert_eq!(resp.error_code(), "MANIFEST_BLOB_UNKNOWN");

    // Tag files as distribution writes them.
    let drv = r.registry.driver();
    let current = drv
        .get_content(&layout::tag_current_link("img", "v1"))
        .await
        .expect("current link");
    assert_eq!(current, md.as_bytes());
    let index_link = drv
        .get_content(&layout::tag_index_link("img", "v1", &digest_of(&md)))
        .await
        .expect("index link");
    assert_eq!(index_link, md.as_bytes());
    let revision = drv
        .get_content(&layout::revision_link("img", &digest_of(&md)))
        .await
        .expect("revision link");
    assert_eq!(revision, md.as_bytes());

    // Tags, sorted, in pages with a Link to the next.
    for t in ["a", "b", "c"] {
        let put = request(
            Method::PUT,
            &format!("{}/v2/img/manifests/{t}", r.base),
            &[("content-type", OCI_MANIFEST)],
            m.clone(),
        )
        .await;
        assert_eq!(put.status, StatusCode::CREATED);
    }
    let all = request(
        Method::GET,
        &format!("{}/v2/img/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(
        all.json(),
        serde_json::json!({"name": "img", "tags": ["a", "b", "c", "list", "multi", "v1"]})
    );
    let p1 = request(
        Method::GET,
        &format!("{}/v2/img/tags/list?n=2", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(p1.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        p1.header("link"),
        Some("</v2/img/tags/list?last=b&n=2>; rel=\"next\"")
    );
    let p2 = request(
        Method::GET,
        &format!("{}/v2/img/tags/list?n=2&last=b", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(p2.json()["tags"], serde_json::json!(["c", "list"]));
    let p0 = request(
        Method::GET,
        &format!("{}/v2/img/tags/list?n=0", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(p0.json()["tags"], serde_json::json!([]));
    assert_eq!(p0.header("link"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_pages() {
    let r = serve_yaml("").await;
    for repo in ["b", "a/x", "a-b", "c/d/e"] {
        push_blob(&r.base, repo, repo.as_bytes()).await;
    }
    // An upload alone does not make a repository.
    request(
        Method::POST,
        &format!("{}/v2/z/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let all = request(Method::GET, &format!("{}/v2/_catalog", r.base), &[], "").await;
    assert_eq!(
        all.json(),
        serde_json::json!({"repositories": ["a/x", "a-b", "b", "c/d/e"]})
    );
    let p1 = request(Method::GET, &format!("{}/v2/_catalog?n=2", r.base), &[], "").await;
    assert_eq!(p1.json()["repositories"], serde_json::json!(["a/x", "a-b"]));
    assert_eq!(
        p1.header("link"),
        Some("</v2/_catalog?last=a-b&n=2>; rel=\"next\"")
    );
    let p2 = request(
        Method::GET,
        &format!("{}/v2/_catalog?n=2&last=a-b", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(p2.json()["repositories"], serde_json::json!(["b", "c/d/e"]));
    assert_eq!(p2.header("link"), None);
    let bad = request(
        Method::GET,
        &format!("{}/v2/_catalog?n=5000", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(bad.error_code(), "PAGINATION_NUMBER_INVALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_subject_and_artifact_type_filter() {
    let r = serve_yaml("storage:\n  delete:\n    enabled: true\n").await;
    let empty = push_blob(&r.base, "art", b"{}").await;
    let layer = push_blob(&r.base, "art", b"payload").await;
    let subject = oci_manifest((&empty, 2), &[(&layer, 7)], None, None);
    let sd = sha256(&subject);
    // The subject need not exist when the referrer is pushed.
    let sig = oci_manifest(
        (&empty, 2),
        &[(&layer, 7)],
        Some((&sd, subject.len())),
        Some("application/vnd.example.signature"),
    );
    let sigd = sha256(&sig);
    let put = request(
        Method::PUT,
        &format!("{}/v2/art/manifests/{sigd}", r.base),
        &[("content-type", OCI_MANIFEST)],
        sig.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("oci-subject"), Some(sd.as_str()));
    let sbom = oci_manifest(
        (&empty, 2),
        &[(&layer, 7)],
        Some((&sd, subject.len())),
        Some("application/spdx+json"),
    );
    let sbomd = sha256(&sbom);
    request(
        Method::PUT,
        &format!("{}/v2/art/manifests/{sbomd}", r.base),
        &[("content-type", OCI_MANIFEST)],
        sbom.clone(),
    )
    .await;

    let list = request(
        Method::GET,
        &format!("{}/v2/art/referrers/{sd}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("content-type"), Some(OCI_INDEX));
    let idx = list.json();
    let manifests = idx["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2);
    let sig_desc = manifests
        .iter()
        .find(|m| m["digest"] == sigd.as_str())
        .expect("the signature is listed");
    assert_eq!(
        sig_desc["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(sig_desc["size"], sig.len());
    assert_eq!(sig_desc["mediaType"], OCI_MANIFEST);

    let filtered = request(
        Method::GET,
        &format!(
            "{}/v2/art/referrers/{sd}?artifactType=application/spdx%2Bjson",
            r.base
        ),
        &[],
        "",
    )
    .await;
    assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
    let only = filtered.json();
    assert_eq!(only["manifests"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["manifests"][0]["digest"], sbomd.as_str());

    // No referrers: 200 and an empty list; a bad digest: 400.
    let none = request(
        Method::GET,
        &format!("{}/v2/art/referrers/{layer}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json()["manifests"], serde_json::json!([]));
    let bad = request(
        Method::GET,
        &format!("{}/v2/art/referrers/sha256:1", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // A referrer a client recorded in the tag schema (an index tagged sha256-<hex>) is
    // listed too.
    let old = oci_manifest((&empty, 2), &[(&layer, 7)], None, Some("application/x-old"));
    let oldd = sha256(&old);
    request(
        Method::PUT,
        &format!("{}/v2/art/manifests/{oldd}", r.base),
        &[("content-type", OCI_MANIFEST)],
        old.clone(),
    )
    .await;
    let schema = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": oldd, "size": old.len(), "artifactType": "application/x-old"}]
    }))
    .expect("json");
    let tag = sd.replace(':', "-");
    let put = request(
        Method::PUT,
        &format!("{}/v2/art/manifests/{tag}", r.base),
        &[("content-type", OCI_INDEX)],
        schema,
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let list = request(
        Method::GET,
        &format!("{}/v2/art/referrers/{sd}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(list.json()["manifests"].as_array().map(Vec::len), Some(3));
    let only_old = request(
        Method::GET,
        &format!(
            "{}/v2/art/referrers/{sd}?artifactType=application/x-old",
            r.base
        ),
        &[],
        "",
    )
    .await;
    assert_eq!(only_old.json()["manifests"][0]["digest"], oldd.as_str());
    assert_eq!(
        only_old.json()["manifests"].as_array().map(Vec::len),
        Some(1)
    );

    // A deleted referrer is no longer listed.
    let del = request(
        Method::DELETE,
        &format!("{}/v2/art/manifests/{sigd}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let list = request(
        Method::GET,
        &format!("{}/v2/art/referrers/{sd}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(list.json()["manifests"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_mounts() {
    let r = serve_yaml("storage:\n  delete:\n    enabled: true\n").await;
    let cfg = push_blob(&r.base, "src", b"{}").await;
    let layer = push_blob(&r.base, "src", b"layer bytes").await;

    // Mount into another repository: 201, no upload.
    let mount = request(
        Method::POST,
        &format!("{}/v2/dst/blobs/uploads/?mount={layer}&from=src", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(mount.status, StatusCode::CREATED);
    assert_eq!(
        mount.header("location"),
        Some(format!("/v2/dst/blobs/{layer}").as_str())
    );
    assert_eq!(r.registry.stats().blobs_mounted, 1);
    let head = request(
        Method::HEAD,
        &format!("{}/v2/dst/blobs/{layer}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    // A mount of a blob the source does not have starts an upload instead.
    let fallback = request(
        Method::POST,
        &format!(
            "{}/v2/dst/blobs/uploads/?mount={}&from=src",
            r.base,
            sha256(b"absent")
        ),
        &[],
        "",
    )
    .await;
    assert_eq!(fallback.status, StatusCode::ACCEPTED);
    assert!(fallback.header("docker-upload-uuid").is_some());

    let m = oci_manifest((&cfg, 2), &[(&layer, 11)], None, None);
    let md = sha256(&m);
    for t in ["v1", "v1-rc", "keep"] {
        request(
            Method::PUT,
            &format!("{}/v2/src/manifests/{t}", r.base),
            &[("content-type", OCI_MANIFEST)],
            m.clone(),
        )
        .await;
    }
    // Untag one tag only (the spec's DELETE by tag).
    let del = request(
        Method::DELETE,
        &format!("{}/v2/src/manifests/keep", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let tags = request(
        Method::GET,
        &format!("{}/v2/src/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["v1", "v1-rc"]));
    // Delete by digest: every tag pointing at it goes, `v1` with its `v1-rc` sibling too.
    let del = request(
        Method::DELETE,
        &format!("{}/v2/src/manifests/{md}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = request(
        Method::GET,
        &format!("{}/v2/src/manifests/{md}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(gone.error_code(), "MANIFEST_UNKNOWN");
    let gone = request(
        Method::GET,
        &format!("{}/v2/src/manifests/v1", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(gone.error_code(), "MANIFEST_UNKNOWN");
    let tags = request(
        Method::GET,
        &format!("{}/v2/src/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(tags.json()["tags"], serde_json::json!([]));

    let del = request(
        Method::DELETE,
        &format!("{}/v2/src/blobs/{layer}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = request(
        Method::HEAD,
        &format!("{}/v2/src/blobs/{layer}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // The mounted copy in `dst` is another repository's link and stays.
    let kept = request(
        Method::HEAD,
        &format!("{}/v2/dst/blobs/{layer}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(kept.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_basic_auth() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    let hash = bcrypt::hash("s3cret", 5).expect("bcrypt");
    std::fs::write(&file, format!("alice:{hash}\n")).expect("write htpasswd");
    let r = serve_yaml(&format!(
        "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
        file.display()
    ))
    .await;
    let url = format!("{}/v2/", r.base);
    let denied = request(Method::GET, &url, &[], "").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.error_code(), "UNAUTHORIZED");
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Basic realm=\"test-realm\"")
    );
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let wrong = request(
        Method::GET,
        &url,
        &[("authorization", &basic("alice", "nope"))],
        "",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = request(
        Method::GET,
        &url,
        &[("authorization", &basic("alice", "s3cret"))],
        "",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Every endpoint is behind it, not only the base.
    let tags = request(Method::GET, &format!("{}/v2/x/tags/list", r.base), &[], "").await;
    assert_eq!(tags.status, StatusCode::UNAUTHORIZED);
}

/// A repository written the way distribution writes it (files put straight into the
/// bucket through the driver, no registry involved) is served: the layout is shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_layout_written_as_distribution_writes_it() {
    let r = serve_yaml("storage:\n  redirect:\n    disable: true\n").await;
    let drv = r.registry.driver();
    let config = b"{\"os\":\"linux\"}".to_vec();
    let layer = bytes(70_000, 21);
    let (cd, ld) = (sha256(&config), sha256(&layer));
    let manifest = oci_manifest((&cd, config.len()), &[(&ld, layer.len())], None, None);
    let md = sha256(&manifest);
    for (d, data) in [(&cd, &config), (&ld, &layer), (&md, &manifest)] {
        let dg = digest_of(d);
        drv.put_content(&layout::blob_data(&dg), data)
            .await
            .expect("blob");
    }
    for d in [&cd, &ld] {
        drv.put_content(
            &layout::layer_link("legacy/app", &digest_of(d)),
            d.as_bytes(),
        )
        .await
        .expect("layer link");
    }
    let mdg = digest_of(&md);
    for path in [
        layout::revision_link("legacy/app", &mdg),
        layout::tag_index_link("legacy/app", "2.8", &mdg),
        layout::tag_current_link("legacy/app", "2.8"),
    ] {
        drv.put_content(&path, md.as_bytes()).await.expect("link");
    }

    let get = request(
        Method::GET,
        &format!("{}/v2/legacy/app/manifests/2.8", r.base),
        &[("accept", OCI_MANIFEST)],
        "",
    )
    .await;
    assert_eq!(get.status, StatusCode::OK);
    assert!(get.body == manifest);
    let blob = request(
        Method::GET,
        &format!("{}/v2/legacy/app/blobs/{ld}", r.base),
        &[],
        "",
    )
    .await;
    assert!(blob.body == layer);
    let tags = request(
        Method::GET,
        &format!("{}/v2/legacy/app/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["2.8"]));
    let catalog = request(Method::GET, &format!("{}/v2/_catalog", r.base), &[], "").await;
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["legacy/app"])
    );
}

/// Numbers at the edge of u64 in `Range` (GET of a blob) and `Content-Range` (PATCH of an
/// upload) get clean answers — 416, 400 or the whole blob, as HTTP and distribution
/// prescribe — never a panic; the registry keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_numbers_in_range_headers() {
    let r = serve_yaml("storage:\n  redirect:\n    disable: true\n").await;
    let data = bytes(1000, 7);
    let d = push_blob(&r.base, "edge/app", &data).await;
    let url = format!("{}/v2/edge/app/blobs/{d}", r.base);
    let max = u64::MAX.to_string();
    for (range, status, len) in [
        (
            format!("bytes={max}-"),
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
        ),
        (
            format!("bytes={max}-{max}"),
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
        ),
        (
            format!("bytes=0-{max}"),
            StatusCode::PARTIAL_CONTENT,
            Some(1000),
        ),
        (
            format!("bytes=-{max}"),
            StatusCode::PARTIAL_CONTENT,
            Some(1000),
        ),
        (
            "bytes=99999999999999999999-".to_string(),
            StatusCode::OK,
            Some(1000),
        ),
        (
            "bytes=-0".to_string(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
        ),
    ] {
        let resp = request(Method::GET, &url, &[("range", &range)], "").await;
        assert_eq!(resp.status, status, "{range}");
        if let Some(n) = len {
            assert_eq!(resp.body.len(), n, "{range}");
        }
    }

    let start = request(
        Method::POST,
        &format!("{}/v2/edge/app/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    for (range, status) in [
        (format!("0-{max}"), StatusCode::BAD_REQUEST),
        (format!("{max}-{max}"), StatusCode::RANGE_NOT_SATISFIABLE),
        (
            "0-99999999999999999999".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (format!("bytes {max}-0/{max}"), StatusCode::BAD_REQUEST),
    ] {
        let resp = request(
            Method::PATCH,
            &loc,
            &[("content-range", &range)],
            b"x".to_vec(),
        )
        .await;
        assert_eq!(resp.status, status, "Content-Range {range}");
        assert_eq!(resp.error_code(), "BLOB_UPLOAD_INVALID", "{range}");
    }
    // The upload is still usable.
    let resp = request(
        Method::PATCH,
        &loc,
        &[("content-range", "0-1")],
        b"ab".to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    assert_eq!(resp.header("range"), Some("0-1"));
}
