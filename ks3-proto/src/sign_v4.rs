//! Signature V4 (HMAC-SHA256) in KS3's two namespaces, as pure functions over a request.
//!
//! | | KSS4 (KS3's own) | AWS4 (S3-compatible) |
//! |---|---|---|
//! | algorithm | `KSS4-HMAC-SHA256` | `AWS4-HMAC-SHA256` |
//! | scope | `<yyyymmdd>/<REGION>/ks3/kss4_request` | `<yyyymmdd>/<REGION>/s3/aws4_request` |
//! | key prefix | `KSS4` + secret | `AWS4` + secret |
//! | headers | `x-kss-date`, `x-kss-content-sha256` | `x-amz-date`, `x-amz-content-sha256` |
//! | presigned query | `X-Kss-Algorithm`, `-Credential`, `-Date`, `-Expires`, `-SignedHeaders`, `-Signature` | the same with `X-Amz-` |
//!
//! (ks3-api.md §3.) The two differ only in those names, so one [`V4Namespace`] value
//! carries them all and every function below serves both.
//!
//! ```text
//! CanonicalRequest = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
//!                    SignedHeaders \n PayloadHash
//! StringToSign     = ALGORITHM \n <x-…-date> \n Scope \n hex(SHA-256(CanonicalRequest))
//! SigningKey       = HMAC(HMAC(HMAC(HMAC(PREFIX+secret, yyyymmdd), REGION), service), terminator)
//! Signature        = hex(HMAC(SigningKey, StringToSign))
//! ```
//!
//! The server side ([`parse_authorization`], [`parse_presigned`], [`compute`]) and the
//! client side ([`V4Signer`]) share the same canonicalisation, so a request the signer
//! produces is exactly what the verifier recomputes. Policy (clock skew, expiry, which keys
//! exist) is the caller's.
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::date::amz_date;
use crate::digest::hex;
use crate::encode::{decode, encode_component};

/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Hex SHA-256 of the empty string: the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Longest validity of a presigned URL: 7 days, in seconds.
pub const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 3600;

/// Headers a signer leaves out: proxies and HTTP stacks add, drop or rewrite them, so
/// signing them would break requests that are otherwise intact (botocore's list, plus
/// `authorization`, which carries the signature).
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// Which V4 namespace: KS3's native `KSS4-HMAC-SHA256` or the S3-compatible
/// `AWS4-HMAC-SHA256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum V4Namespace {
    Kss4,
    Aws4,
}

impl V4Namespace {
    /// `KSS4-HMAC-SHA256` / `AWS4-HMAC-SHA256`.
    pub const fn algorithm(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "KSS4-HMAC-SHA256",
            V4Namespace::Aws4 => "AWS4-HMAC-SHA256",
        }
    }
    /// The scope's service: `ks3` / `s3`.
    pub const fn service(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "ks3",
            V4Namespace::Aws4 => "s3",
        }
    }
    /// The scope's last element: `kss4_request` / `aws4_request`.
    pub const fn terminator(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "kss4_request",
            V4Namespace::Aws4 => "aws4_request",
        }
    }
    /// Prepended to the secret key to seed the signing key: `KSS4` / `AWS4`.
    pub const fn key_prefix(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "KSS4",
            V4Namespace::Aws4 => "AWS4",
        }
    }
    /// The prefix of the namespace's own request headers: `x-kss-` / `x-amz-`.
    pub const fn header_prefix(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "x-kss-",
            V4Namespace::Aws4 => "x-amz-",
        }
    }
    /// `x-kss-date` / `x-amz-date`.
    pub const fn date_header(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "x-kss-date",
            V4Namespace::Aws4 => "x-amz-date",
        }
    }
    /// `x-kss-content-sha256` / `x-amz-content-sha256`.
    pub const fn content_sha256_header(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "x-kss-content-sha256",
            V4Namespace::Aws4 => "x-amz-content-sha256",
        }
    }
    /// The prefix of the presigned-URL parameters: `X-Kss-` / `X-Amz-`.
    pub const fn query_prefix(self) -> &'static str {
        match self {
            V4Namespace::Kss4 => "X-Kss-",
            V4Namespace::Aws4 => "X-Amz-",
        }
    }
    /// The namespace of an algorithm name (`AWS4-HMAC-SHA256` → `Aws4`).
    pub fn from_algorithm(algorithm: &str) -> Option<V4Namespace> {
        [V4Namespace::Kss4, V4Namespace::Aws4]
            .into_iter()
            .find(|ns| ns.algorithm() == algorithm)
    }
    /// The name of one presigned-URL parameter, e.g. `query_param("Signature")` →
    /// `X-Amz-Signature`.
    pub fn query_param(self, suffix: &str) -> String {
        format!("{}{suffix}", self.query_prefix())
    }
}

