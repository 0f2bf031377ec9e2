//! Request authentication: picks the scheme (KSS V2, or V4 in [`v4`]) and checks
//! KSS V2 itself: `Authorization: KSS AK:SIG` and presigned URLs (`KSSAccessKeyId` /
//! `AccessKeyId` / `AWSAccessKeyId`, `Expires`, `Signature`).
use std::collections::HashMap;

use http::HeaderMap;
use ks3_proto::date::{http_date, parse_http_date};
use ks3_proto::digest::hex;
use ks3_proto::encode::{decode, split_query};
use ks3_proto::sign::{canonical_resource, signature, signatures_equal, StringToSign};
use ks3_proto::sign_v4::{parse_authorization, presigned_namespace};
use ks3_proto::{Secret, SigningScheme};

use crate::error::S3Error;
use crate::limits::MAX_SKEW_SECS;

mod v4;

const ACCESS_KEY_PARAMS: &[&str] = &["KSSAccessKeyId", "AccessKeyId", "AWSAccessKeyId"];

/// A header value as text (lossy for non-UTF-8 bytes).
pub fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What is signed besides the headers.
pub struct AuthInput<'a> {
    pub method: &'a str,
    /// The request path as sent (percent-encoded): V4 signs it as such.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// `""` for service-level requests.
    pub bucket: &'a str,
    /// `""` for bucket-level requests.
    pub key: &'a str,
    /// The raw (still encoded) query string.
    pub raw_query: &'a str,
}

/// Who signed a request, how, and what its body must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub access_key: String,
    pub scheme: SigningScheme,
    /// The hex SHA-256 a V4 signature claims for the body (`None`: not signed).
    pub payload_sha256: Option<String>,
}

fn both_mechanisms() -> S3Error {
    S3Error::invalid_argument("Only one auth mechanism allowed; only the Authorization header or query-string authentication may be used, not both.")
}

/// Checks the request's credentials under whichever scheme it uses.
pub fn authenticate(
    inp: &AuthInput<'_>,
    creds: &HashMap<String, Secret>,
    now: i64,
) -> Result<Authenticated, S3Error> {
    let raw = split_query(inp.raw_query);
    let mut decoded = Vec::with_capacity(raw.len());
    for (k, v) in &raw {
        match (decode(k, true), decode(v.unwrap_or(""), true)) {
            (Some(k), Some(v)) => decoded.push((k, v)),
            _ => return Err(S3Error::invalid_uri()),
        }
    }
    let names: Vec<(&str, &str)> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let v4_presigned = presigned_namespace(&names);
    if let Some(h) = header_str(inp.headers, "authorization") {
        match parse_authorization(&h) {
            Ok(Some(claims)) => {
                if v4_presigned.is_some() {
                    return Err(both_mechanisms());
                }
                return v4::authenticate_header(inp, claims, &decoded, creds, now);
            }
            Err(e) => {
                return Err(S3Error::new(
                    400,
                    "AuthorizationHeaderMalformed",
                    format!("The authorization header is malformed; {e}."),
                ))
            }
            Ok(None) => {}
        }
    }
    if let Some(ns) = v4_presigned {
        if inp.headers.contains_key("authorization") {
            return Err(both_mechanisms());
        }
        return v4::authenticate_presigned(inp, ns, &decoded, creds, now);
    }
    authenticate_v2(inp, &raw, creds, now).map(|access_key| Authenticated {
        access_key,
        scheme: SigningScheme::V2,
        payload_sha256: None,
    })
}

