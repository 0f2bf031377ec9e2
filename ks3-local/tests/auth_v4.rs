//! Signature V4 (KSS4 and AWS4), header and presigned, over real sockets: what is accepted,
//! every rejection, the `x-amz-*` names under AWS4, and the S3 calls tools make.
mod common;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use ks3_proto::encode::{encode_component, encode_key};
use ks3_proto::sign_v4::{sha256_hex, V4Namespace, V4Request, V4Signer, UNSIGNED_PAYLOAD};

const BOTH: [V4Namespace; 2] = [V4Namespace::Kss4, V4Namespace::Aws4];

/// What the payload-hash header says.
#[derive(Clone)]
enum Payload {
    Signed,
    Unsigned,
    Claim(&'static str),
}

#[derive(Clone)]
struct V4 {
    addr: std::net::SocketAddr,
    ns: V4Namespace,
    ak: String,
    sk: String,
    region: String,
    /// Seconds added to the signing time.
    skew: i64,
}

impl V4 {
    fn new(s: &ks3_local::RunningServer, ns: V4Namespace) -> V4 {
        V4 {
            addr: s.addr(),
            ns,
            ak: AK.into(),
            sk: SK.into(),
            region: "BEIJING".into(),
            skew: 0,
        }
    }

    fn signer(&self) -> V4Signer<'_> {
        V4Signer {
            namespace: self.ns,
            access_key: &self.ak,
            secret_key: &self.sk,
            region: &self.region,
        }
    }

    /// `x-kss-…` / `x-amz-…` by namespace.
    fn h(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.ns.header_prefix())
    }

    fn wire(path: &str, query: &[(&str, &str)]) -> String {
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", q.join("&"))
        }
    }

    fn build(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
        payload: Payload,
    ) -> Request<Full<Bytes>> {
        let body: Bytes = body.into();
        let path = if key.is_empty() {
            format!("/{BUCKET}")
        } else {
            format!("/{BUCKET}/{}", encode_key(key))
        };
        let host = self.addr.to_string();
        let mut all: Vec<(&str, &str)> = vec![("host", &host)];
        all.extend_from_slice(headers);
        let hash = match payload {
            Payload::Signed => sha256_hex(&body),
            Payload::Unsigned => UNSIGNED_PAYLOAD.to_string(),
            Payload::Claim(c) => c.to_string(),
        };
        let added = self
            .signer()
            .sign(
                &V4Request {
                    method,
                    path: &path,
                    query,
                    headers: &all,
                    payload_hash: &hash,
                },
                now() + self.skew,
            )
            .unwrap();
        let mut b = Request::builder()
            .method(method)
            .uri(Self::wire(&path, query));
        for (n, v) in all
            .iter()
            .copied()
            .chain(added.iter().map(|(n, v)| (*n, v.as_str())))
        {
            b = b.header(n, v);
        }
        if (method == "PUT" || method == "POST")
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            b = b.header("content-length", body.len());
        }
        b.body(Full::new(body)).unwrap()
    }

    async fn req(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        send(
            self.addr,
            self.build(method, key, query, headers, body, Payload::Signed),
        )
        .await
    }

    /// Path and query of a presigned URL.
    fn presign(&self, method: &str, key: &str, expires: u64) -> String {
        let path = format!("/{BUCKET}/{}", encode_key(key));
        let host = self.addr.to_string();
        let q = self
            .signer()
            .presign(
                &V4Request {
                    method,
                    path: &path,
                    query: &[],
                    headers: &[("host", &host)],
                    payload_hash: UNSIGNED_PAYLOAD,
                },
                now() + self.skew,
                expires,
            )
            .unwrap();
        format!("{path}?{q}")
    }
}

