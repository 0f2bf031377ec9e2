//! S3 header names under AWS4: requests signed `AWS4-HMAC-SHA256` name KS3's headers
//! `x-amz-*` (ks3-api.md §3: the official Go SDK sends `x-amz-acl`, `x-amz-copy-source`, …).
//! They are renamed to their `x-kss-*` form before the handlers see them, so every rule is
//! written once; responses repeat the object headers under `x-amz-*` for S3 clients.
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use ks3_proto::encode::{decode, encode_key};

use crate::error::S3Error;

/// `x-amz-*` request headers with a KS3 meaning: exact names and name prefixes.
const RENAMED: &[&str] = &[
    "x-amz-acl",
    "x-amz-storage-class",
    "x-amz-metadata-directive",
    "x-amz-copy-source",
    "x-amz-copy-source-range",
    "x-amz-server-side-encryption",
];
const RENAMED_PREFIXES: &[&str] = &[
    "x-amz-meta-",
    "x-amz-copy-source-if-",
    "x-amz-server-side-encryption-",
];

fn renamed(name: &str) -> bool {
    RENAMED.contains(&name) || RENAMED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Renames the request's `x-amz-*` headers that KS3 knows to `x-kss-*`. Both spellings of
/// one header at once is ambiguous → 400 `InvalidArgument`.
///
/// `x-amz-copy-source` is percent-decoded the S3 way (`+` is a plus) and re-encoded so that
/// the KS3 rule (which reads `+` as a space, as the Python SDK's `quote_plus` writes it)
/// yields the same key. distribution 2.8.2 sends it unencoded (`bucket/key`), which this
/// also accepts.
pub fn to_kss_names(headers: &mut HeaderMap) -> Result<(), S3Error> {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| renamed(n.as_str()))
        .cloned()
        .collect();
    for name in names {
        let kss = format!("x-kss-{}", &name.as_str()["x-amz-".len()..]);
        if headers.contains_key(kss.as_str()) {
            return Err(S3Error::invalid_argument(format!(
                "The headers {name} and {kss} cannot both be sent."
            ))
            .with("ArgumentName", kss));
        }
        let Ok(kss_name) = HeaderName::from_bytes(kss.as_bytes()) else {
            continue;
        };
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        for v in values {
            let v = if name == "x-amz-copy-source" {
                normalise_copy_source(v)
            } else {
                v
            };
            headers.append(kss_name.clone(), v);
        }
    }
    Ok(())
}

fn normalise_copy_source(v: HeaderValue) -> HeaderValue {
    let Ok(text) = v.to_str() else { return v };
    let (path, rest) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text, None),
    };
    let Some(decoded) = decode(path, false) else {
        return v; // the copy handler rejects it with the header's own value
    };
    let mut out = encode_key(&decoded);
    if let Some(q) = rest {
        out.push('?');
        out.push_str(q);
    }
    HeaderValue::from_str(&out).unwrap_or(v)
}

/// Repeats the response's object headers (`x-kss-meta-*`, server-side encryption, storage
/// class) under `x-amz-*`, and the request id as `x-amz-request-id`.
pub fn mirror_response(headers: &mut HeaderMap) {
    let copies: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            n.starts_with("x-kss-meta-")
                || n == "x-kss-server-side-encryption"
                || n == "x-kss-storage-class"
                || n == "x-kss-request-id"
        })
        .filter_map(|(n, v)| {
            let amz = format!("x-amz-{}", &n.as_str()["x-kss-".len()..]);
            HeaderName::from_bytes(amz.as_bytes())
                .ok()
                .map(|n| (n, v.clone()))
        })
        .collect();
    for (n, v) in copies {
        headers.append(n, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn renames_known_headers_only() {
        let mut h = map(&[
            ("x-amz-acl", "private"),
            ("x-amz-meta-color", "blue"),
            ("x-amz-copy-source-range", "bytes=0-1"),
            ("x-amz-date", "20261125T080000Z"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
        ]);
        to_kss_names(&mut h).unwrap();
        assert_eq!(h.get("x-kss-acl").unwrap(), "private");
        assert_eq!(h.get("x-kss-meta-color").unwrap(), "blue");
        assert_eq!(h.get("x-kss-copy-source-range").unwrap(), "bytes=0-1");
        assert!(h.get("x-amz-acl").is_none());
        assert!(h.get("x-amz-date").is_some() && h.get("x-kss-date").is_none());
        assert!(h.get("x-kss-checksum-crc32").is_none());
        let mut both = map(&[("x-amz-acl", "private"), ("x-kss-acl", "private")]);
        assert_eq!(to_kss_names(&mut both).unwrap_err().code, "InvalidArgument");
    }

    #[test]
    fn copy_source_plus_stays_a_plus() {
        for (sent, kss) in [
            ("bucket/a%2Bb%20c", "bucket/a%2Bb%20c"),
            ("bucket/a+b", "bucket/a%2Bb"),
            ("/bucket/dir/x", "/bucket/dir/x"),
            ("bucket/%zz", "bucket/%zz"),
        ] {
            let mut h = map(&[("x-amz-copy-source", sent)]);
            to_kss_names(&mut h).unwrap();
            assert_eq!(h.get("x-kss-copy-source").unwrap(), kss, "{sent}");
        }
    }

    #[test]
    fn mirrors_object_headers() {
        let mut h = map(&[
            ("x-kss-meta-a", "1"),
            ("x-kss-request-id", "R"),
            ("x-kss-checksum-crc64ecma", "5"),
        ]);
        mirror_response(&mut h);
        assert_eq!(h.get("x-amz-meta-a").unwrap(), "1");
        assert_eq!(h.get("x-amz-request-id").unwrap(), "R");
        assert!(h.get("x-amz-checksum-crc64ecma").is_none());
    }
}
