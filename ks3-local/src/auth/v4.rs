//! Signature V4 verification, KSS4 and AWS4, in the `Authorization` header and in presigned
//! URLs, with the strictness of the V2 checks: clock skew, expiry, unknown keys, unsigned
//! `x-amz-*`/`x-kss-*` headers, the scope, and a `SignatureDoesNotMatch` that shows the
//! canonical request and string to sign the server computed.
use std::collections::HashMap;

use ks3_proto::date::{http_date, parse_amz_date};
use ks3_proto::digest::hex;
use ks3_proto::sign_v4::{
    compute, is_sha256_hex, signatures_equal, V4Claims, V4Namespace, V4Request, UNSIGNED_PAYLOAD,
};
use ks3_proto::{Secret, SigningScheme};

use super::{header_str, invalid_access_key, too_skewed, AuthInput, Authenticated};
use crate::error::S3Error;
use crate::limits::MAX_SKEW_SECS;

fn header_malformed(msg: impl std::fmt::Display) -> S3Error {
    S3Error::new(
        400,
        "AuthorizationHeaderMalformed",
        format!("The authorization header is malformed; {msg}"),
    )
}

fn query_malformed(msg: impl std::fmt::Display) -> S3Error {
    S3Error::new(
        400,
        "AuthorizationQueryParametersError",
        format!("Error parsing the presigned URL's authorization parameters: {msg}"),
    )
}

/// The element that names the access key in error bodies.
fn key_element(ns: V4Namespace) -> &'static str {
    match ns {
        V4Namespace::Kss4 => "KSSAccessKeyId",
        V4Namespace::Aws4 => "AWSAccessKeyId",
    }
}

/// All headers as text pairs (lower-case names; non-UTF-8 bytes replaced).
fn header_pairs(inp: &AuthInput<'_>) -> Vec<(String, String)> {
    inp.headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Every `x-amz-*` / `x-kss-*` header must be signed: otherwise anyone on the path could
/// add one (an ACL, a copy source) to a signed request. `host` must be signed too.
fn check_signed_set(inp: &AuthInput<'_>, claims: &V4Claims) -> Result<(), S3Error> {
    if !claims.signed_headers.iter().any(|h| h == "host") {
        return Err(S3Error::access_denied(
            "The host header must be signed (SignedHeaders has no host).",
        ));
    }
    let mut unsigned: Vec<&str> = inp
        .headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| n.starts_with("x-amz-") || n.starts_with("x-kss-"))
        .filter(|n| !claims.signed_headers.iter().any(|s| s == n))
        .collect();
    unsigned.dedup();
    if !unsigned.is_empty() {
        return Err(S3Error::access_denied(
            "There were headers present in the request which were not signed",
        )
        .with("HeadersNotSigned", unsigned.join(", ")));
    }
    Ok(())
}

/// What the payload-hash header claims: `Ok(Some(hex))` to verify the body against,
/// `Ok(None)` for `UNSIGNED-PAYLOAD`.
fn payload_claim(ns: V4Namespace, value: &str) -> Result<Option<String>, S3Error> {
    if value == UNSIGNED_PAYLOAD {
        Ok(None)
    } else if value.starts_with("STREAMING-") {
        Err(S3Error::not_implemented(&format!(
            "{} {value} (aws-chunked streaming uploads; send the body's SHA-256 or UNSIGNED-PAYLOAD)",
            ns.content_sha256_header()
        )))
    } else if is_sha256_hex(value) {
        Ok(Some(value.to_string()))
    } else {
        Err(S3Error::invalid_argument(format!(
            "{} must be UNSIGNED-PAYLOAD or the hex SHA-256 of the body.",
            ns.content_sha256_header()
        ))
        .with("ArgumentName", ns.content_sha256_header())
        .with("ArgumentValue", value))
    }
}

/// Recomputes the signature; a mismatch answers with what the server computed.
fn verify_signature(
    inp: &AuthInput<'_>,
    claims: &V4Claims,
    query: &[(String, String)],
    amz_date: &str,
    payload_hash: &str,
    secret: &str,
) -> Result<(), S3Error> {
    let headers = header_pairs(inp);
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let q: Vec<(&str, &str)> = query
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let req = V4Request {
        method: inp.method,
        path: inp.path,
        query: &q,
        headers: &h,
        payload_hash,
    };
    let signed: Vec<&str> = claims.signed_headers.iter().map(String::as_str).collect();
    let c = compute(
        claims.namespace,
        &req,
        &signed,
        amz_date,
        &claims.region,
        secret,
    )
    .map_err(|e| S3Error::access_denied(format!("The request cannot be verified: {e}.")))?;
    if !signatures_equal(&c.signature, &claims.signature) {
        return Err(S3Error::new(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        )
        .with(key_element(claims.namespace), claims.access_key.clone())
        .with("StringToSign", c.string_to_sign.clone())
        .with("SignatureProvided", claims.signature.clone())
        .with("StringToSignBytes", hex(c.string_to_sign.as_bytes()))
        .with("CanonicalRequest", c.canonical_request.clone())
        .with("CanonicalRequestBytes", hex(c.canonical_request.as_bytes())));
    }
    Ok(())
}

