//! Shared fixtures of the integration and conformance tests: one local KS3 server per test
//! binary, a fresh `rootdirectory` per test, distribution's data and path generators, and
//! a small signed raw client for setting up what the driver itself cannot create.
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ks3_driver::{Driver, Error, Params};
use ks3_local::{RunningServer, ServerConfig};
use rand::{Rng, RngCore, SeedableRng};

pub const ACCESS_KEY: &str = "AKLTtestaccesskey0001";
pub const SECRET_KEY: &str = "testsecretkeyTESTSECRETKEY0123456789abcd";
pub const BUCKET: &str = "registry-bucket";
pub const MIB: usize = 1 << 20;

/// The local KS3 server all tests of this binary share (in memory, own runtime).
pub fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        ks3_local::start_in_background(ServerConfig::memory(BUCKET, ACCESS_KEY, SECRET_KEY))
            .expect("start the local KS3 server")
    })
}

/// Driver parameters pointing at the shared server under `root`.
pub fn params(root: &str) -> Params {
    let mut p: Params = BTreeMap::new();
    p.insert("accesskey".into(), ACCESS_KEY.into());
    p.insert("secretkey".into(), SECRET_KEY.into());
    p.insert("region".into(), "ks3-cn-beijing".into());
    p.insert("bucket".into(), BUCKET.into());
    p.insert("regionendpoint".into(), server().endpoint());
    p.insert("rootdirectory".into(), root.into());
    // The minimum part size, as distribution's S3 tests use, so multipart paths get exercised.
    p.insert("chunksize".into(), (5 * MIB).to_string());
    p
}

/// A unique root directory for one test.
pub fn unique_root(test: &str) -> String {
    let n: u64 = rand::thread_rng().gen();
    format!("/t/{test}-{n:016x}")
}

/// A driver with its own empty root directory.
pub async fn fresh_driver(test: &str) -> Driver {
    Driver::new(params(&unique_root(test)))
        .await
        .expect("driver")
}

/// A driver with extra or overridden parameters.
pub async fn driver_with(test: &str, extra: &[(&str, &str)]) -> Driver {
    let mut p = params(&unique_root(test));
    for (k, v) in extra {
        p.insert((*k).into(), (*v).into());
    }
    Driver::new(p).await.expect("driver")
}

/// distribution's clean-up rule: after a test, its root lists empty.
pub async fn assert_clean(d: &Driver) {
    let left = d.list("/").await.unwrap_or_default();
    assert!(
        left.is_empty(),
        "storage driver did not clean up properly; left: {left:?}"
    );
}

/// 128 MiB of random bytes, made once; `random_contents(n)` is always a prefix, so equal
/// lengths mean equal contents (as in distribution's suite).
pub fn random_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut v = vec![0u8; 128 * MIB];
        rand::rngs::StdRng::from_entropy().fill_bytes(&mut v);
        v
    })
}

pub fn random_contents(n: usize) -> Vec<u8> {
    random_bytes()[..n].to_vec()
}

const FILENAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SEPARATOR_CHARS: &[u8] = b"-";

/// n characters; a separator with probability 1/4, never first, last, or twice in a row.
pub fn random_filename(n: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(n);
    let mut was_separator = true;
    for i in 0..n {
        if !was_separator && i + 1 < n && rng.gen_range(0..4) == 0 {
            s.push(SEPARATOR_CHARS[rng.gen_range(0..SEPARATOR_CHARS.len())] as char);
            was_separator = true;
        } else {
            s.push(FILENAME_CHARS[rng.gen_range(0..FILENAME_CHARS.len())] as char);
            was_separator = false;
        }
    }
    s
}

/// An absolute path of exactly `n` characters, without `//` or a trailing `/`.
pub fn random_path(n: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut p = String::from("/");
    while p.len() < n {
        let chunk = rng.gen_range(0..n - p.len()) + 1;
        p.push_str(&random_filename(chunk));
        let remaining = n as i64 - p.len() as i64;
        if remaining == 1 {
            p.push_str(&random_filename(1));
        } else if remaining > 1 {
            p.push('/');
        }
    }
    p
}

/// `/first` component of a path.
pub fn first_part(p: &str) -> String {
    let rest = p.trim_start_matches('/');
    format!("/{}", rest.split('/').next().unwrap_or(""))
}

/// distribution's deletePath: delete, tolerating not-found, until nothing is left.
pub async fn delete_path(d: &Driver, p: &str) {
    for _ in 0..3 {
        match d.delete(p).await {
            Ok(()) | Err(Error::PathNotFound { .. }) => {}
            Err(e) => panic!("delete {p}: {e}"),
        }
        if d.list(p).await.map(|l| l.is_empty()).unwrap_or(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{p} still has content after deleting it");
}

/// A plain HTTP request (no signing), e.g. to fetch a presigned URL.
pub async fn http_request(method: &str, url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(bytes::Bytes::new()))
        .expect("request");
    let resp = client.request(req).await.expect("HTTP request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// A signed request straight to the local server, for setting up keys the driver cannot
/// create (a `dir/` placeholder, foreign keys). `key` is unencoded.
pub async fn raw_put(key: &str, body: &[u8]) -> u16 {
    use ks3_proto::sign::{canonical_resource, StringToSign};
    let date = ks3_proto::date::http_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let resource = canonical_resource(BUCKET, key, &[]);
    let sts = StringToSign {
        method: "PUT",
        date: &date,
        resource: &resource,
        ..Default::default()
    };
    let auth = ks3_proto::SignedRequest::authorization(ACCESS_KEY, SECRET_KEY, &sts);
    let url = format!(
        "{}/{BUCKET}/{}",
        server().endpoint(),
        ks3_proto::encode::encode_key(key)
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method("PUT")
        .uri(url)
        .header("date", date)
        .header("authorization", auth)
        .header("content-length", body.len().to_string())
        .body(Full::new(bytes::Bytes::copy_from_slice(body)))
        .expect("request");
    let resp = client.request(req).await.expect("raw PUT");
    resp.status().as_u16()
}

/// SHA-256 hex of data.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    ks3_proto::digest::hex(&Sha256::digest(data))
}
