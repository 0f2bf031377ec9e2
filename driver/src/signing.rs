//! The headers that authenticate one request, in the configured scheme
//! (`signatureversion`): KSS V2 (HMAC-SHA1 over `Date` and the `x-kss-*` headers) or V4
//! (HMAC-SHA256 over the canonical request, `KSS4-HMAC-SHA256` or `AWS4-HMAC-SHA256`).
//! [`crate::client::Client::sign`] and [`crate::client::Client::presign`] are the only
//! callers; the rules themselves live in `ks3-proto` (shared with the local server).
use ks3_proto::sign::{canonical_resource, presigned_query, StringToSign};
use ks3_proto::sign_v4::{
    sha256_hex, V4Namespace, V4Request, V4Signer, MAX_PRESIGN_EXPIRES, UNSIGNED_PAYLOAD,
};
use ks3_proto::SignedRequest;

use crate::config::{Config, Scheme};
use crate::error::DriverError;

/// One request as the signer sees it: everything that is on the wire but the
/// authentication headers.
pub struct ToSign<'a> {
    pub method: &'a str,
    pub key: &'a str,
    /// The wire path, percent-encoded.
    pub path: &'a str,
    /// Query parameters: wire-encoded (V2 signs them so) and decoded (V4 canonicalises
    /// them itself); `None` is a bare sub-resource.
    pub query_encoded: &'a [(&'a str, Option<String>)],
    pub query_decoded: &'a [(&'a str, Option<&'a str>)],
    pub content_type: Option<&'a str>,
    /// Base64 `Content-MD5`, empty when not sent.
    pub content_md5: &'a str,
    /// `x-kss-*` and other extra headers, as the operations name them.
    pub headers: &'a [(&'a str, String)],
    pub body: &'a [u8],
    pub now_unix: i64,
}

/// The name a header goes out under: AWS4 speaks S3's `x-amz-*` dialect for KS3's own
/// headers (`x-kss-acl` → `x-amz-acl`, `x-kss-copy-source` → `x-amz-copy-source`, …), as
/// the official Go SDK does; KSS4 and V2 keep `x-kss-*`.
pub fn wire_name(config: &Config, name: &str) -> String {
    match (config.signing_namespace(), name.strip_prefix("x-kss-")) {
        (Some(V4Namespace::Aws4), Some(rest)) => format!("x-amz-{rest}"),
        _ => name.to_string(),
    }
}

/// The V4 payload hash of a body the component holds. Over HTTPS, TLS already protects the
/// body's integrity in transit and `Content-MD5` its arrival at KS3, so the SHA-256 pass
/// (the component's slowest per-byte work after CRC-64) is skipped for bodies large enough
/// for it to cost throughput; over plain HTTP the hash is the only thing binding the body to
/// the signature, so it is always computed.
fn payload_hash(config: &Config, body: &[u8]) -> String {
    if config.endpoint.scheme == Scheme::Https && body.len() >= UNSIGNED_FROM {
        UNSIGNED_PAYLOAD.to_string()
    } else {
        sha256_hex(body)
    }
}

/// Bodies from this size (multipart parts; `chunksize` is at least 5 MiB) go unhashed over
/// HTTPS; XML bodies and small puts are always hashed.
const UNSIGNED_FROM: usize = 1 << 20;