/// How a client signs: KSS V2 (HMAC-SHA1, [`crate::sign`]) or one of the V4 namespaces.
/// The driver's `signatureversion` parameter spells them `v2`, `v4` (KSS4) and `aws4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningScheme {
    V2,
    V4(V4Namespace),
}

impl SigningScheme {
    /// Every accepted spelling, for error messages.
    pub const NAMES: &'static [&'static str] = &["v2", "v4", "aws4"];

    /// `v2` / `v4` / `aws4` (case-insensitive).
    pub fn parse(s: &str) -> Option<SigningScheme> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v2" => Some(SigningScheme::V2),
            "v4" => Some(SigningScheme::V4(V4Namespace::Kss4)),
            "aws4" => Some(SigningScheme::V4(V4Namespace::Aws4)),
            _ => None,
        }
    }
    /// The parameter spelling: `v2` / `v4` / `aws4`.
    pub const fn name(self) -> &'static str {
        match self {
            SigningScheme::V2 => "v2",
            SigningScheme::V4(V4Namespace::Kss4) => "v4",
            SigningScheme::V4(V4Namespace::Aws4) => "aws4",
        }
    }
}

/// KS3 region id → the region name V4 scopes use (ks3-api.md §4). This table is the one
/// home of that rule; regions outside it need an explicit V4 region name.
const V4_REGIONS: &[(&str, &str)] = &[
    ("ks3-cn-beijing", "BEIJING"),
    ("ks3-cn-shanghai", "SHANGHAI"),
    ("ks3-cn-guangzhou", "GUANGZHOU"),
    ("ks3-cn-hk-1", "HONGKONG"),
    ("ks3-rus", "RUSSIA"),
    ("ks3-sgp", "SINGAPORE"),
    ("ks3-jr-beijing", "JR_BEIJING"),
    ("ks3-jr-shanghai", "JR_SHANGHAI"),
    ("ks3-gov-beijing", "GOV_BEIJING"),
    ("ks3-cn-qingyang", "QINGYANG"),
];

/// The V4 region name of a KS3 region id (`ks3-cn-beijing` → `BEIJING`); `None` for ids
/// outside the known table.
pub fn v4_region(region_id: &str) -> Option<&'static str> {
    V4_REGIONS
        .iter()
        .find(|(id, _)| *id == region_id)
        .map(|(_, name)| *name)
}

/// Hex SHA-256 of `data`: the payload hash of a signed body.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// `true` for a well-formed hex payload hash (64 lower-case hex digits, as signers send).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why a V4 computation or parse failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V4Error {
    /// `SignedHeaders` names a header the request does not carry.
    MissingSignedHeader(String),
    /// The `Authorization` header or presigned query is malformed; the text says how.
    Malformed(String),
    /// A region name that cannot be placed in a scope (empty, or with `/` or whitespace).
    InvalidRegion,
    /// A presigned expiry outside 1 ..= 7 days.
    InvalidExpires,
}

