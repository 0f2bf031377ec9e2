//! Tier 4: bad input from users and from the network. Every operation gets invalid paths,
//! negative offsets, unknown parameters and bad values; a hostile server answers garbage
//! XML, truncated bodies and unexpected statuses. Each time: a typed error, no panic, no
//! trap that kills the host, and the next call still works.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ks3_driver_host::{Driver, DriverError, Error, Params};
use ks3_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_paths_for_every_operation() {
    let d = fresh_driver("invalid_paths_every_op").await;
    for p in [
        "", "relative", "//x", "/a/", "/a b", "/ü", "/a/../b*", "/a?b", "/a#b",
    ] {
        let inv = |r: Result<(), Error>, op: &str| {
            assert!(
                matches!(r, Err(Error::Driver(DriverError::InvalidPath(_)))),
                "{op}({p:?}) gave {r:?}"
            );
        };
        inv(d.get_content(p).await.map(|_| ()), "get_content");
        inv(d.put_content(p, b"x").await, "put_content");
        inv(d.reader(p, 0).await.map(|_| ()), "reader");
        inv(d.writer(p, false).await.map(|_| ()), "writer");
        inv(d.writer(p, true).await.map(|_| ()), "writer(append)");
        inv(d.stat(p).await.map(|_| ()), "stat");
        inv(d.list(p).await.map(|_| ()), "list");
        inv(d.mv(p, "/ok").await, "move src");
        inv(d.mv("/ok", p).await, "move dst");
        inv(d.delete(p).await, "delete");
        inv(d.redirect_url("GET", p).await.map(|_| ()), "redirect_url");
        inv(
            d.walk(p, None, |_| Ok(ks3_driver_host::WalkControl::Continue))
                .await,
            "walk",
        );
    }
    // `/` is a directory: fine for stat/list/walk, invalid for object operations.
    assert!(matches!(
        d.get_content("/").await,
        Err(Error::Driver(DriverError::InvalidPath(_)))
    ));
    assert!(matches!(
        d.delete("/").await,
        Err(Error::Driver(DriverError::InvalidPath(_)))
    ));
    d.list("/").await.unwrap();
    for off in [-1i64, -1000, i64::MIN] {
        assert!(
            matches!(d.reader("/x", off).await.map(|_| ()), Err(Error::Driver(DriverError::InvalidOffset { offset, .. })) if offset == off)
        );
    }
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_parameters_and_bad_values_name_the_parameter() {
    let cases: &[(&str, &str)] = &[
        ("nonsense", "1"),
        ("chunksize", "1024"),
        ("chunksize", "lots"),
        ("secure", "sometimes"),
        ("bucket", "UPPER"),
        ("region", "moon-1"),
        ("regionendpoint", "ftp://x"),
        ("objectacl", "world"),
        ("storageclass", "PLATINUM"),
        ("multipartcopychunksize", "1"),
        ("maxretries", "-3"),
        ("rootdirectory", "a b"),
    ];
    for (k, v) in cases {
        let mut p: Params = params(&unique_root("bad_params"));
        if *k == "region" {
            p.remove("regionendpoint");
        }
        p.insert((*k).into(), (*v).into());
        match Driver::new(p).await {
            Err(e @ Error::Driver(DriverError::Config { .. })) => {
                let Error::Driver(DriverError::Config { parameter, .. }) = &e else {
                    unreachable!()
                };
                assert_eq!(parameter, k, "{k}={v}: {e}");
                let msg = e.to_string();
                assert!(msg.contains(k) && !msg.contains(SECRET_KEY), "{msg}");
            }
            Err(e) => panic!("{k}={v}: expected a config error, got {e}"),
            Ok(_) => panic!("{k}={v}: accepted"),
        }
    }
    let mut p = params("x");
    p.remove("bucket");
    assert!(
        matches!(Driver::new(p).await, Err(Error::Driver(DriverError::Config { ref parameter, .. })) if parameter == "bucket")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_a_backend_error_without_the_secret() {
    let mut p = params(&unique_root("wrong_secret"));
    p.insert("secretkey".into(), "not-the-secret-0123456789".into());
    let d = Driver::new(p).await.unwrap();
    match d.put_content("/x", b"x").await {
        Err(e @ Error::Driver(DriverError::Backend(_))) => {
            let msg = e.to_string();
            assert!(
                msg.contains("SignatureDoesNotMatch") && !msg.contains("not-the-secret"),
                "{msg}"
            );
        }
        other => panic!("expected SignatureDoesNotMatch, got {other:?}"),
    }
}

/// What the hostile server answers to every request.
#[derive(Clone, Copy, Debug)]
enum Garbage {
    NotXml,
    TruncatedXml,
    WrongRoot,
    TruncatedBody,
    Teapot,
    Redirect,
    ErrorInOk,
    EmptyOk,
    HugeLength,
    CloseImmediately,
}

impl Garbage {
    fn response(self) -> Vec<u8> {
        let ok = |ct: &str, body: &str| {
            format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                .into_bytes()
        };
        match self {
            Garbage::NotXml => ok("application/xml", "this is not xml <<<"),
            Garbage::TruncatedXml => ok("application/xml", "<ListBucketResult><Contents><Key>a</Key><Si"),
            Garbage::WrongRoot => ok("application/xml", "<Something><IsTruncated>true</IsTruncated></Something>"),
            Garbage::TruncatedBody => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\nonly a little".to_vec()
            }
            Garbage::Teapot => b"HTTP/1.1 418 I'm a teapot\r\ncontent-length: 5\r\nconnection: close\r\n\r\nteapt".to_vec(),
            Garbage::Redirect => {
                b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
            }
            Garbage::ErrorInOk => ok(
                "application/xml",
                "<Error><Code>InternalError</Code><Message>inside a 200</Message><RequestId>r1</RequestId></Error>",
            ),
            Garbage::EmptyOk => ok("application/xml", ""),
            Garbage::HugeLength => b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n".to_vec(),
            Garbage::CloseImmediately => Vec::new(),
        }
    }
}

async fn hostile_server(mode: Garbage) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(200),
                    sock.read(&mut buf),
                )
                .await;
                let _ = sock.write_all(&mode.response()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_server_answers_become_typed_errors() {
    for mode in [
        Garbage::NotXml,
        Garbage::TruncatedXml,
        Garbage::WrongRoot,
        Garbage::TruncatedBody,
        Garbage::Teapot,
        Garbage::Redirect,
        Garbage::ErrorInOk,
        Garbage::EmptyOk,
        Garbage::HugeLength,
        Garbage::CloseImmediately,
    ] {
        let (endpoint, hits) = hostile_server(mode).await;
        let mut p = params("hostile");
        p.insert("regionendpoint".into(), endpoint);
        p.insert("maxretries".into(), "1".into());
        p.insert("requesttimeout".into(), "2".into());
        let d = Driver::new(p).await.unwrap();
        let results: Vec<(&str, Result<(), Error>)> = vec![
            ("list", d.list("/a").await.map(|_| ())),
            (
                "walk",
                d.walk("/a", None, |_| Ok(ks3_driver_host::WalkControl::Continue))
                    .await,
            ),
            ("delete", d.delete("/a").await),
            ("move", d.mv("/a", "/b").await),
            ("writer(append)", d.writer("/a", true).await.map(|_| ())),
            ("get", d.get_content("/a").await.map(|_| ())),
        ];
        for (op, r) in results {
            match r {
                Err(Error::Sandbox(m)) => panic!("{mode:?} {op}: the guest trapped: {m}"),
                Err(e) => assert!(e.to_string().starts_with("ks3"), "{mode:?} {op}: {e}"),
                Ok(()) => {
                    // Only a complete 200 to a plain GET is a valid answer: any bytes are an
                    // object's content.
                    let whole_200 = matches!(
                        mode,
                        Garbage::NotXml
                            | Garbage::TruncatedXml
                            | Garbage::WrongRoot
                            | Garbage::ErrorInOk
                            | Garbage::EmptyOk
                    );
                    assert!(op == "get" && whole_200, "{mode:?} {op} succeeded");
                }
            }
        }
        assert!(hits.load(Ordering::Relaxed) > 0);
    }
}
