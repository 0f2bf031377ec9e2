//! Malformed and truncated requests, concurrency, persistence, fault injection, admin
//! endpoint and the command line.
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use ks3_local::{FaultAction, FaultRule, ServerConfig};

fn signed_head(c: &Client, method: &str, key: &str, extra: &str) -> String {
    let req = c.build(method, key, "", &[], Bytes::new());
    let mut s = format!("{method} {} HTTP/1.1\r\n", req.uri());
    for (n, v) in req.headers() {
        if n == "content-length" {
            continue; // the caller supplies the framing in `extra`
        }
        s.push_str(&format!("{}: {}\r\n", n, v.to_str().unwrap()));
    }
    s.push_str(extra);
    s.push_str("\r\n");
    s
}

fn tmp_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join(".tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_body_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = ks3_local::start(ServerConfig::on_disk(dir.path(), BUCKET, AK, SK))
        .await
        .unwrap();
    let c = Client::new(&s);
    c.put("k", "old").await.ok();
    // Content-Length 1000, 500 bytes sent, then the client half-closes.
    let mut req = signed_head(&c, "PUT", "k", "content-length: 1000\r\n").into_bytes();
    req.extend_from_slice(&[b'x'; 500]);
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
        sock.write_all(&req).await.unwrap();
        sock.shutdown().await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut out)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    }
    // Same for a multipart part.
    let id = c.initiate("mp").await;
    let head = {
        let req = c.build(
            "PUT",
            "mp",
            &format!("partNumber=1&uploadId={id}"),
            &[],
            Bytes::new(),
        );
        let mut s = format!("PUT {} HTTP/1.1\r\n", req.uri());
        for (n, v) in req.headers() {
            s.push_str(&format!("{}: {}\r\n", n, v.to_str().unwrap()));
        }
        s + "content-length: 100\r\n\r\n0123456789"
    };
    raw(s.addr(), head.as_bytes(), 300).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.get("k").await.ok().body, "old");
    let r = c
        .req("GET", "mp", &format!("uploadId={id}"), &[], Bytes::new())
        .await;
    assert!(r.ok().xml_all("PartNumber").is_empty());
    assert_eq!(tmp_files(dir.path()), 0, "temp files are cleaned up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx() {
    let s = memory_server().await;
    let c = Client::new(&s);
    // Garbage request line.
    let out = raw(s.addr(), b"GARBAGE\r\n\r\n", 2000).await;
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    // Oversized headers.
    let big = format!(
        "GET /{BUCKET}/k HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let out = raw(s.addr(), big.as_bytes(), 2000).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 431") || text.is_empty(),
        "{text}"
    );
    // Chunked PUT without Content-Length.
    let head = signed_head(&c, "PUT", "chunked", "transfer-encoding: chunked\r\n");
    let req = format!("{head}5\r\nhello\r\n0\r\n\r\n");
    let out = raw(s.addr(), req.as_bytes(), 2000).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    assert!(text.contains("<Code>MissingContentLength</Code>"));
    c.get("chunked").await.expect(404, "NoSuchKey");
    // Non-numeric Content-Length is refused by the HTTP layer.
    let head = signed_head(&c, "PUT", "bad", "content-length: abc\r\n");
    let out = raw(s.addr(), head.as_bytes(), 2000).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
    // Over 5 GB declared: rejected from the headers, without waiting for the body.
    let head = signed_head(&c, "PUT", "huge", "content-length: 5000000001\r\n");
    let out = raw(s.addr(), head.as_bytes(), 2000).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("<Code>EntityTooLarge</Code>"), "{text}");
    // The server is still fine.
    c.put("after", "ok").await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dozens_of_concurrent_connections() {
    let s = memory_server().await;
    let c = Client::new(&s);
    // Every GET is delayed 300 ms: 48 in parallel must take far less than 48 × 300 ms.
    s.faults().inject(FaultRule {
        method: Some("GET".into()),
        path_pattern: "/conc/".into(),
        count: 48,
        action: FaultAction::Delay(Duration::from_millis(300)),
    });
    let mut tasks = Vec::new();
    for i in 0..48u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let body = data(50_000, i);
            c.put(&format!("conc/{i}"), body.clone()).await.ok();
            let g = c.get(&format!("conc/{i}")).await;
            assert_eq!(g.ok().body, body);
        }));
    }
    let t = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(s.faults().remaining(), 0);
    assert_eq!(s.requests_matching("GET", "/conc/"), 48);
    assert_eq!(s.requests_matching("PUT", "/conc/"), 48);
    assert_eq!(s.request_count(), 96);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = || ServerConfig {
        min_part_size: 10,
        ..ServerConfig::on_disk(dir.path(), BUCKET, AK, SK)
    };
    let (id, tag1) = {
        let s = ks3_local::start(cfg()).await.unwrap();
        let c = Client::new(&s);
        c.req(
            "PUT",
            "keep/me",
            "",
            &[
                ("content-type", "text/x"),
                ("x-kss-server-side-encryption", "AES256"),
            ],
            "persisted",
        )
        .await
        .ok();
        c.put("gone", "x").await.ok();
        c.delete("gone").await;
        let id = c.initiate("mp").await;
        let tag1 = c
            .upload_part("mp", &id, 1, "part-one-data")
            .await
            .header("etag")
            .unwrap();
        s.shutdown();
        (id, tag1)
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let s = ks3_local::start(cfg()).await.unwrap();
    let c = Client::new(&s);
    let g = c.get("keep/me").await;
    assert_eq!(g.ok().body, "persisted");
    assert_eq!(g.header("content-type").unwrap(), "text/x");
    assert_eq!(g.header("x-kss-server-side-encryption").unwrap(), "AES256");
    c.get("gone").await.expect(404, "NoSuchKey");
    assert_eq!(c.list("").await.xml_all("Key"), vec!["keep/me"]);
    let tag2 = c
        .upload_part("mp", &id, 2, "two")
        .await
        .header("etag")
        .unwrap();
    c.complete("mp", &id, &[(1, tag1), (2, tag2)]).await.ok();
    assert_eq!(c.get("mp").await.body, "part-one-datatwo");
    // A stray file in the store is ignored, not fatal.
    s.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(dir.path().join(BUCKET).join("obj").join("zz"), b"junk").ok();
    std::fs::create_dir_all(dir.path().join(BUCKET).join("obj").join("ab")).unwrap();
    std::fs::write(
        dir.path().join(BUCKET).join("obj").join("ab").join("junk"),
        b"junk",
    )
    .unwrap();
    let s = ks3_local::start(cfg()).await.unwrap();
    let c = Client::new(&s);
    assert_eq!(c.list("").await.xml_all("Key"), vec!["keep/me", "mp"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_errors_count_down_and_match() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("f/1", "v").await.ok();
    let f = s.faults();
    f.inject(FaultRule::parse("GET:/f/1:2:503:SlowDown").unwrap());
    f.inject(FaultRule {
        method: None,
        path_pattern: "uploads".into(),
        count: 1,
        action: FaultAction::Error {
            status: 500,
            code: "InternalError".into(),
        },
    });
    assert_eq!(f.remaining(), 3);
    c.head("f/1").await.ok(); // wrong method: not affected
    c.get("f/1").await.expect(503, "SlowDown");
    c.get("f/1").await.expect(503, "SlowDown");
    c.get("f/1").await.ok();
    c.req("POST", "f/2", "uploads", &[], Bytes::new())
        .await
        .expect(500, "InternalError");
    c.initiate("f/2").await;
    assert_eq!(f.remaining(), 0);
    // An error fault on a PUT stores nothing, and the body is drained (the client sees the 500).
    f.inject(FaultRule::parse("PUT::1:500:InternalError").unwrap());
    c.put("f/3", data(200_000, 1))
        .await
        .expect(500, "InternalError");
    c.get("f/3").await.expect(404, "NoSuchKey");
    f.inject(FaultRule::parse("*::5:500:InternalError").unwrap());
    f.clear();
    assert_eq!(f.remaining(), 0);
    c.get("f/1").await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_drop_mid_body() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let body = data(100_000, 3);
    c.put("d/1", body.clone()).await.ok();
    s.faults()
        .inject(FaultRule::parse("GET:/d/1:1:drop").unwrap());
    // Headers arrive, the body is cut.
    let stream = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(c.build("GET", "d/1", "", &[], Bytes::new()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "100000");
    assert!(
        resp.into_body().collect().await.is_err(),
        "body must be cut short"
    );
    assert_eq!(c.get("d/1").await.ok().body, body);

    // A PUT loses its connection after part of the body: nothing stored.
    s.faults()
        .inject(FaultRule::parse("PUT:/d/2:1:drop").unwrap());
    let stream = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = sender
        .send_request(c.build("PUT", "d/2", "", &[], Bytes::from(data(1_000_000, 4))))
        .await;
    assert!(r.is_err(), "{r:?}");
    c.get("d/2").await.expect(404, "NoSuchKey");

    // Without a response body (HEAD): the connection closes without an answer.
    s.faults().inject(FaultRule::parse("HEAD::1:drop").unwrap());
    let stream = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert!(sender
        .send_request(c.build("HEAD", "d/1", "", &[], Bytes::new()))
        .await
        .is_err());
    c.head("d/1").await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_lost_response_performs_the_request() {
    let s = memory_server().await;
    let c = Client::new(&s);
    s.faults()
        .inject(FaultRule::parse("PUT:/lost/1:1:lost").unwrap());
    let stream = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let body = data(300_000, 7);
    let r = sender
        .send_request(c.build("PUT", "lost/1", "", &[], Bytes::from(body.clone())))
        .await;
    assert!(r.is_err(), "the client must get no answer: {r:?}");
    // …but the object was stored.
    assert_eq!(c.get("lost/1").await.ok().body, body);
    assert_eq!(s.faults().remaining(), 0);
}

fn admin_request(
    s: &ks3_local::RunningServer,
    method: &str,
    path: &str,
    body: &str,
) -> impl std::future::Future<Output = Resp> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap();
    send(s.addr(), req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_is_off_by_default() {
    let s = memory_server().await;
    assert!(!s.admin_enabled());
    for (method, path, body) in [
        ("POST", "/_ks3local/faults", "GET::5:503:SlowDown\n"),
        ("GET", "/_ks3local/faults", ""),
        ("DELETE", "/_ks3local/faults", ""),
        ("GET", "/_ks3local/stats?method=GET&contains=prefix%3D", ""),
    ] {
        let r = admin_request(&s, method, path, body).await;
        // Not an admin answer: an ordinary unauthenticated request, refused.
        assert!(
            r.status.as_u16() == 403 || r.status.as_u16() == 400,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("requests"), "{}", r.text());
    }
    assert_eq!(s.faults().remaining(), 0, "no fault was injected over HTTP");
    let c = Client::new(&s);
    c.put("k", "v").await.ok();
    c.get("k").await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint() {
    let s = server_with(|c| c.admin = true).await;
    assert!(s.admin_enabled());
    let c = Client::new(&s);
    let admin = |method: &str, path: &str, body: &str| admin_request(&s, method, path, body);
    let r = admin(
        "POST",
        "/_ks3local/faults",
        "# comment\nGET:/admin/:1:503:SlowDown\n\nPUT::2:delay=10\n",
    )
    .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok 2\n"));
    assert_eq!(s.faults().remaining(), 3);
    let r = admin("GET", "/_ks3local/faults", "").await;
    assert_eq!(r.text(), "GET:/admin/:1:503:SlowDown\nPUT::2:delay=10\n");
    let r = admin("POST", "/_ks3local/faults", "GET:x:1:200:OK\n").await;
    assert_eq!(r.status, 400);
    assert_eq!(s.faults().remaining(), 3, "all or nothing");
    c.get("admin/x").await.expect(503, "SlowDown");
    assert_eq!(admin("DELETE", "/_ks3local/faults", "").await.status, 204);
    assert_eq!(s.faults().remaining(), 0);
    c.list("prefix=a").await;
    let r = admin("GET", "/_ks3local/stats?method=GET&contains=prefix%3D", "").await;
    assert_eq!(r.text(), "{\"requests\":2,\"matching\":1}\n");
    assert_eq!(admin("GET", "/_ks3local/nothing", "").await.status, 404);
    assert_eq!(s.request_count(), 2, "admin requests are not counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_keeps_no_query_values_and_no_unauthenticated_requests() {
    let s = server_with(|c| c.admin = true).await;
    let c = Client::new(&s);
    // A presigned GET: its signature must not be findable.
    c.put("p", "x").await.ok();
    let url = c.presign("GET", "p", now() + 300);
    let sig = url
        .split('&')
        .find_map(|kv| kv.split_once("Signature=").map(|(_, v)| v.to_string()))
        .expect("a signature");
    let r = send(
        s.addr(),
        http::Request::builder()
            .uri(url.as_str())
            .header("host", s.addr().to_string())
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A multipart upload: its id must not be findable, the part number and names are.
    let id = c.initiate("mp").await;
    c.upload_part("mp", &id, 2, "data").await.ok();
    // An unauthenticated request is counted, never logged.
    let r = admin_request(&s, "GET", "/registry-bucket/secret-path?uploads", "").await;
    assert_eq!(r.status, 403, "{}", r.text());

    let stats = |contains: &str| {
        let q = ks3_proto::encode::encode_component(contains);
        admin_request(&s, "GET", &format!("/_ks3local/stats?contains={q}"), "")
    };
    let matching = |t: String| -> u64 {
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        v["matching"].as_u64().unwrap()
    };
    assert_eq!(
        matching(stats(&sig).await.text()),
        0,
        "signature in the log"
    );
    assert_eq!(matching(stats("Signature=").await.text()), 1);
    assert_eq!(matching(stats(&id).await.text()), 0, "upload id in the log");
    assert_eq!(s.requests_matching("", &id), 0);
    assert_eq!(s.requests_matching("PUT", "partNumber=2&uploadId="), 1);
    assert_eq!(s.requests_matching("POST", "/mp?uploads"), 1);
    assert_eq!(s.requests_matching("", "secret-path"), 0, "unauthenticated");
    assert_eq!(s.request_count(), 5, "every request is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_is_bounded() {
    let s = server_with(|c| c.request_log_capacity = 10).await;
    let c = Client::new(&s);
    for i in 0..25 {
        c.head(&format!("bounded/{i:02}")).await;
    }
    assert_eq!(s.request_count(), 25);
    assert_eq!(
        s.requests_matching("HEAD", "/bounded/"),
        10,
        "the newest 10 remain"
    );
    assert_eq!(s.requests_matching("HEAD", "/bounded/14"), 0);
    assert_eq!(s.requests_matching("HEAD", "/bounded/15"), 1);
    // A long path is cut: an entry never grows with the request.
    let long = "L".repeat(60_000);
    c.head(&long).await;
    assert_eq!(s.requests_matching("HEAD", &"L".repeat(1000)), 1);
    assert_eq!(s.requests_matching("HEAD", &"L".repeat(1100)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = ks3_local::start(ServerConfig {
        body_timeout: Duration::from_millis(700),
        ..ServerConfig::on_disk(dir.path(), BUCKET, AK, SK)
    })
    .await
    .unwrap();
    let c = Client::new(&s);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for key in ["stall", "mp-stall"] {
        let mut head = if key == "stall" {
            signed_head(&c, "PUT", key, "content-length: 1000\r\n")
        } else {
            let id = c.initiate(key).await;
            let req = c.build(
                "PUT",
                key,
                &format!("partNumber=1&uploadId={id}"),
                &[],
                Bytes::new(),
            );
            let mut h = format!("PUT {} HTTP/1.1\r\n", req.uri());
            for (n, v) in req.headers() {
                if n != "content-length" {
                    h.push_str(&format!("{}: {}\r\n", n, v.to_str().unwrap()));
                }
            }
            h.push_str("content-length: 1000\r\n\r\n");
            h
        }
        .into_bytes();
        head.extend_from_slice(&[b'x'; 100]);
        let mut sock = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
        sock.write_all(&head).await.unwrap();
        // Keep the connection open without sending more.
        let t = Instant::now();
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "the server never gave up on the stalled body");
        let elapsed = t.elapsed();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
        assert!(text.contains("<Code>RequestTimeout</Code>"), "{text}");
        assert!(
            elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5),
            "{elapsed:?}"
        );
    }
    c.get("stall").await.expect(404, "NoSuchKey");
    assert_eq!(tmp_files(dir.path()), 0, "temp files left behind");
}

#[test]
fn background_server_from_sync_code() {
    let s = ks3_local::start_in_background(ServerConfig::memory(BUCKET, AK, SK)).unwrap();
    assert!(s.endpoint().starts_with("http://127.0.0.1:"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Client::new(&s);
        c.put("bg", "x").await.ok();
        assert_eq!(c.get("bg").await.body, "x");
    });
    let addr = s.addr();
    s.shutdown();
    // The port is released.
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    // Bad configuration is an error, not a panic.
    assert!(ks3_local::start_in_background(ServerConfig::memory("Bad_Bucket", AK, SK)).is_err());
}

#[test]
fn command_line() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_ks3-local");
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(exe)
        .args(["--addr", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .args(["--bucket", BUCKET, "--bucket", "second-bucket"])
        .args([
            "--access-key",
            "AK1",
            "--secret-key",
            "SK1",
            "--access-key",
            AK,
            "--secret-key",
            SK,
        ])
        .args(["--fault", "GET:/registry-bucket/:1:503:SlowDown"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"));
    let addr: std::net::SocketAddr = endpoint.parse().unwrap();
    assert_ne!(addr.port(), 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Client {
            addr,
            ak: AK.into(),
            sk: SK.into(),
            bucket: BUCKET.into(),
            skew: 0,
            host: None,
            path_style: true,
        };
        c.get("k").await.expect(503, "SlowDown");
        c.get("k").await.expect(404, "NoSuchKey");
        let c1 = Client {
            ak: "AK1".into(),
            sk: "SK1".into(),
            bucket: "second-bucket".into(),
            ..c.clone()
        };
        c1.put("k", "v").await.ok();
    });
    stop_child(&mut child);
    assert!(dir.path().join("second-bucket").is_dir());

    // Usage errors exit non-zero without serving.
    for args in [
        vec!["--memory", "--access-key", "a"],
        vec!["--access-key", "a", "--secret-key", "b"],
        vec![
            "--memory",
            "--data",
            "/tmp/x",
            "--access-key",
            "a",
            "--secret-key",
            "b",
        ],
        vec![
            "--memory",
            "--access-key",
            "a",
            "--secret-key",
            "b",
            "--fault",
            "nope",
        ],
        vec![
            "--memory",
            "--bucket",
            "Bad_Name",
            "--access-key",
            "a",
            "--secret-key",
            "b",
            "--addr",
            "127.0.0.1:0",
        ],
    ] {
        let out = Command::new(exe).args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening on"),
            "{args:?}"
        );
    }
}

fn stop_child(child: &mut std::process::Child) {
    // SIGTERM would be nicer, but Child only offers SIGKILL without libc; that is fine here.
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_hurts_the_server() {
    let s = memory_server().await;
    let c = Client::new(&s);
    let long_path = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a/".repeat(40_000));
    let probes: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /%zz%00 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET /registry-bucket/%FF%FE HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET /registry-bucket/k?%ZZ=1 HTTP/1.1\r\nhost: x\r\nauthorization: KSS a:b\r\ndate: x\r\n\r\n".to_vec(),
        b"PUT /registry-bucket/k HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello".to_vec(),
        b"PUT /registry-bucket/k HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST /registry-bucket/?delete HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999999\r\n\r\n".to_vec(),
        b"GET http://registry-bucket.example/k HTTP/1.1\r\nhost: registry-bucket.example\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET /registry-bucket/k HTTP/1.1\r\nhost: [::1\r\nrange: bytes=99999999999999999999999-\r\n\r\n".to_vec(),
        long_path.into_bytes(),
        vec![b'A'; 200_000],
    ];
    let tasks: Vec<_> = probes
        .into_iter()
        .map(|p| {
            let addr = s.addr();
            tokio::spawn(async move { (raw(addr, &p, 1000).await, p) })
        })
        .collect();
    for t in tasks {
        let (out, p) = t.await.unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 4") || text.starts_with("HTTP/1.1 5"),
            "{:?} → {text}",
            String::from_utf8_lossy(&p[..p.len().min(80)])
        );
        assert!(!text.contains("HTTP/1.1 500"), "{text}");
    }
    c.put("still", "alive").await.ok();
    assert_eq!(c.get("still").await.body, "alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_store_streams_large_objects_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let s = ks3_local::start(ServerConfig {
        min_part_size: 1024 * 1024,
        ..ServerConfig::on_disk(dir.path(), BUCKET, AK, SK)
    })
    .await
    .unwrap();
    let c = Client::new(&s);
    let body = data(3 * 1024 * 1024 + 17, 7);
    let r = c.put("big", body.clone()).await;
    assert_eq!(
        r.ok().header("etag").unwrap(),
        ks3_proto::digest::etag(&ks3_proto::digest::md5(&body))
    );
    assert_eq!(c.get("big").await.body, body);
    for (a, b) in [
        (0usize, 0usize),
        (262_143, 262_145),
        (1_000_000, 2_999_999),
        (body.len() - 1, body.len() - 1),
    ] {
        let range = format!("bytes={a}-{b}");
        let r = c
            .req("GET", "big", "", &[("range", range.as_str())], Bytes::new())
            .await;
        assert_eq!(r.status, 206);
        assert_eq!(r.body, body[a..=b], "{range}");
    }
    // Multipart on disk, then a copy of the result.
    let id = c.initiate("mp").await;
    let t1 = c
        .upload_part("mp", &id, 1, body[..2 * 1024 * 1024].to_vec())
        .await
        .header("etag")
        .unwrap();
    let t2 = c
        .upload_part("mp", &id, 2, body[2 * 1024 * 1024..].to_vec())
        .await
        .header("etag")
        .unwrap();
    let r = c.complete("mp", &id, &[(1, t1), (2, t2)]).await;
    assert_eq!(
        r.ok().xml("ChecksumCRC64ECMA").unwrap(),
        ks3_proto::Crc64::checksum(&body).to_string()
    );
    c.req(
        "PUT",
        "mp-copy",
        "",
        &[("x-kss-copy-source", "/registry-bucket/mp")],
        Bytes::new(),
    )
    .await
    .ok();
    let g = c.get("mp-copy").await;
    assert_eq!(g.body, body);
    assert!(g.header("etag").unwrap().ends_with("-2\""));
    assert_eq!(tmp_files(dir.path()), 0);
    assert!(
        !dir.path().join(BUCKET).join("mpu").join(&id).exists(),
        "completed upload removed"
    );
}

/// A signed request as wire bytes (query included), with `body`.
fn wire(
    c: &Client,
    method: &str,
    key: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let req = c.build(method, key, query, headers, Bytes::copy_from_slice(body));
    let mut s = format!("{method} {} HTTP/1.1\r\n", req.uri());
    for (n, v) in req.headers() {
        if n == "content-length" {
            continue;
        }
        s.push_str(&format!("{}: {}\r\n", n, v.to_str().unwrap()));
    }
    let declared = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or_else(|| body.len().to_string(), |(_, v)| v.to_string());
    s.push_str(&format!("content-length: {declared}\r\n"));
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Numbers at and past every limit — offsets of u64::MAX, part numbers 0, 10001 and
/// beyond u64, max-keys huge and negative, copy ranges past the source — are answered with
/// a clean 4xx (or the range rules of HTTP) on one kept-alive connection: no panic, no
/// dropped connection, and the last request is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_numbers_get_clean_answers_on_one_connection() {
    let s = memory_server().await;
    let c = Client::new(&s);
    c.put("n", "0123456789").await.ok();
    let id = c.initiate("m").await;
    let max = u64::MAX.to_string();
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            wire(
                &c,
                "GET",
                "n",
                "",
                &[("range", &format!("bytes={max}-"))],
                b"",
            ),
            "416",
            "InvalidRange",
        ),
        (
            wire(
                &c,
                "GET",
                "n",
                "",
                &[("range", &format!("bytes=0-{max}"))],
                b"",
            ),
            "206",
            "0123456789",
        ),
        (
            wire(
                &c,
                "GET",
                "n",
                "",
                &[("range", &format!("bytes=-{max}"))],
                b"",
            ),
            "206",
            "0123456789",
        ),
        (
            wire(
                &c,
                "GET",
                "n",
                "",
                &[("range", "bytes=99999999999999999999-")],
                b"",
            ),
            "200",
            "0123456789",
        ),
        (
            wire(
                &c,
                "GET",
                "n",
                "",
                &[("range", &format!("bytes={max}-{max}"))],
                b"",
            ),
            "416",
            "InvalidRange",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber=0&uploadId={id}"),
                &[],
                b"x",
            ),
            "400",
            "InvalidPartNum",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber=10001&uploadId={id}"),
                &[],
                b"x",
            ),
            "400",
            "InvalidPartNum",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber=-1&uploadId={id}"),
                &[],
                b"x",
            ),
            "400",
            "InvalidPartNum",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber=99999999999999999999999&uploadId={id}"),
                &[],
                b"x",
            ),
            "400",
            "InvalidArgument",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber={max}&uploadId={id}"),
                &[],
                b"x",
            ),
            "400",
            "InvalidArgument",
        ),
        (
            wire(&c, "GET", "", "max-keys=99999999999999999999", &[], b""),
            "400",
            "InvalidArgument",
        ),
        (
            wire(&c, "GET", "", &format!("max-keys={max}"), &[], b""),
            "400",
            "InvalidArgument",
        ),
        (
            wire(&c, "GET", "", "max-keys=-5", &[], b""),
            "400",
            "InvalidArgument",
        ),
        (
            wire(&c, "GET", "", "list-type=2&max-keys=0", &[], b""),
            "400",
            "InvalidArgument",
        ),
        (
            wire(
                &c,
                "GET",
                "m",
                &format!("uploadId={id}&max-parts={max}"),
                &[],
                b"",
            ),
            "400",
            "InvalidArgument",
        ),
        (
            wire(
                &c,
                "GET",
                "m",
                &format!("uploadId={id}&part-number-marker=-1"),
                &[],
                b"",
            ),
            "400",
            "InvalidArgument",
        ),
        (
            wire(
                &c,
                "GET",
                "m",
                &format!("uploadId={id}&part-number-marker={max}"),
                &[],
                b"",
            ),
            "400",
            "InvalidArgument",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber=1&uploadId={id}"),
                &[
                    ("x-kss-copy-source", &format!("/{BUCKET}/n")),
                    ("x-kss-copy-source-range", &format!("bytes=0-{max}")),
                ],
                b"",
            ),
            "400",
            "InvalidArgument",
        ),
        (
            wire(
                &c,
                "PUT",
                "m",
                &format!("partNumber=1&uploadId={id}"),
                &[
                    ("x-kss-copy-source", &format!("/{BUCKET}/n")),
                    ("x-kss-copy-source-range", &format!("bytes={max}-{max}")),
                ],
                b"",
            ),
            "400",
            "InvalidArgument",
        ),
        (wire(&c, "GET", "n", "", &[], b""), "200", "0123456789"),
    ];
    let mut bytes = Vec::new();
    for (w, _, _) in &cases {
        bytes.extend_from_slice(w);
    }
    let out = raw(s.addr(), &bytes, 5_000).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let starts: Vec<usize> = text.match_indices("HTTP/1.1 ").map(|(i, _)| i).collect();
    assert_eq!(
        starts.len(),
        cases.len(),
        "every request answered on one connection:\n{text}"
    );
    for (k, (_, status, contains)) in cases.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(text.len());
        let answer = &text[starts[k]..end];
        assert_eq!(&answer[9..12], *status, "case {k}:\n{answer}");
        assert!(
            answer.contains(contains),
            "case {k}: no {contains:?}:\n{answer}"
        );
    }

    // A Content-Length of u64::MAX (hyper's reserved value) and one of 2^60: refused
    // before any byte is read, and the server still serves others.
    for (len, status, code) in [
        // hyper itself refuses the value it reserves, before ks3-local sees the request.
        (u64::MAX, "431", "connection: close"),
        (1 << 60, "400", "EntityTooLarge"),
    ] {
        let out = raw(
            s.addr(),
            &wire(
                &c,
                "PUT",
                "big",
                "",
                &[("content-length", &len.to_string())],
                b"",
            ),
            5_000,
        )
        .await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{len}: {text}"
        );
        assert!(text.contains(code), "{len}: {text}");
    }
    c.get("n").await.ok();
}

/// `--latency`: every answer leaves that much later, each request on its own (so requests
/// in flight together overlap, as on a real network); the admin endpoint is not delayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_every_answer_independently() {
    let latency = Duration::from_millis(300);
    let s = server_with(|c| {
        c.admin = true;
        c.latency = latency;
    })
    .await;
    let c = Client::new(&s);
    let t = Instant::now();
    c.put("far", "x").await.ok();
    let one = t.elapsed();
    assert!(one >= latency, "one request took {one:?}");
    // Eight at once take about one latency, not eight.
    let t = Instant::now();
    let mut gets = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = c.clone();
        gets.spawn(async move { c.get("far").await });
    }
    while let Some(r) = gets.join_next().await {
        assert_eq!(r.unwrap().ok().body, "x");
    }
    let eight = t.elapsed();
    assert!(
        eight >= latency && eight < latency * 3,
        "eight concurrent requests took {eight:?}"
    );
    let t = Instant::now();
    let r = admin_request(&s, "GET", "/_ks3local/stats", "").await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < latency, "the admin endpoint answers at once");
}