impl std::fmt::Display for V4Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            V4Error::MissingSignedHeader(h) => {
                write!(f, "the signed header {h:?} is not in the request")
            }
            V4Error::Malformed(why) => f.write_str(why),
            V4Error::InvalidRegion => f.write_str("the V4 region name is empty or contains '/'"),
            V4Error::InvalidExpires => write!(
                f,
                "a presigned URL expires after 1 to {MAX_PRESIGN_EXPIRES} seconds"
            ),
        }
    }
}

impl std::error::Error for V4Error {}

/// One request as V4 sees it.
#[derive(Debug, Clone, Copy)]
pub struct V4Request<'a> {
    /// `GET`, `PUT`, …
    pub method: &'a str,
    /// The path exactly as sent on the wire, percent-encoded (`/bucket/a%20b`; `/key` for
    /// virtual-hosted requests). Each segment is normalised to S3's encoding (decoded, then
    /// encoded once, `/` kept), so a client and a server that encode differently but
    /// equivalently agree.
    pub path: &'a str,
    /// Decoded query parameters; a parameter without a value (`?uploads`) has value `""`.
    pub query: &'a [(&'a str, &'a str)],
    /// Request headers, any case. Must hold every header that is signed, `host` included.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body, [`EMPTY_SHA256`], or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

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
fn canonical_headers(headers: &[(&str, &str)], signed: &[String]) -> Result<String, V4Error> {
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
fn normalise_signed(signed: &[&str]) -> Vec<String> {
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
fn day_of(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}

fn check_region(region: &str) -> Result<(), V4Error> {
    if region.is_empty() || region.bytes().any(|b| b == b'/' || b.is_ascii_whitespace()) {
        return Err(V4Error::InvalidRegion);
    }
    Ok(())
}

/// A client's V4 signer: namespace, credentials and region. Its `Debug` never shows the
/// secret key.
#[derive(Clone, Copy)]
pub struct V4Signer<'a> {
    pub namespace: V4Namespace,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// The V4 region name (`BEIJING`; see [`v4_region`]).
    pub region: &'a str,
}

impl std::fmt::Debug for V4Signer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4Signer")
            .field("namespace", &self.namespace)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

impl V4Signer<'_> {
    /// Header signing. `req.headers` holds the request's headers without the date and
    /// payload-hash headers (they are added here) and must include `host`; all of them but
    /// the unsigned ones (`user-agent`, `expect`, …) are signed. Returns the headers to add
    /// to the request: `x-…-date`, `x-…-content-sha256` (= `req.payload_hash`) and
    /// `authorization`.
    pub fn sign(
        &self,
        req: &V4Request<'_>,
        unix_time: i64,
    ) -> Result<Vec<(&'static str, String)>, V4Error> {
        check_region(self.region)?;
        let ns = self.namespace;
        let date = amz_date(unix_time);
        let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
        headers.push((ns.date_header(), &date));
        headers.push((ns.content_sha256_header(), req.payload_hash));
        let signed = default_signed_headers(&headers);
        let signed_refs: Vec<&str> = signed.iter().map(String::as_str).collect();
        let full = V4Request {
            headers: &headers,
            ..*req
        };
        let c = compute(ns, &full, &signed_refs, &date, self.region, self.secret_key)?;
        let auth = format!(
            "{} Credential={}/{}, SignedHeaders={}, Signature={}",
            ns.algorithm(),
            self.access_key,
            scope(ns, day_of(&date), self.region),
            signed.join(";"),
            c.signature
        );
        Ok(vec![
            (ns.date_header(), date.clone()),
            (ns.content_sha256_header(), req.payload_hash.to_string()),
            ("authorization", auth),
        ])
    }

    /// A presigned URL's authentication parameters, valid `expires_secs` (1 ..= 7 days)
    /// from `unix_time`. `req.query` holds the URL's other parameters (signed along), and
    /// `req.headers` the headers the URL's user will send (normally just `host`); the
    /// payload hash is normally [`UNSIGNED_PAYLOAD`]. Returns the encoded parameters
    /// (`X-…-Algorithm=…&…&X-…-Signature=…`) to append to the URL's query with `&`.
    pub fn presign(
        &self,
        req: &V4Request<'_>,
        unix_time: i64,
        expires_secs: u64,
    ) -> Result<String, V4Error> {
        check_region(self.region)?;
        if !(1..=MAX_PRESIGN_EXPIRES).contains(&expires_secs) {
            return Err(V4Error::InvalidExpires);
        }
        let ns = self.namespace;
        let date = amz_date(unix_time);
        let credential = format!(
            "{}/{}",
            self.access_key,
            scope(ns, day_of(&date), self.region)
        );
        let signed = default_signed_headers(req.headers);
        let signed_list = signed.join(";");
        let expires = expires_secs.to_string();
        let auth_params = [
            (ns.query_param("Algorithm"), ns.algorithm().to_string()),
            (ns.query_param("Credential"), credential),
            (ns.query_param("Date"), date.clone()),
            (ns.query_param("Expires"), expires),
            (ns.query_param("SignedHeaders"), signed_list),
        ];
        let mut query: Vec<(&str, &str)> = req.query.to_vec();
        query.extend(auth_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let signed_refs: Vec<&str> = signed.iter().map(String::as_str).collect();
        let full = V4Request {
            query: &query,
            ..*req
        };
        let c = compute(ns, &full, &signed_refs, &date, self.region, self.secret_key)?;
        let mut out: Vec<String> = auth_params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_component(v)))
            .collect();
        out.push(format!("{}={}", ns.query_param("Signature"), c.signature));
        Ok(out.join("&"))
    }
}

