//! KSS V2 request signing (HMAC-SHA1), header and query-string (presigned URL) forms.
//!
//! ```text
//! StringToSign = VERB \n Content-MD5 \n Content-Type \n Date-or-Expires \n
//!                [CanonicalizedKssHeaders \n] CanonicalizedResource
//! ```
//! The resource is always path-style (`/bucket/key`), whatever addressing the request uses.
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::encode::{encode_component, encode_key};

/// Query parameters that are part of the canonical resource (KS3's sub-resource whitelist).
/// Anything else (`prefix`, `marker`, `max-keys`, `list-type`, …) is not signed.
pub const SIGNED_SUBRESOURCES: &[&str] = &[
    "acl",
    "adp",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "quota",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// `/bucket/key?sub=v&…`. `query` holds the request's query parameters as sent
/// (values not decoded); only whitelisted ones are kept, sorted by name.
pub fn canonical_resource(bucket: &str, key: &str, query: &[(&str, Option<&str>)]) -> String {
    let mut r = String::with_capacity(bucket.len() + key.len() * 3 + 2);
    r.push('/');
    if !bucket.is_empty() {
        r.push_str(bucket);
        r.push('/');
    }
    r.push_str(&encode_key(key));
    let mut r = r.replace("//", "/%2F");
    let mut subs: Vec<_> = query
        .iter()
        .filter(|(k, _)| SIGNED_SUBRESOURCES.contains(k))
        .collect();
    subs.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in subs.iter().enumerate() {
        r.push(if i == 0 { '?' } else { '&' });
        r.push_str(k);
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            r.push('=');
            r.push_str(v);
        }
    }
    r
}

/// The parts of a request that KSS V2 signs.
#[derive(Debug, Clone, Default)]
pub struct StringToSign<'a> {
    pub method: &'a str,
    pub content_md5: &'a str,
    pub content_type: &'a str,
    /// The `Date` header, or the `Expires` epoch seconds of a presigned URL.
    pub date: &'a str,
    /// All request headers; only `x-kss-*` ones are used.
    pub headers: Vec<(&'a str, &'a str)>,
    /// From [`canonical_resource`].
    pub resource: &'a str,
}

impl StringToSign<'_> {
    pub fn build(&self) -> String {
        let mut kss: Vec<(String, &str)> = self
            .headers
            .iter()
            .filter_map(|(n, v)| {
                let n = n.to_ascii_lowercase();
                n.starts_with("x-kss-").then_some((n, *v))
            })
            .collect();
        kss.sort_by(|a, b| a.0.cmp(&b.0));
        let mut s = String::with_capacity(128 + self.resource.len());
        for part in [self.method, self.content_md5, self.content_type, self.date] {
            s.push_str(part);
            s.push('\n');
        }
        for (n, v) in &kss {
            s.push_str(n);
            s.push(':');
            s.push_str(v);
            s.push('\n');
        }
        s.push_str(self.resource);
        s
    }
}

/// `Base64(HMAC-SHA1(secret, string_to_sign))`.
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time comparison of two signatures, for the server side.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request ready to be signed with a header (`Authorization: KSS AK:SIG`).
pub struct SignedRequest;

impl SignedRequest {
    /// The `Authorization` header value.
    pub fn authorization(access_key: &str, secret: &str, sts: &StringToSign<'_>) -> String {
        format!("KSS {access_key}:{}", signature(secret, &sts.build()))
    }
}

/// The query string of a presigned URL:
/// `Signature=…&Expires=…&KSSAccessKeyId=…` (the signature percent-encoded).
pub fn presigned_query(
    access_key: &str,
    secret: &str,
    method: &str,
    resource: &str,
    expires_unix: i64,
) -> String {
    let expires = expires_unix.to_string();
    let sts = StringToSign {
        method,
        date: &expires,
        resource,
        ..Default::default()
    };
    let sig = signature(secret, &sts.build());
    format!(
        "Signature={}&Expires={expires}&KSSAccessKeyId={}",
        encode_component(&sig),
        encode_component(access_key)
    )
}
