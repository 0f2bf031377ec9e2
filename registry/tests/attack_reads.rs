//! Regression tests of issue 25's read-side findings, each the attack over real HTTP: a
//! large layer fetched through the manifests endpoint (memory), a blob claiming
//! `text/html` served as a manifest (stored XSS), an index naming one child thousands of
//! times (request amplification), the referrers walk, the catalog's walk of every
//! repository, and the tag list of a repository that does not exist.
mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use http::{Method, StatusCode};
use serde_json::json;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The config, one layer and an image manifest of them pushed by digest to `repo`;
/// returns the manifest's digest and size.
async fn push_image(base: &str, repo: &str, seed: u64) -> (String, usize) {
    let config = format!("{{\"seed\":{seed}}}").into_bytes();
    let layer = bytes(1000, seed);
    let cd = push_blob(base, repo, &config).await;
    let ld = push_blob(base, repo, &layer).await;
    let m = oci_manifest((&cd, config.len()), &[(&ld, layer.len())], None, None);
    let md = sha256(&m);
    let put = request(
        Method::PUT,
        &format!("{base}/v2/{repo}/manifests/{md}"),
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
    (md, m.len())
}

/// Finding 2: a layer just over the manifest limit (4 MiB, distribution's) asked for
/// through the manifests endpoint with `Accept: */*` is not a manifest: 404, and its
/// bytes are never read (only its size is looked at). Before the fix the registry read
/// the whole blob (a 300 MiB one exhausted the sandbox) and served it as a manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_layer_is_not_read_through_the_manifests_endpoint() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let layer = bytes((5 << 20) + 1, 25);
    let d = push_blob(&r.base, "big", &layer).await;
    let hex = d.trim_start_matches("sha256:");
    let data_key = format!("{hex}/data");
    let gets_before = ks3.server.requests_matching("GET", &data_key);
    for method in [Method::GET, Method::HEAD] {
        let resp = request(
            method.clone(),
            &format!("{}/v2/big/manifests/{d}", r.base),
            &[("accept", "*/*")],
            "",
        )
        .await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{method}");
        assert!(
            resp.body.len() < 4096,
            "{method}: a bounded error, not the layer ({} bytes)",
            resp.body.len()
        );
        if method == Method::GET {
            assert_eq!(resp.error_code(), "MANIFEST_UNKNOWN");
        }
    }
    assert_eq!(
        ks3.server.requests_matching("GET", &data_key),
        gets_before,
        "the layer's bytes were read from KS3"
    );
    // The blob itself is still served as a blob.
    let blob = request(
        Method::HEAD,
        &format!("{}/v2/big/blobs/{d}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(blob.status, StatusCode::OK);
    assert_eq!(blob.header("content-length"), Some("5242881"));
}

/// Finding 3: a blob whose JSON says `"mediaType":"text/html"`, fetched through the
/// manifests endpoint with `Accept: text/html`, was served as `Content-Type: text/html`
/// (a script run by a browser holding the registry's credentials). Only the manifest
/// media types are served; anything else is no manifest: 404 MANIFEST_UNKNOWN. A blob
/// that is not JSON at all (a small layer) is no manifest either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_claiming_text_html_is_not_served_as_a_manifest() {
    let r = serve_yaml("").await;
    let html = br#"{"mediaType":"text/html","x":"<script>alert(document.domain)</script>"}"#;
    let hd = push_blob(&r.base, "xss", html).await;
    let tar = bytes(3000, 26);
    let td = push_blob(&r.base, "xss", &tar).await;
    for (d, accept) in [
        (&hd, "text/html"),
        (&hd, "*/*"),
        (&td, "*/*"),
        (&td, OCI_MANIFEST),
    ] {
        for method in [Method::GET, Method::HEAD] {
            let resp = request(
                method.clone(),
                &format!("{}/v2/xss/manifests/{d}", r.base),
                &[("accept", accept)],
                "",
            )
            .await;
            assert_eq!(resp.status, StatusCode::NOT_FOUND, "{method} {d} {accept}");
            let ct = resp.header("content-type").unwrap_or("");
            assert!(
                !ct.contains("html") && !ct.contains("oci"),
                "{method} {d} {accept}: served as {ct}"
            );
            if method == Method::GET {
                assert_eq!(resp.error_code(), "MANIFEST_UNKNOWN");
            }
        }
    }
    // A genuine manifest is still served, by digest, with its own media type.
    let (md, _) = push_image(&r.base, "xss", 1).await;
    let ok = request(
        Method::GET,
        &format!("{}/v2/xss/manifests/{md}", r.base),
        &[("accept", "*/*")],
        "",
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("content-type"), Some(OCI_MANIFEST));
}

/// Finding 4: an index naming the same child 20 000 times made two KS3 requests per
/// entry, all at once. References are deduplicated before they are checked: the PUT
/// costs a handful of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_naming_one_child_many_times_checks_it_once() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let (md, size) = push_image(&r.base, "amp", 2).await;
    let child = json!({"mediaType": OCI_MANIFEST, "digest": md, "size": size});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": vec![child; 20_000],
    });
    let body = serde_json::to_vec(&index).expect("json");
    assert!(body.len() < 4 << 20, "within the manifest limit");
    let before = ks3.server.request_count();
    let started = Instant::now();
    let put = request(
        Method::PUT,
        &format!("{}/v2/amp/manifests/many", r.base),
        &[("content-type", OCI_INDEX)],
        body,
    )
    .await;
    let took = started.elapsed();
    let made = ks3.server.request_count() - before;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    // One child check (two link reads and a stat at most), the garbage collector's
    // records (one listing), its bytes, the revision link and the tag's two links (each
    // write one PUT: `put_content_writerless`).
    assert!(made <= 8, "{made} KS3 requests for one distinct child");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// Finding 4, the same for an image manifest naming one layer many times, and an index
