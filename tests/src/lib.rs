//! Shared fixtures of the integration and conformance tests: one local KS3 server per test
//! binary, a fresh `rootdirectory` per test, distribution's data and path generators, and
//! a small signed raw client for setting up what the driver itself cannot create.
use std::sync::OnceLock;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ks3_driver_host::{Driver, DriverError, Error};
use rand::{Rng, RngCore, SeedableRng};

// The one bootstrap (server, parameters, roots, data) is `ks3-test-support`'s; the
// registry's tests reach it through this crate.
pub use ks3_test_support::*;

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
            Ok(()) | Err(Error::Driver(DriverError::PathNotFound(_))) => {}
            Err(e) => panic!("delete {p}: {e}"),
        }
        // Empty or not found is gone; a List error is not evidence of anything.
        match d.list(p).await {
            Ok(l) if l.is_empty() => return,
            Err(Error::Driver(DriverError::PathNotFound(_))) => return,
            Ok(_) => {}
            Err(e) => panic!("List({p}) failed while checking the delete: {e}"),
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

/// What a raw request got back.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A signed request straight to the server at `endpoint`, path-style, outside the driver:
/// for setting up keys the driver cannot create and for looking at what it left in the
/// bucket. `key` is unencoded (`""` for a bucket-level request); `query` values are sent
/// percent-encoded, and the signed sub-resources among them are signed.
pub async fn raw_request_on(
    endpoint: &str,
    method: &str,
    key: &str,
    query: &[(&str, Option<&str>)],
    body: &[u8],
) -> RawResponse {
    use ks3_proto::encode::{encode_component, encode_key};
    use ks3_proto::sign::{canonical_resource, StringToSign};
    let date = ks3_proto::date::http_date(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let resource = canonical_resource(BUCKET, key, query);
    let sts = StringToSign {
        method,
        date: &date,
        resource: &resource,
        ..Default::default()
    };
    let auth = ks3_proto::SignedRequest::authorization(ACCESS_KEY, SECRET_KEY, &sts);
    let mut url = format!("{endpoint}/{BUCKET}/{}", encode_key(key));
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(k);
        if let Some(v) = v {
            url.push('=');
            url.push_str(&encode_component(v));
        }
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("date", date)
        .header("authorization", auth)
        .header("content-length", body.len().to_string())
        .body(Full::new(bytes::Bytes::copy_from_slice(body)))
        .expect("request");
    let resp = client.request(req).await.expect("raw request");
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
    RawResponse {
        status,
        headers,
        body,
    }
}

/// A signed PUT of `key` on the shared server, for setting up keys the driver cannot
/// create (a `dir/` placeholder, foreign keys). `key` is unencoded.
pub async fn raw_put(key: &str, body: &[u8]) -> u16 {
    raw_request_on(&server().endpoint(), "PUT", key, &[], body)
        .await
        .status
}

/// The bucket key prefix of a driver `rootdirectory` (`/t/x` → `t/x/`).
pub fn key_prefix(root: &str) -> String {
    format!("{}/", root.trim_matches('/'))
}

/// The text of every `<tag>…</tag>` in `xml`, in order, with XML escapes undone. (The
/// listings here hold only keys of the driver's path alphabet, plus `~`.)
fn xml_texts(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let j = rest.find(&close).expect("closed element");
        out.push(
            rest[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &rest[j + close.len()..];
    }
    out
}

/// One multipart upload in progress, as List Multipart Uploads shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInProgress {
    pub key: String,
    pub upload_id: String,
}

/// Every multipart upload in progress under the bucket key `prefix` on the server at
/// `endpoint` (a raw, signed `GET /?uploads&prefix=…`, all pages).
pub async fn list_uploads_on(endpoint: &str, prefix: &str) -> Vec<UploadInProgress> {
    let mut out = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let mut query = vec![("uploads", None), ("prefix", Some(prefix))];
        if let Some((k, id)) = &markers {
            query.push(("key-marker", Some(k.as_str())));
            query.push(("upload-id-marker", Some(id.as_str())));
        }
        let r = raw_request_on(endpoint, "GET", "", &query, b"").await;
        let xml = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, 200, "List Multipart Uploads: {xml}");
        // Only the <Upload> elements: <Key> and <UploadId> also name markers elsewhere.
        for upload in xml.split("<Upload>").skip(1) {
            let upload = &upload[..upload.find("</Upload>").expect("closed <Upload>")];
            out.push(UploadInProgress {
                key: xml_texts(upload, "Key").remove(0),
                upload_id: xml_texts(upload, "UploadId").remove(0),
            });
        }
        if xml_texts(&xml, "IsTruncated").first().map(String::as_str) != Some("true") {
            return out;
        }
        markers = Some((
            xml_texts(&xml, "NextKeyMarker").remove(0),
            xml_texts(&xml, "NextUploadIdMarker").remove(0),
        ));
    }
}

/// [`list_uploads_on`] the shared server.
pub async fn list_uploads(prefix: &str) -> Vec<UploadInProgress> {
    list_uploads_on(&server().endpoint(), prefix).await
}

/// Every object key under the bucket key `prefix` on the server at `endpoint`, hidden
/// ones included (a raw, signed `GET /?prefix=…`, all pages), in key order.
pub async fn list_keys_on(endpoint: &str, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let mut query = vec![("prefix", Some(prefix))];
        if let Some(last) = out.last() {
            query.push(("marker", Some(last.as_str())));
        }
        let r = raw_request_on(endpoint, "GET", "", &query, b"").await;
        let xml = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, 200, "List Objects: {xml}");
        let keys = xml_texts(&xml, "Key");
        let truncated = xml_texts(&xml, "IsTruncated").first().map(String::as_str) == Some("true");
        let empty_page = keys.is_empty();
        out.extend(keys);
        if !truncated || empty_page {
            return out;
        }
    }
}

/// [`list_keys_on`] the shared server.
pub async fn list_keys(prefix: &str) -> Vec<String> {
    list_keys_on(&server().endpoint(), prefix).await
}

/// A raw, signed HEAD of `key` on the shared server.
pub async fn raw_head(key: &str) -> RawResponse {
    raw_request_on(&server().endpoint(), "HEAD", key, &[], b"").await
}

/// SHA-256 hex of data.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    ks3_proto::digest::hex(&Sha256::digest(data))
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

/// distribution's clean-up rule: after a test, its root lists empty. A root that does not
/// exist is clean too; any other List error fails the test (it proves nothing about what
/// is left).
pub async fn assert_clean(d: &Driver) {
    match d.list("/").await {
        Ok(left) => assert!(
            left.is_empty(),
            "storage driver did not clean up properly; left: {left:?}"
        ),
        Err(Error::Driver(DriverError::PathNotFound(_))) => {}
        Err(e) => panic!("List(\"/\") failed while checking the clean-up: {e}"),
    }
}
