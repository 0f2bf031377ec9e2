//! The registry survives KS3 being unreachable (issue 28): while the store cannot be
//! reached — connection refused (the server stopped), no answer within `requesttimeout`,
//! connections dropped — every request that needs storage gets 503 `UNAVAILABLE` with a
//! `Retry-After` (distribution 2.8.2 answers 500 `UNKNOWN` there, see docs/registry.md),
//! a registry started during the outage starts and answers the same, and once KS3 is
//! back on the same address with the same disk store, the same requests succeed with no
//! restart, and an upload begun before the outage completes with exactly its bytes.
//!
//! The driver's retry budget is kept small (`maxretries` 1, `requesttimeout` 1 s) so a
//! request fails in about a second instead of minutes.
mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::*;
use http::{Method, StatusCode};
use ks3_driver_host::Params;
use ks3_local::{FaultRule, RunningServer, ServerConfig};
use ks3_registry::{Config, Storage};

const REPO: &str = "outage/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A ks3-local on `addr` (port 0: any) storing under `dir`; restarted on the same
/// address and directory it serves the same objects.
fn start_ks3(dir: &Path, addr: SocketAddr) -> RunningServer {
    use ks3_tests::{ACCESS_KEY, BUCKET, SECRET_KEY};
    let mut c = ServerConfig::on_disk(dir, BUCKET, ACCESS_KEY, SECRET_KEY);
    c.addr = addr;
    c.fsync = false;
    ks3_local::start_in_background(c).expect("ks3-local starts")
}

/// Driver parameters with a small retry budget.
fn params(endpoint: &str) -> Params {
    let mut p = ks3_tests::params_on(endpoint, "");
    p.remove("rootdirectory");
    p.insert("maxretries".into(), "1".into());
    p.insert("requesttimeout".into(), "1".into());
    p
}

async fn registry_on(params: &Params) -> Served {
    let mut config =
        Config::from_yaml("storage:\n  redirect:\n    disable: true\n").expect("config");
    config.storage = Storage::Ks3(params.clone());
    serve(config).await
}

/// The requests of the outage: what a pull, a push and a listing start with.
struct Probes {
    manifest: String,
    blob: String,
    /// The upload begun before the outage (path and query of its `Location`).
    upload: String,
    /// Its bytes so far.
    uploaded: usize,
    catalog: String,
}

/// What one probe sends: its name, method, URL, headers and body.
type Probe<'a> = (&'a str, Method, String, &'a [(&'a str, &'a str)], Vec<u8>);

impl Probes {
    /// GET manifest, HEAD blob, PATCH of the upload (its next chunk), catalog, a new
    /// upload's POST and a tag list: every one answered 503 `UNAVAILABLE`.
    async fn all_unavailable(&self, base: &str, chunk: &[u8], why: &str) {
        let range = format!("{}-{}", self.uploaded, self.uploaded + chunk.len() - 1);
        let patch_headers = [
            ("content-type", "application/octet-stream"),
            ("content-range", range.as_str()),
        ];
        let accept = [("accept", OCI_MANIFEST)];
        let calls: [Probe; 6] = [
            (
                "GET manifest",
                Method::GET,
                self.manifest.clone(),
                &accept,
                vec![],
            ),
            ("HEAD blob", Method::HEAD, self.blob.clone(), &[], vec![]),
            (
                "PATCH upload",
                Method::PATCH,
                self.upload.clone(),
                &patch_headers,
                chunk.to_vec(),
            ),
            ("catalog", Method::GET, self.catalog.clone(), &[], vec![]),
            (
                "POST upload",
                Method::POST,
                format!("/v2/{REPO}/blobs/uploads/"),
                &[],
                vec![],
            ),
            (
                "tags list",
                Method::GET,
                format!("/v2/{REPO}/tags/list"),
                &[],
                vec![],
            ),
        ];
        for (what, method, path, headers, body) in calls {
            let r = request(method, &format!("{base}{path}"), headers, body).await;
            assert_unavailable(&r, &format!("{why}: {what}"));
        }
    }
}

