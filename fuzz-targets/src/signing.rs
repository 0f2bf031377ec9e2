//! KSS V2 and V4 (KSS4/AWS4) canonicalisation and signing, percent-encoding and HTTP dates
//! (`ks3-proto`: `sign.rs`, `sign_v4.rs`, `encode.rs`, `date.rs`).
use ks3_proto::date::{http_date, parse_http_date};
use ks3_proto::encode::{decode, encode_component, encode_key, split_query};
use ks3_proto::sign::{canonical_resource, presigned_query, signature, StringToSign};
use ks3_proto::sign_v4::{
    canonical_query, canonical_uri, default_signed_headers, parse_authorization, parse_presigned,
    presigned_namespace, V4Namespace, V4Request, V4Signer, UNSIGNED_PAYLOAD,
};

use crate::input::{header_lines, Fields};

const AK: &str = "AKLTfuzzAccessKey";
const SK: &str = "fuzz-secret-key";

fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Input: `method NUL bucket NUL key NUL raw-query NUL header-lines NUL region NUL
/// date-text NUL authorization-text`, plus a byte choosing the namespace and time.
///
/// * encoding: `decode(encode_key(k)) == k`, `decode(encode_component(v)) == v`, and an
///   encoded key keeps only unreserved characters and `/`;
/// * V2: the canonical resource starts with `/bucket/` and the signature is base64 of 20
///   bytes;
/// * V4: signing a request and parsing back its `Authorization` header (or its presigned
///   query) gives the access key, region and signed headers that were used;
/// * dates: a parsed date prints back to a date that parses to the same second; parsing
///   arbitrary text (and `Authorization` headers) never panics.
pub fn signing(data: &[u8]) {
    let mut f = Fields::new(data);
    let method = f.text();
    let bucket = f.text();
    let key = f.text();
    let raw_query = f.text();
    let header_text = f.text();
    let region = f.text();
    let date_text = f.text();
    let auth_text = f.text();
    let choice = f.byte();

    // Percent-encoding.
    for s in [&key, &raw_query, &bucket] {
        let ek = encode_key(s);
        assert!(ek
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)));
        assert_eq!(decode(&ek, false).as_deref(), Some(s.as_str()));
        assert_eq!(
            decode(&encode_component(s), true).as_deref(),
            Some(s.as_str())
        );
        let _ = decode(s, true);
        let _ = decode(s, false);
    }

    // V2.
    let query = split_query(&raw_query);
    let resource = canonical_resource(&bucket, &key, &query);
    assert!(resource.starts_with('/'));
    let headers = header_lines(&header_text);
    let header_refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let sts = StringToSign {
        method: &method,
        content_md5: "",
        content_type: "",
        date: &date_text,
        headers: header_refs.clone(),
        resource: &resource,
    }
    .build();
    assert!(sts.ends_with(&resource));
    assert_eq!(signature(SK, &sts).len(), 28, "base64 of an HMAC-SHA1");
    let expires = i64::from(choice) * 1_000_000_007;
    let q = presigned_query(AK, SK, &method, &resource, expires);
    assert!(q.contains(&format!("Expires={expires}&")));

    // V4 canonical pieces.
    let _ = canonical_uri(&raw_query);
    let _ = canonical_uri(&key);
    let decoded: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            (
                decode(k, true).unwrap_or_default(),
                v.and_then(|v| decode(v, true)).unwrap_or_default(),
            )
        })
        .collect();
    let decoded_refs: Vec<(&str, &str)> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let _ = canonical_query(&decoded_refs);
    let _ = default_signed_headers(&header_refs);
    if let Some(ns) = presigned_namespace(&decoded_refs) {
        let _ = parse_presigned(ns, &decoded_refs);
    }
    if let Ok(Some(claims)) = parse_authorization(&auth_text) {
        let _ = claims.check_scope();
        let _ = claims.scope();
    }

    // V4 sign → parse round trip.
    let ns = if choice & 1 == 0 {
        V4Namespace::Kss4
    } else {
        V4Namespace::Aws4
    };
    let now = 1_700_000_000 + i64::from(choice) * 86_399;
    let mut v4_headers: Vec<(&str, &str)> = vec![("host", "bucket.ks3-cn-beijing.ksyuncs.com")];
    v4_headers.extend(
        header_refs
            .iter()
            .filter(|(k, _)| token(k) && !k.eq_ignore_ascii_case("host")),
    );
    let req = V4Request {
        method: &method,
        path: &format!("/{}", encode_key(&key)),
        query: &decoded_refs,
        headers: &v4_headers,
        payload_hash: UNSIGNED_PAYLOAD,
    };
    let signer = V4Signer {
        namespace: ns,
        access_key: AK,
        secret_key: SK,
        region: &region,
    };
    let region_ok = token(&region);
    match signer.sign(&req, now) {
        Ok(added) => {
            let auth = added
                .iter()
                .find(|(k, _)| *k == "authorization")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            if region_ok {
                let claims = parse_authorization(auth)
                    .unwrap_or_else(|e| panic!("own Authorization {auth:?} unreadable: {e}"))
                    .unwrap_or_else(|| panic!("own Authorization {auth:?} not V4"));
                assert_eq!(claims.access_key, AK);
                assert_eq!(claims.region, region);
                assert_eq!(claims.namespace, ns);
                assert!(claims.check_scope().is_ok(), "{auth:?}");
                assert!(claims.signed_headers.iter().any(|h| h == "host"));
            }
        }
        Err(_) => assert!(!region_ok, "signing refused region {region:?}"),
    }
    match signer.presign(&req, now, u64::from(choice) * 2_500) {
        Ok(q) => {
            let pairs: Vec<(String, String)> = split_query(&q)
                .into_iter()
                .map(|(k, v)| {
                    (
                        decode(k, false).unwrap_or_default(),
                        v.and_then(|v| decode(v, false)).unwrap_or_default(),
                    )
                })
                .collect();
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(presigned_namespace(&refs), Some(ns));
            if region_ok {
                let claims = parse_presigned(ns, &refs)
                    .unwrap_or_else(|e| panic!("own presigned query {q:?} unreadable: {e}"));
                assert_eq!(claims.access_key, AK);
                assert_eq!(claims.region, region);
            }
        }
        Err(_) => assert!(!region_ok || choice == 0 || u64::from(choice) * 2_500 > 604_800),
    }

    // Dates.
    if let Some(t) = parse_http_date(&date_text) {
        assert_eq!(parse_http_date(&http_date(t)), Some(t), "{date_text:?}");
    }
    let _ = http_date(now);
}
