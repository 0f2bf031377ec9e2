//! The typed API, through the real component, against ks3-local over real sockets.
mod common;

use std::time::{Duration, Instant};

use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ks3_driver_host::{Driver, DriverError, Error, WalkControl};
use ks3_local::{FaultAction, FaultRule};

async fn driver(test: &str) -> Driver {
    Driver::new(params(test)).await.expect("driver")
}

#[tokio::test]
async fn put_get_stat_delete_round_trip() {
    let d = driver("roundtrip").await;
    assert_eq!(d.name(), "ks3");
    let body = data(10_000, 1);
    d.put_content("/a/b/file", &body).await.unwrap();
    assert_eq!(d.get_content("/a/b/file").await.unwrap(), body);

    let before = std::time::SystemTime::now() - Duration::from_secs(120);
    let info = d.stat("/a/b/file").await.unwrap();
    assert_eq!(info.path, "/a/b/file");
    assert_eq!(info.size, 10_000);
    assert!(!info.is_dir);
    assert!(info.mod_time > before, "{info:?}");

    // Replace, including with empty content.
    d.put_content("/a/b/file", b"").await.unwrap();
    assert_eq!(d.get_content("/a/b/file").await.unwrap(), b"");
    assert_eq!(d.stat("/a/b/file").await.unwrap().size, 0);

    d.delete("/a/b/file").await.unwrap();
    assert!(matches!(
        d.get_content("/a/b/file").await,
        Err(Error::Driver(DriverError::PathNotFound(path))) if path == "/a/b/file"
    ));
}

#[tokio::test]
async fn missing_paths_are_path_not_found() {
    let d = driver("missing").await;
    for r in [
        d.get_content("/nope").await.map(|_| ()),
        d.stat("/nope").await.map(|_| ()),
        d.reader("/nope", 0).await.map(|_| ()),
        d.delete("/nope").await,
        d.list("/nope").await.map(|_| ()),
        d.mv("/nope", "/other").await,
    ] {
        match r {
            Err(Error::Driver(DriverError::PathNotFound(path))) => assert_eq!(path, "/nope"),
            other => panic!("expected PathNotFound, got {other:?}"),
        }
    }
    let e = d.stat("/nope").await.unwrap_err();
    assert_eq!(e.to_string(), "ks3: Path not found: /nope");
    assert_eq!(e.kind(), "path-not-found");
}

#[tokio::test]
async fn invalid_paths_and_offsets() {
    let d = driver("invalid").await;
    for p in ["", "a", "/a/", "/a//b", "/a b", "/ä"] {
        match d.get_content(p).await {
            Err(Error::Driver(DriverError::InvalidPath(path))) => assert_eq!(path, p),
            other => panic!("{p:?}: expected InvalidPath, got {other:?}"),
        }
    }
    d.put_content("/f", b"x").await.unwrap();
    match d.reader("/f", -1).await {
        Err(e @ Error::Driver(DriverError::InvalidOffset { .. })) => {
            assert_eq!(e.to_string(), "ks3: invalid offset: -1 for path: /f")
        }
        Err(e) => panic!("expected InvalidOffset, got {e:?}"),
        Ok(_) => panic!("expected InvalidOffset, got a reader"),
    }
}

#[tokio::test]
async fn directories() {
    let d = driver("dirs").await;
    d.put_content("/d/x", b"1").await.unwrap();
    d.put_content("/d/sub/y", b"2").await.unwrap();
    d.put_content("/e-2", b"3").await.unwrap();

    let info = d.stat("/d").await.unwrap();
    assert!(info.is_dir, "{info:?}");
    assert_eq!(info.path, "/d");
    assert_eq!(info.size, 0);
    // A sibling `/e-2` does not make `/e` a directory.
    assert!(d.stat("/e").await.unwrap_err().is_not_found());

    let mut children = d.list("/d").await.unwrap();
    children.sort();
    assert_eq!(children, ["/d/sub", "/d/x"]);
    let mut root = d.list("/").await.unwrap();
    root.sort();
    assert_eq!(root, ["/d", "/e-2"]);

    d.mv("/d/x", "/moved").await.unwrap();
    assert_eq!(d.get_content("/moved").await.unwrap(), b"1");
    assert!(d.stat("/d/x").await.unwrap_err().is_not_found());

    // Recursive delete, siblings untouched.
    d.delete("/d").await.unwrap();
    assert!(d.stat("/d").await.unwrap_err().is_not_found());
    assert_eq!(d.get_content("/e-2").await.unwrap(), b"3");
}