/// The credential and signature claims of a V4 request, from its `Authorization` header
/// or its presigned query. Nothing here is verified yet.
#[derive(Clone, PartialEq, Eq)]
pub struct V4Claims {
    pub namespace: V4Namespace,
    pub access_key: String,
    /// The scope's date, `yyyymmdd`.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub terminator: String,
    /// Lower-case, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// Presigned only: `X-…-Date` and `X-…-Expires` (seconds).
    pub presigned: Option<(String, u64)>,
}

/// The signature is the secret being proved; keep it out of logs.
impl std::fmt::Debug for V4Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4Claims")
            .field("namespace", &self.namespace)
            .field("access_key", &self.access_key)
            .field("scope_date", &self.scope_date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("terminator", &self.terminator)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &"<redacted>")
            .field("presigned", &self.presigned)
            .finish()
    }
}

impl V4Claims {
    /// The credential scope as claimed.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.scope_date, self.region, self.service, self.terminator
        )
    }

    /// Whether the scope's service and terminator are the namespace's own and its date is
    /// eight digits. `Err` says what is wrong.
    pub fn check_scope(&self) -> Result<(), V4Error> {
        let ns = self.namespace;
        if self.scope_date.len() != 8 || !self.scope_date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(V4Error::Malformed(format!(
                "the credential's date {:?} is not yyyymmdd",
                self.scope_date
            )));
        }
        if self.region.is_empty() {
            return Err(V4Error::Malformed("the credential has no region".into()));
        }
        if self.service != ns.service() {
            return Err(V4Error::Malformed(format!(
                "the credential's service is {:?}; {} expects {:?}",
                self.service,
                ns.algorithm(),
                ns.service()
            )));
        }
        if self.terminator != ns.terminator() {
            return Err(V4Error::Malformed(format!(
                "the credential ends in {:?}; {} expects {:?}",
                self.terminator,
                ns.algorithm(),
                ns.terminator()
            )));
        }
        Ok(())
    }
}

