//! Signature V4 vectors: AWS4 computed by botocore's own signer, KSS4 derived step by step
//! from the rules of ks3-api.md §3 (both made by `tests/sdk/make_v4_vectors.py`; how the
//! KSS4 ones are vouched for is in `V4_VECTORS.md`), and AWS's published S3 example.
use ks3_proto::digest::hex;
use ks3_proto::encode::{decode, split_query};
use ks3_proto::sign_v4::{
    compute, parse_authorization, parse_presigned, presigned_namespace, sha256_hex, signing_key,
    V4Namespace, V4Request, V4Signer, EMPTY_SHA256,
};
use serde_json::Value;

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no string field {field}", v["name"]))
}

fn pairs(v: &Value, field: &str) -> Vec<(String, String)> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no array field {field}", v["name"]))
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn refs(p: &[(String, String)]) -> Vec<(&str, &str)> {
    p.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

fn load(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

/// Checks one vector both ways: our signer must produce exactly the recorded header or
/// query, and our verifier must recompute the recorded canonical request, string to sign
/// and signature from what the request carries.
fn check(v: &Value) {
    let name = s(v, "name");
    let ns = match s(v, "namespace") {
        "aws4" => V4Namespace::Aws4,
        "kss4" => V4Namespace::Kss4,
        other => panic!("{name}: namespace {other}"),
    };
    let headers = pairs(v, "headers");
    let query = pairs(v, "query");
    let (h, q) = (refs(&headers), refs(&query));
    let payload = s(v, "payload_hash");
    let body = s(v, "body");
    if payload != "UNSIGNED-PAYLOAD" {
        assert_eq!(sha256_hex(body.as_bytes()), payload, "{name}: payload hash");
    }
    let time = v["time"].as_i64().unwrap();
    let req = V4Request {
        method: s(v, "method"),
        path: s(v, "path"),
        query: &q,
        headers: &h,
        payload_hash: payload,
    };
    let signer = V4Signer {
        namespace: ns,
        access_key: s(v, "access_key"),
        secret_key: s(v, "secret_key"),
        region: s(v, "region"),
    };
    let amz_date = s(v, "amz_date");
    let (computed, claims) = match s(v, "kind") {
        "header" => {
            let added = signer.sign(&req, time).unwrap();
            assert_eq!(added[0], (ns.date_header(), amz_date.to_string()), "{name}");
            assert_eq!(
                added[1],
                (ns.content_sha256_header(), payload.to_string()),
                "{name}"
            );
            assert_eq!(
                added[2],
                ("authorization", s(v, "authorization").to_string()),
                "{name}: Authorization"
            );
            // Server side: from the headers as they arrive.
            let mut all = h.clone();
            all.extend(added.iter().map(|(k, val)| (*k, val.as_str())));
            let claims = parse_authorization(s(v, "authorization")).unwrap().unwrap();
            let signed: Vec<&str> = claims.signed_headers.iter().map(String::as_str).collect();
            let c = compute(
                ns,
                &V4Request {
                    headers: &all,
                    ..req
                },
                &signed,
                amz_date,
                &claims.region,
                signer.secret_key,
            )
            .unwrap();
            (c, claims)
        }
        "presigned" => {
            let expires = v["expires"].as_u64().unwrap();
            let got = signer.presign(&req, time, expires).unwrap();
            assert_eq!(got, s(v, "presigned_query"), "{name}: presigned query");
            // Server side: the URL's whole query, decoded.
            let auth: Vec<(String, String)> = split_query(&got)
                .into_iter()
                .map(|(k, val)| (k.to_string(), decode(val.unwrap_or(""), true).unwrap()))
                .collect();
            let mut full = q.clone();
            full.extend(refs(&auth));
            assert_eq!(presigned_namespace(&full), Some(ns), "{name}");
            let claims = parse_presigned(ns, &full).unwrap();
            let (date, exp) = claims.presigned.clone().unwrap();
            assert_eq!((date.as_str(), exp), (amz_date, expires), "{name}");
            let signed: Vec<&str> = claims.signed_headers.iter().map(String::as_str).collect();
            let c = compute(
                ns,
                &V4Request {
                    query: &full,
                    ..req
                },
                &signed,
                &date,
                &claims.region,
                signer.secret_key,
            )
            .unwrap();
            (c, claims)
        }
        other => panic!("{name}: kind {other}"),
    };
    claims.check_scope().unwrap();
    assert_eq!(
        computed.canonical_request,
        s(v, "canonical_request"),
        "{name}: canonical request"
    );
    assert_eq!(
        computed.string_to_sign,
        s(v, "string_to_sign"),
        "{name}: string to sign"
    );
    assert_eq!(computed.signature, s(v, "signature"), "{name}: signature");
    assert_eq!(computed.signature, claims.signature, "{name}");
}

#[test]
fn botocore_aws4_vectors() {
    let vectors = load("vectors_v4_aws.json");
    // A truncated or emptied file must not pass.
    assert!(vectors.len() >= 35, "only {} AWS4 vectors", vectors.len());
    for kind in ["header", "presigned"] {
        assert!(
            vectors.iter().any(|v| v["kind"] == kind),
            "no {kind} vector"
        );
    }
    for v in &vectors {
        check(v);
    }
}

#[test]
fn kss4_vectors_derived_from_the_rules() {
    let vectors = load("vectors_v4_kss.json");
    assert!(vectors.len() >= 34, "only {} KSS4 vectors", vectors.len());
    for v in &vectors {
        check(v);
        // Each step of the key derivation: only the last is observable through
        // `signing_key`, and it must be the recorded one.
        let steps = &v["signing_key_steps"];
        let day = &s(v, "amz_date")[..8];
        let key = signing_key(V4Namespace::Kss4, s(v, "secret_key"), day, s(v, "region"));
        assert_eq!(
            hex(&key),
            steps["k_signing"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        let auth = v.get("authorization").and_then(Value::as_str).unwrap_or("");
        let q = v
            .get("presigned_query")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(
            auth.starts_with("KSS4-HMAC-SHA256 Credential=")
                && auth.contains("/ks3/kss4_request, ")
                || q.starts_with("X-Kss-Algorithm=KSS4-HMAC-SHA256&X-Kss-Credential=")
                    && q.contains("%2Fks3%2Fkss4_request&"),
            "{}: {auth}{q}",
            v["name"]
        );
    }
}

/// AWS's published S3 SigV4 example "GET Object" (Authenticating Requests: Using the
/// Authorization Header), with its documented canonical request and signature.
#[test]
fn aws_published_get_object_example() {
    let headers = [
        ("Host", "examplebucket.s3.amazonaws.com"),
        ("Range", "bytes=0-9"),
    ];
    let req = V4Request {
        method: "GET",
        path: "/test.txt",
        query: &[],
        headers: &headers,
        payload_hash: EMPTY_SHA256,
    };
    let signer = V4Signer {
        namespace: V4Namespace::Aws4,
        access_key: "AKIAIOSFODNN7EXAMPLE",
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region: "us-east-1",
    };
    let added = signer.sign(&req, 1_369_353_600).unwrap(); // 2013-05-24T00:00:00Z
    assert_eq!(
        added[2].1,
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
         Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    let mut all = headers.to_vec();
    all.extend(added.iter().map(|(k, v)| (*k, v.as_str())));
    let c = compute(
        V4Namespace::Aws4,
        &V4Request {
            headers: &all,
            ..req
        },
        &["host", "range", "x-amz-content-sha256", "x-amz-date"],
        "20130524T000000Z",
        "us-east-1",
        signer.secret_key,
    )
    .unwrap();
    assert_eq!(
        c.canonical_request,
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
         x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
         x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        c.string_to_sign,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
}
