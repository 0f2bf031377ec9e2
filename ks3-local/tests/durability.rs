//! `kill -9` of a `ks3-local` process in the middle of concurrent writes (PUTs, multipart
//! uploads), then a restart on the same data directory: every acknowledged object is there
//! and intact, and every visible object is a whole body some client sent — never a part.
//!
//! (A killed process keeps its page cache, so this checks atomic publication; the `fsync`
//! that makes acknowledgments survive a power loss cannot be checked without one.)
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

fn spawn_server(dir: &std::path::Path, secret_file: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ks3-local"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--bucket",
            BUCKET,
            "--access-key",
            AK,
        ])
        .arg("--data")
        .arg(dir)
        .arg("--secret-key-file")
        .arg(secret_file)
        .args(["--min-part-size", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

fn client(addr: SocketAddr) -> Client {
    Client {
        addr,
        ak: AK.into(),
        sk: SK.into(),
        bucket: BUCKET.into(),
        skew: 0,
        host: None,
        path_style: true,
    }
}

/// One request that may fail (the server is killed under it): `None` then.
async fn try_send(c: &Client, method: &str, key: &str, query: &str, body: Bytes) -> Option<Resp> {
    let req = c.build(method, key, query, &[], body);
    let stream = tokio::net::TcpStream::connect(c.addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.ok()?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// The body a key names: `.../<len>-<seed>` (multipart objects: two parts of it).
fn expected(key: &str) -> Vec<u8> {
    let name = key.rsplit('/').next().unwrap();
    let mut it = name.split('-');
    let len: usize = it.next().unwrap().parse().unwrap();
    let seed: u8 = it.next().unwrap().parse().unwrap();
    data(len, seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_during_concurrent_writes_loses_no_acknowledged_object() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let secret = dir.path().join("sk");
    std::fs::write(&secret, format!("{SK}\n")).unwrap();
    let (mut child, addr) = spawn_server(&data_dir, &secret);
    let c = client(addr);

    // Acknowledged keys, by writer.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..8u32 {
        let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let len = 1 + ((w as usize * 7919 + n as usize * 104_729) % 400_000);
                let seed = (w * 31 + n) as u8;
                let key = format!("w{w}/{n}/{len}-{seed}");
                let body = data(len, seed);
                let ok = if n.is_multiple_of(3) {
                    // Multipart: two parts, then Complete.
                    let Some(r) = try_send(&c, "POST", &key, "uploads", Bytes::new()).await else {
                        break;
                    };
                    let Some(id) = r.xml("UploadId") else { break };
                    let cut = len / 2;
                    let mut etags = Vec::new();
                    for (i, chunk) in [&body[..cut], &body[cut..]].into_iter().enumerate() {
                        let q = format!("partNumber={}&uploadId={id}", i + 1);
                        match try_send(&c, "PUT", &key, &q, Bytes::copy_from_slice(chunk)).await {
                            Some(r) if r.status == 200 => etags.push(r.header("etag").unwrap()),
                            _ => break,
                        }
                    }
                    if etags.len() != 2 {
                        break;
                    }
                    let mut xml = String::from("<CompleteMultipartUpload>");
                    for (i, e) in etags.iter().enumerate() {
                        xml.push_str(&format!(
                            "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                            i + 1
                        ));
                    }
                    xml.push_str("</CompleteMultipartUpload>");
                    let q = format!("uploadId={id}");
                    matches!(try_send(&c, "POST", &key, &q, xml.into()).await,
                             Some(r) if r.status == 200 && r.xml("ETag").is_some())
                } else {
                    matches!(try_send(&c, "PUT", &key, "", body.into()).await,
                             Some(r) if r.status == 200)
                };
                if !ok {
                    break;
                }
                acked.lock().unwrap().push(key);
            }
        }));
    }
    // Let writes pile up, then kill the server mid-flight.
    let t = Instant::now();
    while acked.lock().unwrap().len() < 60 && t.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 60,
        "only {} writes acknowledged",
        acked.len()
    );

    let (mut child, addr) = spawn_server(&data_dir, &secret);
    let c = client(addr);
    // Every acknowledged object is intact.
    for key in &acked {
        let r = c.get(key).await;
        assert_eq!(r.status, 200, "acknowledged {key} lost: {}", r.text());
        assert!(r.body == expected(key), "acknowledged {key} damaged");
    }
    // Every visible object is whole (the unacknowledged in-flight ones included).
    let mut visible = BTreeMap::new();
    let mut marker = String::new();
    loop {
        let q = if marker.is_empty() {
            "max-keys=1000".to_string()
        } else {
            format!(
                "max-keys=1000&marker={}",
                ks3_proto::encode::encode_component(&marker)
            )
        };
        let r = c.list(&q).await;
        r.ok();
        let keys = r.xml_all("Key");
        let sizes = r.xml_all("Size");
        for (k, s) in keys.iter().zip(&sizes) {
            visible.insert(k.clone(), s.parse::<usize>().unwrap());
        }
        if r.xml("IsTruncated").as_deref() != Some("true") || keys.is_empty() {
            break;
        }
        marker = keys.last().unwrap().clone();
    }
    assert!(visible.len() >= acked.len());
    for (key, size) in &visible {
        let want = expected(key);
        assert_eq!(*size, want.len(), "{key}: a partial object is listed");
        let r = c.get(key).await;
        assert!(r.body == want, "{key}: visible but not the body sent");
    }
    eprintln!(
        "{} writes acknowledged before the kill, {} objects visible after the restart",
        acked.len(),
        visible.len()
    );
    let _ = child.kill();
    let _ = child.wait();
    // A temp body left by the kill is not an object and is cleared at start.
    assert_eq!(
        std::fs::read_dir(data_dir.join(".tmp")).unwrap().count(),
        0,
        "temp files not cleared"
    );
}
