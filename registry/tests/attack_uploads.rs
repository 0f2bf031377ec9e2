//! The blob-upload attacks of issue 25, over real HTTP against registries on the real
//! component and ks3-local: racing `PATCH`es that tried to store one body under another's
//! digest (on one instance and across two), slow bodies holding every upload slot, one
//! client taking every slot, and a refused monolithic upload leaving its `startedat`.
mod common;

use std::time::{Duration, Instant};

use common::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A request whose body is sent but for its last byte, on its own connection.
struct HeldRequest {
    stream: TcpStream,
    last: u8,
}

impl HeldRequest {
    async fn start(host: &str, method: &str, path: &str, body: &[u8]) -> HeldRequest {
        HeldRequest::start_from(None, host, method, path, body).await
    }

    /// Connects from `source` (a loopback address) when given.
    async fn start_from(
        source: Option<&str>,
        host: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> HeldRequest {
        let addr: std::net::SocketAddr = host.parse().expect("host:port");
        let socket = TcpSocket::new_v4().expect("socket");
        if let Some(src) = source {
            socket
                .bind(format!("{src}:0").parse().expect("source"))
                .expect("bind source");
        }
        let mut stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let (rest, last) = body.split_at(body.len() - 1);
        stream.write_all(rest).await.expect("body");
        HeldRequest {
            stream,
            last: last[0],
        }
    }

    async fn release(&mut self) {
        self.stream
            .write_all(&[self.last])
            .await
            .expect("last byte");
    }

    /// The response's status (the head is all that is read).
    async fn status(mut self) -> u16 {
        read_status(&mut self.stream).await
    }
}

async fn read_status(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(120), stream.read(&mut chunk))
            .await
            .expect("an answer within 120 s")
            .expect("read");
        assert!(n > 0, "connection closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"))
}

async fn start_upload(base: &str, repo: &str) -> String {
    let r = request(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    r.header("location").expect("location").to_string()
}

/// What one race ended in.
#[derive(Debug, Default)]
struct Outcomes {
    refused: u32,
    stored_good: u32,
    poisoned: u32,
}

/// Two `PATCH`es of equal length on one upload (GOOD through `a`, EVIL through `b`), their
/// last bytes released a little apart in either order, then `PUT ?digest=sha256(GOOD)`
/// through `a`. Whatever the interleaving, the registry must either refuse the digest or
/// hold exactly GOOD under it; the blob is then read back through a fresh repository
/// that pushes the genuine GOOD, as the victim would.
async fn race_once(a: &Served, b: &Served, round: u32, size: usize) -> Outcomes {
    let repo = format!("race/r{round}");
    let good = bytes(size, 1000 + u64::from(round));
    let mut evil = bytes(size, 5000 + u64::from(round));
    evil[0] = good[0].wrapping_add(1);
    let d = sha256(&good);
    let location = start_upload(&a.base, &repo).await;
    let mut p_good = HeldRequest::start(&a.host, "PATCH", &location, &good).await;
    let mut p_evil = HeldRequest::start(&b.host, "PATCH", &location, &evil).await;
    // Both bodies are in flight; release their last bytes about a millisecond apart.
    let gap = Duration::from_micros(u64::from(round % 5) * 400);
    if round.is_multiple_of(2) {
        p_good.release().await;
        tokio::time::sleep(gap).await;
        p_evil.release().await;
    } else {
        p_evil.release().await;
        tokio::time::sleep(gap).await;
        p_good.release().await;
    }
    let (s1, s2) = tokio::join!(p_good.status(), p_evil.status());
    assert!(
        [202, 400, 404, 416, 500].contains(&s1) && [202, 400, 404, 416, 500].contains(&s2),
        "PATCH answers {s1}, {s2}"
    );
    let put = request(
        Method::PUT,
        &format!("{}{location}?digest={d}", a.base),
        &[],
        "",
    )
    .await;
    let mut out = Outcomes::default();
    if put.status != StatusCode::CREATED {
        assert!(
            put.status == StatusCode::BAD_REQUEST || put.status == StatusCode::NOT_FOUND,
            "PUT answered {}: {}",
            put.status,
            String::from_utf8_lossy(&put.body)
        );
        out.refused = 1;
        return out;
    }
    // The victim pushes the genuine GOOD to its own repository, then pulls it.
    let victim = format!("victim/r{round}");
    let pushed = push_blob(&a.base, &victim, &good).await;
    assert_eq!(pushed, d);
    let got = request(
        Method::GET,
        &format!("{}/v2/{victim}/blobs/{d}", a.base),
        &[],
        "",
    )
    .await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "redirects are off in these tests"
    );
    if got.body == good {
        out.stored_good = 1;
    } else {
        out.poisoned = 1;
    }
    out
}

