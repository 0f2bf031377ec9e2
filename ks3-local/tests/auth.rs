//! Authentication and addressing, over real sockets.
mod common;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_are_accepted_path_and_virtual_host() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("dir/a.txt", "hello").await.ok();
    assert_eq!(c.get("dir/a.txt").await.ok().body, "hello");

    // Virtual-hosted: Host: bucket.<anything>, path = key; the signed resource stays /bucket/key.
    let v = Client {
        host: Some(format!(
            "{BUCKET}.ks3-cn-beijing.ksyuncs.com:{}",
            s.addr().port()
        )),
        path_style: false,
        ..c.clone()
    };
    assert_eq!(v.get("dir/a.txt").await.ok().body, "hello");
    v.put("dir/b.txt", "vh").await.ok();
    assert_eq!(c.get("dir/b.txt").await.ok().body, "vh");
    let l = v.list("prefix=dir/").await;
    assert_eq!(l.ok().xml_all("Key"), vec!["dir/a.txt", "dir/b.txt"]);

    // A Host whose first label is not a bucket means path-style.
    let other = Client {
        host: Some("localhost.localdomain".into()),
        ..c.clone()
    };
    assert_eq!(other.get("dir/a.txt").await.ok().body, "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_signature_does_not_match_with_string_to_sign() {
    let s = memory_server().await;
    let c = Client::new(&s).with_secret("not-the-secret");
    let r = c
        .req(
            "PUT",
            "k",
            "",
            &[("content-type", "text/plain"), ("x-kss-meta-a", "1")],
            "x",
        )
        .await;
    r.expect(403, "SignatureDoesNotMatch");
    let sts = r.xml("StringToSign").unwrap();
    assert!(sts.starts_with("PUT\n\ntext/plain\n"), "{sts:?}");
    assert!(
        sts.ends_with("\nx-kss-meta-a:1\n/registry-bucket/k"),
        "{sts:?}"
    );
    assert!(r.xml("SignatureProvided").is_some());
    assert!(r.xml("RequestId").is_some());
    assert_eq!(r.xml("Resource").as_deref(), Some("/registry-bucket/k"));
    // Nothing stored.
    Client::new(&s).get("k").await.expect(404, "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_access_key_and_anonymous_and_malformed_authorization() {
    let s = memory_server().await;
    let c = Client {
        ak: "AKLTnobody".into(),
        ..Client::new(&s)
    };
    c.get("k").await.expect(403, "InvalidAccessKeyId");

    let anon = Request::get(format!("/{BUCKET}/k"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(s.addr(), anon).await.expect(403, "AccessDenied");
    let anon_list = Request::get(format!("/{BUCKET}/"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(s.addr(), anon_list).await.expect(403, "AccessDenied");

    for bad in ["KSS nocolon", "KSS :sig", "Bearer xyz", "KSS"] {
        let r = Request::get(format!("/{BUCKET}/k"))
            .header("date", ks3_proto::date::http_date(now()))
            .header("authorization", bad)
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(s.addr(), r).await.expect(400, "InvalidArgument");
    }
    // A V4 scheme with a malformed header is malformed, not unknown.
    let r = Request::get(format!("/{BUCKET}/k"))
        .header("authorization", "AWS4-HMAC-SHA256 Credential=x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(s.addr(), r)
        .await
        .expect(400, "AuthorizationHeaderMalformed");
    // AWS V2 (HMAC-SHA1 with "AWS AK:SIG") is not implemented.
    let r = Request::get(format!("/{BUCKET}/k"))
        .header("date", ks3_proto::date::http_date(now()))
        .header("authorization", "AWS AK:c2ln")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(s.addr(), r).await.expect(501, "NotImplemented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_over_15_minutes_is_rejected() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("k", "v").await.ok();
    for skew in [-16 * 60, 16 * 60] {
        let r = Client { skew, ..c.clone() }.get("k").await;
        r.expect(403, "RequestTimeTooSkewed");
        assert!(r.xml("ServerTime").is_some());
    }
    for skew in [-14 * 60, 14 * 60] {
        Client { skew, ..c.clone() }.get("k").await.ok();
    }
    // No (parseable) Date at all.
    let mut req = c.build("GET", "k", "", &[], Bytes::new());
    req.headers_mut().remove("date");
    send(s.addr(), req).await.expect(403, "AccessDenied");
    let mut req = c.build("GET", "k", "", &[], Bytes::new());
    req.headers_mut()
        .insert("date", "yesterday".parse().unwrap());
    send(s.addr(), req).await.expect(403, "AccessDenied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("a dir/ü+file=1&x.txt", "presigned!").await.ok();
    let get = |path: String| {
        send(
            s.addr(),
            Request::get(path)
                .header("host", s.addr().to_string())
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    };
    let url = c.presign("GET", "a dir/ü+file=1&x.txt", now() + 60);
    let r = get(url.clone()).await;
    assert_eq!(r.ok().body, "presigned!");
    // The other access-key parameter names.
    for name in ["AccessKeyId", "AWSAccessKeyId"] {
        let alt = url.replace("KSSAccessKeyId", name);
        assert_eq!(get(alt).await.ok().body, "presigned!");
    }
    // Expired.
    let r = get(c.presign("GET", "a dir/ü+file=1&x.txt", now() - 5)).await;
    r.expect(403, "AccessDenied");
    assert_eq!(r.xml("Message").as_deref(), Some("Request has expired"));
    // Signed for HEAD, used for GET.
    get(c.presign("HEAD", "a dir/ü+file=1&x.txt", now() + 60))
        .await
        .expect(403, "SignatureDoesNotMatch");
    // Wrong secret.
    get(c
        .with_secret("nope")
        .presign("GET", "a dir/ü+file=1&x.txt", now() + 60))
    .await
    .expect(403, "SignatureDoesNotMatch");
    // Tampered key.
    let tampered = url.replace("x.txt", "y.txt");
    get(tampered).await.expect(403, "SignatureDoesNotMatch");
    // Unknown access key in a URL.
    let stranger = Client {
        ak: "AKLTnobody".into(),
        ..c.clone()
    };
    get(stranger.presign("GET", "a dir/ü+file=1&x.txt", now() + 60))
        .await
        .expect(403, "InvalidAccessKeyId");
    // Incomplete parameters.
    let no_expires = url.split("&Expires").next().unwrap().to_string();
    get(no_expires).await.expect(403, "AccessDenied");
    // Both mechanisms at once.
    let mut both = c.build("GET", "a dir/ü+file=1&x.txt", "", &[], Bytes::new());
    *both.uri_mut() = url.parse().unwrap();
    send(s.addr(), both).await.expect(400, "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_subresources_and_unsigned_list_parameters() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("p/1", "x").await.ok();
    // prefix/max-keys are not signed, uploadId/partNumber are (the client signs by the rules
    // of ks3-proto; a request whose signature omitted a sub-resource must fail).
    c.list("prefix=p/&max-keys=5").await.ok();
    let id = c.initiate("mp").await;
    let mut req = c.build("GET", "mp", "", &[], Bytes::new());
    *req.uri_mut() = format!("/{BUCKET}/mp?uploadId={id}").parse().unwrap();
    send(s.addr(), req)
        .await
        .expect(403, "SignatureDoesNotMatch");
    c.req("GET", "mp", &format!("uploadId={id}"), &[], Bytes::new())
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_credentials() {
    let s = server_with(|c| c.credentials.push(("AK2".into(), "SK2".into()))).await;
    let c1 = Client::new(&s);
    let c2 = Client {
        ak: "AK2".into(),
        sk: "SK2".into(),
        ..c1.clone()
    };
    c1.put("k", "1").await.ok();
    assert_eq!(c2.get("k").await.ok().body, "1");
    Client {
        sk: SK.into(),
        ..c2
    }
    .get("k")
    .await
    .expect(403, "SignatureDoesNotMatch");
}
