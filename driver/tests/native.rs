//! The driver's operations compiled natively, over a plain blocking HTTP client, against
//! the real local KS3 server: fast feedback on the KS3 logic without the wasm layer (the
//! component path is tested in host/ and tests/).
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ks3_driver_component::http::{
    Body, Request, Response, Transport, TransportError, TransportErrorKind,
};
use ks3_driver_component::{Config, Driver, DriverError};
use ks3_local::{RunningServer, ServerConfig};

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
    d.put_content("/a/b/c", b"hello").unwrap();
    assert_eq!(d.get_content("/a/b/c").unwrap(), b"hello");
    let fi = d.stat("/a/b/c").unwrap();
    assert_eq!((fi.size, fi.is_dir), (5, false));
    assert!(fi.mod_time_ns > 0);
    assert!(d.stat("/a/b").unwrap().is_dir);
    assert!(matches!(d.stat("/a/x"), Err(DriverError::PathNotFound(_))));
    d.put_content("/a-2/x", b"sibling").unwrap();
    assert_eq!(d.list("/a").unwrap(), vec!["/a/b"]);
    let mut root = d.list("/").unwrap();
    root.sort();
    assert_eq!(root, vec!["/a", "/a-2"]);
    d.delete("/a").unwrap();
    assert!(matches!(
        d.get_content("/a/b/c"),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content("/a-2/x").unwrap(), b"sibling");
    assert!(matches!(d.delete("/a"), Err(DriverError::PathNotFound(_))));
    d.delete("/a-2").unwrap();
    assert!(d.list("/").unwrap().is_empty());
}

#[test]
fn writer_close_resume_commit() {
    let d = driver("native/writer", &[]);
    let src = data(13 * 1024 * 1024 + 5);
    let mut w = d.writer("/up/data", false).unwrap();
    w.write(&src[..6_000_000]).unwrap();
    w.close().unwrap();
    assert_eq!(w.size(), 6_000_000);
    let mut w = d.writer("/up/data", true).unwrap();
    assert_eq!(w.size(), 6_000_000);
    w.write(&src[6_000_000..]).unwrap();
    w.close().unwrap();
    assert!(
        matches!(d.stat("/up/data"), Err(DriverError::PathNotFound(_))),
        "closed is not visible"
    );
    assert_eq!(
        d.list("/up").unwrap_or_default(),
        Vec::<String>::new(),
        "the tail stays hidden"
    );
    let mut w = d.writer("/up/data", true).unwrap();
    assert_eq!(w.size(), src.len() as u64);
    w.commit().unwrap();
    assert_eq!(d.get_content("/up/data").unwrap(), src);
    let mut r = d.reader("/up/data", 7_000_000).unwrap();
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
        .reader("/up/data", src.len() as i64)
        .unwrap()
        .read(10)
        .unwrap()
        .is_empty());
    d.delete("/up").unwrap();
    assert!(d.list("/").unwrap().is_empty());
}

#[test]
fn resume_without_tail_finds_the_upload() {
    let d = driver("native/killed", &[]);
    let src = data(12 * 1024 * 1024);
    let mut w = d.writer("/k", false).unwrap();
    w.write(&src).unwrap();
    // The writer "dies": no close. Two full parts were uploaded.
    drop(w);
    let mut w = d.writer("/k", true).unwrap();
    assert_eq!(w.size(), 10 * 1024 * 1024);
    w.write(&src[10 * 1024 * 1024..]).unwrap();
    w.commit().unwrap();
    assert_eq!(d.get_content("/k").unwrap(), src);
    d.delete("/k").unwrap();
}

#[test]
fn resume_with_other_chunksize_rebases() {
    let d6 = driver("native/rebase", &[("chunksize", "6291456")]);
    let src = data(20 * 1024 * 1024);
    let mut w = d6.writer("/r", false).unwrap();
    w.write(&src[..13 * 1024 * 1024]).unwrap();
    drop(w); // two 6 MiB parts uploaded, no tail
    let d5 = driver("native/rebase", &[]);
    let mut w = d5.writer("/r", true).unwrap();
    assert_eq!(w.size(), 12 * 1024 * 1024);
    w.write(&src[12 * 1024 * 1024..]).unwrap();
    w.commit().unwrap();
    assert_eq!(d5.get_content("/r").unwrap(), src);
    d5.delete("/r").unwrap();
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
    d.put_content("/s", b"small").unwrap();
    d.mv("/s", "/t").unwrap();
    assert_eq!(d.get_content("/t").unwrap(), b"small");
    assert!(matches!(
        d.get_content("/s"),
        Err(DriverError::PathNotFound(_))
    ));
    let big = data(11 * 1024 * 1024);
    let mut w = d.writer("/big", false).unwrap();
    w.write(&big).unwrap();
    w.commit().unwrap();
    d.mv("/big", "/moved").unwrap();
    assert_eq!(d.get_content("/moved").unwrap(), big);
    assert!(matches!(
        d.mv("/nope", "/t"),
        Err(DriverError::PathNotFound(_))
    ));
    assert_eq!(d.get_content("/t").unwrap(), b"small");
    d.delete("/t").unwrap();
    d.delete("/moved").unwrap();
}

#[test]
fn walk_order_skip_and_hint() {
    let d = driver("native/walk", &[]);
    for p in ["/f", "/d1/f", "/d1-x/f", "/d2/e/f", "/d3/f"] {
        d.put_content(p, b"x").unwrap();
    }
    let mut w = d.walk("/", None).unwrap();
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
                w.skip_directory("/d2");
                skipped = Some(fi.path.clone());
            }
            seen.push(fi.path);
        }
    }
    assert_eq!(
        seen,
        vec!["/d1-x", "/d1-x/f", "/d1", "/d1/f", "/d2", "/d3", "/d3/f", "/f"]
    );
    let mut w = d.walk("/", Some("/d1/f")).unwrap();
    let rest: Vec<String> = w.next(100).unwrap().into_iter().map(|f| f.path).collect();
    assert_eq!(rest, vec!["/d2", "/d2/e", "/d2/e/f", "/d3", "/d3/f", "/f"]);
    for p in ["/f", "/d1", "/d1-x", "/d2", "/d3"] {
        d.delete(p).unwrap();
    }
}

#[test]
fn redirect_url_is_presigned() {
    let d = driver("native/url", &[]);
    d.put_content("/u", b"presigned").unwrap();
    let url = d.redirect_url("GET", "/u").unwrap().unwrap();
    assert!(url.contains("KSSAccessKeyId=") && url.contains("Signature="));
    let body = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert_eq!(body, "presigned");
    assert_eq!(d.redirect_url("DELETE", "/u").unwrap(), None);
    d.delete("/u").unwrap();
}