/// whose children are all missing: the first missing one answers (no check per entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_missing_references_are_checked_boundedly() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let config = b"{}".to_vec();
    let layer = bytes(500, 27);
    let cd = push_blob(&r.base, "amp2", &config).await;
    let ld = push_blob(&r.base, "amp2", &layer).await;
    let layers = vec![(ld.as_str(), layer.len()); 10_000];
    let m = oci_manifest((&cd, config.len()), &layers, None, None);
    let before = ks3.server.request_count();
    let put = request(
        Method::PUT,
        &format!("{}/v2/amp2/manifests/v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        m,
    )
    .await;
    let made = ks3.server.request_count() - before;
    assert_eq!(put.status, StatusCode::CREATED);
    // Two checks (a link and a stat each), then what any push costs (the manifest's
    // existence check and bytes, three links; a write is a PUT and a tail lookup).
    assert!(made <= 16, "{made} KS3 requests for two distinct blobs");

    // 5 000 distinct children, none present: refused, without 5 000 checks.
    let children: Vec<_> = (0..5_000u64)
        .map(|i| json!({"mediaType": OCI_MANIFEST, "digest": sha256(&i.to_le_bytes()), "size": 8}))
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children});
    let before = ks3.server.request_count();
    let put = request(
        Method::PUT,
        &format!("{}/v2/amp2/manifests/missing", r.base),
        &[("content-type", OCI_INDEX)],
        serde_json::to_vec(&index).expect("json"),
    )
    .await;
    let made = ks3.server.request_count() - before;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert_eq!(put.error_code(), "MANIFEST_BLOB_UNKNOWN");
    assert!(made <= 200, "{made} KS3 requests to refuse the index");
}

