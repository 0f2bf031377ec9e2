//! Status codes the OCI distribution spec asks for where a registry easily answers
//! otherwise (issue 27): references that are neither tag nor digest, a closing `PUT` that
//! does not continue its upload, and tags pushed with `?tag=`. Each was compared with
//! distribution 2.8.2 (Debian's `docker-registry`, inmemory storage): it answers its
//! router's plain `404 page not found` for an invalid tag and `500 UNKNOWN` (GET/HEAD) or
//! `400 DIGEST_INVALID` (DELETE) for a malformed digest, ignores `Content-Range` on the
//! closing `PUT`, and ignores `?tag=`; here the spec's answers are given instead.
mod common;

use common::*;
use http::{Method, StatusCode};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_that_is_neither_tag_nor_digest_is_manifest_unknown() {
    let r = serve_yaml("storage:\n  delete:\n    enabled: true\n").await;
    for reference in ["-lead", "a%20b", "sha256:zz", "sha256:", "md5:0123"] {
        let url = format!("{}/v2/app/manifests/{reference}", r.base);
        for method in [Method::GET, Method::DELETE] {
            let resp = request(method.clone(), &url, &[], "").await;
            assert_eq!(
                (resp.status, resp.error_code().as_str()),
                (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                "{method} {reference}: {}",
                String::from_utf8_lossy(&resp.body)
            );
        }
        let head = request(Method::HEAD, &url, &[], "").await;
        assert_eq!(head.status, StatusCode::NOT_FOUND, "HEAD {reference}");
    }
    // A PUT to such a reference is still refused as a bad tag or digest.
    let put = request(
        Method::PUT,
        &format!("{}/v2/app/manifests/-lead", r.base),
        &[("content-type", OCI_MANIFEST)],
        "{}",
    )
    .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert_eq!(put.error_code(), "TAG_INVALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_put_that_does_not_continue_the_upload_is_416_and_keeps_it() {
    let r = serve_yaml("storage:\n  redirect:\n    disable: true\n").await;
    let start = request(
        Method::POST,
        &format!("{}/v2/app/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let loc = format!("{}{}", r.base, start.header("location").expect("location"));
    let patch = request(Method::PATCH, &loc, &[("content-range", "0-2")], "abc").await;
    assert_eq!(patch.status, StatusCode::ACCEPTED);
    let d = sha256(b"abcdef");
    // Starts at 5, the upload has 3 bytes.
    let put = request(
        Method::PUT,
        &format!("{loc}?digest={d}"),
        &[("content-range", "5-7")],
        "def",
    )
    .await;
    assert_eq!(put.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(put.header("range"), Some("0-2"));
    assert!(put.header("location").is_some());
    let status = request(Method::GET, &loc, &[], "").await;
    assert_eq!(status.status, StatusCode::NO_CONTENT, "the session is kept");
    assert_eq!(status.header("range"), Some("0-2"));
    // The right chunk then closes it.
    let put = request(
        Method::PUT,
        &format!("{loc}?digest={d}"),
        &[("content-range", "3-5")],
        "def",
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let get = request(
        Method::GET,
        &format!("{}/v2/app/blobs/{d}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(get.body, b"abcdef");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_pushed_by_digest_with_tags_creates_each_and_says_so() {
    let r = serve_yaml("").await;
    let config = b"{}".to_vec();
    let cd = push_blob(&r.base, "app", &config).await;
    let manifest = oci_manifest((&cd, config.len()), &[], None, None);
    let md = sha256(&manifest);
    let put = request(
        Method::PUT,
        &format!("{}/v2/app/manifests/{md}?tag=v1&tag=latest&tag=v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        manifest.clone(),
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(put.header("oci-tag"), Some("v1, latest"));
    for tag in ["v1", "latest"] {
        let get = request(
            Method::GET,
            &format!("{}/v2/app/manifests/{tag}", r.base),
            &[("accept", OCI_MANIFEST)],
            "",
        )
        .await;
        assert_eq!(get.status, StatusCode::OK, "tag {tag}");
        assert_eq!(get.body, manifest);
    }
    let tags = request(
        Method::GET,
        &format!("{}/v2/app/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(tags.json()["tags"], serde_json::json!(["latest", "v1"]));

    // An invalid tag among them: nothing is stored.
    let other = oci_manifest((&cd, config.len()), &[], None, Some("x/y"));
    let od = sha256(&other);
    let put = request(
        Method::PUT,
        &format!("{}/v2/app/manifests/{od}?tag=ok&tag=-bad", r.base),
        &[("content-type", OCI_MANIFEST)],
        other,
    )
    .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert_eq!(put.error_code(), "TAG_INVALID");
    let get = request(
        Method::HEAD,
        &format!("{}/v2/app/manifests/{od}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    let get = request(
        Method::HEAD,
        &format!("{}/v2/app/manifests/ok", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);

    // Pushed by tag with `?tag=`: both tags; the header is for pushes by digest.
    let third = oci_manifest((&cd, config.len()), &[], None, Some("a/b"));
    let put = request(
        Method::PUT,
        &format!("{}/v2/app/manifests/main?tag=extra", r.base),
        &[("content-type", OCI_MANIFEST)],
        third,
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let tags = request(
        Method::GET,
        &format!("{}/v2/app/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(
        tags.json()["tags"],
        serde_json::json!(["extra", "latest", "main", "v1"])
    );
}