/// Splits `AK/yyyymmdd/region/service/terminator` (the access key is whatever precedes the
/// last four elements).
fn parse_credential(ns: V4Namespace, cred: &str) -> Result<V4Claims, V4Error> {
    let mut it = cred.rsplitn(5, '/');
    let (Some(term), Some(svc), Some(region), Some(date), Some(ak)) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(V4Error::Malformed(format!(
            "the Credential {cred:?} is not AccessKeyId/yyyymmdd/region/service/{}",
            ns.terminator()
        )));
    };
    if ak.is_empty() {
        return Err(V4Error::Malformed(
            "the Credential has no access key".into(),
        ));
    }
    Ok(V4Claims {
        namespace: ns,
        access_key: ak.to_string(),
        scope_date: date.to_string(),
        region: region.to_string(),
        service: svc.to_string(),
        terminator: term.to_string(),
        signed_headers: Vec::new(),
        signature: String::new(),
        presigned: None,
    })
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, V4Error> {
    let names: Vec<String> = list
        .split(';')
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    if names.iter().any(String::is_empty) {
        return Err(V4Error::Malformed(format!(
            "SignedHeaders {list:?} has an empty name"
        )));
    }
    Ok(names)
}

/// Parses `ALGORITHM Credential=…, SignedHeaders=…, Signature=…` (separators `,` with or
/// without spaces, in any order). `Ok(None)` when the scheme is not a V4 one.
pub fn parse_authorization(value: &str) -> Result<Option<V4Claims>, V4Error> {
    let value = value.trim();
    let (alg, rest) = value.split_once(' ').unwrap_or((value, ""));
    let Some(ns) = V4Namespace::from_algorithm(alg) else {
        return Ok(None);
    };
    let (mut cred, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(V4Error::Malformed(format!(
                "the Authorization header has an element without '=': {part:?}"
            )));
        };
        let slot = match k.trim() {
            "Credential" => &mut cred,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut sig,
            other => {
                return Err(V4Error::Malformed(format!(
                    "the Authorization header has an unknown element {other:?}"
                )))
            }
        };
        if slot.replace(v.trim()).is_some() {
            return Err(V4Error::Malformed(format!(
                "the Authorization header repeats {k:?}"
            )));
        }
    }
    let (Some(cred), Some(signed), Some(sig)) = (cred, signed, sig) else {
        return Err(V4Error::Malformed(format!(
            "the {} Authorization header needs Credential, SignedHeaders and Signature",
            ns.algorithm()
        )));
    };
    let mut claims = parse_credential(ns, cred)?;
    claims.signed_headers = parse_signed_headers(signed)?;
    claims.signature = sig.to_string();
    Ok(Some(claims))
}

/// Whether the (decoded) query carries presigned-URL parameters of some V4 namespace, and
/// of which.
pub fn presigned_namespace(query: &[(&str, &str)]) -> Option<V4Namespace> {
    [V4Namespace::Kss4, V4Namespace::Aws4]
        .into_iter()
        .find(|ns| query.iter().any(|(k, _)| k.starts_with(ns.query_prefix())))
}

/// Parses the presigned parameters of `ns` from the decoded query. Every one of
/// `Algorithm`, `Credential`, `Date`, `Expires` (1 ..= 7 days), `SignedHeaders` and
/// `Signature` is required, once.
pub fn parse_presigned(ns: V4Namespace, query: &[(&str, &str)]) -> Result<V4Claims, V4Error> {
    let get = |suffix: &str| -> Result<&str, V4Error> {
        let name = ns.query_param(suffix);
        let mut found = query.iter().filter(|(k, _)| *k == name).map(|(_, v)| *v);
        match (found.next(), found.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(V4Error::Malformed(format!(
                "the presigned URL lacks the {name} parameter"
            ))),
            (Some(_), Some(_)) => Err(V4Error::Malformed(format!(
                "the presigned URL repeats the {name} parameter"
            ))),
        }
    };
    let alg = get("Algorithm")?;
    if alg != ns.algorithm() {
        return Err(V4Error::Malformed(format!(
            "{} must be {}",
            ns.query_param("Algorithm"),
            ns.algorithm()
        )));
    }
    let mut claims = parse_credential(ns, get("Credential")?)?;
    claims.signed_headers = parse_signed_headers(get("SignedHeaders")?)?;
    claims.signature = get("Signature")?.to_string();
    let date = get("Date")?.to_string();
    let expires = get("Expires")?;
    let expires = expires
        .parse::<u64>()
        .ok()
        .filter(|e| (1..=MAX_PRESIGN_EXPIRES).contains(e))
        .ok_or(V4Error::InvalidExpires)?;
    claims.presigned = Some((date, expires));
    Ok(claims)
}