/// Finding 6: the tag list of a repository that does not exist is 404 NAME_UNKNOWN, also
/// when its name is a prefix of a repository's (`top` of `top/inner`, whose directory
/// exists) or it only holds a started upload. A repository is what the catalog lists
/// (it holds `_manifests` or `_layers`): one of blobs only has no tags (distribution
/// 2.8.2 answers 404 there too; this registry lists it in the catalog, so it answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_of_a_repository_that_does_not_exist_are_name_unknown() {
    let r = serve_yaml("").await;
    push_blob(&r.base, "top/inner", b"layer").await;
    let post = request(
        Method::POST,
        &format!("{}/v2/started/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(post.status, StatusCode::ACCEPTED);
    for name in ["top", "started", "never", "top/inner/deeper"] {
        let resp = request(
            Method::GET,
            &format!("{}/v2/{name}/tags/list", r.base),
            &[],
            "",
        )
        .await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{name}");
        assert_eq!(resp.error_code(), "NAME_UNKNOWN", "{name}");
    }
    let catalog = request(Method::GET, &format!("{}/v2/_catalog", r.base), &[], "").await;
    assert_eq!(catalog.json()["repositories"], json!(["top/inner"]));
    let blobs_only = request(
        Method::GET,
        &format!("{}/v2/top/inner/tags/list", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(blobs_only.status, StatusCode::OK);
    assert_eq!(blobs_only.json()["tags"], json!([]));
}

/// Finding 6: a catalog page stops after `n` repositories (+1 to know whether a next
/// page exists) instead of walking every repository (every key under `repositories/`:
/// a request per 1000 keys, whatever `n`); pages keep distribution's order (`/` before
/// every other byte) and the `Link` header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_page_stops_after_n_repositories() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let mut names: Vec<String> = ["a", "a/b", "a-b", "a.c", "a/b/c"]
        .map(String::from)
        .to_vec();
    for n in &names {
        push_blob(&r.base, n, n.as_bytes()).await;
    }
    // 24 repositories of 500 layer links each (12 000 keys), written straight into the
    // store as distribution lays them out (pushing that many blobs would take long).
    let bulk: Vec<String> = (0..24).map(|i| format!("r{i:02}")).collect();
    let driver = r.registry.driver().clone();
    let links: Vec<(String, String)> = bulk
        .iter()
        .flat_map(|repo| {
            (0..500u32).map(move |i| {
                let d = sha256(format!("{repo}/{i}").as_bytes());
                let hex = d.trim_start_matches("sha256:").to_string();
                (
                    format!("/docker/registry/v2/repositories/{repo}/_layers/sha256/{hex}/link"),
                    d,
                )
            })
        })
        .collect();
    futures::stream::iter(links)
        .map(|(path, d)| {
            let driver = driver.clone();
            async move { driver.put_content(&path, d.as_bytes()).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .expect("links written");
    names.extend(bulk);

    let before = ks3.server.request_count();
    let p = request(Method::GET, &format!("{}/v2/_catalog?n=2", r.base), &[], "").await;
    let made = ks3.server.request_count() - before;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.json()["repositories"], json!(["a", "a/b"]));
    assert_eq!(
        p.header("link"),
        Some("</v2/_catalog?last=a%2Fb&n=2>; rel=\"next\"")
    );
    assert!(
        made <= 8,
        "{made} KS3 requests for a page of 2 of 29 repositories"
    );
    // A later page costs as little.
    let before = ks3.server.request_count();
    let p = request(
        Method::GET,
        &format!("{}/v2/_catalog?n=2&last=r10", r.base),
        &[],
        "",
    )
    .await;
    let made = ks3.server.request_count() - before;
    assert_eq!(p.json()["repositories"], json!(["r11", "r12"]));
    assert!(made <= 8, "{made} KS3 requests for a page after r10");

    // Page through everything, a few at a time: distribution's order, nothing twice.
    let mut seen: Vec<String> = Vec::new();
    let mut url = format!("{}/v2/_catalog?n=3", r.base);
    loop {
        let p = request(Method::GET, &url, &[], "").await;
        assert_eq!(p.status, StatusCode::OK);
        for v in p.json()["repositories"].as_array().expect("list") {
            seen.push(v.as_str().expect("name").to_string());
        }
        match p.header("link") {
            Some(l) => {
                let path = l
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .expect("link target");
                url = format!("{}{path}", r.base);
            }
            None => break,
        }
        assert!(seen.len() <= names.len(), "no end: {seen:?}");
    }
    let mut expected = names.clone();
    expected.sort_by(|a, b| {
        let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
        a.bytes().map(key).cmp(b.bytes().map(key))
    });
    assert_eq!(expected[..5], ["a", "a/b", "a/b/c", "a-b", "a.c"]);
    assert_eq!(seen, expected);
    let all = request(Method::GET, &format!("{}/v2/_catalog", r.base), &[], "").await;
    assert_eq!(all.json()["repositories"], json!(expected));
    assert_eq!(all.header("link"), None);
}

/// Finding 4: the referrers of a subject are read a page at a time (not every referrer
/// manifest at once), with a `Link` to the next page; together the pages list each
/// referrer once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_are_read_a_page_at_a_time() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, "").await;
    let (sd, ssize) = push_image(&r.base, "refs", 4).await;
    let config = b"{}".to_vec();
    let cd = push_blob(&r.base, "refs", &config).await;
    let count = 130;
    let mut pushed = Vec::new();
    for i in 0..count {
        let mut m: serde_json::Value = serde_json::from_slice(&oci_manifest(
            (&cd, config.len()),
            &[],
            Some((&sd, ssize)),
            Some("application/x-sig"),
        ))
        .expect("json");
        m["annotations"] = json!({"i": i.to_string()});
        let m = serde_json::to_vec(&m).expect("json");
        let d = sha256(&m);
        let put = request(
            Method::PUT,
            &format!("{}/v2/refs/manifests/{d}", r.base),
            &[("content-type", OCI_MANIFEST)],
            m,
        )
        .await;
        assert_eq!(put.status, StatusCode::CREATED);
        pushed.push(d);
    }
    let before = ks3.server.request_count();
    let first = request(
        Method::GET,
        &format!("{}/v2/refs/referrers/{sd}", r.base),
        &[],
        "",
    )
    .await;
    let made = ks3.server.request_count() - before;
    assert_eq!(first.status, StatusCode::OK);
    let page1 = first.json()["manifests"].as_array().expect("list").clone();
    assert!(
        !page1.is_empty() && page1.len() < count,
        "a page, not everything: {}",
        page1.len()
    );
    // At most about four requests per referrer listed (its links, size and bytes).
    assert!(
        made <= 4 * page1.len() as u64 + 10,
        "{made} KS3 requests for a page of {}",
        page1.len()
    );
    let mut listed: Vec<String> = page1
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_string())
        .collect();
    let mut link = first.header("link").map(str::to_string);
    while let Some(l) = link {
        let path = l
            .trim_start_matches('<')
            .split('>')
            .next()
            .expect("link target")
            .to_string();
        assert!(
            path.starts_with(&format!("/v2/refs/referrers/{sd}?")),
            "{l}"
        );
        let p = request(Method::GET, &format!("{}{path}", r.base), &[], "").await;
        assert_eq!(p.status, StatusCode::OK);
        for m in p.json()["manifests"].as_array().expect("list") {
            listed.push(m["digest"].as_str().expect("digest").to_string());
        }
        link = p.header("link").map(str::to_string);
        assert!(listed.len() <= count, "no end");
    }
    listed.sort();
    pushed.sort();
    assert_eq!(listed, pushed);
}