/// KSS V2; returns the access key on success.
fn authenticate_v2(
    inp: &AuthInput<'_>,
    query: &[(&str, Option<&str>)],
    creds: &HashMap<String, Secret>,
    now: i64,
) -> Result<String, S3Error> {
    let qparam = |name: &str| {
        query
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode(v.unwrap_or(""), true).unwrap_or_default())
    };
    let q_sig = qparam("Signature");
    let q_ak = ACCESS_KEY_PARAMS.iter().find_map(|n| qparam(n));
    let q_expires = qparam("Expires");
    let auth_header = header_str(inp.headers, "authorization");
    let presigned = q_sig.is_some() || q_ak.is_some();

    if auth_header.is_some() && presigned {
        return Err(both_mechanisms());
    }

    let resource = canonical_resource(inp.bucket, inp.key, query);
    let content_md5 = header_str(inp.headers, "content-md5").unwrap_or_default();
    let content_type = header_str(inp.headers, "content-type").unwrap_or_default();
    let kss: Vec<(String, String)> = inp
        .headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-kss-"))
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();

    let (ak, provided, date_line) = if let Some(h) = auth_header {
        let (scheme, cred) = h.split_once(' ').unwrap_or((h.as_str(), ""));
        match scheme {
            "KSS" => {}
            "AWS" => {
                return Err(S3Error::not_implemented(
                    "the AWS V2 signature scheme (ks3-local accepts KSS V2, KSS4-HMAC-SHA256 and AWS4-HMAC-SHA256)",
                ))
            }
            _ => {
                return Err(S3Error::invalid_argument(
                    "Authorization header is invalid: expected \"KSS AccessKeyId:Signature\".",
                ))
            }
        }
        let Some((ak, sig)) = cred
            .split_once(':')
            .filter(|(a, s)| !a.is_empty() && !s.is_empty())
        else {
            return Err(S3Error::invalid_argument(
                "Authorization header is invalid: expected \"KSS AccessKeyId:Signature\".",
            ));
        };
        let date_hdr = header_str(inp.headers, "date");
        let kss_date = header_str(inp.headers, "x-kss-date");
        if !creds.contains_key(ak) {
            return Err(invalid_access_key(ak));
        }
        let when = kss_date
            .as_deref()
            .or(date_hdr.as_deref())
            .and_then(parse_http_date);
        let Some(when) = when else {
            return Err(S3Error::access_denied(
                "KS3 authentication requires a valid Date or x-kss-date header.",
            ));
        };
        if (when - now).abs() > MAX_SKEW_SECS {
            return Err(too_skewed(when, now));
        }
        (
            ak.to_string(),
            sig.to_string(),
            date_hdr.unwrap_or_default(),
        )
    } else if presigned {
        let (Some(sig), Some(ak), Some(expires)) = (q_sig, q_ak, q_expires) else {
            return Err(S3Error::access_denied(
                "Query-string authentication requires the Signature, Expires and KSSAccessKeyId parameters.",
            ));
        };
        if !creds.contains_key(&ak) {
            return Err(invalid_access_key(&ak));
        }
        let Ok(exp) = expires.parse::<i64>() else {
            return Err(S3Error::access_denied(
                "Invalid date (should be seconds since epoch): Expires",
            ));
        };
        if now > exp {
            return Err(S3Error::access_denied("Request has expired")
                .with("Expires", http_date(exp))
                .with("ServerTime", http_date(now)));
        }
        (ak, sig, expires)
    } else {
        return Err(S3Error::access_denied(
            "Anonymous access is forbidden for this operation.",
        ));
    };

    let secret = creds.get(&ak).map(Secret::expose).unwrap_or("");
    let sts = StringToSign {
        method: inp.method,
        content_md5: &content_md5,
        content_type: &content_type,
        date: &date_line,
        headers: kss.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect(),
        resource: &resource,
    }
    .build();
    let expected = signature(secret, &sts);
    if !signatures_equal(&expected, &provided) {
        return Err(S3Error::new(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
        .with("KSSAccessKeyId", ak)
        .with("StringToSign", sts.clone())
        .with("SignatureProvided", provided)
        .with("StringToSignBytes", hex(sts.as_bytes())));
    }
    Ok(ak)
}

pub(crate) fn invalid_access_key(ak: &str) -> S3Error {
    S3Error::new(
        403,
        "InvalidAccessKeyId",
        "The KS3 access key Id you provided does not exist in our records.",
    )
    .with("KSSAccessKeyId", ak)
}