/// Constant-time comparison of two signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    crate::sign::signatures_equal(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uri_encodes_each_segment_once() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/b/a%20b/c"), "/b/a%20b/c");
        // Equivalent encodings normalise to one.
        assert_eq!(canonical_uri("/b/a%7eb!"), "/b/a~b%21");
        assert_eq!(canonical_uri("/b/%E2%82%AC"), "/b/%E2%82%AC");
        // An encoded slash stays inside its segment.
        assert_eq!(canonical_uri("/b/a%2Fb"), "/b/a%2Fb");
        // A bad escape is kept as sent, no panic.
        assert_eq!(canonical_uri("/b/%zz"), "/b/%zz");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(
            canonical_query(&[("uploadId", "x y"), ("partNumber", "2")]),
            "partNumber=2&uploadId=x%20y"
        );
        assert_eq!(canonical_query(&[("uploads", "")]), "uploads=");
        assert_eq!(
            canonical_query(&[("prefix", "a/b"), ("delimiter", "/")]),
            "delimiter=%2F&prefix=a%2Fb"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_joined() {
        let h = [
            ("Host", "h"),
            ("X-Amz-Meta-A", "  a   b "),
            ("x-amz-meta-a", "c"),
        ];
        let signed = normalise_signed(&["host", "x-amz-meta-a"]);
        assert_eq!(
            canonical_headers(&h, &signed).unwrap(),
            "host:h\nx-amz-meta-a:a b,c\n"
        );
        assert_eq!(
            canonical_headers(&h, &normalise_signed(&["range"])),
            Err(V4Error::MissingSignedHeader("range".into()))
        );
    }

    #[test]
    fn authorization_parsing() {
        let c = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-date, Signature=abc",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.namespace, V4Namespace::Aws4);
        assert_eq!(c.access_key, "AK");
        assert_eq!(c.scope(), "20130524/us-east-1/s3/aws4_request");
        assert_eq!(c.signed_headers, vec!["host", "x-amz-date"]);
        assert_eq!(c.signature, "abc");
        c.check_scope().unwrap();
        assert!(!format!("{c:?}").contains("abc"));
        assert_eq!(parse_authorization("KSS AK:sig").unwrap(), None);
        for bad in [
            "KSS4-HMAC-SHA256",
            "KSS4-HMAC-SHA256 Credential=AK/20130524/BEIJING/ks3/kss4_request",
            "KSS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=s",
            "KSS4-HMAC-SHA256 Credential=AK/d/r/s/t, SignedHeaders=host;;a, Signature=s",
            "KSS4-HMAC-SHA256 Credential=AK/d/r/s/t, SignedHeaders=host, Signature=s, Signature=t",
            "KSS4-HMAC-SHA256 Credential=AK/d/r/s/t, Foo=1, SignedHeaders=host, Signature=s",
            "KSS4-HMAC-SHA256 Credential",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
        let wrong_service = parse_authorization(
            "KSS4-HMAC-SHA256 Credential=AK/20130524/BEIJING/s3/kss4_request, SignedHeaders=host, Signature=s",
        )
        .unwrap()
        .unwrap();
        assert!(wrong_service.check_scope().is_err());
    }

    #[test]
    fn signer_and_verifier_agree_in_both_namespaces() {
        for ns in [V4Namespace::Kss4, V4Namespace::Aws4] {
            let signer = V4Signer {
                namespace: ns,
                access_key: "AK",
                secret_key: "SK",
                region: "BEIJING",
            };
            assert!(!format!("{signer:?}").contains("SK\""));
            let headers = [("Host", "127.0.0.1:9000"), ("Content-Type", "text/plain")];
            let req = V4Request {
                method: "PUT",
                path: "/b/a%20key",
                query: &[("partNumber", "1"), ("uploadId", "u")],
                headers: &headers,
                payload_hash: EMPTY_SHA256,
            };
            let added = signer.sign(&req, 1_795_593_600).unwrap();
            let auth = &added[2].1;
            let claims = parse_authorization(auth).unwrap().unwrap();
            claims.check_scope().unwrap();
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            all.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
            let signed: Vec<&str> = claims.signed_headers.iter().map(String::as_str).collect();
            let c = compute(
                ns,
                &V4Request {
                    headers: &all,
                    ..req
                },
                &signed,
                &added[0].1,
                &claims.region,
                "SK",
            )
            .unwrap();
            assert_eq!(c.signature, claims.signature);

            let q = signer.presign(&req, 1_795_593_600, 1200).unwrap();
            let decoded: Vec<(String, String)> = crate::encode::split_query(&q)
                .into_iter()
                .map(|(k, v)| (k.to_string(), decode(v.unwrap_or(""), true).unwrap()))
                .collect();
            let mut query: Vec<(&str, &str)> = req.query.to_vec();
            query.extend(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            assert_eq!(presigned_namespace(&query), Some(ns));
            let claims = parse_presigned(ns, &query).unwrap();
            let (date, expires) = claims.presigned.clone().unwrap();
            assert_eq!(expires, 1200);
            let c = compute(
                ns,
                &V4Request {
                    query: &query,
                    ..req
                },
                &["host", "content-type"],
                &date,
                &claims.region,
                "SK",
            )
            .unwrap();
            assert_eq!(c.signature, claims.signature);
            assert_eq!(
                signer.presign(&req, 0, MAX_PRESIGN_EXPIRES + 1),
                Err(V4Error::InvalidExpires)
            );
            assert_eq!(signer.presign(&req, 0, 0), Err(V4Error::InvalidExpires));
        }
        let bad_region = V4Signer {
            namespace: V4Namespace::Aws4,
            access_key: "AK",
            secret_key: "SK",
            region: "a/b",
        };
        let req = V4Request {
            method: "GET",
            path: "/",
            query: &[],
            headers: &[("host", "h")],
            payload_hash: EMPTY_SHA256,
        };
        assert_eq!(bad_region.sign(&req, 0), Err(V4Error::InvalidRegion));
    }

    #[test]
    fn schemes_and_regions() {
        assert_eq!(
            SigningScheme::parse("V4"),
            Some(SigningScheme::V4(V4Namespace::Kss4))
        );
        assert_eq!(
            SigningScheme::parse("aws4").map(SigningScheme::name),
            Some("aws4")
        );
        assert_eq!(SigningScheme::parse("v3"), None);
        for n in SigningScheme::NAMES {
            assert_eq!(SigningScheme::parse(n).map(SigningScheme::name), Some(*n));
        }
        assert_eq!(v4_region("ks3-cn-beijing"), Some("BEIJING"));
        assert_eq!(v4_region("ks3-cn-hk-1"), Some("HONGKONG"));
        assert_eq!(v4_region("ks3-us-west-1"), None);
        assert!(is_sha256_hex(EMPTY_SHA256));
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
        assert!(!is_sha256_hex(&EMPTY_SHA256.to_uppercase()));
        assert!(!is_sha256_hex(UNSIGNED_PAYLOAD));
    }
}