/// An unsigned request, as a browser or `curl` sends a presigned URL.
fn plain(
    addr: std::net::SocketAddr,
    method: &str,
    uri: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let body: Bytes = body.into();
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", addr.to_string())
        .header("content-length", body.len())
        .body(Full::new(body))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_work_in_both_namespaces() {
    let s = memory_server().await;
    for ns in BOTH {
        let c = V4::new(&s, ns);
        let key = format!("{ns:?}/a dir/ü+file=1&x.txt");
        let meta = c.h("meta-color");
        c.req(
            "PUT",
            &key,
            &[],
            &[("content-type", "text/plain"), (&meta, "blue")],
            "hello world",
        )
        .await
        .ok();
        let r = c.req("GET", &key, &[], &[], Bytes::new()).await;
        assert_eq!(r.ok().body, "hello world");
        assert_eq!(r.header("x-kss-meta-color").as_deref(), Some("blue"));
        // S3 clients read the object headers under their own names.
        let amz_meta = r.header("x-amz-meta-color");
        assert_eq!(amz_meta.is_some(), ns == V4Namespace::Aws4, "{ns:?}");
        let r = c
            .req("GET", &key, &[], &[("range", "bytes=6-")], Bytes::new())
            .await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (206, "world"));
        let r = c.req("HEAD", &key, &[], &[], Bytes::new()).await;
        assert_eq!(r.ok().header("content-length").as_deref(), Some("11"));
        let prefix = format!("{ns:?}/");
        let l = c
            .req(
                "GET",
                "",
                &[("prefix", &prefix), ("delimiter", "/")],
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(l.ok().xml_all("Prefix")[1], format!("{ns:?}/a dir/"));
        let l = c
            .req(
                "GET",
                "",
                &[("list-type", "2"), ("prefix", &prefix)],
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(l.ok().xml_all("Key"), vec![key.clone()]);
        // An unsigned payload is accepted as such.
        let r = send(
            s.addr(),
            c.build("PUT", "u", &[], &[], "unsigned body", Payload::Unsigned),
        )
        .await;
        r.ok();
        assert_eq!(
            Client::new(&s).get("u").await.ok().body,
            "unsigned body",
            "readable with V2 too"
        );
        c.req("DELETE", &key, &[], &[], Bytes::new())
            .await
            .expect(204, "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_the_signed_one_is_refused_and_not_stored() {
    let s = memory_server().await;
    let v2 = Client::new(&s);
    for ns in BOTH {
        let c = V4::new(&s, ns);
        let other = sha256_hex(b"another body");
        let other: &'static str = Box::leak(other.into_boxed_str());
        let r = send(
            s.addr(),
            c.build("PUT", "k", &[], &[], "the body", Payload::Claim(other)),
        )
        .await;
        r.expect(400, "XAmzContentSHA256Mismatch");
        assert_eq!(r.xml("ClientComputedContentSHA256").as_deref(), Some(other));
        assert_eq!(
            r.xml("S3ComputedContentSHA256"),
            Some(sha256_hex(b"the body"))
        );
        v2.get("k").await.expect(404, "NoSuchKey");
        // The same for a part and for an XML body.
        let id = v2.initiate("mp").await;
        let q = [("partNumber", "1"), ("uploadId", id.as_str())];
        send(
            s.addr(),
            c.build("PUT", "mp", &q, &[], "part", Payload::Claim(other)),
        )
        .await
        .expect(400, "XAmzContentSHA256Mismatch");
        let l = v2
            .req("GET", "mp", &format!("uploadId={id}"), &[], Bytes::new())
            .await;
        assert!(l.ok().xml_all("PartNumber").is_empty());
        // A bodiless request that claims a body.
        send(
            s.addr(),
            c.build("GET", "", &[], &[], Bytes::new(), Payload::Claim(other)),
        )
        .await
        .expect(400, "XAmzContentSHA256Mismatch");
        // A payload hash that is none of the allowed forms; aws-chunked streaming.
        send(
            s.addr(),
            c.build("PUT", "k", &[], &[], "x", Payload::Claim("ABC")),
        )
        .await
        .expect(400, "InvalidArgument");
        let r = send(
            s.addr(),
            c.build(
                "PUT",
                "k",
                &[],
                &[("content-encoding", "aws-chunked")],
                "x",
                Payload::Claim("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
            ),
        )
        .await;
        r.expect(501, "NotImplemented");
        assert!(r.text().contains("aws-chunked"), "{}", r.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rejections() {
    let s = memory_server().await;
    for ns in BOTH {
        let c = V4::new(&s, ns);
        // Wrong secret: the body shows what the server computed.
        let r = V4 {
            sk: "not-the-secret".into(),
            ..c.clone()
        }
        .req("GET", "k", &[("uploadId", "u 1")], &[], Bytes::new())
        .await;
        r.expect(403, "SignatureDoesNotMatch");
        let cr = r.xml("CanonicalRequest").unwrap();
        assert!(
            cr.starts_with(&format!("GET\n/{BUCKET}/k\nuploadId=u%201\nhost:")),
            "{cr:?}"
        );
        assert!(cr.ends_with(&format!("\n{}", sha256_hex(b""))), "{cr:?}");
        let sts = r.xml("StringToSign").unwrap();
        assert!(
            sts.starts_with(&format!("{}\n", ns.algorithm()))
                && sts.contains(&format!("/BEIJING/{}/{}\n", ns.service(), ns.terminator())),
            "{sts:?}"
        );
        assert!(r.xml("SignatureProvided").is_some() && r.xml("CanonicalRequestBytes").is_some());
        // Unknown key; skewed clock (both ways).
        V4 {
            ak: "AKLTnobody".into(),
            ..c.clone()
        }
        .req("GET", "k", &[], &[], Bytes::new())
        .await
        .expect(403, "InvalidAccessKeyId");
        for skew in [-16 * 60, 16 * 60] {
            V4 { skew, ..c.clone() }
                .req("GET", "k", &[], &[], Bytes::new())
                .await
                .expect(403, "RequestTimeTooSkewed");
        }
        // An x-amz-/x-kss- header that the signature does not cover.
        let mut r = c.build("GET", "k", &[], &[], Bytes::new(), Payload::Signed);
        r.headers_mut()
            .insert("x-kss-acl", http::HeaderValue::from_static("public-read"));
        let resp = send(s.addr(), r).await;
        resp.expect(403, "AccessDenied");
        assert_eq!(resp.xml("HeadersNotSigned").as_deref(), Some("x-kss-acl"));
        // Missing date and payload headers.
        for drop in [ns.date_header(), ns.content_sha256_header()] {
            let mut r = c.build("GET", "k", &[], &[], Bytes::new(), Payload::Signed);
            r.headers_mut().remove(drop);
            let resp = send(s.addr(), r).await;
            let want = if drop == ns.date_header() {
                (403, "AccessDenied")
            } else {
                (400, "InvalidRequest")
            };
            resp.expect(want.0, want.1);
        }
        // Scope: the other namespace's service, a date that is not the request's, host unsigned.
        let good = c.build("GET", "k", &[], &[], Bytes::new(), Payload::Signed);
        let auth = good.headers()["authorization"]
            .to_str()
            .unwrap()
            .to_string();
        let other_service = match ns {
            V4Namespace::Kss4 => auth.replace("/ks3/", "/s3/"),
            V4Namespace::Aws4 => auth.replace("/s3/", "/ks3/"),
        };
        let scope_date = auth.replacen(
            "Credential=AKLTtestaccesskey0001/2",
            "Credential=AKLTtestaccesskey0001/1",
            1,
        );
        for (bad, status, code) in [
            (other_service, 400, "AuthorizationHeaderMalformed"),
            (scope_date, 400, "AuthorizationHeaderMalformed"),
            (
                auth.replace("SignedHeaders=host;", "SignedHeaders="),
                403,
                "AccessDenied",
            ),
            (
                format!("{auth}, Extra=1"),
                400,
                "AuthorizationHeaderMalformed",
            ),
        ] {
            let mut r = c.build("GET", "k", &[], &[], Bytes::new(), Payload::Signed);
            r.headers_mut()
                .insert("authorization", http::HeaderValue::from_str(&bad).unwrap());
            send(s.addr(), r).await.expect(status, code);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_in_both_namespaces() {
    let s = memory_server().await;
    for ns in BOTH {
        let c = V4::new(&s, ns);
        let key = format!("{ns:?}/p r/ü.bin");
        let put = c.presign("PUT", &key, 600);
        send(s.addr(), plain(s.addr(), "PUT", &put, "presigned body"))
            .await
            .ok();
        let get = c.presign("GET", &key, 600);
        assert_eq!(
            send(s.addr(), plain(s.addr(), "GET", &get, Bytes::new()))
                .await
                .ok()
                .body,
            "presigned body"
        );
        let head = c.presign("HEAD", &key, 600);
        send(s.addr(), plain(s.addr(), "HEAD", &head, Bytes::new()))
            .await
            .ok();
        // A GET URL does not allow a PUT; a tampered signature fails.
        send(s.addr(), plain(s.addr(), "PUT", &get, "x"))
            .await
            .expect(403, "SignatureDoesNotMatch");
        let sig = ns.query_param("Signature=");
        let tampered = get.replace(&sig, &format!("{sig}0"));
        send(s.addr(), plain(s.addr(), "GET", &tampered, Bytes::new()))
            .await
            .expect(403, "SignatureDoesNotMatch");
        // Expired (signed 20 minutes ago for 10), not yet valid (signed 20 minutes ahead).
        let old = V4 {
            skew: -1200,
            ..c.clone()
        }
        .presign("GET", &key, 600);
        let r = send(s.addr(), plain(s.addr(), "GET", &old, Bytes::new())).await;
        r.expect(403, "AccessDenied");
        assert!(r.text().contains("expired"), "{}", r.text());
        let early = V4 {
            skew: 1200,
            ..c.clone()
        }
        .presign("GET", &key, 600);
        send(s.addr(), plain(s.addr(), "GET", &early, Bytes::new()))
            .await
            .expect(403, "AccessDenied");
        // Longer than 7 days, a missing parameter, an unknown key.
        let exp = ns.query_param("Expires=600");
        let long = get.replace(&exp, &ns.query_param("Expires=604801"));
        send(s.addr(), plain(s.addr(), "GET", &long, Bytes::new()))
            .await
            .expect(400, "AuthorizationQueryParametersError");
        let (p, q) = get.split_once('?').unwrap();
        let no_date: Vec<&str> = q
            .split('&')
            .filter(|x| !x.starts_with(&ns.query_param("Date")))
            .collect();
        send(
            s.addr(),
            plain(
                s.addr(),
                "GET",
                &format!("{p}?{}", no_date.join("&")),
                Bytes::new(),
            ),
        )
        .await
        .expect(400, "AuthorizationQueryParametersError");
        let nobody = V4 {
            ak: "AKLTnobody".into(),
            ..c.clone()
        }
        .presign("GET", &key, 600);
        send(s.addr(), plain(s.addr(), "GET", &nobody, Bytes::new()))
            .await
            .expect(403, "InvalidAccessKeyId");
        // Both mechanisms at once.
        let mut both = plain(s.addr(), "GET", &get, Bytes::new());
        both.headers_mut().insert(
            "authorization",
            http::HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=a/b/c/s3/aws4_request, SignedHeaders=host, Signature=x"),
        );
        send(s.addr(), both).await.expect(400, "InvalidArgument");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_tool_calls_under_aws4() {
    let s = server_with(|c| c.min_part_size = 5).await;
    let c = V4::new(&s, V4Namespace::Aws4);
    let v2 = Client::new(&s);
    // HEAD bucket, GetBucketLocation.
    c.req("HEAD", "", &[], &[], Bytes::new()).await.ok();
    let r = c
        .req("GET", "", &[("location", "")], &[], Bytes::new())
        .await;
    assert_eq!(
        r.ok().xml_all("LocationConstraint").len(),
        0,
        "root element has xmlns"
    );
    assert!(
        r.text().contains(">BEIJING</LocationConstraint>"),
        "{}",
        r.text()
    );
    // Attributes under x-amz-* names.
    c.req(
        "PUT",
        "src/a+b c",
        &[],
        &[
            ("x-amz-acl", "private"),
            ("x-amz-storage-class", "STANDARD"),
            ("x-amz-server-side-encryption", "AES256"),
        ],
        "0123456789",
    )
    .await
    .ok();
    let r = v2.head("src/a+b c").await;
    assert_eq!(
        r.ok().header("x-kss-server-side-encryption").as_deref(),
        Some("AES256")
    );
    assert_eq!(r.header("x-kss-storage-class").as_deref(), Some("STANDARD"));
    c.req("PUT", "x", &[], &[("x-amz-acl", "everyone")], "x")
        .await
        .expect(400, "InvalidArgument");
    c.req(
        "PUT",
        "x",
        &[],
        &[("x-amz-acl", "private"), ("x-kss-acl", "private")],
        "x",
    )
    .await
    .expect(400, "InvalidArgument");
    // Copy as botocore sends it (encoded, no leading slash) and as distribution 2.8.2 does
    // (raw key, no leading slash).
    let encoded = format!("{BUCKET}/src/a%2Bb%20c");
    c.req(
        "PUT",
        "dst/1",
        &[],
        &[("x-amz-copy-source", &encoded)],
        Bytes::new(),
    )
    .await
    .ok();
    c.req("PUT", "plain", &[], &[], "raw").await.ok();
    let raw = format!("{BUCKET}/plain");
    c.req(
        "PUT",
        "dst/2",
        &[],
        &[("x-amz-copy-source", &raw)],
        Bytes::new(),
    )
    .await
    .ok();
    assert_eq!(v2.get("dst/1").await.ok().body, "0123456789");
    assert_eq!(v2.get("dst/2").await.ok().body, "raw");
    // Multipart: initiate, a part, a part copy with a range, list parts, complete.
    let r = c
        .req(
            "POST",
            "mp",
            &[("uploads", "")],
            &[("x-amz-acl", "private")],
            Bytes::new(),
        )
        .await;
    let id = r.ok().xml("UploadId").unwrap();
    let r = c
        .req(
            "PUT",
            "mp",
            &[("partNumber", "1"), ("uploadId", &id)],
            &[],
            "hello",
        )
        .await;
    let e1 = r.ok().header("etag").unwrap();
    let src = format!("{BUCKET}/src/a%2Bb%20c");
    let r = c
        .req(
            "PUT",
            "mp",
            &[("partNumber", "2"), ("uploadId", &id)],
            &[
                ("x-amz-copy-source", &src),
                ("x-amz-copy-source-range", "bytes=2-4"),
            ],
            Bytes::new(),
        )
        .await;
    let e2 = r.ok().xml("ETag").unwrap();
    let l = c
        .req("GET", "mp", &[("uploadId", &id)], &[], Bytes::new())
        .await;
    assert_eq!(l.ok().xml_all("PartNumber"), vec!["1", "2"]);
    let u = c
        .req(
            "GET",
            "",
            &[("uploads", ""), ("prefix", "mp")],
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(u.ok().xml_all("UploadId"), vec![id.clone()]);
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>"
    );
    c.req("POST", "mp", &[("uploadId", &id)], &[], xml)
        .await
        .ok();
    assert_eq!(v2.get("mp").await.ok().body, "hello234");
    // distribution 2.8.2's empty blob: Complete with no parts makes an empty object.
    let r = c
        .req("POST", "empty", &[("uploads", "")], &[], Bytes::new())
        .await;
    let id = r.ok().xml("UploadId").unwrap();
    c.req(
        "POST",
        "empty",
        &[("uploadId", &id)],
        &[],
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
    )
    .await
    .ok();
    let r = v2.get("empty").await;
    assert_eq!(
        (r.ok().body.len(), r.header("content-length").as_deref()),
        (0, Some("0"))
    );
    // Multi-delete with botocore's CRC-32 checksum instead of Content-MD5, and a wrong one.
    let del = "<Delete><Quiet>false</Quiet><Object><Key>dst/1</Key></Object><Object><Key>dst/2</Key></Object></Delete>";
    let mut crc = u32::MAX;
    for &b in del.as_bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let good = ks3_proto::digest::base64(&(!crc).to_be_bytes());
    c.req(
        "POST",
        "",
        &[("delete", "")],
        &[("x-amz-checksum-crc32", "AAAAAA==")],
        del,
    )
    .await
    .expect(400, "BadDigest");
    let r = c
        .req(
            "POST",
            "",
            &[("delete", "")],
            &[("x-amz-checksum-crc32", &good)],
            del,
        )
        .await;
    assert_eq!(r.ok().xml_all("Key"), vec!["dst/1", "dst/2"]);
    v2.get("dst/1").await.expect(404, "NoSuchKey");
}
