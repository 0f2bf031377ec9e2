//! Tier 3: the local server's fault injection against every kind of request. Each
//! operation is retried to success, or fails with a clear error and leaves nothing
//! partially visible. Fault rules match on the test's own root directory so tests running
//! in parallel on the shared server do not take each other's faults.
use std::time::Duration;

use ks3_driver_host::{Driver, DriverError, Error, IoKind};
use ks3_local::{FaultAction, FaultRule};
use ks3_tests::*;

fn rule(method: &str, pattern: &str, count: u32, action: FaultAction) -> FaultRule {
    FaultRule {
        method: Some(method.to_string()),
        path_pattern: pattern.to_string(),
        count,
        action,
    }
}

fn err500() -> FaultAction {
    FaultAction::Error {
        status: 500,
        code: "InternalError".into(),
    }
}

fn slow_down() -> FaultAction {
    FaultAction::Error {
        status: 503,
        code: "SlowDown".into(),
    }
}

/// A driver and the URL-path fragment that identifies its requests.
async fn driver_and_tag(test: &str, extra: &[(&str, &str)]) -> (Driver, String) {
    let root = unique_root(test);
    let mut p = params(&root);
    for (k, v) in extra {
        p.insert((*k).into(), (*v).into());
    }
    (
        Driver::new(p).await.unwrap(),
        root.trim_start_matches('/').to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_survive_500_and_slowdown() {
    let (d, tag) = driver_and_tag("faults_put_get", &[]).await;
    let faults = server().faults();
    let data = random_contents(100_000);
    faults.inject(rule("PUT", &tag, 2, err500()));
    d.put_content("/a/b", &data)
        .await
        .expect("PUT retried past two 500s");
    faults.inject(rule("GET", &tag, 3, slow_down()));
    assert_eq!(
        d.get_content("/a/b")
            .await
            .expect("GET retried past SlowDown"),
        data
    );
    faults.inject(rule("HEAD", &tag, 2, slow_down()));
    assert_eq!(d.stat("/a/b").await.unwrap().size, data.len() as u64);
    // Listing requests carry the root in the (encoded) prefix parameter.
    faults.inject(rule("GET", &tag.replace('/', "%2F"), 2, err500()));
    assert_eq!(d.list("/a").await.unwrap(), vec!["/a/b".to_string()]);
    // Two keys under /a: one multi-object delete, its 500 retried.
    d.put_content("/a/c", b"c").await.unwrap();
    faults.inject(rule("POST", "?delete", 1, err500()));
    d.delete("/a").await.unwrap();
    // A lone file goes by its own DELETE, its SlowDown retried.
    d.put_content("/f", b"f").await.unwrap();
    faults.inject(rule("DELETE", &tag, 1, slow_down()));
    d.delete("/f").await.unwrap();
    let left: Vec<_> = faults
        .rules()
        .into_iter()
        .filter(|r| r.path_pattern == "?delete" || r.path_pattern == tag)
        .collect();
    assert!(left.is_empty(), "faults not hit: {left:?}");
    assert_clean(&d).await;
}

/// How a test's reader gets its bytes out of the sandbox.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The body's stream handed to the host, read with `read` (frames joined).
    Handed,
    /// The same, read with `read_bytes` (the HTTP client's own buffers).
    HandedBytes,
    /// Every byte copied out through `file-reader.read`.
    ThroughGuest,
}

const EVERY_VIA: [Via; 3] = [Via::Handed, Via::HandedBytes, Via::ThroughGuest];

/// A reader at `offset` that hands out its bytes `via`.
struct TestReader {
    r: ks3_driver_host::FileReader,
    via: Via,
}

impl TestReader {
    async fn open(
        d: &Driver,
        path: &str,
        offset: i64,
        via: Via,
    ) -> Result<Self, ks3_driver_host::Error> {
        let r = match via {
            Via::ThroughGuest => d.reader_through_guest(path, offset).await?,
            Via::Handed | Via::HandedBytes => d.reader(path, offset).await?,
        };
        Ok(TestReader { r, via })
    }

    /// The next piece (at most `max` bytes); empty at the end.
    async fn read(&mut self, max: usize) -> Result<Vec<u8>, ks3_driver_host::Error> {
        match self.via {
            Via::HandedBytes => self.r.read_bytes(max).await.map(|b| b.to_vec()),
            Via::Handed | Via::ThroughGuest => self.r.read(max).await,
        }
    }

    async fn read_to_end(mut self) -> Result<Vec<u8>, ks3_driver_host::Error> {
        let mut out = Vec::new();
        loop {
            let piece = self.read(4 * MIB).await?;
            if piece.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&piece);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_survives_dropped_connections() {
    let (d, tag) = driver_and_tag("faults_reader", &[]).await;
    let data = &random_bytes()[..24 * MIB];
    let mut w = d.writer("/big", false).await.unwrap();
    w.write(data).await.unwrap();
    w.commit().await.unwrap();
    // Both ways out of the sandbox: the body's stream handed to the host (the default),
    // and every byte copied out through `file-reader.read`. Either way the guest resumes
    // and, for a whole-object read, checks the CRC-64 over the pieces.
    for via in EVERY_VIA {
        server()
            .faults()
            .inject(rule("GET", &tag, 2, FaultAction::DropMidBody));
        let got = TestReader::open(&d, "/big", 0, via)
            .await
            .unwrap()
            .read_to_end()
            .await
            .expect("reader resumes after drops");
        assert_eq!(sha256_hex(&got), sha256_hex(data), "{via:?}");
        server()
            .faults()
            .inject(rule("GET", &tag, 1, FaultAction::DropMidBody));
        let got = TestReader::open(&d, "/big", 1234, via)
            .await
            .unwrap()
            .read_to_end()
            .await
            .unwrap();
        assert!(got == data[1234..], "{via:?}");
    }
    d.delete("/big").await.unwrap();
    assert_clean(&d).await;
}

/// Every fault kind on the GETs a reader sends (the open, and each resume), for both ways
/// the bytes leave the sandbox: 500, SlowDown, an answer lost after the server sent it,
/// a body cut mid-way; the bytes read must be the object's, from 0 and from an offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_survives_every_fault_on_its_gets() {
    let (d, tag) = driver_and_tag("faults_reader_gets", &[]).await;
    let data = &random_bytes()[..3 * MIB];
    d.put_content("/r", data).await.unwrap();
    for via in EVERY_VIA {
        for action in [
            err500(),
            slow_down(),
            FaultAction::LoseResponse,
            FaultAction::DropMidBody,
        ] {
            for offset in [0usize, 777] {
                server()
                    .faults()
                    .inject(rule("GET", &format!("{tag}/r"), 2, action.clone()));
                let got = TestReader::open(&d, "/r", offset as i64, via)
                    .await
                    .unwrap_or_else(|e| panic!("{action:?} ({via:?}): {e}"))
                    .read_to_end()
                    .await
                    .unwrap_or_else(|e| panic!("{action:?} ({via:?}): {e}"));
                assert!(
                    got == data[offset..],
                    "{action:?} from {offset} ({via:?}): wrong bytes"
                );
                assert!(
                    !server()
                        .faults()
                        .rules()
                        .iter()
                        .any(|r| r.path_pattern.contains(&tag)),
                    "{action:?}: both faults were met"
                );
            }
        }
    }
    d.delete("/r").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_parts_retried() {
    let (d, tag) = driver_and_tag("faults_writer", &[]).await;
    let data = &random_bytes()[..23 * MIB];
    let faults = server().faults();
    faults.inject(rule(
        "PUT",
        &format!("{tag}/up/data?partNumber=2"),
        1,
        err500(),
    ));
    faults.inject(rule(
        "PUT",
        &format!("{tag}/up/data?partNumber=3"),
        1,
        FaultAction::DropMidBody,
    ));
    faults.inject(rule(
        "POST",
        &format!("{tag}/up/data?uploadId"),
        1,
        slow_down(),
    ));
    let mut w = d.writer("/up/data", false).await.unwrap();
    w.write(data).await.expect("parts retried");
    w.commit().await.expect("complete retried");
    assert_eq!(
        sha256_hex(&d.get_content("/up/data").await.unwrap()),
        sha256_hex(data)
    );
    d.delete("/up").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_response_times_out_and_is_retried() {
    let (d, tag) = driver_and_tag("faults_slow", &[("requesttimeout", "1")]).await;
    d.put_content("/slow", b"data").await.unwrap();
    server().faults().inject(rule(
        "GET",
        &tag,
        1,
        FaultAction::Delay(Duration::from_secs(3)),
    ));
    let started = std::time::Instant::now();
    assert_eq!(
        d.get_content("/slow")
            .await
            .expect("retried after the timeout"),
        b"data"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the slow response was abandoned, not awaited"
    );
    d.delete("/slow").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failure_is_a_clear_error_and_nothing_is_visible() {
    let (d, tag) = driver_and_tag("faults_persistent", &[("maxretries", "2")]).await;
    let faults = server().faults();
    // maxretries=2: exactly the three attempts fail. (No `clear()`: the injector is shared
    // with tests running in parallel.)
    faults.inject(rule("PUT", &tag, 3, err500()));
    match d.put_content("/p", b"never").await {
        Err(e @ Error::Driver(DriverError::Backend(_))) => {
            let msg = e.to_string();
            assert!(
                msg.contains("InternalError") && msg.contains("500") && msg.contains("/p"),
                "{msg}"
            );
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(
        matches!(
            d.stat("/p").await,
            Err(Error::Driver(DriverError::PathNotFound(_)))
        ),
        "nothing partially visible"
    );

    // A multipart copy that fails is aborted; the destination stays as it was.
    let (d, tag) = driver_and_tag(
        "faults_copy",
        &[
            ("maxretries", "1"),
            ("multipartcopythresholdsize", "5242880"),
            ("multipartcopychunksize", "5242880"),
        ],
    )
    .await;
    let data = &random_bytes()[..12 * MIB];
    let mut w = d.writer("/src", false).await.unwrap();
    w.write(data).await.unwrap();
    w.commit().await.unwrap();
    faults.inject(rule(
        "PUT",
        &format!("{tag}/dst?partNumber=2"),
        10,
        err500(),
    ));
    assert!(d.mv("/src", "/dst").await.is_err());
    assert!(matches!(
        d.stat("/dst").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    assert_eq!(
        sha256_hex(&d.get_content("/src").await.unwrap()),
        sha256_hex(data),
        "source intact"
    );
    d.delete("/src").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_to_one_path_leave_one_whole_object() {
    // A new writer owns its path: it discards the uploads of writers opened before it, so
    // of writers racing on one path some may fail (with an error, never silently), the
    // last one opened always commits, and the object is exactly one committed writer's.
    let d = fresh_driver("concurrent_writers").await;
    let mut tasks = Vec::new();
    for i in 0..4usize {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let data = random_bytes()[i * MIB..i * MIB + 12 * MIB].to_vec();
            let mut w = d.writer("/same/data", false).await.unwrap();
            for piece in data.chunks(MIB) {
                w.write(piece).await?;
            }
            w.commit().await?;
            Ok::<_, Error>(sha256_hex(&data))
        }));
    }
    let mut committed = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(hash) => committed.push(hash),
            Err(e) => assert!(
                !matches!(e, Error::Sandbox(_)),
                "a losing writer fails with a driver error, not a trap: {e}"
            ),
        }
    }
    assert!(!committed.is_empty(), "the last writer opened commits");
    let got = sha256_hex(&d.get_content("/same/data").await.unwrap());
    assert!(
        committed.contains(&got),
        "the object is exactly one committed writer's content"
    );
    d.delete("/same").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_mismatch_is_caught() {
    let (d, tag) = driver_and_tag("faults_crc", &[]).await;
    let faults = server().faults();
    let data = random_contents(3 * MIB);
    d.put_content("/c", &data).await.unwrap();

    // A whole-object read whose CRC-64 disagrees with the bytes is an error, never data.
    faults.inject(rule(
        "GET",
        &format!("{tag}/c"),
        1,
        FaultAction::CorruptChecksum,
    ));
    match d.get_content("/c").await {
        Err(e) if e.io_kind() == Some(IoKind::Integrity) => {
            assert!(e.to_string().contains("integrity"), "{e}")
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    for via in EVERY_VIA {
        faults.inject(rule(
            "GET",
            &format!("{tag}/c"),
            1,
            FaultAction::CorruptChecksum,
        ));
        let mut r = TestReader::open(&d, "/c", 0, via).await.unwrap();
        let mut failed = false;
        loop {
            match r.read(MIB).await {
                Ok(c) if c.is_empty() => break,
                Ok(_) => {}
                Err(e) => {
                    assert!(e.to_string().contains("integrity"), "{e}");
                    failed = true;
                    break;
                }
            }
        }
        assert!(
            failed,
            "a streamed read with a bad checksum must fail at its end ({via:?})"
        );
    }

    // A part KS3 reports with another checksum than what was sent is uploaded again.
    faults.inject(rule(
        "PUT",
        &format!("{tag}/w?partNumber=1"),
        1,
        FaultAction::CorruptChecksum,
    ));
    let big = &random_bytes()[..11 * MIB];
    let mut w = d.writer("/w", false).await.unwrap();
    w.write(big).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        sha256_hex(&d.get_content("/w").await.unwrap()),
        sha256_hex(big)
    );
    // A single PUT whose checksum disagrees is reported.
    faults.inject(rule(
        "PUT",
        &format!("{tag}/p"),
        1,
        FaultAction::CorruptChecksum,
    ));
    assert!(d.put_content("/p", b"abc").await.is_err());
    for p in ["/c", "/w"] {
        d.delete(p).await.unwrap();
    }
    let _ = d.delete("/p").await;
    assert_clean(&d).await;
}

/// The answers the component no longer reads a body of (7bae782: a HEAD's, a PUT's empty
/// one, a DELETE's 204) under every fault kind, one at a time: the call is retried to
/// the right outcome, and what it wrote reads back whole or is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_answers_survive_every_fault_kind() {
    let (d, tag) = driver_and_tag("faults_bodiless", &[]).await;
    let faults = server().faults();
    let kinds = [
        err500(),
        slow_down(),
        FaultAction::DropMidBody,
        FaultAction::LoseResponse,
    ];
    // Other tests share the server and its rules: only this test's (by its tag) count.
    let left = || {
        faults
            .rules()
            .iter()
            .filter(|r| r.path_pattern == tag)
            .count()
    };
    for (i, kind) in kinds.into_iter().enumerate() {
        let path = format!("/bodiless/{i}");
        let data = random_contents(10_000 + i);
        faults.inject(rule("PUT", &tag, 1, kind.clone()));
        d.put_content(&path, &data).await.expect("put retried");
        assert_eq!(left(), 0, "{kind:?} on the PUT was hit");
        faults.inject(rule("HEAD", &tag, 1, kind.clone()));
        assert_eq!(
            d.stat(&path).await.expect("stat retried").size,
            data.len() as u64,
            "{kind:?}"
        );
        assert_eq!(left(), 0, "{kind:?} on the HEAD was hit");
        assert_eq!(d.get_content(&path).await.unwrap(), data, "{kind:?}");
        faults.inject(rule("DELETE", &tag, 1, kind.clone()));
        let deleted = d.delete(&path).await;
        assert_eq!(left(), 0, "{kind:?} on the DELETE was hit");
        // Whether the file existed comes from the delete's listing, not from the DELETE's
        // answer: a DELETE that ran and whose answer was lost is retried, finds the key
        // gone, and the file is still reported deleted (it was reported PathNotFound before).
        deleted.unwrap_or_else(|e| panic!("{kind:?}: delete of an existing file: {e}"));
        assert!(
            matches!(
                d.stat(&path).await,
                Err(Error::Driver(DriverError::PathNotFound(_)))
            ),
            "{kind:?}: deleted"
        );
    }
}