/// distribution's `UNAVAILABLE` error with a `Retry-After`, nothing of the KS3 request
/// behind it (a HEAD has no body).
fn assert_unavailable(r: &Resp, what: &str) {
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let secs: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0"),
        "{what}"
    );
    if r.body.is_empty() {
        return;
    }
    assert_eq!(
        r.json(),
        serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": "service unavailable", "detail": null}]}),
        "{what}"
    );
    let body = String::from_utf8_lossy(&r.body).to_ascii_lowercase();
    for leak in ["127.0.0.1", "ks3", "refused", ks3_tests::BUCKET] {
        assert!(!body.contains(leak), "{what}: {leak:?} in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ks3_unreachable_is_503_and_the_registry_recovers_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks3 = start_ks3(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let addr = ks3.addr();
    let params = params(&ks3.endpoint());
    let r = registry_on(&params).await;

    // An image, and an upload begun with its first chunk.
    let config = b"{}".to_vec();
    let layer = bytes(200_000, 28);
    let cd = push_blob(&r.base, REPO, &config).await;
    let ld = push_blob(&r.base, REPO, &layer).await;
    let manifest = oci_manifest((&cd, config.len()), &[(&ld, layer.len())], None, None);
    let put = request(
        Method::PUT,
        &format!("{}/v2/{REPO}/manifests/v1", r.base),
        &[("content-type", OCI_MANIFEST)],
        manifest.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let upload = bytes(150_000, 29);
    let (first, rest) = upload.split_at(90_000);
    let start = request(
        Method::POST,
        &format!("{}/v2/{REPO}/blobs/uploads/", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let loc = start.header("location").expect("location").to_string();
    let patch = request(
        Method::PATCH,
        &format!("{}{loc}", r.base),
        &[
            ("content-type", "application/octet-stream"),
            ("content-range", &format!("0-{}", first.len() - 1)),
        ],
        first.to_vec(),
    )
    .await;
    assert_eq!(patch.status, StatusCode::ACCEPTED);
    let loc = patch.header("location").expect("location").to_string();
    let probes = Probes {
        manifest: format!("/v2/{REPO}/manifests/v1"),
        blob: format!("/v2/{REPO}/blobs/{ld}"),
        upload: loc.clone(),
        uploaded: first.len(),
        catalog: "/v2/_catalog".into(),
    };

    // KS3 answers nothing in time (Timeout), then drops every connection (Dropped).
    for (fault, why) in [
        ("*::100000:delay=2500", "no answer within requesttimeout"),
        ("*::100000:drop", "every connection dropped"),
    ] {
        ks3.faults()
            .inject(FaultRule::parse(fault).expect("fault rule"));
        let started = std::time::Instant::now();
        let manifest_get = request(
            Method::GET,
            &format!("{}{}", r.base, probes.manifest),
            &[("accept", OCI_MANIFEST)],
            "",
        )
        .await;
        assert_unavailable(&manifest_get, why);
        let head = request(Method::HEAD, &format!("{}{}", r.base, probes.blob), &[], "").await;
        assert_unavailable(&head, why);
        ks3.faults().clear();
        eprintln!("{why}: 503 in {:?}", started.elapsed());
    }

    // KS3 stopped: connection refused, for every request that needs it.
    drop(ks3);
    let v2 = request(Method::GET, &format!("{}/v2/", r.base), &[], "").await;
    assert_eq!(v2.status, StatusCode::OK, "/v2/ needs no storage");
    let started = std::time::Instant::now();
    probes.all_unavailable(&r.base, rest, "KS3 down").await;
    eprintln!(
        "KS3 down: six requests answered 503 in {:?}",
        started.elapsed()
    );

    // A registry started while KS3 is down starts, and answers the same.
    let late = registry_on(&params).await;
    let catalog = request(Method::GET, &format!("{}/v2/_catalog", late.base), &[], "").await;
    assert_unavailable(&catalog, "started while KS3 is down: catalog");

    // KS3 back on the same address with the same disk store: no registry restarted.
    let ks3 = start_ks3(dir.path(), addr);
    assert_eq!(ks3.addr(), addr);
    for base in [&r.base, &late.base] {
        let got = request(
            Method::GET,
            &format!("{base}{}", probes.manifest),
            &[("accept", OCI_MANIFEST)],
            "",
        )
        .await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{base}: manifest after recovery"
        );
        assert!(got.body == manifest, "the manifest's bytes");
        let head = request(Method::HEAD, &format!("{base}{}", probes.blob), &[], "").await;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.header("content-length"), Some("200000"));
        let catalog = request(Method::GET, &format!("{base}/v2/_catalog"), &[], "").await;
        assert_eq!(catalog.status, StatusCode::OK);
        assert_eq!(catalog.json()["repositories"], serde_json::json!([REPO]));
        let tags = request(Method::GET, &format!("{base}/v2/{REPO}/tags/list"), &[], "").await;
        assert_eq!(tags.json()["tags"], serde_json::json!(["v1"]));
    }

    // The upload begun before the outage: its first chunk is still there, the chunk
    // refused during the outage goes in now, and the blob is exactly its bytes.
    let status = request(Method::GET, &format!("{}{loc}", r.base), &[], "").await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(
        status.header("range"),
        Some(format!("0-{}", first.len() - 1).as_str()),
        "the outage did not change the upload"
    );
    let patch = request(
        Method::PATCH,
        &format!("{}{loc}", r.base),
        &[
            ("content-type", "application/octet-stream"),
            (
                "content-range",
                &format!("{}-{}", first.len(), upload.len() - 1),
            ),
        ],
        rest.to_vec(),
    )
    .await;
    assert_eq!(
        patch.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&patch.body)
    );
    let loc = patch.header("location").expect("location").to_string();
    let d = sha256(&upload);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let done = request(
        Method::PUT,
        &format!("{}{loc}{sep}digest={d}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(
        done.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&done.body)
    );
    let got = request(
        Method::GET,
        &format!("{}/v2/{REPO}/blobs/{d}", late.base),
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.body == upload,
        "the upload's bytes, served by the other instance"
    );
    drop(ks3);
}

/// With `health.storagedriver`, the probe's verdict gates every request: the same 503
/// `UNAVAILABLE` (2.8.2's body, with a `Retry-After` of one interval), lifted by itself
/// once KS3 is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_gate_agrees_and_lifts_when_ks3_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ks3 = start_ks3(dir.path(), "127.0.0.1:0".parse().expect("addr"));
    let addr = ks3.addr();
    let mut config = Config::from_yaml(
        "storage:\n  redirect:\n    disable: true\nhealth:\n  storagedriver:\n    enabled: true\n    interval: 200ms\n    threshold: 2\n",
    )
    .expect("config");
    config.storage = Storage::Ks3(params(&ks3.endpoint()));
    let r = serve(config).await;
    let d = push_blob(&r.base, REPO, b"before").await;

    drop(ks3);
    let v2 = until(&format!("{}/v2/", r.base), StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(v2.header("retry-after"), Some("1"));
    assert_eq!(v2.error_code(), "UNAVAILABLE");
    let blob = format!("{}/v2/{REPO}/blobs/{d}", r.base);
    let head = request(Method::HEAD, &blob, &[], "").await;
    assert_eq!(head.status, StatusCode::SERVICE_UNAVAILABLE);

    let _ks3 = start_ks3(dir.path(), addr);
    until(&format!("{}/v2/", r.base), StatusCode::OK).await;
    let got = request(Method::GET, &blob, &[], "").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, b"before");
}

/// Polls `url` until it answers `status` (at most 20 s).
async fn until(url: &str, status: StatusCode) -> Resp {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = request(Method::GET, url, &[], "").await;
        if r.status == status {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url}: still {} after 20 s",
            r.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