#[tokio::test]
async fn big_object_through_writer_and_reader() {
    const SIZE: usize = 64 * MIB;
    let d = driver("big").await;
    let body = data(SIZE, 64);

    let started = Instant::now();
    let mut w = d.writer("/big/blob", false).await.unwrap();
    assert_eq!(w.size(), 0);
    // Uneven pieces, one larger than a guest call, to exercise the splitting.
    let mut off = 0;
    for piece in [1, 4095, 3 * MIB + 17] {
        w.write(&body[off..off + piece]).await.unwrap();
        off += piece;
        assert_eq!(w.size(), off as u64);
    }
    for chunk in body[off..].chunks(8 * MIB) {
        w.write(chunk).await.unwrap();
    }
    assert_eq!(w.size(), SIZE as u64);
    w.commit().await.unwrap();
    let up = started.elapsed();

    assert_eq!(d.stat("/big/blob").await.unwrap().size, SIZE as u64);

    let started = Instant::now();
    let mut r = d.reader("/big/blob", 0).await.unwrap();
    let got = r.read_to_end().await.unwrap();
    let down = started.elapsed();
    assert_eq!(got.len(), SIZE);
    assert!(got == body, "content differs");
    assert_eq!(r.position(), SIZE as u64);
    assert!(r.read(10).await.unwrap().is_empty());

    let mib = SIZE as f64 / MIB as f64;
    eprintln!(
        "64 MiB: upload {:.0} ms ({:.0} MiB/s), download {:.0} ms ({:.0} MiB/s)",
        up.as_secs_f64() * 1e3,
        mib / up.as_secs_f64(),
        down.as_secs_f64() * 1e3,
        mib / down.as_secs_f64()
    );

    // A reader from an offset, as an AsyncRead.
    let offset = SIZE - 3 * MIB - 5;
    let mut r = d.reader("/big/blob", offset as i64).await.unwrap();
    let mut tail = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut tail)
        .await
        .unwrap();
    assert!(tail == body[offset..], "tail differs");

    // Past the end: immediately at the end.
    let mut r = d.reader("/big/blob", SIZE as i64 + 10).await.unwrap();
    assert!(r.read(100).await.unwrap().is_empty());
    assert!(r.read_bytes(100).await.unwrap().is_empty());

    // `read_bytes` (the client's own buffers, no copy), with small and large limits,
    // mixed with `read` and `AsyncRead` on the same reader: every byte once, in order.
    let offset = 777;
    let mut r = d.reader("/big/blob", offset as i64).await.unwrap();
    let mut got = Vec::new();
    let mut calls = 0usize;
    loop {
        let max = [1, 1000, 64 * 1024, 4 * MIB, 10 * MIB][calls % 5];
        let piece: Vec<u8> = match calls % 7 {
            3 => r.read(max).await.unwrap(),
            5 => {
                let mut buf = vec![0u8; max.min(100_000)];
                let n = tokio::io::AsyncReadExt::read(&mut r, &mut buf)
                    .await
                    .unwrap();
                buf.truncate(n);
                buf
            }
            _ => {
                let b = r.read_bytes(max).await.unwrap();
                assert!(b.len() <= max.min(4 * MIB), "{} bytes for {max}", b.len());
                b.to_vec()
            }
        };
        calls += 1;
        if piece.is_empty() {
            break;
        }
        got.extend_from_slice(&piece);
        assert_eq!(r.position(), (offset + got.len()) as u64);
    }
    assert_eq!(got.len(), SIZE - offset);
    assert!(got == body[offset..], "read_bytes: content differs");

    d.delete("/big/blob").await.unwrap();
}

#[tokio::test]
async fn writer_close_resume_and_cancel() {
    let d = driver("writer").await;
    let body = data(7 * MIB + 3, 7);

    let mut w = d.writer("/w/resumed", false).await.unwrap();
    w.write(&body[..6 * MIB]).await.unwrap();
    w.close().await.unwrap();
    // Not visible before commit.
    assert!(d.stat("/w/resumed").await.unwrap_err().is_not_found());

    let mut w = d.writer("/w/resumed", true).await.unwrap();
    assert_eq!(w.size(), 6 * MIB as u64);
    w.write(&body[6 * MIB..]).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(w.size(), body.len() as u64);
    assert!(d.get_content("/w/resumed").await.unwrap() == body);

    let mut w = d.writer("/w/cancelled", false).await.unwrap();
    w.write(&body[..MIB]).await.unwrap();
    w.cancel().await.unwrap();
    assert!(d.stat("/w/cancelled").await.unwrap_err().is_not_found());
    assert!(matches!(
        d.writer("/w/cancelled", true).await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));

    // A committed writer refuses more data.
    let mut w = d.writer("/w/done", false).await.unwrap();
    w.write(b"abc").await.unwrap();
    w.commit().await.unwrap();
    assert!(matches!(
        w.write(b"more").await,
        Err(Error::Driver(DriverError::InvalidState(_)))
    ));
    w.close().await.unwrap();
    assert_eq!(d.get_content("/w/done").await.unwrap(), b"abc");
}

