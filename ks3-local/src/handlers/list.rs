//! ListBuckets, ListObjects (v1) and ListObjectsV2.
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use http::StatusCode;

use super::*;
use crate::limits::{MAX_KEYS, MAX_KEYS_DELIMITED};
use crate::store::Object;
use ks3_proto::xml::{
    BucketEntry, Buckets, CommonPrefix, ListAllMyBucketsResult, ListBucketResult, ObjectEntry,
    S3_NS,
};

pub fn list_buckets(state: &State, _req: &Req) -> HResult {
    let buckets = state
        .store
        .buckets()
        .iter()
        .map(|b| BucketEntry {
            name: b.name.clone(),
            creation_date: Some(iso(b.created_ms)),
        })
        .collect();
    xml_response(
        StatusCode::OK,
        &ListAllMyBucketsResult {
            xmlns: Some(S3_NS.into()),
            owner: owner(),
            buckets: Buckets { buckets },
        },
    )
}

/// The smallest string greater than every string starting with `p`, if any.
pub fn successor(p: &str) -> Option<String> {
    let mut s: Vec<char> = p.chars().collect();
    while let Some(c) = s.pop() {
        let mut n = c as u32 + 1;
        while n <= char::MAX as u32 {
            if let Some(nc) = char::from_u32(n) {
                s.push(nc);
                return Some(s.into_iter().collect());
            }
            n += 1;
        }
    }
    None
}

pub struct Page {
    pub contents: Vec<Arc<ObjectMeta>>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned, when truncated.
    pub next_marker: Option<String>,
}

/// One page of keys after `marker` (exclusive) under `prefix`, rolled up at `delimiter`.
pub fn page(
    objects: &BTreeMap<String, Object>,
    prefix: &str,
    delimiter: Option<&str>,
    marker: &str,
    max: usize,
) -> Page {
    let mut out = Page {
        contents: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next_marker: None,
    };
    let mut lower: Bound<String> = if marker >= prefix {
        Bound::Excluded(marker.to_string())
    } else {
        Bound::Included(prefix.to_string())
    };
    let mut last: Option<String> = None;
    'scan: loop {
        let mut reseek = None;
        for (k, o) in objects.range::<String, _>((lower.clone(), Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break 'scan;
            }
            let rolled = delimiter.and_then(|d| {
                k[prefix.len()..]
                    .find(d)
                    .map(|i| k[..prefix.len() + i + d.len()].to_string())
            });
            match rolled {
                Some(cp) => {
                    let seen = cp.as_str() <= marker || out.prefixes.last() == Some(&cp);
                    if !seen {
                        if out.contents.len() + out.prefixes.len() == max {
                            out.truncated = true;
                            break 'scan;
                        }
                        out.prefixes.push(cp.clone());
                        last = Some(cp.clone());
                    }
                    // Skip the rest of this common prefix in one seek.
                    if let Some(next) = successor(&cp) {
                        reseek = Some(Bound::Included(next));
                        break;
                    }
                }
                None => {
                    if out.contents.len() + out.prefixes.len() == max {
                        out.truncated = true;
                        break 'scan;
                    }
                    out.contents.push(o.meta.clone());
                    last = Some(k.clone());
                }
            }
        }
        match reseek {
            Some(b) => lower = b,
            None => break,
        }
    }
    if out.truncated {
        out.next_marker = last;
    }
    out
}

fn contents(m: &ObjectMeta, url: bool, with_owner: bool) -> ObjectEntry {
    ObjectEntry {
        key: enc(&m.key, url),
        last_modified: Some(iso(m.last_modified_ms)),
        etag: Some(m.etag.clone()),
        size: m.size,
        owner: if with_owner { owner() } else { None },
        storage_class: Some(
            m.attrs
                .storage_class
                .clone()
                .unwrap_or_else(|| "STANDARD".into()),
        ),
        kind: Some(
            if m.parts.is_some() {
                "Multipart"
            } else {
                "Normal"
            }
            .into(),
        ),
    }
}

/// A count that fits KS3's 32-bit fields (every count here is at most 1000).
pub fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn hex_decode(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

pub fn list_objects(state: &State, req: &Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let v2 = match req.query.get("list-type") {
        None => false,
        Some("2") => true,
        Some(v) => {
            return Err(S3Error::invalid_argument("Invalid list-type.")
                .with("ArgumentName", "list-type")
                .with("ArgumentValue", v.to_string()))
        }
    };
    let url = url_encoding(req)?;
    let prefix = req.query.get("prefix").unwrap_or("");
    let delimiter = req.query.get_nonempty("delimiter");
    let max = if delimiter.is_some() {
        // KS3 documents 100 as the most a delimited page holds. A larger `max-keys` (up to
        // 1000) is answered with a page of 100 and `IsTruncated`, as S3 clamps a request
        // above its maximum: distribution's s3 driver lists with `delimiter=/` and
        // `max-keys=1000` and pages on `NextMarker`/`NextContinuationToken`.
        page_size(req, "max-keys", MAX_KEYS_DELIMITED, MAX_KEYS)?.min(MAX_KEYS_DELIMITED)
    } else {
        page_size(req, "max-keys", MAX_KEYS, MAX_KEYS)?
    };
    let token = req.query.get_nonempty("continuation-token");
    let start_after = req.query.get("start-after").unwrap_or("");
    let marker = if v2 {
        match token {
            Some(t) => hex_decode(t).ok_or_else(|| {
                S3Error::invalid_argument("The continuation token provided is incorrect")
                    .with("ArgumentName", "continuation-token")
            })?,
            None => start_after.to_string(),
        }
    } else {
        req.query.get("marker").unwrap_or("").to_string()
    };
    let page = bucket.with_objects(|objs| page(objs, prefix, delimiter, &marker, max));

    let with_owner = !v2 || req.query.get("fetch-owner") == Some("true");
    let result = ListBucketResult {
        xmlns: Some(S3_NS.into()),
        name: Some(bucket.name.clone()),
        prefix: Some(enc(prefix, url)),
        marker: (!v2).then(|| enc(&marker, url)),
        max_keys: Some(count(max)),
        delimiter: delimiter.map(|d| enc(d, url)),
        encoding_type: url.then(|| "url".into()),
        key_count: v2.then(|| count(page.contents.len() + page.prefixes.len())),
        continuation_token: token.filter(|_| v2).map(str::to_string),
        next_continuation_token: page
            .next_marker
            .as_ref()
            .filter(|_| v2)
            .map(|n| ks3_proto::digest::hex(n.as_bytes())),
        start_after: (v2 && !start_after.is_empty()).then(|| enc(start_after, url)),
        is_truncated: page.truncated,
        next_marker: page
            .next_marker
            .as_ref()
            .filter(|_| !v2)
            .map(|n| enc(n, url)),
        contents: page
            .contents
            .iter()
            .map(|m| contents(m, url, with_owner))
            .collect(),
        common_prefixes: page
            .prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: enc(p, url),
            })
            .collect(),
    };
    xml_response(StatusCode::OK, &result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successors() {
        assert_eq!(successor("a/b/").as_deref(), Some("a/b0"));
        assert_eq!(successor("a").as_deref(), Some("b"));
        assert_eq!(successor(""), None);
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(hex_decode("6162").as_deref(), Some("ab"));
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("616"), None);
    }
}
