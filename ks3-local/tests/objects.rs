//! Single-object operations: PUT / GET / HEAD / DELETE / copy, and their rejections.
mod common;

use bytes::Bytes;
use common::*;
use ks3_proto::digest::{content_md5, etag, md5};
use ks3_proto::Crc64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_head_delete() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let body = data(10_000, 1);
    let r = c
        .req(
            "PUT",
            "docker/blob",
            "",
            &[
                ("content-type", "application/x-test"),
                ("x-kss-meta-author", "me"),
            ],
            body.clone(),
        )
        .await;
    r.ok();
    assert_eq!(r.header("etag").unwrap(), etag(&md5(&body)));
    assert_eq!(
        r.header("x-kss-checksum-crc64ecma").unwrap(),
        Crc64::checksum(&body).to_string()
    );
    assert!(r.header("x-kss-request-id").is_some());
    assert!(r.header("last-modified").is_some());

    let g = c.get("docker/blob").await;
    g.ok();
    assert_eq!(g.body, body);
    assert_eq!(g.header("etag").unwrap(), etag(&md5(&body)));
    assert_eq!(g.header("content-type").unwrap(), "application/x-test");
    assert_eq!(g.header("content-length").unwrap(), "10000");
    assert_eq!(g.header("x-kss-meta-author").unwrap(), "me");
    assert_eq!(
        g.header("x-kss-checksum-crc64ecma").unwrap(),
        Crc64::checksum(&body).to_string()
    );
    let lm = g.header("last-modified").unwrap();
    assert!(ks3_proto::date::parse_http_date(&lm).is_some(), "{lm}");
    assert!(g.header("x-kss-request-id").is_some());

    let h = c.head("docker/blob").await;
    h.ok();
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-length").unwrap(), "10000");
    assert_eq!(h.header("etag").unwrap(), etag(&md5(&body)));
    assert_eq!(
        h.header("x-kss-checksum-crc64ecma").unwrap(),
        Crc64::checksum(&body).to_string()
    );

    // UTF-8 metadata survives.
    c.req("PUT", "meta", "", &[("x-kss-meta-name", "Jürgen")], "m")
        .await
        .ok();
    let g = c.get("meta").await;
    assert_eq!(
        g.headers.get("x-kss-meta-name").unwrap().as_bytes(),
        "Jürgen".as_bytes()
    );

    // Overwrite.
    c.put("docker/blob", "short").await.ok();
    assert_eq!(c.get("docker/blob").await.body, "short");

    let d = c.delete("docker/blob").await;
    assert_eq!(d.status, 204);
    assert!(d.header("x-kss-request-id").is_some());
    c.get("docker/blob").await.expect(404, "NoSuchKey");
    // KS3 quirk: deleting a missing key is 404 NoSuchKey.
    c.delete("docker/blob").await.expect(404, "NoSuchKey");
    // HEAD 404 has no body.
    let h = c.head("docker/blob").await;
    assert_eq!(h.status, 404);
    assert!(h.body.is_empty());
    assert!(h.header("x-kss-request-id").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_object_and_unicode_keys() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("empty", Bytes::new()).await.ok();
    let g = c.get("empty").await;
    g.ok();
    assert!(g.body.is_empty());
    assert_eq!(
        g.header("etag").unwrap(),
        "\"d41d8cd98f00b204e9800998ecf8427e\""
    );
    assert_eq!(g.header("x-kss-checksum-crc64ecma").unwrap(), "0");
    for key in [
        "a dir/ü+file=1&x.txt",
        "a//b",
        "/lead",
        "x?y#z",
        "~tilde%25",
    ] {
        c.put(key, key.to_string()).await.ok();
        assert_eq!(c.get(key).await.ok().text(), key);
    }
    let l = c.list("").await;
    assert!(l
        .xml_all("Key")
        .contains(&"a dir/ü+file=1&x.txt".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let body = data(1000, 2);
    c.put("r", body.clone()).await.ok();
    let rg = |h: &'static str| {
        let c = c.clone();
        async move { c.req("GET", "r", "", &[("range", h)], Bytes::new()).await }
    };
    let r = rg("bytes=10-19").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, body[10..20]);
    assert_eq!(r.header("content-range").unwrap(), "bytes 10-19/1000");
    assert_eq!(r.header("content-length").unwrap(), "10");
    // No whole-object CRC on a partial response.
    assert!(r.header("x-kss-checksum-crc64ecma").is_none());
    let r = rg("bytes=990-").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (206, &body[990..]));
    let r = rg("bytes=-5").await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (206, &body[995..]));
    let r = rg("bytes=900-5000").await;
    assert_eq!(r.header("content-range").unwrap(), "bytes 900-999/1000");
    let r = rg("bytes=1000-").await;
    r.expect(416, "InvalidRange");
    assert_eq!(r.header("content-range").unwrap(), "bytes */1000");
    rg("bytes=5000-6000").await.expect(416, "InvalidRange");
    // Unusable range syntax is ignored.
    let r = rg("bytes=5-2").await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 1000));
    // HEAD with a range.
    let r = c
        .req("HEAD", "r", "", &[("range", "bytes=0-9")], Bytes::new())
        .await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.header("content-length").unwrap().as_str()
        ),
        (206, "10")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_md5_is_checked() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let good = content_md5(b"hello world");
    c.req("PUT", "m", "", &[("content-md5", &good)], "hello world")
        .await
        .ok();
    c.req("PUT", "m2", "", &[("content-md5", &good)], "hello WORLD")
        .await
        .expect(400, "BadDigest");
    c.get("m2").await.expect(404, "NoSuchKey");
    c.req("PUT", "m2", "", &[("content-md5", "not-base64!")], "x")
        .await
        .expect(400, "InvalidDigest");
    c.req("PUT", "m2", "", &[("content-md5", "AAAA")], "x")
        .await
        .expect(400, "InvalidDigest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_encryption() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let r = c
        .req(
            "PUT",
            "e",
            "",
            &[("x-kss-server-side-encryption", "AES256")],
            "secret",
        )
        .await;
    assert_eq!(
        r.ok().header("x-kss-server-side-encryption").unwrap(),
        "AES256"
    );
    assert_eq!(
        c.get("e")
            .await
            .header("x-kss-server-side-encryption")
            .unwrap(),
        "AES256"
    );
    assert_eq!(
        c.head("e")
            .await
            .header("x-kss-server-side-encryption")
            .unwrap(),
        "AES256"
    );
    c.req(
        "PUT",
        "e2",
        "",
        &[("x-kss-server-side-encryption", "aws:kms")],
        "x",
    )
    .await
    .expect(400, "InvalidArgument");
    c.req(
        "PUT",
        "e2",
        "",
        &[("x-kss-server-side-encryption-customer-algorithm", "AES256")],
        "x",
    )
    .await
    .expect(501, "NotImplemented");
    assert!(c
        .get("plain")
        .await
        .header("x-kss-server-side-encryption")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_requests() {
    let s = server_with(|c| c.max_put_size = 1000).await;
    let c = Client::new(&s);
    // Key length.
    let long = "k".repeat(1025);
    c.put(&long, "x").await.expect(400, "KeyTooLong");
    c.put(&"k".repeat(1024), "x").await.ok();
    // Entity too large (checked from Content-Length before reading).
    c.put("big", vec![0u8; 1001])
        .await
        .expect(400, "EntityTooLarge");
    c.put("big", vec![0u8; 1000]).await.ok();
    // Invalid attributes.
    c.req("PUT", "a", "", &[("x-kss-acl", "everyone")], "x")
        .await
        .expect(400, "InvalidArgument");
    c.req("PUT", "a", "", &[("x-kss-storage-class", "GLACIER")], "x")
        .await
        .expect(400, "InvalidStorageClass");
    let huge = "v".repeat(3000);
    c.req("PUT", "a", "", &[("x-kss-meta-x", &huge)], "x")
        .await
        .expect(400, "MetadataTooLarge");
    // Missing bucket.
    let nb = Client {
        bucket: "no-such-bucket".into(),
        ..c.clone()
    };
    nb.get("k").await.expect(404, "NoSuchBucket");
    nb.put("k", "x").await.expect(404, "NoSuchBucket");
    nb.list("").await.expect(404, "NoSuchBucket");
    // Unsupported operations.
    c.req("GET", "", "acl", &[], Bytes::new())
        .await
        .expect(501, "NotImplemented");
    c.req("PUT", "a", "tagging", &[], "x")
        .await
        .expect(501, "NotImplemented");
    c.req("POST", "a", "append&position=0", &[], "x")
        .await
        .expect(501, "NotImplemented");
    c.req("PATCH", "a", "", &[], "x")
        .await
        .expect(405, "MethodNotAllowed");
    // Bad percent-encoding in the path.
    let mut req = c.build("GET", "x", "", &[], Bytes::new());
    *req.uri_mut() = format!("/{BUCKET}/%ZZ").parse().unwrap();
    send(s.addr(), req).await.expect(400, "InvalidURI");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_get() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let tag = c.put("c", "v").await.header("etag").unwrap();
    let r = c
        .req("GET", "c", "", &[("if-none-match", &tag)], Bytes::new())
        .await;
    assert_eq!(r.status, 304);
    let r = c
        .req("GET", "c", "", &[("if-match", "\"0000\"")], Bytes::new())
        .await;
    r.expect(412, "PreconditionFailed");
    c.req("GET", "c", "", &[("if-match", &tag)], Bytes::new())
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_object() {
    let s = server_with(|c| {
        c.max_copy_size = 100;
        c.buckets.push("other-bucket".into());
    })
    .await;
    let c = Client::new(&s);
    let src_key = "a dir/ü+file=1&x.txt";
    c.req(
        "PUT",
        src_key,
        "",
        &[("content-type", "text/x-src"), ("x-kss-meta-m", "1")],
        "copy me",
    )
    .await
    .ok();
    // The Python SDK's encoding: quote_plus (slashes → %2F, space → '+').
    let src = "/registry-bucket/a+dir%2F%C3%BC%2Bfile%3D1%26x.txt";
    let r = c
        .req(
            "PUT",
            "dst/copy",
            "",
            &[("x-kss-copy-source", src)],
            Bytes::new(),
        )
        .await;
    r.ok();
    let src_tag = c.head(src_key).await.header("etag").unwrap();
    assert_eq!(r.xml("ETag").unwrap(), src_tag);
    assert!(r.xml("LastModified").unwrap().ends_with('Z'));
    assert_eq!(
        r.header("x-kss-checksum-crc64ecma").unwrap(),
        Crc64::checksum(b"copy me").to_string()
    );
    let g = c.get("dst/copy").await;
    assert_eq!(g.body, "copy me");
    assert_eq!(g.header("content-type").unwrap(), "text/x-src");
    assert_eq!(g.header("x-kss-meta-m").unwrap(), "1");
    // RFC 3986 encoding with slashes kept works too; REPLACE takes the new metadata.
    let src2 = format!(
        "/registry-bucket/{}",
        ks3_proto::encode::encode_key(src_key)
    );
    c.req(
        "PUT",
        "dst/copy2",
        "",
        &[
            ("x-kss-copy-source", &src2),
            ("x-kss-metadata-directive", "REPLACE"),
            ("content-type", "text/new"),
        ],
        Bytes::new(),
    )
    .await
    .ok();
    let g = c.get("dst/copy2").await;
    assert_eq!(g.header("content-type").unwrap(), "text/new");
    assert!(g.header("x-kss-meta-m").is_none());
    // Across buckets.
    c.req("PUT", "x", "", &[("x-kss-copy-source", src)], Bytes::new())
        .await
        .ok();
    let ob = Client {
        bucket: "other-bucket".into(),
        ..c.clone()
    };
    ob.req(
        "PUT",
        "y",
        "",
        &[("x-kss-copy-source", "/registry-bucket/x")],
        Bytes::new(),
    )
    .await
    .ok();
    assert_eq!(ob.get("y").await.body, "copy me");
    // Rejections.
    c.req(
        "PUT",
        "d",
        "",
        &[("x-kss-copy-source", "/registry-bucket/missing")],
        Bytes::new(),
    )
    .await
    .expect(404, "NoSuchKey");
    c.req(
        "PUT",
        "d",
        "",
        &[("x-kss-copy-source", "/no-such-bucket/x")],
        Bytes::new(),
    )
    .await
    .expect(404, "NoSuchBucket");
    c.req(
        "PUT",
        "d",
        "",
        &[("x-kss-copy-source", "nobucketorkey")],
        Bytes::new(),
    )
    .await
    .expect(400, "InvalidArgument");
    c.req(
        "PUT",
        "d",
        "",
        &[
            ("x-kss-copy-source", "/registry-bucket/x"),
            ("x-kss-metadata-directive", "MERGE"),
        ],
        Bytes::new(),
    )
    .await
    .expect(400, "InvalidArgument");
    c.put("big", vec![1u8; 101]).await.ok();
    c.req(
        "PUT",
        "d",
        "",
        &[("x-kss-copy-source", "/registry-bucket/big")],
        Bytes::new(),
    )
    .await
    .expect(400, "EntityTooLarge");
    c.get("d").await.expect(404, "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_operations() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let nb = Client {
        bucket: "new-bucket".into(),
        ..c.clone()
    };
    assert_eq!(nb.head("").await.status, 404);
    nb.req("PUT", "", "", &[], Bytes::new()).await.ok();
    assert_eq!(nb.head("").await.status, 200);
    nb.req("PUT", "", "", &[], Bytes::new())
        .await
        .expect(409, "BucketAlreadyExists");
    nb.put("k", "v").await.ok();
    nb.req("DELETE", "", "", &[], Bytes::new())
        .await
        .expect(409, "BucketNotEmpty");
    nb.delete("k").await;
    assert_eq!(
        nb.req("DELETE", "", "", &[], Bytes::new()).await.status,
        204
    );
    let bad = Client {
        bucket: "Bad_Name".into(),
        ..c.clone()
    };
    bad.req("PUT", "", "", &[], Bytes::new())
        .await
        .expect(400, "InvalidBucketName");
    let svc = Client {
        bucket: String::new(),
        ..c.clone()
    };
    let l = svc.req("GET", "", "", &[], Bytes::new()).await;
    assert_eq!(l.ok().xml_all("Name"), vec![BUCKET]);
}
