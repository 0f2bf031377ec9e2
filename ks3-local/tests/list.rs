//! ListObjects v1 / v2 and the multi-object delete.
mod common;

use bytes::Bytes;
use common::*;
use ks3_proto::digest::content_md5;

async fn fill(c: &Client, keys: &[&str]) {
    for k in keys {
        c.put(k, "x").await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_prefix_delimiter_marker() {
    let s = memory_server().await;
    let c = Client::new(&s);
    fill(&c, &["a/1", "a/2", "a/b/3", "a/c/4", "a/c/5", "b/1", "top"]).await;
    let r = c.list("").await;
    assert_eq!(
        r.ok().xml_all("Key"),
        vec!["a/1", "a/2", "a/b/3", "a/c/4", "a/c/5", "b/1", "top"]
    );
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));
    assert_eq!(r.xml("MaxKeys").as_deref(), Some("1000"));
    assert_eq!(r.xml("Name").as_deref(), Some(BUCKET));
    assert!(r.xml("NextMarker").is_none());
    assert!(r.text().contains("<Size>1</Size>"));
    assert!(r
        .text()
        .contains("<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag>"));

    let r = c.list("prefix=a/&delimiter=/").await;
    assert_eq!(r.xml_all("Key"), vec!["a/1", "a/2"]);
    assert_eq!(
        r.text().matches("<CommonPrefixes>").count(),
        2,
        "{}",
        r.text()
    );
    assert!(r
        .text()
        .contains("<CommonPrefixes><Prefix>a/b/</Prefix></CommonPrefixes>"));
    assert!(r
        .text()
        .contains("<CommonPrefixes><Prefix>a/c/</Prefix></CommonPrefixes>"));
    assert_eq!(r.xml("MaxKeys").as_deref(), Some("100"));
    assert_eq!(r.xml("Delimiter").as_deref(), Some("/"));

    let r = c.list("delimiter=/").await;
    assert_eq!(r.xml_all("Key"), vec!["top"]);
    assert_eq!(
        r.xml_all("Prefix").iter().filter(|p| !p.is_empty()).count(),
        2
    );

    // Paging with markers, common prefixes counted as entries.
    let mut seen = Vec::new();
    let mut marker = String::new();
    let mut pages = 0;
    loop {
        let r = c
            .list(&format!(
                "prefix=a/&delimiter=/&max-keys=1&marker={}",
                ks3_proto::encode::encode_component(&marker)
            ))
            .await;
        r.ok();
        pages += 1;
        let mut entries = r.xml_all("Key");
        entries.extend(r.xml_all("Prefix").into_iter().filter(|p| p != "a/"));
        assert_eq!(entries.len(), 1, "{}", r.text());
        seen.extend(entries);
        if r.xml("IsTruncated").as_deref() == Some("false") {
            assert!(r.xml("NextMarker").is_none());
            break;
        }
        marker = r.xml("NextMarker").unwrap();
    }
    assert_eq!(pages, 4);
    assert_eq!(seen, vec!["a/1", "a/2", "a/b/", "a/c/"]);

    // Marker in the middle without a delimiter.
    let r = c.list("marker=a/c/4").await;
    assert_eq!(r.xml_all("Key"), vec!["a/c/5", "b/1", "top"]);
    assert_eq!(r.xml("Marker").as_deref(), Some("a/c/4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_limits() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let keys: Vec<String> = (0..1005).map(|i| format!("k/{i:05}")).collect();
    for chunk in keys.chunks(100) {
        let futs: Vec<_> = chunk.iter().map(|k| c.put(k, "")).collect();
        for f in futs {
            f.await.ok();
        }
    }
    let r = c.list("").await;
    assert_eq!(r.xml_all("Key").len(), 1000);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.xml("NextMarker").as_deref(), Some("k/00999"));
    let r = c.list("marker=k/00999").await;
    assert_eq!(r.xml_all("Key").len(), 5);
    // With a delimiter: 100 by default, 100 at most.
    let r = c.list("delimiter=%23").await;
    assert_eq!(r.xml_all("Key").len(), 100);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    // Above 100 with a delimiter (distribution's s3 driver sends 1000): clamped to 100,
    // truncated, and the next page follows from NextMarker.
    let r = c.list("delimiter=/&max-keys=1000&prefix=k/").await;
    assert_eq!(r.xml_all("Key").len(), 100);
    assert_eq!(r.xml("MaxKeys").as_deref(), Some("100"));
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    assert_eq!(r.xml("NextMarker").as_deref(), Some("k/00099"));
    let r = c
        .list("delimiter=/&max-keys=101&prefix=k/&marker=k/00099")
        .await;
    assert_eq!(r.xml_all("Key")[0], "k/00100");
    let r = c
        .list("delimiter=/&list-type=2&max-keys=1000&prefix=k/")
        .await;
    assert_eq!(r.xml_all("Key").len(), 100);
    assert!(r.xml("NextContinuationToken").is_some());
    c.list("delimiter=/&max-keys=1001")
        .await
        .expect(400, "InvalidArgument");
    c.list("max-keys=1001").await.expect(400, "InvalidArgument");
    c.list("max-keys=0").await.expect(400, "InvalidArgument");
    c.list("max-keys=abc").await.expect(400, "InvalidArgument");
    c.list("max-keys=-1").await.expect(400, "InvalidArgument");
    assert_eq!(c.list("max-keys=1000").await.xml_all("Key").len(), 1000);
    assert_eq!(
        c.list("delimiter=/&max-keys=100&prefix=k/")
            .await
            .xml_all("Key")
            .len(),
        100
    );
    c.list("encoding-type=base64")
        .await
        .expect(400, "InvalidArgument");
    c.list("list-type=3").await.expect(400, "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_tokens_start_after_keycount() {
    let s = memory_server().await;
    let c = Client::new(&s);
    fill(&c, &["d/1", "d/2", "d/3", "d/x/4", "e"]).await;
    let r = c.list("list-type=2&max-keys=2").await;
    assert_eq!(r.xml_all("Key"), vec!["d/1", "d/2"]);
    assert_eq!(r.xml("KeyCount").as_deref(), Some("2"));
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("true"));
    assert!(r.xml("Marker").is_none() && r.xml("NextMarker").is_none());
    assert!(
        !r.text().contains("<Owner>"),
        "no Owner without fetch-owner"
    );
    let tok = r.xml("NextContinuationToken").unwrap();
    let r = c
        .list(&format!("list-type=2&max-keys=2&continuation-token={tok}"))
        .await;
    assert_eq!(r.xml_all("Key"), vec!["d/3", "d/x/4"]);
    assert_eq!(r.xml("ContinuationToken").as_deref(), Some(tok.as_str()));
    let tok = r.xml("NextContinuationToken").unwrap();
    let r = c
        .list(&format!(
            "list-type=2&max-keys=2&continuation-token={tok}&fetch-owner=true"
        ))
        .await;
    assert_eq!(r.xml_all("Key"), vec!["e"]);
    assert_eq!(r.xml("IsTruncated").as_deref(), Some("false"));
    assert!(r.xml("NextContinuationToken").is_none());
    assert!(r.text().contains("<Owner>"));

    let r = c.list("list-type=2&start-after=d/2").await;
    assert_eq!(r.xml_all("Key"), vec!["d/3", "d/x/4", "e"]);
    assert_eq!(r.xml("StartAfter").as_deref(), Some("d/2"));
    let r = c.list("list-type=2&delimiter=/&prefix=d/").await;
    assert_eq!(r.xml("KeyCount").as_deref(), Some("4"));
    c.list("list-type=2&continuation-token=not-hex")
        .await
        .expect(400, "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoding_type_url() {
    let s = memory_server().await;
    let c = Client::new(&s);
    fill(&c, &["sp ace/ü&x", "ctl\u{1}key"]).await;
    let r = c.list("encoding-type=url").await;
    assert_eq!(r.xml("EncodingType").as_deref(), Some("url"));
    assert_eq!(r.xml_all("Key"), vec!["ctl%01key", "sp%20ace/%C3%BC%26x"]);
    let r = c
        .list("encoding-type=url&delimiter=/&prefix=sp%20ace")
        .await;
    assert_eq!(r.xml("Prefix").as_deref(), Some("sp%20ace"));
    assert!(r
        .text()
        .contains("<CommonPrefixes><Prefix>sp%20ace/</Prefix>"));
    // Without it, control characters come as numeric references.
    assert!(c.list("").await.text().contains("ctl&#x1;key"));
}

fn delete_xml(keys: &[&str], quiet: bool) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete>");
    if quiet {
        x.push_str("<Quiet>true</Quiet>");
    }
    for k in keys {
        x.push_str(&format!(
            "<Object><Key>{}</Key></Object>",
            k.replace('&', "&amp;")
        ));
    }
    x.push_str("</Delete>");
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_object_delete() {
    let s = memory_server().await;
    let c = Client::new(&s);
    fill(&c, &["m/1", "m/2", "m/&3", "m/4"]).await;
    let post = |body: String, md5: Option<String>| {
        let c = c.clone();
        async move {
            let mut h: Vec<(&str, &str)> = vec![("content-type", "text/xml")];
            let m;
            if let Some(v) = md5 {
                m = v;
                h.push(("content-md5", &m));
            }
            c.req("POST", "", "delete", &h, body).await
        }
    };
    // Verbose: Deleted for each key, Error for a missing one.
    let b = delete_xml(&["m/1", "m/&3", "m/missing"], false);
    let r = post(b.clone(), Some(content_md5(b.as_bytes()))).await;
    r.ok();
    assert_eq!(r.xml_all("Key"), vec!["m/1", "m/&3", "m/missing"]);
    assert!(r.text().contains("<Deleted><Key>m/1</Key></Deleted>"));
    assert!(r
        .text()
        .contains("<Error><Key>m/missing</Key><Code>NoSuchKey</Code>"));
    c.get("m/1").await.expect(404, "NoSuchKey");
    // Quiet: only errors.
    let b = delete_xml(&["m/2", "m/gone"], true);
    let r = post(b.clone(), Some(content_md5(b.as_bytes()))).await;
    assert_eq!(r.ok().xml_all("Key"), vec!["m/gone"]);
    assert!(!r.text().contains("<Deleted>"));
    assert_eq!(c.list("prefix=m/").await.xml_all("Key"), vec!["m/4"]);

    // Content-MD5 required and checked.
    let b = delete_xml(&["m/4"], false);
    post(b.clone(), None).await.expect(400, "InvalidRequest");
    post(b.clone(), Some(content_md5(b"other")))
        .await
        .expect(400, "BadDigest");
    post(b.clone(), Some("zzz".into()))
        .await
        .expect(400, "InvalidDigest");
    // Malformed XML / no keys / too many keys.
    for bad in [
        "<Delete><Object><Key>a</Key></Object>".to_string(),
        "garbage".to_string(),
        "<Delete></Delete>".to_string(),
        "<Remove><Object><Key>a</Key></Object></Remove>".to_string(),
        "<Delete><Object><Nope>a</Nope></Object></Delete>".to_string(),
        "<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>".to_string(),
    ] {
        post(bad.clone(), Some(content_md5(bad.as_bytes())))
            .await
            .expect(400, "MalformedXML");
    }
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let b = delete_xml(&refs, true);
    post(b.clone(), Some(content_md5(b.as_bytes())))
        .await
        .expect(400, "MalformedXML");
    let b = delete_xml(&refs[..1000], true);
    let r = post(b.clone(), Some(content_md5(b.as_bytes()))).await;
    assert_eq!(
        r.ok().xml_all("Code").len(),
        1000,
        "all missing → NoSuchKey each"
    );
    assert_eq!(c.get("m/4").await.ok().body, Bytes::from("x"));
}