/// KS3's answer to a request dated too far from the server's clock (every scheme).
fn too_skewed(when: i64, now: i64) -> S3Error {
    S3Error::new(
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
    )
    .with("RequestTime", http_date(when))
    .with("ServerTime", http_date(now))
    .with(
        "MaxAllowedSkewMilliseconds",
        (MAX_SKEW_SECS * 1000).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const AK: &str = "AKLTtestaccesskey0001";
    const SK: &str = "testsecretkeyTESTSECRETKEY0123456789abcd";
    const DATE: i64 = 1_795_593_600; // Wed, 25 Nov 2026 08:00:00 GMT

    fn creds() -> HashMap<String, Secret> {
        HashMap::from([(AK.to_string(), Secret::new(SK))])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn sdk_vector_put_object_sse_md5() {
        // ks3-api.md §7 put_object_sse_md5.
        let h = headers(&[
            ("content-type", "application/octet-stream"),
            ("content-md5", "XrY7u+Ae7tCTyyK7j1rNww=="),
            ("x-kss-server-side-encryption", "AES256"),
            ("date", "Wed, 25 Nov 2026 08:00:00 GMT"),
            (
                "authorization",
                "KSS AKLTtestaccesskey0001:oFBIA2IMJX2tPXtTtZfD+JIuMM0=",
            ),
        ]);
        let inp = AuthInput {
            method: "PUT",
            path: "/",
            headers: &h,
            bucket: "registry-bucket",
            key: "docker/registry/v2/blobs/sha256/ab/abcd/data",
            raw_query: "",
        };
        assert_eq!(authenticate(&inp, &creds(), DATE).unwrap().access_key, AK);
        assert_eq!(
            authenticate(&inp, &creds(), DATE + 16 * 60)
                .unwrap_err()
                .code,
            "RequestTimeTooSkewed"
        );
    }

    #[test]
    fn sdk_vector_upload_part_copy_query_order() {
        // Sent as uploadId=…&partNumber=…, signed as ?partNumber=1&uploadId=XYZ.
        let h = headers(&[
            (
                "x-kss-copy-source",
                "/registry-bucket/docker%2Fregistry%2Fv2%2Frepositories%2Flib%2F_uploads%2Fu1%2Fdata",
            ),
            ("x-kss-copy-source-range", "bytes=0-5242879"),
            ("date", "Wed, 25 Nov 2026 08:00:00 GMT"),
            ("authorization", "KSS AKLTtestaccesskey0001:RyF/kkYtZ5H+PXSyf0C8XBlJ7qU="),
        ]);
        let inp = AuthInput {
            method: "PUT",
            path: "/",
            headers: &h,
            bucket: "registry-bucket",
            key: "docker/registry/v2/blobs/sha256/ab/abcd/data",
            raw_query: "uploadId=XYZ&partNumber=1",
        };
        assert_eq!(authenticate(&inp, &creds(), DATE).unwrap().access_key, AK);
    }

    #[test]
    fn sdk_vector_presigned() {
        let h = HeaderMap::new();
        let inp = AuthInput {
            method: "GET",
            path: "/",
            headers: &h,
            bucket: "registry-bucket",
            key: "docker/registry/v2/blobs/sha256/ab/abcd/data",
            raw_query: "Signature=1CgMNYSQmNjR7sE5bP%2BIF4fle44%3D&Expires=1795000000&KSSAccessKeyId=AKLTtestaccesskey0001",
        };
        assert_eq!(
            authenticate(&inp, &creds(), 1_794_999_000)
                .unwrap()
                .access_key,
            AK
        );
        let e = authenticate(&inp, &creds(), 1_795_000_001).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code.as_str()), (403, "AccessDenied"));
        let inp2 = AuthInput {
            raw_query: "Signature=1CgMNYSQmNjR7sE5bP%2BIF4fle44%3D&Expires=1795000000&AWSAccessKeyId=AKLTtestaccesskey0001",
            ..inp
        };
        assert_eq!(
            authenticate(&inp2, &creds(), 1_794_999_000)
                .unwrap()
                .access_key,
            AK
        );
    }

    #[test]
    fn rejections() {
        let h = headers(&[
            ("date", "Wed, 25 Nov 2026 08:00:00 GMT"),
            (
                "authorization",
                "KSS AKLTtestaccesskey0001:wrongwrongwrongwrongwrongwro=",
            ),
        ]);
        let inp = AuthInput {
            method: "GET",
            path: "/",
            headers: &h,
            bucket: "registry-bucket",
            key: "k",
            raw_query: "",
        };
        let e = authenticate(&inp, &creds(), DATE).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert!(e.extra.iter().any(|(n, v)| *n == "StringToSign"
            && v == "GET\n\n\nWed, 25 Nov 2026 08:00:00 GMT\n/registry-bucket/k"));
        let e = authenticate(&inp, &HashMap::new(), DATE).unwrap_err();
        assert_eq!(e.code, "InvalidAccessKeyId");
        let none = HeaderMap::new();
        let anon = AuthInput {
            headers: &none,
            ..inp
        };
        assert_eq!(
            authenticate(&anon, &creds(), DATE).unwrap_err().code,
            "AccessDenied"
        );
    }
}
