//! The headers that authenticate one request, in the configured scheme
//! (`signatureversion`): KSS V2 (HMAC-SHA1 over `Date` and the `x-kss-*` headers) or V4
//! (HMAC-SHA256 over the canonical request, `KSS4-HMAC-SHA256` or `AWS4-HMAC-SHA256`).
//! Both sign the request as built, with its wire path and query: V2 signs the encoded
//! sub-resources, V4 decodes the query and canonicalises it itself. The rules live in
//! `ks3-proto` (shared with the local server).
use ks3_proto::encode::{decode, split_query};
use ks3_proto::sign::{canonical_resource, presigned_query, StringToSign};
use ks3_proto::sign_v4::{
    sha256_hex, V4Namespace, V4Request, V4Signer, MAX_PRESIGN_EXPIRES, UNSIGNED_PAYLOAD,
};
use ks3_proto::SignedRequest;

use crate::client::Call;
use crate::config::{Config, Scheme};
use crate::error::DriverError;
use crate::http::Request;

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

/// The request `call` makes at `path_and_query` (wire-encoded), with every header but the
/// authentication ones: the body's, and the operation's own under their wire names.
pub fn build(config: &Config, call: &Call<'_>, path_and_query: String) -> Request {
    let mut headers: Vec<(String, String)> = Vec::with_capacity(call.headers.len() + 6);
    if let Some(ct) = call.content_type {
        headers.push(("content-type".into(), ct.into()));
    }
    if call.md5 {
        headers.push((
            "content-md5".into(),
            ks3_proto::digest::content_md5(call.body),
        ));
    }
    if !call.body.is_empty() || matches!(call.method, "PUT" | "POST") {
        headers.push(("content-length".into(), call.body.len().to_string()));
    }
    for (k, v) in &call.headers {
        headers.push((wire_name(config, k), v.clone()));
    }
    Request {
        method: call.method,
        path_and_query,
        headers,
    }
}

/// Adds the authentication headers to `req`, built with every other header it sends
/// (besides `host`, which the transport sets from the endpoint) and signed for `key` with
/// `body` at `now_unix`.
pub fn sign(
    config: &Config,
    req: &mut Request,
    key: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), DriverError> {
    let (path, query) = req
        .path_and_query
        .split_once('?')
        .unwrap_or((&req.path_and_query, ""));
    let query = split_query(query);
    let added: Vec<(String, String)> = match config.signing_namespace() {
        None => {
            let date = ks3_proto::date::http_date(now_unix);
            let resource = canonical_resource(&config.bucket, key, &query);
            let sts = StringToSign {
                method: req.method,
                content_md5: req.header("content-md5").unwrap_or(""),
                content_type: req.header("content-type").unwrap_or(""),
                date: &date,
                headers: req
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                resource: &resource,
            };
            let auth = SignedRequest::authorization(
                config.access_key.expose(),
                config.secret_key.expose(),
                &sts,
            );
            vec![("date".into(), date), ("authorization".into(), auth)]
        }
        Some(ns) => {
            let host = config.endpoint.authority();
            let mut all: Vec<(&str, &str)> = Vec::with_capacity(req.headers.len() + 1);
            all.push(("host", &host));
            all.extend(req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            // The driver encodes every value it sends, so decoding gives it back.
            let decoded: Vec<(&str, String)> = query
                .iter()
                .map(|(k, v)| decode(v.unwrap_or(""), false).map(|v| (*k, v)))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    sign_error(
                        key,
                        ks3_proto::sign_v4::V4Error::Malformed(
                            "a query parameter is not percent-encoded UTF-8".into(),
                        ),
                    )
                })?;
            let query: Vec<(&str, &str)> = decoded.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let hash = payload_hash(config, body);
            let v4 = V4Request {
                method: req.method,
                path,
                query: &query,
                headers: &all,
                payload_hash: &hash,
            };
            signer(config, ns)?
                .sign(&v4, now_unix)
                .map_err(|e| sign_error(key, e))?
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect()
        }
    };
    req.headers.extend(added);
    Ok(())
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
        let call = Call {
            body,
            ..Call::new("PUT", "k", "k").header("x-kss-acl", "private")
        };
        let mut req = build(c, &call, "/registry/k".into());
        sign(c, &mut req, "k", body, 1_795_593_600).unwrap();
        let h = req.headers;
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