async fn race(a: &Served, b: &Served, rounds: u32, size: usize) {
    let mut total = Outcomes::default();
    for round in 0..rounds {
        let o = race_once(a, b, round, size).await;
        total.refused += o.refused;
        total.stored_good += o.stored_good;
        total.poisoned += o.poisoned;
    }
    eprintln!("{rounds} races of {size}-byte bodies: {total:?}");
    assert_eq!(
        total.poisoned, 0,
        "a blob was stored under a digest its bytes do not have: {total:?}"
    );
}

const STREAMED: &str = "storage:\n  redirect:\n    disable: true\n";

/// Enough rounds to catch the 1-in-10 race the attack showed (4 of 40) with a chance of
/// missing it under 2 %.
const ROUNDS: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_patches_on_one_instance_never_poison_a_blob() {
    let ks3 = shared_ks3();
    let r = serve_shared(&ks3, STREAMED).await;
    race(&r, &r, ROUNDS, 64 * 1024).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_patches_across_two_instances_never_poison_a_blob() {
    let ks3 = shared_ks3();
    let a = serve_shared(&ks3, STREAMED).await;
    let b = serve_shared(&ks3, STREAMED).await;
    race(&a, &b, ROUNDS, 64 * 1024).await;
}

/// Bodies over the read-back size, in 5 MiB parts: the multipart path, where the saved
/// hash state is used only when the writer markers prove it is of the bytes stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_multipart_patches_across_two_instances_never_poison_a_blob() {
    let mut ks3 = shared_ks3();
    ks3.params
        .insert("chunksize".into(), (5u64 << 20).to_string());
    let a = serve_shared(&ks3, STREAMED).await;
    let b = serve_shared(&ks3, STREAMED).await;
    race(&a, &b, 12, 6 << 20).await;
}

