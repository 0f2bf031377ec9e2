//! The driver's operations compiled natively, over a plain blocking HTTP client, against
//! the real local KS3 server: fast feedback on the KS3 logic without the wasm layer (the
//! component path is tested in host/ and tests/).
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ks3_driver_component::http::{
    Body, Request, Response, Sent, Transport, TransportError, TransportErrorKind,
};
use ks3_driver_component::path::{DirPath, FilePath};
use ks3_driver_component::{Config, Driver, DriverError};
use ks3_local::{RunningServer, ServerConfig};

fn fp(p: &str) -> FilePath {
    FilePath::parse(p).expect("a valid file path")
}

fn dp(p: &str) -> DirPath {
    DirPath::parse(p).expect("a valid directory path")
}

const AK: &str = "AKLTnative";
const SK: &str = "native-secret-key-0123456789";

fn server() -> &'static RunningServer {
    static S: OnceLock<RunningServer> = OnceLock::new();
    S.get_or_init(|| {
        ks3_local::start_in_background(ServerConfig::memory("native-bucket", AK, SK)).unwrap()
    })
}

struct Ureq {
    base: String,
    agent: ureq::Agent,
}

struct ReaderBody(Box<dyn Read + Send + Sync>);

impl Body for ReaderBody {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, TransportError> {
        let mut buf = vec![0u8; max];
        match self.0.read(&mut buf) {
            Ok(0) => Ok(None),
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e) => Err(TransportError::new(
                TransportErrorKind::Dropped,
                e.to_string(),
            )),
        }
    }
}

impl Transport for Ureq {
    fn send(
        &self,
        req: &Request,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let mut r = self
            .agent
            .request(req.method, &format!("{}{}", self.base, req.path_and_query))
            .timeout(timeout);
        for (k, v) in &req.headers {
            if !k.eq_ignore_ascii_case("content-length") {
                r = r.set(k, v);
            }
        }
        let resp = match r.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => {
                return Err(TransportError::new(
                    TransportErrorKind::Connect,
                    e.to_string(),
                ))
            }
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        Ok(Response {
            status,
            headers,
            body: Box::new(ReaderBody(Box::new(resp.into_reader()))),
        })
    }

    // A blocking client: a request is sent whole when it starts.
    type Flight = Sent;

    fn start(&self, req: &Request, body: Arc<Vec<u8>>, timeout: Duration) -> Sent {
        self.send(req, &body, timeout)
    }

    fn advance(&self, flights: &mut [Sent], _block: bool) -> Vec<usize> {
        (0..flights.len()).collect()
    }