/// The headers to send for `req`, authentication included (besides `host`, which the
/// transport sets from the endpoint).
pub fn headers(config: &Config, req: &ToSign<'_>) -> Result<Vec<(String, String)>, DriverError> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(req.headers.len() + 6);
    if let Some(ct) = req.content_type {
        out.push(("content-type".into(), ct.into()));
    }
    if !req.content_md5.is_empty() {
        out.push(("content-md5".into(), req.content_md5.into()));
    }
    if !req.body.is_empty() || matches!(req.method, "PUT" | "POST") {
        out.push(("content-length".into(), req.body.len().to_string()));
    }
    for (k, v) in req.headers {
        out.push((wire_name(config, k), v.clone()));
    }
    match config.signing_namespace() {
        None => {
            let date = ks3_proto::date::http_date(req.now_unix);
            let auth = v2_authorization(config, req, &date);
            out.push(("date".into(), date));
            out.push(("authorization".into(), auth));
        }
        Some(ns) => {
            let host = config.endpoint.authority();
            let mut all: Vec<(&str, &str)> = Vec::with_capacity(out.len() + 1);
            all.push(("host", &host));
            all.extend(out.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let query: Vec<(&str, &str)> = req
                .query_decoded
                .iter()
                .map(|(k, v)| (*k, v.unwrap_or("")))
                .collect();
            let hash = payload_hash(config, req.body);
            let v4 = V4Request {
                method: req.method,
                path: req.path,
                query: &query,
                headers: &all,
                payload_hash: &hash,
            };
            let added = signer(config, ns)?
                .sign(&v4, req.now_unix)
                .map_err(|e| sign_error(req.key, e))?;
            out.extend(added.into_iter().map(|(k, v)| (k.to_string(), v)));
        }
    }
    Ok(out)
}

fn v2_authorization(config: &Config, req: &ToSign<'_>, date: &str) -> String {
    let qrefs: Vec<(&str, Option<&str>)> = req
        .query_encoded
        .iter()
        .map(|(k, v)| (*k, v.as_deref()))
        .collect();
    let resource = canonical_resource(&config.bucket, req.key, &qrefs);
    let sts = StringToSign {
        method: req.method,
        content_md5: req.content_md5,
        content_type: req.content_type.unwrap_or(""),
        date,
        headers: req.headers.iter().map(|(k, v)| (*k, v.as_str())).collect(),
        resource: &resource,
    };
    SignedRequest::authorization(config.access_key.expose(), config.secret_key.expose(), &sts)
}

/// The query string (without `?`) that presigns `method` on `path` (wire-encoded) for
/// `key`, valid until `expires_unix`.
pub fn presigned(
    config: &Config,
    method: &str,
    key: &str,
    path: &str,
    now_unix: i64,
    expires_unix: i64,
) -> Result<String, DriverError> {
    match config.signing_namespace() {
        None => {
            let resource = canonical_resource(&config.bucket, key, &[]);
            Ok(presigned_query(
                config.access_key.expose(),
                config.secret_key.expose(),
                method,
                &resource,
                expires_unix,
            ))
        }
        Some(ns) => {
            // V4 states a lifetime, not an instant; clamp into what V4 allows.
            let secs = expires_unix.saturating_sub(now_unix).max(1) as u64;
            let secs = secs.min(MAX_PRESIGN_EXPIRES);
            let host = config.endpoint.authority();
            let req = V4Request {
                method,
                path,
                query: &[],
                headers: &[("host", &host)],
                payload_hash: UNSIGNED_PAYLOAD,
            };
            signer(config, ns)?
                .presign(&req, now_unix, secs)
                .map_err(|e| sign_error(key, e))
        }
    }
}

fn signer(config: &Config, ns: V4Namespace) -> Result<V4Signer<'_>, DriverError> {
    // Config::from_params refuses a V4 scheme without a region name; this is the guard
    // for a Config built some other way.
    let region = config
        .v4_region
        .as_deref()
        .ok_or_else(|| DriverError::Config {
            parameter: "v4region".into(),
            message: "V4 signing needs a region name".into(),
        })?;
    Ok(V4Signer {
        namespace: ns,
        access_key: config.access_key.expose(),
        secret_key: config.secret_key.expose(),
        region,
    })
}

fn sign_error(key: &str, e: ks3_proto::sign_v4::V4Error) -> DriverError {
    DriverError::other(
        if key.is_empty() { "/" } else { key },
        format!("cannot sign the request: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Params;

    fn config(endpoint: &str) -> Config {
        let p: Params = [
            ("accesskey", "AK"),
            ("secretkey", "SK"),
            ("region", "ks3-cn-beijing"),
            ("bucket", "registry"),
            ("regionendpoint", endpoint),
            ("signatureversion", "aws4"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::from_params(&p, |_| None).unwrap()
    }

    fn payload_header(c: &Config, body: &[u8]) -> String {
        let extra = [("x-kss-acl", "private".to_string())];
        let h = headers(
            c,
            &ToSign {
                method: "PUT",
                key: "k",
                path: "/registry/k",
                query_encoded: &[],
                query_decoded: &[],
                content_type: None,
                content_md5: "",
                headers: &extra,
                body,
                now_unix: 1_795_593_600,
            },
        )
        .unwrap();
        // AWS4 renames the driver's x-kss-* headers.
        assert!(h.iter().any(|(k, _)| k == "x-amz-acl"), "{h:?}");
        assert!(!h.iter().any(|(k, _)| k.starts_with("x-kss-")), "{h:?}");
        h.iter()
            .find(|(k, _)| k == "x-amz-content-sha256")
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn payload_hash_policy() {
        let big = vec![7u8; UNSIGNED_FROM];
        let https = config("https://127.0.0.1:9443");
        assert_eq!(payload_header(&https, &big), UNSIGNED_PAYLOAD);
        assert_eq!(payload_header(&https, b"small"), sha256_hex(b"small"));
        let http = config("http://127.0.0.1:9000");
        assert_eq!(payload_header(&http, &big), sha256_hex(&big));
    }
}