/// The construction, without the luck of a race: the outcome the race produced before
/// the fix (EVIL's bytes stored, GOOD's hash state saved at the same offset, and — as
/// every data-writing request now leaves one — GOOD's writer marker beside EVIL's) is
/// written into an upload, and its `PUT ?digest=sha256(GOOD)` must be refused. A lone,
/// unraced chunked upload of the same size is still verified from its saved state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_state_of_other_bytes_is_never_trusted() {
    let mut ks3 = shared_ks3();
    ks3.params
        .insert("chunksize".into(), (5u64 << 20).to_string());
    let r = serve_shared(&ks3, STREAMED).await;
    let size = 6 << 20;
    let good = bytes(size, 7);
    let evil = bytes(size, 8);
    let d = sha256(&good);
    let driver = r.registry.driver();
    let upload_dir = |loc: &str| {
        let id = loc.rsplit('/').next().unwrap().to_string();
        format!("/docker/registry/v2/repositories/poison/_uploads/{id}")
    };

    // GOOD alone: its state and marker are what a racing GOOD request leaves.
    let good_loc = start_upload(&r.base, "poison").await;
    let p = request(
        Method::PATCH,
        &format!("{}{good_loc}", r.base),
        &[],
        good.clone(),
    )
    .await;
    assert_eq!(p.status, StatusCode::ACCEPTED);
    let good_dir = upload_dir(&good_loc);
    let state_path = |dir: &str| format!("{dir}/hashstates/sha256/{size}");
    let good_state = driver
        .get_content(&state_path(&good_dir))
        .await
        .expect("GOOD's state");
    let good_markers = driver
        .list(&format!("{good_dir}/writers"))
        .await
        .expect("GOOD's writer marker");
    assert_eq!(good_markers.len(), 1, "one marker per data-writing request");

    // EVIL's bytes in another upload, with GOOD's state and marker beside them.
    let evil_loc = start_upload(&r.base, "poison").await;
    let p = request(
        Method::PATCH,
        &format!("{}{evil_loc}", r.base),
        &[],
        evil.clone(),
    )
    .await;
    assert_eq!(p.status, StatusCode::ACCEPTED);
    let evil_dir = upload_dir(&evil_loc);
    driver
        .put_content(&state_path(&evil_dir), &good_state)
        .await
        .expect("plant the state");
    let good_marker = good_markers[0].rsplit('/').next().unwrap();
    driver
        .put_content(&format!("{evil_dir}/writers/{good_marker}"), b"")
        .await
        .expect("plant the marker");
    let before = r.registry.stats();
    let put = request(
        Method::PUT,
        &format!("{}{evil_loc}?digest={d}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::BAD_REQUEST,
        "EVIL's bytes were accepted under GOOD's digest: {}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(put.error_code(), "DIGEST_INVALID");
    let after = r.registry.stats();
    assert_eq!(after.digests_from_reread, before.digests_from_reread + 1);
    assert_eq!(
        after.digests_from_saved_state,
        before.digests_from_saved_state
    );
    assert!(
        driver
            .stat(&format!(
                "/docker/registry/v2/blobs/sha256/{}/{}/data",
                &d[7..9],
                &d[7..]
            ))
            .await
            .is_err(),
        "nothing was stored under GOOD's digest"
    );

    // GOOD's own upload, unraced, finishes from its saved state without a read-back.
    let put = request(
        Method::PUT,
        &format!("{}{good_loc}?digest={d}", r.base),
        &[],
        "",
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let done = r.registry.stats();
    assert_eq!(
        done.digests_from_saved_state,
        after.digests_from_saved_state + 1
    );
    assert_eq!(done.digests_from_reread, after.digests_from_reread);
    let got = request(
        Method::GET,
        &format!("{}/v2/poison/blobs/{d}", r.base),
        &[],
        "",
    )
    .await;
    assert!(got.body == good, "GOOD is stored under its digest");
    assert!(
        driver
            .list("/docker/registry/v2/repositories/poison/_uploads")
            .await
            .map(|l| l.is_empty())
            .unwrap_or(true),
        "no upload directory is left"
    );
}

/// Slow bodies (a byte every 2 s, under `minbodyrate`) are cut after the grace period
/// and give their slots back: before, 64 of them (one byte every 50 s) blocked every push
/// for as long as they liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_uploads_are_cut_and_free_their_slots() {
    let r = serve_yaml(
        "limits:\n  maxuploads: 3\n  maxuploadsperclient: 3\n  minbodyrate: 1024\n  bodytimeout: 60s\n",
    )
    .await;
    let mut tricklers = Vec::new();
    for i in 0..3 {
        let loc = start_upload(&r.base, "slow").await;
        let body = bytes(1 << 20, i);
        tricklers.push(tokio::spawn({
            let host = r.host.clone();
            async move {
                let addr: std::net::SocketAddr = host.parse().unwrap();
                let mut s = TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "PATCH {loc} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).await.unwrap();
                let started = Instant::now();
                for b in &body {
                    if s.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        status = read_status(&mut s) => return (status, started.elapsed()),
                    }
                }
                (read_status(&mut s).await, started.elapsed())
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let blocked = request(
        Method::POST,
        &format!("{}/v2/fast/blobs/uploads/?digest={}", r.base, sha256(b"x")),
        &[],
        "x",
    )
    .await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    for t in tricklers {
        let (status, took) = t.await.unwrap();
        assert_eq!(status, 408, "a trickling body is cut with 408");
        assert!(
            took < Duration::from_secs(30),
            "cut after the 10 s grace, not after the 60 s idle timeout ({took:?})"
        );
    }
    push_blob(&r.base, "fast", b"x").await;
}

/// One client address may hold only its share of the upload slots; another address still
/// gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_upload_slot() {
    let r = serve_yaml("limits:\n  maxuploads: 8\n  maxuploadsperclient: 2\n").await;
    let body = bytes(4096, 3);
    let mut held = Vec::new();
    for _ in 0..2 {
        let loc = start_upload(&r.base, "greedy").await;
        held.push(HeldRequest::start_from(Some("127.0.0.1"), &r.host, "PATCH", &loc, &body).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let loc = start_upload(&r.base, "greedy").await;
    let third = HeldRequest::start_from(Some("127.0.0.1"), &r.host, "PATCH", &loc, &body).await;
    assert_eq!(third.status().await, 429, "a third upload from one address");
    let loc = start_upload(&r.base, "other").await;
    let mut other = HeldRequest::start_from(Some("127.0.0.2"), &r.host, "PATCH", &loc, &body).await;
    other.release().await;
    assert_eq!(other.status().await, 202, "another address is not held up");
    for mut h in held {
        h.release().await;
        assert_eq!(h.status().await, 202);
    }
}

/// A monolithic `POST ?digest=` refused for want of a slot writes nothing: before, it left
/// an orphan `_uploads/<id>/startedat` for the purger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_monolithic_upload_leaves_nothing() {
    let r = serve_yaml("limits:\n  maxuploads: 1\n").await;
    let loc = start_upload(&r.base, "hold").await;
    let body = bytes(4096, 4);
    let holder = HeldRequest::start(&r.host, "PATCH", &loc, &body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = request(
        Method::POST,
        &format!("{}/v2/mono/blobs/uploads/?digest={}", r.base, sha256(b"m")),
        &[],
        "m",
    )
    .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let listed = r
        .registry
        .driver()
        .list("/docker/registry/v2/repositories/mono/_uploads")
        .await;
    assert!(
        matches!(&listed, Err(e) if e.is_not_found()),
        "no upload was started: {listed:?}"
    );
    drop(holder);
}

/// Every request the upload guard adds (the writer markers, their listing, the private
/// copy, the read-back) under each fault kind once — 500, SlowDown, a dropped connection,
/// a lost answer: the upload still completes with exactly its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guards_requests_survive_every_fault_kind() {
    let mut ks3 = shared_ks3();
    ks3.params
        .insert("chunksize".into(), (5u64 << 20).to_string());
    // A lost answer costs one request timeout before the retry.
    ks3.params.insert("requesttimeout".into(), "2".into());
    let r = serve_shared(&ks3, STREAMED).await;
    let kinds = ["500:InternalError", "503:SlowDown", "drop", "lost"];
    // Also the requests that run beside others: the fence's listing beside a small
    // read-back, the upload directory's batch delete beside a small blob's writes, the
    // blob's lookup beside a large upload's move aside.
    let small: &[(&str, &str)] = &[
        ("PUT", "/writers/"),
        ("GET", "/data"),
        ("GET", "_gc"),
        ("POST", "delete"),
    ];
    let large: &[(&str, &str)] = &[
        ("PUT", "/writers/"),
        ("GET", "writers"),
        ("PUT", "verify-"),
        ("HEAD", "/blobs/sha256/"),
        ("POST", "delete"),
    ];
    let mut round = 0u64;
    for (size, targets) in [(64 * 1024, small), (6 << 20, large)] {
        for (method, pattern) in targets {
            for kind in kinds {
                round += 1;
                let data = bytes(size, 9000 + round);
                let d = sha256(&data);
                let repo = format!("faults/r{round}");
                let loc = start_upload(&r.base, &repo).await;
                ks3.server.faults().inject(
                    ks3_local::FaultRule::parse(&format!("{method}:{pattern}:1:{kind}"))
                        .expect("fault rule"),
                );
                let patch = request(
                    Method::PATCH,
                    &format!("{}{loc}", r.base),
                    &[],
                    data.clone(),
                )
                .await;
                assert_eq!(
                    patch.status,
                    StatusCode::ACCEPTED,
                    "{method} {pattern} {kind}"
                );
                let put =
                    request(Method::PUT, &format!("{}{loc}?digest={d}", r.base), &[], "").await;
                assert_eq!(
                    put.status,
                    StatusCode::CREATED,
                    "{method} {pattern} {kind}: {}",
                    String::from_utf8_lossy(&put.body)
                );
                assert_eq!(
                    ks3.server.faults().remaining(),
                    0,
                    "{method} {pattern} {kind} was hit"
                );
                let got = request(
                    Method::GET,
                    &format!("{}/v2/{repo}/blobs/{d}", r.base),
                    &[],
                    "",
                )
                .await;
                assert!(got.body == data, "{method} {pattern} {kind}: the bytes");
            }
        }
    }
}