    fn finish(&self, flight: Sent) -> Sent {
        flight
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

fn driver(root: &str, extra: &[(&str, &str)]) -> Arc<Driver<Ureq>> {
    let mut p: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in [
        ("accesskey", AK),
        ("secretkey", SK),
        ("region", "ks3-cn-beijing"),
        ("bucket", "native-bucket"),
        ("rootdirectory", root),
        ("chunksize", "5242880"),
    ] {
        p.insert(k.into(), v.into());
    }
    p.insert("regionendpoint".into(), server().endpoint());
    for (k, v) in extra {
        p.insert((*k).into(), (*v).into());
    }
    let config = Config::from_params(&p, |_| None).unwrap();
    Driver::new(
        config,
        Ureq {
            base: server().endpoint(),
            agent: ureq::AgentBuilder::new().build(),
        },
    )
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn content_stat_list_delete() {
    let d = driver("native/content", &[]);
    d.put_content(&fp("/a/b/c"), b"hello").unwrap();
    assert_eq!(d.get_content(&fp("/a/b/c")).unwrap(), b"hello");
    let fi = d.stat(&dp("/a/b/c")).unwrap();
    assert_eq!((fi.size, fi.is_dir), (5, false));
    assert!(fi.mod_time_ns > 0);
    assert!(d.stat(&dp("/a/b")).unwrap().is_dir);
    assert!(matches!(
        d.stat(&dp("/a/x")),
        Err(DriverError::PathNotFound(_))
    ));
    d.put_content(&fp("/a-2/x"), b"sibling").unwrap();
    assert_eq!(d.list(&dp("/a")).unwrap(), vec!["/a/b"]);
    let mut root = d.list(&dp("/")).unwrap();
    root.sort();
    assert_eq!(root, vec!["/a", "/a-2"]);
    d.delete(&fp("/a")).unwrap();
    assert!(matches!(
        d.get_content(&fp("/a/b/c")),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content(&fp("/a-2/x")).unwrap(), b"sibling");
    assert!(matches!(
        d.delete(&fp("/a")),
        Err(DriverError::PathNotFound(_))
    ));
    d.delete(&fp("/a-2")).unwrap();
    assert!(d.list(&dp("/")).unwrap().is_empty());
}

#[test]
fn writer_close_resume_commit() {
    let d = driver("native/writer", &[]);
    let src = data(13 * 1024 * 1024 + 5);
    let mut w = d.writer(&fp("/up/data"), false).unwrap();
    w.write(&src[..6_000_000]).unwrap();
    w.close().unwrap();
    assert_eq!(w.size(), 6_000_000);
    let mut w = d.writer(&fp("/up/data"), true).unwrap();
    assert_eq!(w.size(), 6_000_000);
    w.write(&src[6_000_000..]).unwrap();
    w.close().unwrap();
    assert!(
        matches!(d.stat(&dp("/up/data")), Err(DriverError::PathNotFound(_))),
        "closed is not visible"
    );
    assert_eq!(
        d.list(&dp("/up")).unwrap_or_default(),
        Vec::<String>::new(),
        "the tail stays hidden"
    );
    let mut w = d.writer(&fp("/up/data"), true).unwrap();
    assert_eq!(w.size(), src.len() as u64);
    w.commit().unwrap();
    assert_eq!(d.get_content(&fp("/up/data")).unwrap(), src);
    let mut r = d.reader(&fp("/up/data"), 7_000_000).unwrap();
    let mut got = Vec::new();
    loop {
        let c = r.read(1 << 20).unwrap();
        if c.is_empty() {
            break;
        }
        got.extend(c);
    }
    assert_eq!(got, &src[7_000_000..]);
    assert!(d
        .reader(&fp("/up/data"), src.len() as i64)
        .unwrap()
        .read(10)
        .unwrap()
        .is_empty());
    d.delete(&fp("/up")).unwrap();
    assert!(d.list(&dp("/")).unwrap().is_empty());
}

#[test]
fn resume_without_tail_finds_the_upload() {
    let d = driver("native/killed", &[]);
    let src = data(12 * 1024 * 1024);
    let mut w = d.writer(&fp("/k"), false).unwrap();
    w.write(&src).unwrap();
    // The writer "dies": no close. Two full parts were uploaded.
    drop(w);
    let mut w = d.writer(&fp("/k"), true).unwrap();
    assert_eq!(w.size(), 10 * 1024 * 1024);
    w.write(&src[10 * 1024 * 1024..]).unwrap();
    w.commit().unwrap();
    assert_eq!(d.get_content(&fp("/k")).unwrap(), src);
    d.delete(&fp("/k")).unwrap();
}

#[test]
fn resume_with_other_chunksize_publishes_nothing_early() {
    let d6 = driver("native/rebase", &[("chunksize", "6291456")]);
    let src = data(20 * 1024 * 1024);
    let mut w = d6.writer(&fp("/r"), false).unwrap();
    w.write(&src[..13 * 1024 * 1024]).unwrap();
    drop(w); // two 6 MiB parts uploaded, no tail
    let d5 = driver("native/rebase", &[]);
    let mut w = d5.writer(&fp("/r"), true).unwrap();
    assert_eq!(w.size(), 12 * 1024 * 1024);
    // The 6 MiB parts are kept as they are (KS3 takes parts of any size ≥ 5 MB): nothing
    // is completed, so nothing partial is visible at the path.
    assert!(matches!(
        d5.stat(&dp("/r")),
        Err(DriverError::PathNotFound(_))
    ));
    w.write(&src[12 * 1024 * 1024..]).unwrap();
    assert!(matches!(
        d5.stat(&dp("/r")),
        Err(DriverError::PathNotFound(_))
    ));
    w.commit().unwrap();
    assert_eq!(d5.get_content(&fp("/r")).unwrap(), src);
    d5.delete(&fp("/r")).unwrap();
}

#[test]
fn move_small_and_multipart() {
    let d = driver(
        "native/move",
        &[
            ("multipartcopythresholdsize", "5242880"),
            ("multipartcopychunksize", "5242880"),
        ],
    );
    d.put_content(&fp("/s"), b"small").unwrap();
    d.mv(&fp("/s"), &fp("/t")).unwrap();
    assert_eq!(d.get_content(&fp("/t")).unwrap(), b"small");
    assert!(matches!(
        d.get_content(&fp("/s")),
        Err(DriverError::PathNotFound(_))
    ));
    let big = data(11 * 1024 * 1024);
    let mut w = d.writer(&fp("/big"), false).unwrap();
    w.write(&big).unwrap();
    w.commit().unwrap();
    d.mv(&fp("/big"), &fp("/moved")).unwrap();
    assert_eq!(d.get_content(&fp("/moved")).unwrap(), big);
    assert!(matches!(
        d.mv(&fp("/nope"), &fp("/t")),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content(&fp("/t")).unwrap(), b"small");
    d.delete(&fp("/t")).unwrap();
    d.delete(&fp("/moved")).unwrap();
}

#[test]
fn walk_order_skip_and_hint() {
    let d = driver("native/walk", &[]);
    for p in ["/f", "/d1/f", "/d1-x/f", "/d2/e/f", "/d3/f"] {
        d.put_content(&fp(p), b"x").unwrap();
    }
    let mut w = d.walk(&dp("/"), None).unwrap();
    let mut seen = Vec::new();
    let mut skipped: Option<String> = None;
    loop {
        let b = w.next(2).unwrap();
        if b.is_empty() {
            break;
        }
        for fi in b {
            // As a host does: entries of the batch in hand under a skipped dir are dropped.
            if skipped
                .as_ref()
                .is_some_and(|s| fi.path.starts_with(&format!("{s}/")))
            {
                continue;
            }
            if fi.path == "/d2" {
                w.skip_directory(&fp("/d2"));
                skipped = Some(fi.path.clone());
            }
            seen.push(fi.path);
        }
    }
    assert_eq!(
        seen,
        vec!["/d1-x", "/d1-x/f", "/d1", "/d1/f", "/d2", "/d3", "/d3/f", "/f"]
    );
    let mut w = d.walk(&dp("/"), Some("/d1/f")).unwrap();
    let rest: Vec<String> = w.next(100).unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(rest, vec!["/d2", "/d2/e", "/d2/e/f", "/d3", "/d3/f", "/f"]);
    for p in ["/f", "/d1", "/d1-x", "/d2", "/d3"] {
        d.delete(&fp(p)).unwrap();
    }
}

#[test]
fn redirect_url_is_presigned() {
    let d = driver("native/url", &[]);
    d.put_content(&fp("/u"), b"presigned").unwrap();
    let url = d.redirect_url("GET", &fp("/u")).unwrap().unwrap();
    assert!(url.contains("KSSAccessKeyId=") && url.contains("Signature="));
    let body = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert_eq!(body, "presigned");
    assert_eq!(d.redirect_url("DELETE", &fp("/u")).unwrap(), None);
    d.delete(&fp("/u")).unwrap();
}

fn fault(spec: &str) {
    server()
        .faults()
        .inject(ks3_local::FaultRule::parse(spec).unwrap());
}

#[test]
fn a_lost_complete_answer_is_recognised_as_success() {
    let d = driver("native/lost", &[]);
    let src = data(12 * 1024 * 1024 + 3);
    let mut w = d.writer(&fp("/lc"), false).unwrap();
    w.write(&src).unwrap();
    // The Complete is performed, its answer never arrives; the retry gets NoSuchUpload.
    fault("POST:native/lost/lc?uploadId=:1:lost");
    w.commit().expect("the completed object is recognised");
    assert_eq!(d.get_content(&fp("/lc")).unwrap(), src);
    d.delete(&fp("/lc")).unwrap();
}

#[test]
fn a_failed_complete_loses_nothing() {
    let d = driver("native/failcomplete", &[("maxretries", "1")]);
    let src = data(11 * 1024 * 1024);
    let mut w = d.writer(&fp("/f"), false).unwrap();
    w.write(&src).unwrap();
    fault("POST:native/failcomplete/f?uploadId=:2:500:InternalError");
    let e = w.commit().unwrap_err();
    assert_eq!(e.code(), Some("InternalError"), "{e}");
    assert!(matches!(
        d.stat(&dp("/f")),
        Err(DriverError::PathNotFound(_))
    ));
    // The same writer commits once KS3 is well again.
    w.commit().unwrap();
    assert_eq!(d.get_content(&fp("/f")).unwrap(), src);

    // And a writer that is gone after the failure is resumed from anywhere.
    let mut w = d.writer(&fp("/g"), false).unwrap();
    w.write(&src).unwrap();
    fault("POST:native/failcomplete/g?uploadId=:2:503:SlowDown");
    assert!(w.commit().is_err());
    drop(w);
    let mut w = driver("native/failcomplete", &[])
        .writer(&fp("/g"), true)
        .unwrap();
    assert_eq!(w.size(), src.len() as u64);
    w.write(b"+more").unwrap();
    w.commit().unwrap();
    assert_eq!(
        d.get_content(&fp("/g")).unwrap(),
        [&src[..], b"+more"].concat()
    );
    d.delete(&fp("/f")).unwrap();
    d.delete(&fp("/g")).unwrap();
}

#[test]
fn an_older_upload_never_comes_back() {
    let d = driver("native/stale", &[]);
    // Closed, then replaced by a committed write: appending finds nothing to resume.
    let mut w = d.writer(&fp("/f"), false).unwrap();
    w.write(b"AAA").unwrap();
    w.close().unwrap();
    let mut w = d.writer(&fp("/f"), false).unwrap();
    w.write(b"BBB").unwrap();
    w.commit().unwrap();
    assert!(matches!(
        d.writer(&fp("/f"), true),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content(&fp("/f")).unwrap(), b"BBB");

    // The same through put_content, with parts in the stale upload.
    let mut w = d.writer(&fp("/p"), false).unwrap();
    w.write(&data(6 * 1024 * 1024)).unwrap();
    w.close().unwrap();
    d.put_content(&fp("/p"), b"new").unwrap();
    assert!(matches!(
        d.writer(&fp("/p"), true),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content(&fp("/p")).unwrap(), b"new");

    // A writer killed before close (no tail), then put_content: stale as well.
    let mut w = d.writer(&fp("/k"), false).unwrap();
    w.write(&data(6 * 1024 * 1024)).unwrap();
    drop(w);
    d.put_content(&fp("/k"), b"kept").unwrap();
    assert!(matches!(
        d.writer(&fp("/k"), true),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content(&fp("/k")).unwrap(), b"kept");

    // delete takes closed uploads with it; a directory of only closed uploads is invisible.
    let mut w = d.writer(&fp("/dir/x"), false).unwrap();
    w.write(&data(6 * 1024 * 1024)).unwrap();
    w.close().unwrap();
    assert!(matches!(
        d.stat(&dp("/dir")),
        Err(DriverError::PathNotFound(_))
    ));
    assert!(matches!(
        d.list(&dp("/dir")),
        Err(DriverError::PathNotFound(_))
    ));
    assert!(!d.list(&dp("/")).unwrap().contains(&"/dir".to_string()));
    assert!(matches!(
        d.delete(&fp("/dir")),
        Err(DriverError::PathNotFound(_))
    ));
    assert!(matches!(
        d.writer(&fp("/dir/x"), true),
        Err(DriverError::PathNotFound(_))
    ));

    // mv discards uploads at both ends.
    let mut w = d.writer(&fp("/m/src"), false).unwrap();
    w.write(b"closed at the source").unwrap();
    w.close().unwrap();
    let mut w = d.writer(&fp("/m/dst"), false).unwrap();
    w.write(b"closed at the destination").unwrap();
    w.close().unwrap();
    d.put_content(&fp("/m/other"), b"moved").unwrap();
    d.mv(&fp("/m/other"), &fp("/m/dst")).unwrap();
    assert!(matches!(
        d.writer(&fp("/m/dst"), true),
        Err(DriverError::PathNotFound(_))
    ));
    d.put_content(&fp("/m/src"), b"x").unwrap();
    d.mv(&fp("/m/src"), &fp("/m/y")).unwrap();
    assert!(matches!(
        d.writer(&fp("/m/src"), true),
        Err(DriverError::PathNotFound(_))
    ));
    for p in ["/f", "/p", "/k", "/m"] {
        d.delete(&fp(p)).unwrap();
    }
    assert!(d.list(&dp("/")).unwrap().is_empty());
}

#[test]
fn a_reader_never_splices_two_objects() {
    let d = driver("native/pinned", &[]);
    let old = data(3 * 1024 * 1024);
    d.put_content(&fp("/obj"), &old).unwrap();
    // The body is cut half-way; by then the object has been replaced.
    fault("GET:native/pinned/obj:1:drop");
    let mut r = d.reader(&fp("/obj"), 10).unwrap();
    let first = r.read(1024).unwrap();
    assert_eq!(first, &old[10..10 + first.len()]);
    d.put_content(&fp("/obj"), &vec![7u8; old.len()]).unwrap();
    let mut pos = 10 + first.len();
    let e = loop {
        match r.read(64 * 1024) {
            Ok(c) if c.is_empty() => panic!("the read ended without noticing the replacement"),
            Ok(c) => {
                assert_eq!(c, &old[pos..pos + c.len()], "only the old object's bytes");
                pos += c.len();
            }
            Err(e) => break e,
        }
    };
    assert!(pos < old.len(), "the cut came before the end");
    assert!(e.to_string().contains("changed"), "{e}");
    d.delete(&fp("/obj")).unwrap();
}

/// A caller that takes each response body (`take_body`), reads part or all of it itself
/// and reports back (`body_done`): the driver resumes after a report of a break, checks
/// the whole object's CRC-64 over the pieces it did not see, and refuses reports that do
/// not fit.
#[test]
fn taken_bodies_are_resumed_and_checked() {
    use ks3_proto::Crc64;
    let d = driver("native/taken", &[]);
    let src = data(5 * 1024 * 1024 + 77);
    d.put_content(&fp("/t"), &src).unwrap();

    // Read the first body only partly and report a break; mix in a read() in between.
    let mut r = d.reader(&fp("/t"), 0).unwrap();
    let mut got = Vec::new();
    let mut body = r.take_body().unwrap().expect("a body");
    let first = body.read(100_000).unwrap().unwrap();
    drop(body);
    r.body_done(
        first.len() as u64,
        Crc64::checksum(&first),
        Some("cut".into()),
    )
    .unwrap();
    got.extend_from_slice(&first);
    assert_eq!(r.position(), got.len() as u64);
    got.extend_from_slice(&r.read(4096).unwrap());
    // The rest by taken bodies to the end.
    while let Some(mut body) = r.take_body().unwrap() {
        let mut piece = Vec::new();
        while let Some(c) = body.read(1 << 20).unwrap() {
            piece.extend_from_slice(&c);
        }
        drop(body);
        r.body_done(piece.len() as u64, Crc64::checksum(&piece), None)
            .unwrap();
        got.extend_from_slice(&piece);
    }
    assert!(got == src, "the pieces make the object");
    assert!(r.read(10).unwrap().is_empty());

    // A wrong CRC for a taken piece fails the whole-object check at the end.
    let mut r = d.reader(&fp("/t"), 0).unwrap();
    let mut body = r.take_body().unwrap().unwrap();
    let mut n = 0u64;
    while let Some(c) = body.read(1 << 20).unwrap() {
        n += c.len() as u64;
    }
    drop(body);
    let e = r.body_done(n, 12345, None).unwrap_err();
    assert!(e.to_string().contains("integrity"), "{e}");

    // Reports that do not fit: nothing taken, more bytes than the object has, and any
    // other call while a body is out.
    let mut r = d.reader(&fp("/t"), 0).unwrap();
    assert!(matches!(
        r.body_done(0, 0, None),
        Err(DriverError::InvalidState(_))
    ));
    let _body = r.take_body().unwrap().unwrap();
    assert!(matches!(r.read(10), Err(DriverError::InvalidState(_))));
    assert!(matches!(r.take_body(), Err(DriverError::InvalidState(_))));
    let e = r.body_done(src.len() as u64 + 1, 0, None).unwrap_err();
    assert!(e.to_string().contains("past the end"), "{e}");
    d.delete(&fp("/t")).unwrap();
}

/// Chunks written with their CRC-64 (as the host sends them) make the same object as
/// chunks the driver hashes; a wrong CRC never becomes data: KS3's confirmation of the
/// part disagrees, and the write fails once the retries are spent.
#[test]
fn caller_supplied_crcs_are_confirmed_by_ks3() {
    use ks3_proto::Crc64;
    let d = driver("native/crcs", &[("chunksize", "5242880")]);
    let src = data(11 * 1024 * 1024 + 5);
    let mut w = d.writer(&fp("/ok"), false).unwrap();
    // 1 MiB pieces and odd ones, so some cross a part boundary.
    for (i, piece) in src.chunks(1024 * 1024 - 3).enumerate() {
        let crc = (i % 3 != 2).then(|| Crc64::checksum(piece));
        w.write_with_crc(piece, crc).unwrap();
    }
    w.commit().unwrap();
    assert!(d.get_content(&fp("/ok")).unwrap() == src);
    d.delete(&fp("/ok")).unwrap();

    let mut w = d.writer(&fp("/bad"), false).unwrap();
    let piece = &src[..1024 * 1024];
    let mut failed = None;
    for _ in 0..6 {
        if let Err(e) = w.write_with_crc(piece, Some(Crc64::checksum(piece) ^ 1)) {
            failed = Some(e);
            break;
        }
    }
    let failed = match failed {
        Some(e) => e,
        None => w.commit().expect_err("a wrong CRC fails the write"),
    };
    assert!(
        failed.to_string().contains("CRC") || failed.to_string().contains("integrity"),
        "{failed}"
    );
    let _ = w.cancel();
    assert!(matches!(
        d.get_content(&fp("/bad")),
        Err(DriverError::PathNotFound(_))
    ));
}

/// A writer superseded by a newer one on the same path (which aborted its upload) fails
/// to commit, and leaves the newer writer's saved upload alone.
#[test]
fn a_superseded_commit_keeps_the_newer_writers_upload() {
    let d = driver("native/superseded", &[("chunksize", "5242880")]);
    let old = data(5 * 1024 * 1024 + 100);
    let mut a = d.writer(&fp("/x"), false).unwrap();
    a.write(&old).unwrap();
    let mut b = d.writer(&fp("/x"), false).unwrap();
    b.write(b"newer").unwrap();
    b.close().unwrap();
    assert!(a.commit().is_err(), "the superseded writer cannot commit");
    let mut resumed = d
        .writer(&fp("/x"), true)
        .expect("the newer upload is still there");
    assert_eq!(resumed.size(), 5);
    resumed.write(b"!").unwrap();
    resumed.commit().unwrap();
    assert_eq!(d.get_content(&fp("/x")).unwrap(), b"newer!");
    d.delete(&fp("/x")).unwrap();
}

/// Every operation of the driver, signed in one V4 namespace: the local server verifies
/// each signature (and the payload hash of each body), so any disagreement fails here.
fn every_operation_signed(scheme: &str) {
    let root = format!("native/signed-{scheme}");
    let d = driver(
        &root,
        &[
            ("signatureversion", scheme),
            ("multipartcopythresholdsize", "5242880"),
            ("multipartcopychunksize", "5242880"),
        ],
    );
    d.put_content(&fp("/dir/small"), b"small").unwrap();
    assert_eq!(d.get_content(&fp("/dir/small")).unwrap(), b"small");
    assert_eq!(d.stat(&dp("/dir/small")).unwrap().size, 5);
    assert!(d.stat(&dp("/dir")).unwrap().is_dir);
    assert_eq!(d.list(&dp("/dir")).unwrap(), vec!["/dir/small"]);
    let src = data(11 * 1024 * 1024 + 3);
    let mut w = d.writer(&fp("/dir/big"), false).unwrap();
    w.write(&src[..6_000_000]).unwrap();
    w.close().unwrap();
    let mut w = d.writer(&fp("/dir/big"), true).unwrap();
    assert_eq!(w.size(), 6_000_000);
    w.write(&src[6_000_000..]).unwrap();
    w.commit().unwrap();
    let mut r = d.reader(&fp("/dir/big"), 7_000_000).unwrap();
    let mut got = Vec::new();
    loop {
        let c = r.read(1 << 20).unwrap();
        if c.is_empty() {
            break;
        }
        got.extend(c);
    }
    assert_eq!(got, &src[7_000_000..]);
    d.mv(&fp("/dir/big"), &fp("/moved/big")).unwrap(); // multipart copy
    d.mv(&fp("/dir/small"), &fp("/moved/small")).unwrap(); // single copy
    assert_eq!(d.get_content(&fp("/moved/big")).unwrap(), src);
    let mut w = d.walk(&dp("/"), None).unwrap();
    let walked: Vec<String> = w.next(100).unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(walked, vec!["/moved", "/moved/big", "/moved/small"]);
    let url = d.redirect_url("GET", &fp("/moved/small")).unwrap().unwrap();
    let prefix = if scheme == "aws4" { "X-Amz-" } else { "X-Kss-" };
    assert!(url.contains(&format!("{prefix}Signature=")), "{url}");
    assert_eq!(
        ureq::get(&url).call().unwrap().into_string().unwrap(),
        "small"
    );
    d.delete(&fp("/moved")).unwrap();
    assert!(d.list(&dp("/")).unwrap().is_empty());

    let wrong = driver(
        &root,
        &[("signatureversion", scheme), ("secretkey", "wrong")],
    );
    let e = wrong.put_content(&fp("/x"), b"x").unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e}");
}

#[test]
fn every_operation_signed_kss4() {
    every_operation_signed("v4");
}

#[test]
fn every_operation_signed_aws4() {
    every_operation_signed("aws4");
}
