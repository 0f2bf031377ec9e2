//! `ks3-driver registry`: the first stdout line, the embedded default, and a blob pushed
//! through its HTTP API landing in distribution's layout in the configured bucket.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::*;
use ks3_driver_host::Driver;
use sha2::{Digest, Sha256};

/// Starts the registry and returns it with its `HOST:PORT`, from the first stdout line.
fn start(c: Command) -> (Child, String) {
    start_registry(c, Stdio::piped())
}

/// One HTTP/1.1 request; the status and the body.
fn http(addr: &str, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_request(
        addr,
        method,
        target,
        &["Content-Type: application/octet-stream"],
        body,
    )
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    err
}

#[test]
fn with_no_configuration_it_runs_on_an_embedded_server() {
    let (child, addr) = start(bare_cli());
    let (status, _) = http(&addr, "GET", "/v2/", b"");
    let err = stop(child);
    assert_eq!(status, 200);
    assert!(
        err.to_lowercase().contains("embedded"),
        "stderr says so: {err}"
    );
}

#[test]
fn verbose_logs_each_request_without_its_query() {
    let mut c = bare_cli();
    c.arg("-v");
    let (child, addr) = start(c);
    let (ok, _) = http(&addr, "GET", "/v2/", b"");
    let (missing, _) = http(
        &addr,
        "GET",
        "/v2/app/blobs/uploads/0b1c5a7e-3f0e-4c64-9d2c-1d8e5f9a0b11?_state=secret-token",
        b"",
    );
    let err = stop(child);
    assert_eq!((ok, missing), (200, 404));
    let line = |path: &str, status: u16| {
        err.lines().any(|l| {
            l.contains("method=GET")
                && l.contains(&format!("path={path}"))
                && l.contains(&format!("status={status}"))
        })
    };
    assert!(line("/v2/", 200), "no request line for GET /v2/ in:\n{err}");
    assert!(
        line(
            "/v2/app/blobs/uploads/0b1c5a7e-3f0e-4c64-9d2c-1d8e5f9a0b11",
            404
        ),
        "no request line for the upload in:\n{err}"
    );
    assert!(
        !err.contains("secret-token"),
        "the query was logged:\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_blob_lands_in_distributions_layout() {
    let endpoint = server().endpoint();
    let root = format!("/registry-cli/{}", unique());
    let (child, addr) = start(cli_for(&endpoint, &root));
    let blob = data(3 * MIB + 17, 5);
    let hex: String = Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (status, body) = http(
        &addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest=sha256:{hex}"),
        &blob,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (status, _) = http(&addr, "HEAD", &format!("/v2/app/blobs/sha256:{hex}"), b"");
    stop(child);
    assert_eq!(status, 200);

    let mut p = params("registry-cli");
    p.insert("rootdirectory".into(), root);
    let d = Driver::new(p).await.unwrap();
    let stored = d
        .get_content(&format!(
            "/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
        .await
        .unwrap();
    assert!(
        stored == blob,
        "the blob's bytes are in distribution's place"
    );
    let link = d
        .get_content(&format!(
            "/docker/registry/v2/repositories/app/_layers/sha256/{hex}/link"
        ))
        .await
        .unwrap();
    assert_eq!(link, format!("sha256:{hex}").as_bytes());
}

/// A PATCH whose body arrives in two halves `gap` apart, on its own thread; the status.
fn slow_patch(
    addr: String,
    location: String,
    gap: std::time::Duration,
) -> std::thread::JoinHandle<u16> {
    std::thread::spawn(move || {
        let body = vec![7u8; 64 * 1024];
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "PATCH {location} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body[..body.len() / 2]).unwrap();
        std::thread::sleep(gap);
        // A cut connection shows as a failed write or an empty answer.
        if s.write_all(&body[body.len() / 2..]).is_err() {
            return 0;
        }
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw)
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    })
}

fn upload_location(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v2/drain/blobs/uploads/ HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw.lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap_or_else(|| panic!("no Location in {raw}"))
        .trim()
        .to_string()
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// `http.draintimeout`: on SIGTERM the listener closes at once, a request in flight
/// finishes, and the process exits 0; one that outlasts the timeout is cut, exit 1 (as
/// distribution 2.8.2).
#[test]
fn sigterm_drains_requests_in_flight_for_the_drain_timeout() {
    let dir = tempfile::tempdir().unwrap();
    for (timeout, gap, finishes) in [("5s", 1500u64, true), ("1s", 4000, false)] {
        let config = dir.path().join(format!("drain-{timeout}.yml"));
        std::fs::write(&config, format!("http:\n  draintimeout: {timeout}\n")).unwrap();
        let mut c = bare_cli();
        c.arg("-c").arg(&config);
        let (mut child, addr) = start(c);
        let location = upload_location(&addr);
        let slow = slow_patch(
            addr.clone(),
            location,
            std::time::Duration::from_millis(gap),
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        let t = std::time::Instant::now();
        sigterm(&child);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            TcpStream::connect(&addr).is_err(),
            "new connections are refused at once"
        );
        let status = child.wait().unwrap();
        let took = t.elapsed();
        let answered = slow.join().unwrap();
        if finishes {
            assert!(status.success(), "exit {status:?}");
            assert_eq!(answered, 202, "the request in flight finished");
        } else {
            assert_eq!(status.code(), Some(1), "a cut request: exit 1");
            assert_ne!(answered, 202, "the request was cut");
            assert!(
                took < std::time::Duration::from_secs(3),
                "stopped at the timeout ({took:?})"
            );
        }
    }
}

/// A distribution config whose storage section has no driver (only `delete`) runs on the
/// embedded store, with deletes on (it was refused: "the storage section has no ks3
/// driver").
#[test]
fn a_config_without_a_driver_runs_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "version: 0.1\nstorage:\n  delete:\n    enabled: true\n",
    )
    .unwrap();
    let mut c = bare_cli();
    c.arg("-c").arg(&config);
    let (child, addr) = start(c);
    let (status, _) = http(&addr, "GET", "/v2/", b"");
    let digest = format!("sha256:{:x}", Sha256::digest(b"x"));
    let (pushed, _) = http(
        &addr,
        "POST",
        &format!("/v2/del/blobs/uploads/?digest={digest}"),
        b"x",
    );
    let (deleted, _) = http(&addr, "DELETE", &format!("/v2/del/blobs/{digest}"), b"");
    let err = stop(child);
    assert_eq!((status, pushed, deleted), (200, 201, 202), "{err}");
    assert!(err.to_lowercase().contains("embedded"), "{err}");
}

/// `log.formatter: json` with `log.level: info`: every stderr line is one JSON object,
/// the request's line carries its method, path (no query), status and the operator's
/// `log.fields`.
#[test]
fn json_logs_one_object_per_line_with_the_operators_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "log:\n  level: info\n  formatter: json\n  fields:\n    service: registry\n",
    )
    .unwrap();
    let mut c = bare_cli();
    c.arg("-c").arg(&config);
    let (child, addr) = start(c);
    let (status, _) = http(&addr, "GET", "/v2/_catalog?n=5&last=secret-query", b"");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let err = stop(child);
    assert_eq!(status, 200);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["service"] == "registry"), "{err}");
    assert!(
        lines
            .iter()
            .any(|l| l["msg"].as_str().is_some_and(|m| m.contains("embedded"))),
        "the embedded store's notice is a JSON line too: {err}"
    );
    let request = lines
        .iter()
        .find(|l| l["target"] == "ks3_registry::request" && l["path"] == "/v2/_catalog")
        .unwrap_or_else(|| panic!("no request line: {err}"));
    assert_eq!(request["method"], "GET");
    assert_eq!(request["status"], 200);
    assert!(!err.contains("secret-query"), "no query string in the log");
}
