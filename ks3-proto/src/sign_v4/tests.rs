use super::canonical::{canonical_headers, normalise_signed};
use super::*;
use crate::encode::decode;

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
