//! Resuming an upload across processes: `put --no-commit` / `put --append`, and a `put`
//! killed mid-stream whose upload an in-process driver resumes.
mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ks3_driver_host::Driver;
use ks3_local::ServerConfig;
use sha2::{Digest, Sha256};

const CHUNK: usize = 5 * MIB;

fn cli(endpoint: &str, root: &str) -> Command {
    cli_for(endpoint, root)
}

fn put(endpoint: &str, root: &str, path: &str, body: &[u8], flags: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("part");
    std::fs::write(&file, body).unwrap();
    cli(endpoint, root)
        .args(["put", path])
        .arg(&file)
        .args(flags)
        .output()
        .unwrap()
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

#[test]
fn three_processes_build_one_object() {
    let endpoint = server().endpoint();
    let root = format!("/resume/{}", unique());
    // Sizes that cross part boundaries: 7 MiB (part 1 + 2 MiB), +6 MiB (ends at 13), +3.
    let parts = [data(7 * MIB, 1), data(6 * MIB + 5, 2), data(3 * MIB + 1, 3)];
    let o = put(&endpoint, &root, "/p", &parts[0], &["--no-commit"]);
    assert!(
        o.status.success(),
        "1: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(&endpoint, &root).args(["stat", "/p"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "not visible before the commit");
    let o = put(
        &endpoint,
        &root,
        "/p",
        &parts[1],
        &["--append", "--no-commit"],
    );
    assert!(
        o.status.success(),
        "2: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = put(&endpoint, &root, "/p", &parts[2], &["--append"]);
    assert!(
        o.status.success(),
        "3: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let whole: Vec<u8> = parts.concat();
    let o = cli(&endpoint, &root).args(["get", "/p"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout.len(), whole.len());
    assert!(sha(&o.stdout) == sha(&whole), "content differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_put_is_resumed_in_process() {
    // Its own server, so the part counter sees only this upload.
    let server = ks3_local::start_in_background(ServerConfig::memory(BUCKET, AK, SK)).unwrap();
    let endpoint = server.endpoint();
    let root = format!("/killed/{}", unique());
    let source = data(16 * MIB + 333, 11);
    let fed = 12 * MIB;

    let mut child = cli(&endpoint, &root)
        .args(["put", "/k"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let head = source[..fed].to_vec();
    // Keep stdin open (an EOF would commit): the feeder hands the pipe back.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&head);
        let _ = stdin.flush();
        stdin
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.requests_matching("PUT", "partNumber=2") < 1 {
        assert!(Instant::now() < deadline, "part 2 never reached the server");
        assert!(child.try_wait().unwrap().is_none(), "put exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let part 2 finish (on a loaded machine it may not: then the resume starts after
    // part 1, which the assertion below allows).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let stdin = feeder.join().unwrap();
    drop(stdin);

    let mut p = params_for(&endpoint, "killed");
    p.insert("rootdirectory".into(), root.clone());
    let driver = Driver::new(p).await.unwrap();
    let mut w = driver.writer("/k", true).await.unwrap();
    let size = w.size() as usize;
    assert!(
        size.is_multiple_of(CHUNK) && size <= fed && size >= CHUNK,
        "resumed at {size}"
    );
    w.write(&source[size..]).await.unwrap();
    w.commit().await.unwrap();
    let got = driver.get_content("/k").await.unwrap();
    assert_eq!(got.len(), source.len());
    assert!(sha(&got) == sha(&source), "content differs");
}
