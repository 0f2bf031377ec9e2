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
//!
//! The parts: the canonical request and the signature arithmetic (`canonical`), a
//! client's signer (`signer`), and the server's parsing of what a request claims
//! (`parse`); every item is re-exported here, under `ks3_proto::sign_v4`.
use sha2::{Digest, Sha256};

use crate::digest::hex;

mod canonical;
mod parse;
mod signer;
#[cfg(test)]
mod tests;

pub use canonical::{
    canonical_query, canonical_request, canonical_uri, compute, default_signed_headers, scope,
    signature, signing_key, string_to_sign, V4Computed,
};
pub use parse::{
    parse_authorization, parse_presigned, presigned_namespace, signatures_equal, V4Claims,
};
pub use signer::V4Signer;

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
