//! ks3-local's request handling, whole: HTTP parsing, addressing, authentication (V2
//! header, presigned queries, V4 `Authorization`), query parameters, `Range`, dates,
//! multipart part numbers and upload ids, XML request bodies — over an in-memory
//! connection. Requests are signed by the harness (KSS V2) unless the input brings its own
//! credentials, so the fuzzer gets past authentication into every handler.
use std::time::{SystemTime, UNIX_EPOCH};

use ks3_local::ServerConfig;
use ks3_proto::date::http_date;
use ks3_proto::encode::{decode, split_query};
use ks3_proto::sign::{canonical_resource, SignedRequest, StringToSign};

use crate::input::{header_lines, Fields};

pub const BUCKET: &str = "fuzz-bucket";
pub const AK: &str = "AKLTfuzzLocal";
pub const SK: &str = "fuzz-local-secret-key-0123";

/// Requests per input, at most.
const MAX_REQUESTS: usize = 4;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// One request's bytes: `method target`, the input's headers, and (unless the input says
/// otherwise) `Host`, `Date`, `Content-Length` and a V2 `Authorization` over it all.
pub fn request(method: &str, target: &str, header_text: &str, body: &[u8], flags: u8) -> Vec<u8> {
    let mut headers = header_lines(header_text);
    let has = |h: &[(String, String)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has(&headers, "host") {
        headers.push(("Host".into(), "127.0.0.1".into()));
    }
    if !has(&headers, "date") && !has(&headers, "x-kss-date") {
        headers.push(("Date".into(), http_date(now())));
    }
    if flags & 1 == 0 && !has(&headers, "content-length") && !has(&headers, "transfer-encoding") {
        headers.push(("Content-Length".into(), body.len().to_string()));
    }
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let presigned = raw_query.contains("Signature") || raw_query.contains("X-");
    if flags & 2 == 0 && !presigned && !has(&headers, "authorization") {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let (b, k) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket = decode(b, false).unwrap_or_default();
        let key = decode(k, false).unwrap_or_default();
        let query = split_query(raw_query);
        let resource = canonical_resource(&bucket, &key, &query);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map_or("", |(_, v)| v.as_str())
        };
        let lower: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let sts = StringToSign {
            method,
            content_md5: get("content-md5"),
            content_type: get("content-type"),
            date: get("date"),
            headers: lower
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            resource: &resource,
        };
        let auth = SignedRequest::authorization(AK, SK, &sts);
        headers.push(("Authorization".into(), auth));
    }
    let mut out = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (k, v) in &headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Input: `flags NUL` then up to four requests of `method NUL target NUL header-lines NUL
/// body NUL`. Flags: bit 0 leaves `Content-Length` to the input (a wrong or missing one
/// makes the body the next request), bit 1 leaves the request unsigned.
///
/// * the server never panics and never hangs (the harness fails after 20 s);
/// * it answers every input with HTTP responses (or closes a connection it cannot parse),
///   never with a 500, and never with the secret key in them.
pub fn ks3_local_requests(data: &[u8]) {
    let mut f = Fields::new(data);
    let flags = f.byte();
    let mut wire = Vec::new();
    for _ in 0..MAX_REQUESTS {
        let method = f.text();
        if method.is_empty() {
            break;
        }
        let target = f.text();
        let headers = f.text();
        let body = f.bytes();
        // A request line cannot hold a line break; hyper would just refuse it.
        let method: String = method.chars().filter(|c| !c.is_control()).collect();
        let target: String = target.chars().filter(|c| !c.is_control()).collect();
        wire.extend(request(&method, &target, &headers, body, flags));
    }
    if wire.is_empty() {
        return;
    }
    let config = ServerConfig {
        max_put_size: 1 << 20,
        max_copy_size: 1 << 20,
        min_part_size: 1,
        body_timeout: std::time::Duration::from_secs(1),
        request_log_capacity: 64,
        ..ServerConfig::memory(BUCKET, AK, SK)
    };
    let answer = ks3_local::fuzzing::exchange(config, &wire);
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains("HTTP/1.1 500"), "a 500 answer:\n{text}");
    assert!(!text.contains(SK), "the secret key in an answer");
}