/// `Authorization: KSS4-HMAC-SHA256 …` or `AWS4-HMAC-SHA256 …`.
pub fn authenticate_header(
    inp: &AuthInput<'_>,
    claims: V4Claims,
    query: &[(String, String)],
    creds: &HashMap<String, Secret>,
    now: i64,
) -> Result<Authenticated, S3Error> {
    let ns = claims.namespace;
    claims.check_scope().map_err(header_malformed)?;
    let Some(secret) = creds.get(&claims.access_key).map(Secret::expose) else {
        return Err(invalid_access_key(&claims.access_key));
    };
    let Some(amz_date) = header_str(inp.headers, ns.date_header()) else {
        return Err(S3Error::access_denied(format!(
            "{} authentication requires a valid {} header.",
            ns.algorithm(),
            ns.date_header()
        )));
    };
    let Some(when) = parse_amz_date(&amz_date) else {
        return Err(S3Error::access_denied(format!(
            "{} authentication requires a valid {} header (YYYYMMDDTHHMMSSZ).",
            ns.algorithm(),
            ns.date_header()
        )));
    };
    if !amz_date.starts_with(&claims.scope_date) {
        return Err(header_malformed(format!(
            "Invalid credential date {:?}: it is not the date of {} ({amz_date}).",
            claims.scope_date,
            ns.date_header()
        )));
    }
    if (when - now).abs() > MAX_SKEW_SECS {
        return Err(too_skewed(when, now));
    }
    let Some(payload_hash) = header_str(inp.headers, ns.content_sha256_header()) else {
        return Err(S3Error::invalid_request(format!(
            "Missing required header for this request: {}",
            ns.content_sha256_header()
        )));
    };
    let payload = payload_claim(ns, &payload_hash)?;
    check_signed_set(inp, &claims)?;
    verify_signature(inp, &claims, query, &amz_date, &payload_hash, secret)?;
    Ok(Authenticated {
        access_key: claims.access_key,
        scheme: SigningScheme::V4(ns),
        payload_sha256: payload,
    })
}

/// A presigned URL with `X-Kss-*` / `X-Amz-*` parameters.
pub fn authenticate_presigned(
    inp: &AuthInput<'_>,
    ns: V4Namespace,
    query: &[(String, String)],
    creds: &HashMap<String, Secret>,
    now: i64,
) -> Result<Authenticated, S3Error> {
    let q: Vec<(&str, &str)> = query
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let claims = ks3_proto::sign_v4::parse_presigned(ns, &q).map_err(query_malformed)?;
    claims.check_scope().map_err(query_malformed)?;
    let Some(secret) = creds.get(&claims.access_key).map(Secret::expose) else {
        return Err(invalid_access_key(&claims.access_key));
    };
    let Some((amz_date, expires)) = claims.presigned.clone() else {
        return Err(query_malformed("no date"));
    };
    let Some(when) = parse_amz_date(&amz_date) else {
        return Err(query_malformed(format!(
            "{} must be YYYYMMDDTHHMMSSZ",
            ns.query_param("Date")
        )));
    };
    if !amz_date.starts_with(&claims.scope_date) {
        return Err(query_malformed(format!(
            "the credential's date {:?} is not the date of {}",
            claims.scope_date,
            ns.query_param("Date")
        )));
    }
    // `expires` is at most 7 days, so the sum cannot overflow for any parsed date.
    let deadline = when.saturating_add(i64::try_from(expires).unwrap_or(i64::MAX));
    if now > deadline {
        return Err(S3Error::access_denied("Request has expired")
            .with("Expires", http_date(deadline))
            .with("ServerTime", http_date(now)));
    }
    if when - now > MAX_SKEW_SECS {
        return Err(S3Error::access_denied("Request is not valid yet")
            .with("RequestTime", http_date(when))
            .with("ServerTime", http_date(now)));
    }
    // A presigned URL signs no body unless its user also sends (and signs) the header.
    let payload_hash = header_str(inp.headers, ns.content_sha256_header())
        .unwrap_or_else(|| UNSIGNED_PAYLOAD.to_string());
    let payload = payload_claim(ns, &payload_hash)?;
    check_signed_set(inp, &claims)?;
    verify_signature(inp, &claims, query, &amz_date, &payload_hash, secret)?;
    Ok(Authenticated {
        access_key: claims.access_key,
        scheme: SigningScheme::V4(ns),
        payload_sha256: payload,
    })
}
