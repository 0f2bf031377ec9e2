//! Signature V4 through the real component: every operation under `signatureversion=v4`
//! (KSS4) and `aws4` against ks3-local, which verifies each signature and payload hash;
//! and botocore as the independent referee of AWS4, re-verifying every request the
//! component sends (`tests/sdk/aws4_referee_proxy.py`, a recording proxy in front of
//! ks3-local).
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};

use ks3_driver_host::{Driver, DriverError, Error, Params, WalkControl};
use ks3_tests::*;

/// Parameters for `scheme` at `endpoint`, with multipart copy from 5 MiB so a move of the
/// test's 11 MiB object copies in parts.
fn signed_params(test: &str, scheme: &str, endpoint: &str) -> Params {
    let mut p = params(&unique_root(test));
    p.insert("signatureversion".into(), scheme.into());
    p.insert("regionendpoint".into(), endpoint.into());
    p.insert("multipartcopythresholdsize".into(), (5 * MIB).to_string());
    p.insert("multipartcopychunksize".into(), (5 * MIB).to_string());
    // One part in flight: a write that starts part 2 first waits for part 1 to land, so
    // the killed writer below is known to leave at least one part behind.
    p.insert("uploadconcurrency".into(), "1".into());
    p
}

/// Every operation of the driver, each checked for its result; presigned URLs (whose
/// parameters start with `url_prefix`) are fetched with a plain HTTP client.
async fn every_operation(d: &Driver, url_prefix: &str) {
    d.put_content("/dir/small", b"small").await.unwrap();
    assert_eq!(d.get_content("/dir/small").await.unwrap(), b"small");
    assert_eq!(d.stat("/dir/small").await.unwrap().size, 5);
    assert!(d.stat("/dir").await.unwrap().is_dir);
    assert_eq!(d.list("/dir").await.unwrap(), vec!["/dir/small"]);

    // An upload closed after one part: the next writer(path, false) aborts it.
    let src = random_contents(11 * MIB + 3);
    let mut w = d.writer("/dir/big", false).await.unwrap();
    w.write(&src[..6 * MIB]).await.unwrap();
    w.close().await.unwrap();
    // A writer that dies without close after starting its second 5 MiB part (so its first
    // has landed; the second may or may not have): the resume finds its upload (list
    // uploads, list parts) with the parts that landed, then completes.
    let mut w = d.writer("/dir/big", false).await.unwrap();
    w.write(&src[..11 * MIB]).await.unwrap();
    drop(w);
    let mut w = d.writer("/dir/big", true).await.unwrap();
    let kept = w.size();
    assert!(
        kept == (5 * MIB) as u64 || kept == (10 * MIB) as u64,
        "resumed at {kept}"
    );
    w.write(&src[kept as usize..]).await.unwrap();
    w.commit().await.unwrap();

    let mut r = d.reader("/dir/big", 7_000_000).await.unwrap();
    assert_eq!(r.read_to_end().await.unwrap(), &src[7_000_000..]);
    d.mv("/dir/big", "/moved/big").await.unwrap(); // multipart copy
    d.mv("/dir/small", "/moved/small").await.unwrap(); // single copy
    assert_eq!(d.get_content("/moved/big").await.unwrap(), src);
    let mut walked = Vec::new();
    d.walk("/", None, |fi| {
        walked.push(fi.path.clone());
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    assert_eq!(walked, vec!["/moved", "/moved/big", "/moved/small"]);

    let url = d
        .redirect_url("GET", "/moved/small")
        .await
        .unwrap()
        .unwrap();
    assert!(url.contains(&format!("{url_prefix}Signature=")), "{url}");
    let (status, _, body) = http_request("GET", &url).await;
    assert_eq!((status, body.as_slice()), (200, &b"small"[..]), "{url}");
    let url = d.redirect_url("HEAD", "/moved/big").await.unwrap().unwrap();
    assert_eq!(http_request("HEAD", &url).await.0, 200, "{url}");

    d.delete("/moved").await.unwrap();
    assert!(matches!(
        d.stat("/moved/big").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    assert!(d.list("/").await.unwrap().is_empty());
}

async fn through_ks3_local(scheme: &str, prefix: &str) {
    let d = Driver::new(signed_params(scheme, scheme, &server().endpoint()))
        .await
        .unwrap();
    every_operation(&d, prefix).await;

    let mut p = signed_params(scheme, scheme, &server().endpoint());
    p.insert("secretkey".into(), "not-the-secret".into());
    let wrong = Driver::new(p).await.unwrap();
    let e = wrong.put_content("/x", b"x").await.unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kss4_every_operation() {
    through_ks3_local("v4", "X-Kss-").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aws4_every_operation() {
    through_ks3_local("aws4", "X-Amz-").await;
}

/// The botocore proxy; closing its stdin ends it.
struct Referee {
    child: Child,
    stdin: Option<ChildStdin>,
    endpoint: String,
}

impl Referee {
    /// Starts the proxy, or `None` when the boto3 referee is explicitly skipped
    /// (`KS3_SKIP_BOTO3=1`, as `ks3-local/tests/boto3_referee.rs` does); a missing python3
    /// or botocore otherwise fails the test.
    fn start() -> Option<Referee> {
        if std::env::var("KS3_SKIP_BOTO3").as_deref() == Ok("1") {
            eprintln!("KS3_SKIP_BOTO3=1: skipping the botocore referee of the driver's AWS4");
            return None;
        }
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/aws4_referee_proxy.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(server().endpoint())
            .args([ACCESS_KEY, SECRET_KEY, "BEIJING"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python:?} ({e}); the referee needs python3 with boto3 (or KS3_SKIP_BOTO3=1)")
            });
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let endpoint = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the referee proxy did not start: {line:?}"))
            .to_string();
        let stdin = child.stdin.take();
        Some(Referee {
            child,
            stdin,
            endpoint,
        })
    }
}

impl Referee {
    /// The proxy's report: counts, kinds of request seen, mismatches.
    async fn report(&self) -> String {
        let (status, _, body) =
            http_request("GET", &format!("{}/__referee/report", self.endpoint)).await;
        assert_eq!(status, 200);
        let report = String::from_utf8_lossy(&body).into_owned();
        eprintln!("{report}");
        report
    }
}

impl Drop for Referee {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// What every operation sends, as the proxy names the kinds of request it saw.
const EXPECTED_KINDS: &[&str] = &[
    "PUT",
    "GET",
    "HEAD",
    "GET ?delimiter&max-keys&prefix",
    "POST ?uploads",
    "PUT ?partNumber&uploadId",
    "POST ?uploadId",
    "DELETE ?uploadId",
    "GET ?max-uploads&prefix&uploads",
    "GET ?max-parts&uploadId",
    "PUT copy",
    "PUT ?partNumber&uploadId copy",
    "POST ?delete",
    "GET presigned",
    "HEAD presigned",
];

#[tokio::test(flavor = "multi_thread")]
async fn botocore_re_verifies_every_aws4_request() {
    let Some(referee) = Referee::start() else {
        return;
    };
    let d = Driver::new(signed_params("referee", "aws4", &referee.endpoint))
        .await
        .unwrap();
    every_operation(&d, "X-Amz-").await;

    let report = referee.report().await;
    let first = report.lines().next().unwrap_or("");
    assert!(
        first.ends_with(", 0 mismatches") && !first.starts_with("checked 0 header"),
        "botocore disagrees with the driver's AWS4 signatures:\n{report}"
    );
    let kinds: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("op: "))
        .collect();
    let missing: Vec<&&str> = EXPECTED_KINDS
        .iter()
        .filter(|k| !kinds.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "the referee saw no {missing:?}; it saw:\n{report}"
    );

    // The referee can fail: a request signed with another secret is a mismatch.
    let mut p = signed_params("referee", "aws4", &referee.endpoint);
    p.insert("secretkey".into(), "not-the-secret".into());
    let wrong = Driver::new(p).await.unwrap();
    let e = wrong.put_content("/x", b"x").await.unwrap_err();
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"), "{e}");
    let report = referee.report().await;
    let first = report.lines().next().unwrap_or("");
    assert!(
        !first.ends_with(", 0 mismatches") && report.contains("\nmismatch: "),
        "the referee did not catch a wrong signature:\n{report}"
    );
}
