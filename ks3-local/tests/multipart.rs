//! Multipart uploads.
mod common;

use bytes::Bytes;
use common::*;
use ks3_proto::digest::{content_md5, hex, md5};
use ks3_proto::Crc64;

/// Small minimum part size so the tests stay fast; one test checks the 5 MiB default.
async fn small_parts_server() -> ks3_local::RunningServer {
    server_with(|c| c.min_part_size = 1024).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_complete() {
    let s = small_parts_server().await;
    let c = Client::new(&s);
    let key = "docker/registry/v2/blobs/big";
    let r = c
        .req(
            "POST",
            key,
            "uploads",
            &[
                ("content-type", "application/x-mp"),
                ("x-kss-server-side-encryption", "AES256"),
            ],
            Bytes::new(),
        )
        .await;
    r.ok();
    assert_eq!(r.xml("Bucket").as_deref(), Some(BUCKET));
    assert_eq!(r.xml("Key").as_deref(), Some(key));
    assert_eq!(
        r.header("x-kss-server-side-encryption").as_deref(),
        Some("AES256")
    );
    let id = r.xml("UploadId").unwrap();

    let parts: Vec<Vec<u8>> = vec![data(2000, 1), data(1500, 2), data(700, 3)];
    let mut tags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let md5h = content_md5(p);
        let r = c
            .req(
                "PUT",
                key,
                &format!("partNumber={}&uploadId={id}", i + 1),
                &[("content-md5", &md5h)],
                p.clone(),
            )
            .await;
        r.ok();
        assert_eq!(r.header("etag").unwrap(), format!("\"{}\"", hex(&md5(p))));
        assert_eq!(
            r.header("x-kss-checksum-crc64ecma").unwrap(),
            Crc64::checksum(p).to_string()
        );
        assert_eq!(
            r.header("x-kss-server-side-encryption").as_deref(),
            Some("AES256")
        );
        tags.push(((i + 1) as u32, r.header("etag").unwrap()));
    }
    // Re-uploading a part replaces it.
    let r = c.upload_part(key, &id, 3, parts[2].clone()).await;
    assert_eq!(r.ok().header("etag").unwrap(), tags[2].1);

    // List parts with paging.
    let r = c
        .req(
            "GET",
            key,
            &format!("uploadId={id}&max-parts=2"),
            &[],
            Bytes::new(),
        )
        .await;
    r.ok();
    assert_eq!(r.xml_all("PartNumber"), vec!["1", "2"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.xml("NextPartNumberMarker").as_deref(), Some("2"));
    assert_eq!(r.xml_all("Size"), vec!["2000", "1500"]);
    let r = c
        .req(
            "GET",
            key,
            &format!("uploadId={id}&part-number-marker=2"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.xml_all("PartNumber"), vec!["3"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));
    assert_eq!(r.xml_all("ETag"), vec![tags[2].1.clone()]);

    // The upload is listed.
    let r = c.req("GET", "", "uploads", &[], Bytes::new()).await;
    assert_eq!(r.ok().xml_all("UploadId"), vec![id.clone()]);

    let r = c.complete(key, &id, &tags).await;
    r.ok();
    let whole: Vec<u8> = parts.concat();
    let mut md5s = Vec::new();
    for p in &parts {
        md5s.extend_from_slice(&md5(p));
    }
    let want_etag = format!("\"{}-3\"", hex(&md5(&md5s)));
    assert_eq!(r.xml("ETag").unwrap(), want_etag);
    assert_eq!(r.xml("Key").as_deref(), Some(key));
    assert_eq!(r.xml("Bucket").as_deref(), Some(BUCKET));
    assert!(r
        .xml("Location")
        .unwrap()
        .ends_with("/registry-bucket/docker/registry/v2/blobs/big"));
    let crc = Crc64::checksum(&whole).to_string();
    assert_eq!(r.xml("ChecksumCRC64ECMA").unwrap(), crc);
    assert_eq!(r.header("x-kss-checksum-crc64ecma").unwrap(), crc);

    let g = c.get(key).await;
    assert_eq!(g.ok().body, whole);
    assert_eq!(g.header("etag").unwrap(), want_etag);
    assert_eq!(g.header("x-kss-checksum-crc64ecma").unwrap(), crc);
    assert_eq!(g.header("content-type").unwrap(), "application/x-mp");
    assert_eq!(
        g.header("x-kss-server-side-encryption").as_deref(),
        Some("AES256")
    );
    let r = c
        .req(
            "GET",
            key,
            "",
            &[("range", "bytes=1999-2000")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.body, whole[1999..2001]);

    // The upload is gone: a retried Complete, like every other call, gets NoSuchUpload.
    c.complete(key, &id, &tags)
        .await
        .expect(404, "NoSuchUpload");
    c.upload_part(key, &id, 1, "x")
        .await
        .expect(404, "NoSuchUpload");
    c.req("GET", key, &format!("uploadId={id}"), &[], Bytes::new())
        .await
        .expect(404, "NoSuchUpload");
    c.req("DELETE", key, &format!("uploadId={id}"), &[], Bytes::new())
        .await
        .expect(404, "NoSuchUpload");
    assert!(c
        .req("GET", "", "uploads", &[], Bytes::new())
        .await
        .xml_all("UploadId")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_rejections() {
    let s = small_parts_server().await;
    let c = Client::new(&s);
    let key = "mp";
    let id = c.initiate(key).await;
    let mut tags = Vec::new();
    for (n, len) in [(1u32, 2000usize), (2, 500), (3, 2000)] {
        let r = c.upload_part(key, &id, n, data(len, n as u8)).await;
        tags.push((n, r.ok().header("etag").unwrap()));
    }
    // Order and gaps.
    c.complete(key, &id, &[tags[1].clone(), tags[0].clone()])
        .await
        .expect(400, "InvalidPartOrder");
    c.complete(key, &id, &[tags[0].clone(), tags[2].clone()])
        .await
        .expect(400, "InvalidPartOrder");
    c.complete(key, &id, &[tags[1].clone()])
        .await
        .expect(400, "InvalidPartOrder");
    c.complete(key, &id, &[tags[0].clone(), tags[0].clone()])
        .await
        .expect(400, "InvalidPartOrder");
    // Wrong ETag / part never uploaded.
    c.complete(
        key,
        &id,
        &[(1, "\"00000000000000000000000000000000\"".into())],
    )
    .await
    .expect(400, "InvalidPart");
    c.complete(
        key,
        &id,
        &[
            tags[0].clone(),
            tags[1].clone(),
            tags[2].clone(),
            (4, tags[2].1.clone()),
        ],
    )
    .await
    .expect(400, "InvalidPart");
    // A non-last part under the minimum.
    let r = c.complete(key, &id, &tags).await;
    r.expect(400, "EntityTooSmall");
    // Malformed bodies.
    for bad in ["", "<CompleteMultipartUpload></CompleteMultipartUpload>", "<Complete><Part/></Complete>",
        "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>", "<<<"] {
        c.req("POST", key, &format!("uploadId={id}"), &[], bad).await.expect(400, "MalformedXML");
    }
    // Nothing was published by the failures; the last part may be small; ETags without quotes work.
    c.get(key).await.expect(404, "NoSuchKey");
    let r = c.upload_part(key, &id, 2, data(2000, 9)).await;
    let t2 = r.header("etag").unwrap().trim_matches('"').to_string();
    let r = c
        .complete(key, &id, &[tags[0].clone(), (2, t2), tags[2].clone()])
        .await;
    r.ok();
    assert_eq!(c.get(key).await.body.len(), 6000);
    // Unknown upload.
    c.complete(key, "nope", &tags)
        .await
        .expect(404, "NoSuchUpload");
    // An upload id is bound to its key.
    let id2 = c.initiate("k1").await;
    c.upload_part("k2", &id2, 1, "x")
        .await
        .expect(404, "NoSuchUpload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_minimum_part_size_is_5_mib() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let id = c.initiate("five").await;
    let a = c
        .upload_part("five", &id, 1, vec![7u8; 5 * 1024 * 1024 - 1])
        .await;
    let b = c.upload_part("five", &id, 2, vec![8u8; 10]).await;
    let tags = vec![
        (1, a.header("etag").unwrap()),
        (2, b.header("etag").unwrap()),
    ];
    let r = c.complete("five", &id, &tags).await;
    r.expect(400, "EntityTooSmall");
    assert_eq!(r.xml("MinSizeAllowed").as_deref(), Some("5242880"));
    let a = c
        .upload_part("five", &id, 1, vec![7u8; 5 * 1024 * 1024])
        .await;
    let tags = vec![
        (1, a.header("etag").unwrap()),
        (2, b.header("etag").unwrap()),
    ];
    c.complete("five", &id, &tags).await.ok();
    assert_eq!(
        c.head("five").await.header("content-length").unwrap(),
        "5242890"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_numbers_and_abort() {
    let s = small_parts_server().await;
    let c = Client::new(&s);
    let id = c.initiate("k").await;
    for bad in ["0", "10001", "-1"] {
        c.req(
            "PUT",
            "k",
            &format!("partNumber={bad}&uploadId={id}"),
            &[],
            "x",
        )
        .await
        .expect(400, "InvalidPartNum");
    }
    c.req(
        "PUT",
        "k",
        &format!("partNumber=abc&uploadId={id}"),
        &[],
        "x",
    )
    .await
    .expect(400, "InvalidArgument");
    c.req("PUT", "k", "partNumber=1", &[], "x")
        .await
        .expect(400, "InvalidArgument");
    c.upload_part("k", &id, 10000, "last").await.ok();
    c.upload_part("k", "no-such-upload", 1, "x")
        .await
        .expect(404, "NoSuchUpload");
    let md5h = content_md5(b"abc");
    c.req(
        "PUT",
        "k",
        &format!("partNumber=1&uploadId={id}"),
        &[("content-md5", &md5h)],
        "abd",
    )
    .await
    .expect(400, "BadDigest");
    let r = c
        .req("DELETE", "k", &format!("uploadId={id}"), &[], Bytes::new())
        .await;
    assert_eq!(r.status, 204);
    c.req("GET", "k", &format!("uploadId={id}"), &[], Bytes::new())
        .await
        .expect(404, "NoSuchUpload");
    c.req(
        "GET",
        "k",
        &format!("uploadId={id}&max-parts=0"),
        &[],
        Bytes::new(),
    )
    .await
    .expect(400, "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_part_copy() {
    let s = server_with(|c| {
        c.min_part_size = 1024;
        c.max_copy_size = 4000;
    })
    .await;
    let c = Client::new(&s);
    let src = data(3000, 5);
    c.put("src/obj", src.clone()).await.ok();
    let id = c.initiate("dst").await;
    let q1 = format!("uploadId={id}&partNumber=1");
    let r = c
        .req(
            "PUT",
            "dst",
            &q1,
            &[
                ("x-kss-copy-source", "/registry-bucket/src%2Fobj"),
                ("x-kss-copy-source-range", "bytes=0-1999"),
            ],
            Bytes::new(),
        )
        .await;
    r.ok();
    let t1 = r.xml("ETag").unwrap();
    assert_eq!(t1, format!("\"{}\"", hex(&md5(&src[..2000]))));
    assert!(r.xml("LastModified").is_some());
    assert_eq!(
        r.header("x-kss-checksum-crc64ecma").unwrap(),
        Crc64::checksum(&src[..2000]).to_string()
    );
    let q2 = format!("uploadId={id}&partNumber=2");
    let r = c
        .req(
            "PUT",
            "dst",
            &q2,
            &[
                ("x-kss-copy-source", "/registry-bucket/src/obj"),
                ("x-kss-copy-source-range", "bytes=2000-2999"),
            ],
            Bytes::new(),
        )
        .await;
    let t2 = r.ok().xml("ETag").unwrap();
    let r = c.complete("dst", &id, &[(1, t1), (2, t2)]).await;
    r.ok();
    assert_eq!(c.get("dst").await.body, src);

    // Whole source without a range; bad ranges; too large.
    let id = c.initiate("dst2").await;
    let q = format!("uploadId={id}&partNumber=1");
    let copy = |range: Option<&'static str>, source: &'static str| {
        let c = c.clone();
        let q = q.clone();
        async move {
            let mut h = vec![("x-kss-copy-source", source)];
            if let Some(r) = range {
                h.push(("x-kss-copy-source-range", r));
            }
            c.req("PUT", "dst2", &q, &h, Bytes::new()).await
        }
    };
    copy(None, "/registry-bucket/src/obj").await.ok();
    for bad in ["bytes=0-3000", "bytes=5-1", "0-10", "bytes=a-b"] {
        copy(Some(bad), "/registry-bucket/src/obj")
            .await
            .expect(400, "InvalidArgument");
    }
    copy(None, "/registry-bucket/missing")
        .await
        .expect(404, "NoSuchKey");
    c.put("src/huge", vec![0u8; 4001]).await.ok();
    copy(None, "/registry-bucket/src/huge")
        .await
        .expect(400, "EntityTooLarge");
    copy(Some("bytes=0-3999"), "/registry-bucket/src/huge")
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_multipart_uploads_paging() {
    let s = small_parts_server().await;
    let c = Client::new(&s);
    let mut ids = Vec::new();
    for k in ["u/a", "u/a", "u/b", "u/d/1", "u/d/2", "v"] {
        ids.push((k, c.initiate(k).await));
    }
    let r = c
        .req("GET", "", "uploads&prefix=u/", &[], Bytes::new())
        .await;
    r.ok();
    assert_eq!(
        r.xml_all("Key"),
        vec!["u/a", "u/a", "u/b", "u/d/1", "u/d/2"]
    );
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));
    // Same key: ordered by initiation.
    assert_eq!(
        r.xml_all("UploadId")[..2],
        [ids[0].1.clone(), ids[1].1.clone()]
    );

    // Page through one at a time with both markers.
    let mut got = Vec::new();
    let (mut km, mut um) = (String::new(), String::new());
    loop {
        let r = c
            .req(
                "GET",
                "",
                &format!(
                    "uploads&max-uploads=1&key-marker={}&upload-id-marker={um}",
                    ks3_proto::encode::encode_component(&km)
                ),
                &[],
                Bytes::new(),
            )
            .await;
        r.ok();
        got.extend(r.xml_all("UploadId"));
        if r.xml("IsTruncated").as_deref() != Some("true") {
            break;
        }
        km = r.xml("NextKeyMarker").unwrap();
        um = r.xml("NextUploadIdMarker").unwrap();
    }
    assert_eq!(got, ids.iter().map(|(_, i)| i.clone()).collect::<Vec<_>>());

    // Delimiter rolls up.
    let r = c
        .req(
            "GET",
            "",
            "uploads&prefix=u/&delimiter=/",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.xml_all("Key"), vec!["u/a", "u/a", "u/b"]);
    assert!(r
        .text()
        .contains("<CommonPrefixes><Prefix>u/d/</Prefix></CommonPrefixes>"));
    // key-marker alone skips that key entirely.
    let r = c
        .req("GET", "", "uploads&key-marker=u/a", &[], Bytes::new())
        .await;
    assert_eq!(r.xml_all("Key"), vec!["u/b", "u/d/1", "u/d/2", "v"]);
    c.req("GET", "", "uploads&max-uploads=1001", &[], Bytes::new())
        .await
        .expect(400, "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_complete_can_replay_the_first_answer() {
    let s = server_with(|c| {
        c.min_part_size = 1024;
        c.replay_completed_uploads = true;
    })
    .await;
    let c = Client::new(&s);
    let key = "replayed";
    let id = c.initiate(key).await;
    let r = c.upload_part(key, &id, 1, data(3000, 9)).await;
    let tags = vec![(1u32, r.ok().header("etag").unwrap())];
    let first = c.complete(key, &id, &tags).await;
    let etag = first.ok().xml("ETag").unwrap();
    let again = c.complete(key, &id, &tags).await;
    assert_eq!(again.ok().xml("ETag").unwrap(), etag);
    // Only for the key it completed; other calls on the upload still find nothing.
    c.complete("other", &id, &tags)
        .await
        .expect(404, "NoSuchUpload");
    c.upload_part(key, &id, 2, "x")
        .await
        .expect(404, "NoSuchUpload");
}
