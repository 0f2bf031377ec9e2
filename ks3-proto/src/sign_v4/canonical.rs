//! The V4 canonical request, string to sign, signing key and signature: the arithmetic
//! the signer and the verifier share.
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{sha256_hex, V4Error, V4Namespace, V4Request, UNSIGNED_HEADERS};
use crate::digest::hex;
use crate::encode::{decode, encode_component};

/// The canonical URI of a wire path: each `/`-separated segment decoded and encoded once
/// (RFC 3986 unreserved characters kept), `/` kept, `/` for an empty path. A segment with a
/// bad `%` escape is kept as sent (such a request is refused before signing matters).
pub fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    path.split('/')
        .map(|seg| match decode(seg, false) {
            Some(d) => encode_component(&d),
            None => seg.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The canonical query: names and values encoded (RFC 3986), sorted by name then value,
/// `name=value` joined by `&` (a valueless parameter is `name=`).
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (encode_component(k), encode_component(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and collapses inner runs of whitespace to one space.
fn trim_all(v: &str) -> String {
    v.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// The headers a signer signs by default: every header of the request but
/// [`UNSIGNED_HEADERS`], lower-cased, sorted, without duplicates.
pub fn default_signed_headers(headers: &[(&str, &str)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !UNSIGNED_HEADERS.contains(&n.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `name:value\n` for each signed header (sorted, lower-case names, values trimmed; a
/// header sent several times joins its values with `,`).
pub(super) fn canonical_headers(
    headers: &[(&str, &str)],
    signed: &[String],
) -> Result<String, V4Error> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| trim_all(v))
            .collect();
        if values.is_empty() {
            return Err(V4Error::MissingSignedHeader(name.clone()));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// Lower-cases, sorts and de-duplicates signed header names.
pub(super) fn normalise_signed(signed: &[&str]) -> Vec<String> {
    let mut s: Vec<String> = signed.iter().map(|n| n.to_ascii_lowercase()).collect();
    s.sort();
    s.dedup();
    s
}

/// The canonical request. `signed_headers` are the names to sign (any case or order); the
/// query parameter `X-…-Signature` of a presigned URL is left out (it cannot sign itself).
pub fn canonical_request(
    ns: V4Namespace,
    req: &V4Request<'_>,
    signed_headers: &[&str],
) -> Result<String, V4Error> {
    let signed = normalise_signed(signed_headers);
    let sig_param = ns.query_param("Signature");
    let query: Vec<(&str, &str)> = req
        .query
        .iter()
        .copied()
        .filter(|(k, _)| *k != sig_param)
        .collect();
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(&query),
        canonical_headers(req.headers, &signed)?,
        signed.join(";"),
        req.payload_hash
    ))
}

/// `<yyyymmdd>/<region>/<service>/<terminator>`.
pub fn scope(ns: V4Namespace, yyyymmdd: &str, region: &str) -> String {
    format!("{yyyymmdd}/{region}/{}/{}", ns.service(), ns.terminator())
}

/// `ALGORITHM \n amz_date \n scope \n hex(SHA-256(canonical_request))`.
pub fn string_to_sign(
    ns: V4Namespace,
    amz_date: &str,
    scope: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{}\n{amz_date}\n{scope}\n{}",
        ns.algorithm(),
        sha256_hex(canonical_request.as_bytes())
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The signing key of one day, region and namespace.
pub fn signing_key(ns: V4Namespace, secret: &str, yyyymmdd: &str, region: &str) -> [u8; 32] {
    let seed = format!("{}{secret}", ns.key_prefix());
    let k_date = hmac(seed.as_bytes(), yyyymmdd.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, ns.service().as_bytes());
    hmac(&k_service, ns.terminator().as_bytes())
}

/// `hex(HMAC-SHA256(key, string_to_sign))`.
pub fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac(key, string_to_sign.as_bytes()))
}

/// Every intermediate of one signature, so a server can show the client what it computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Computed {
    pub canonical_request: String,
    pub string_to_sign: String,
    pub signature: String,
}

/// Computes the signature of `req` as signed at `amz_date` (`YYYYMMDDTHHMMSSZ`) in
/// `region`, with `signed_headers`. The scope's date is the first 8 characters of
/// `amz_date`.
pub fn compute(
    ns: V4Namespace,
    req: &V4Request<'_>,
    signed_headers: &[&str],
    amz_date: &str,
    region: &str,
    secret: &str,
) -> Result<V4Computed, V4Error> {
    let day = amz_date
        .get(..8)
        .ok_or_else(|| V4Error::Malformed(format!("bad V4 date {amz_date:?}")))?;
    let canonical_request = canonical_request(ns, req, signed_headers)?;
    let sts = string_to_sign(ns, amz_date, &scope(ns, day, region), &canonical_request);
    let signature = signature(&signing_key(ns, secret, day, region), &sts);
    Ok(V4Computed {
        canonical_request,
        string_to_sign: sts,
        signature,
    })
}

/// `yyyymmdd` of an amz date (the whole text if it is shorter, which `amz_date` never is).
pub(super) fn day_of(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}

pub(super) fn check_region(region: &str) -> Result<(), V4Error> {
    if region.is_empty() || region.bytes().any(|b| b == b'/' || b.is_ascii_whitespace()) {
        return Err(V4Error::InvalidRegion);
    }
    Ok(())
}