#[tokio::test]
async fn walk_with_skip_and_stop() {
    let d = driver("walk").await;
    for p in ["/r/a/1", "/r/a/2", "/r/b/1", "/r/b/c/2", "/r/c", "/r/d/1"] {
        d.put_content(p, p.as_bytes()).await.unwrap();
    }
    let mut seen = Vec::new();
    d.walk("/r", None, |i| {
        seen.push((i.path.clone(), i.is_dir));
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/r/a", "/r/a/1", "/r/a/2", "/r/b", "/r/b/1", "/r/b/c", "/r/b/c/2", "/r/c", "/r/d",
            "/r/d/1"
        ]
    );
    assert!(seen.iter().find(|(p, _)| p == "/r/b").unwrap().1);
    assert!(!seen.iter().find(|(p, _)| p == "/r/c").unwrap().1);

    let mut seen = Vec::new();
    d.walk("/r", None, |i| {
        seen.push(i.path.clone());
        Ok(if i.path == "/r/b" || i.path == "/r/a/1" {
            WalkControl::SkipDir // on a file: no-op
        } else {
            WalkControl::Continue
        })
    })
    .await
    .unwrap();
    assert_eq!(
        seen,
        ["/r/a", "/r/a/1", "/r/a/2", "/r/b", "/r/c", "/r/d", "/r/d/1"]
    );

    let mut seen = Vec::new();
    d.walk("/r", None, |i| {
        seen.push(i.path.clone());
        Ok(if i.path == "/r/b/1" {
            WalkControl::Stop
        } else {
            WalkControl::Continue
        })
    })
    .await
    .unwrap();
    assert_eq!(seen.last().map(String::as_str), Some("/r/b/1"));

    let err = d
        .walk("/r", Some("/r/b"), |i| {
            Err(Error::Driver(DriverError::InvalidState(format!(
                "callback refused {}",
                i.path
            ))))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Driver(DriverError::InvalidState(m)) if m.starts_with("callback refused /r/b")),
        "{err:?}"
    );

    // A missing path walks nothing.
    let mut n = 0;
    d.walk("/none", None, |_| {
        n += 1;
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn presigned_url_over_plain_http() {
    let d = driver("presign").await;
    let body = data(123_457, 3);
    d.put_content("/p/object", &body).await.unwrap();

    let url = d.redirect_url("GET", "/p/object").await.unwrap().unwrap();
    assert!(url.starts_with(&server().endpoint()), "{url}");
    assert_eq!(d.redirect_url("PUT", "/p/object").await.unwrap(), None);

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let got = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(got == body[..]);

    let url = d.redirect_url("HEAD", "/p/object").await.unwrap().unwrap();
    let req = hyper::Request::head(url).body(Empty::new()).unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        body.len().to_string()
    );

    // The GET URL does not serve a HEAD (the signature covers the method).
    let url = d.redirect_url("GET", "/p/object").await.unwrap().unwrap();
    let req = hyper::Request::head(url).body(Empty::new()).unwrap();
    assert_eq!(client.request(req).await.unwrap().status(), 403);
}

#[tokio::test]
async fn wrong_secret_is_a_backend_error_with_ks3_code() {
    let mut p = params("badsecret");
    let wrong = "wrongSecretKey-never-shown-0123456789";
    p.insert("secretkey".into(), wrong.into());
    let d = Driver::new(p).await.unwrap();
    let e = d.put_content("/x", b"data").await.unwrap_err();
    match &e {
        Error::Driver(DriverError::Backend(b)) => {
            assert_eq!(b.code, "SignatureDoesNotMatch");
            assert_eq!(b.status, 403);
            assert!(!b.request_id.is_empty(), "{b:?}");
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    let shown = format!("{e} {e:?}");
    assert!(
        shown.starts_with("ks3: KS3 error SignatureDoesNotMatch (HTTP 403)"),
        "{shown}"
    );
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!format!("{:?}", d.config()).contains(wrong));
}

#[tokio::test]
async fn configuration_errors_name_the_parameter() {
    for (k, v) in [
        ("chunksize", "1024"),
        ("bucket", "Bad_Bucket"),
        ("region", "Bad Region"),
        ("secure", "perhaps"),
        ("nonsense", "1"),
    ] {
        let mut p = params("config");
        p.insert(k.into(), v.into());
        match Driver::new(p).await {
            Err(Error::Driver(DriverError::Config { parameter, message })) => {
                assert_eq!(parameter, k);
                assert!(!message.is_empty());
            }
            Err(e) => panic!("{k}={v}: expected a config error, got {e:?}"),
            Ok(_) => panic!("{k}={v}: expected a config error, got a driver"),
        }
    }
    let mut p = params("config");
    p.remove("bucket");
    let e = Driver::new(p).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("ks3: invalid configuration: parameter `bucket`"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_operations_share_one_driver() {
    let d = driver("concurrent").await;
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/c/{i}");
            let body = data(50_000 + i as usize, i);
            d.put_content(&path, &body).await?;
            let got = d.get_content(&path).await?;
            assert!(got == body);
            d.stat(&path).await
        }));
    }
    for t in tasks {
        let info = t.await.unwrap().unwrap();
        assert!(info.size >= 50_000);
    }
    assert_eq!(d.list("/c").await.unwrap().len(), 24);
}

/// Stateless calls run on the runtime's own executor threads. A caller that stops
/// waiting (here a timeout around a `stat` whose answer the server holds back) does not
/// hold up the driver: the next calls, one at a time and many at once, are answered at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_call_given_up_by_its_caller_does_not_hold_up_the_driver() {
    let p = params("cancelled_stat");
    let root = p["rootdirectory"].trim_start_matches('/').to_string();
    let d = Driver::new(p).await.unwrap();
    d.put_content("/f", b"abc").await.unwrap();
    server().faults().inject(FaultRule {
        method: Some("HEAD".into()),
        path_pattern: format!("{root}/f"),
        count: 1,
        action: FaultAction::Delay(Duration::from_secs(5)),
    });
    let given_up = tokio::time::timeout(Duration::from_millis(300), d.stat("/f")).await;
    assert!(
        given_up.is_err(),
        "the held-back stat returned: {given_up:?}"
    );
    assert_eq!(
        server().faults().remaining(),
        0,
        "the stat reached the server"
    );

    let started = Instant::now();
    assert_eq!(d.stat("/f").await.unwrap().size, 3);
    let mut calls = Vec::new();
    for i in 0..32 {
        let d = d.clone();
        calls.push(tokio::spawn(async move {
            let path = format!("/many/{i}");
            d.put_content(&path, path.as_bytes()).await.unwrap();
            assert_eq!(d.get_content(&path).await.unwrap(), path.as_bytes());
        }));
    }
    for c in calls {
        c.await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the calls after the cancelled one waited for it ({:?})",
        started.elapsed()
    );
    assert_eq!(d.list("/many").await.unwrap().len(), 32);
}

#[tokio::test]
async fn per_operation_cost() {
    // Not a benchmark: a sanity bound that each operation does not pay a compile.
    let d = driver("cost").await;
    d.put_content("/small", b"x").await.unwrap();
    let n = 50;
    let started = Instant::now();
    for _ in 0..n {
        d.stat("/small").await.unwrap();
    }
    let per = started.elapsed() / n;
    eprintln!("stat: {per:?} per operation (fresh instance + HEAD over a pooled connection)");
    assert!(per < Duration::from_millis(250), "{per:?}");
    // redirect-url sends nothing: a fresh instance plus one guest call.
    let started = Instant::now();
    for _ in 0..n {
        d.redirect_url("GET", "/small").await.unwrap();
    }
    let per = started.elapsed() / n;
    eprintln!("redirect-url: {per:?} per operation (fresh instance, no I/O)");
}

/// Compile-time: the API can be used from spawned tasks.
#[allow(dead_code)]
fn futures_and_handles_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Driver>();
    send_sync::<ks3_driver_host::Runtime>();
    send_sync::<Error>();
    fn check(d: &Driver, r: &mut ks3_driver_host::FileReader, w: &mut ks3_driver_host::FileWriter) {
        send(&d.get_content("/x"));
        send(&d.put_content("/x", b""));
        send(&d.reader("/x", 0));
        send(&d.writer("/x", false));
        send(&d.stat("/x"));
        send(&d.list("/x"));
        send(&d.mv("/x", "/y"));
        send(&d.delete("/x"));
        send(&d.redirect_url("GET", "/x"));
        send(&d.walk("/x", None, |_| Ok(WalkControl::Continue)));
        send(&Driver::new(Default::default()));
        send(&r.read(1));
        send(&w.write(b""));
        send(&w.commit());
    }
    let _ = check;
    fn handles<T: Send>() {}
    handles::<ks3_driver_host::FileReader>();
    handles::<ks3_driver_host::FileWriter>();
}
