//! The default configuration (`secure=true`, HTTPS) through the real component against
//! `ks3-local --tls-cert/--tls-key`: a private CA trusted with `cafile` works (presigned
//! URLs too, fetched with `curl --cacert`); an unknown CA, a certificate for another host
//! name and an expired certificate are refused at once — one handshake, no retries — with
//! an error that names the problem. HTTP/2 is used when the server offers it in ALPN, and
//! HTTP/1.1 when it does not; every fault is retried over HTTP/2 as over HTTP/1.1.
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{data, unique, AK, BUCKET, MIB, SK};
use ks3_driver_host::{CertificateProblem, Driver, IoKind, Params};
use ks3_local::{FaultAction, FaultRule, RunningServer, ServerConfig, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn make_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf certificate and key for `names`, written under `dir`; `expired` dates it in 2020.
fn make_leaf(dir: &Path, tag: &str, ca: &Ca, names: &[&str], expired: bool) -> TlsFiles {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{tag}.crt")),
        key: dir.join(format!("{tag}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

fn https_server(tls: TlsFiles) -> RunningServer {
    ks3_local::start_in_background(ServerConfig {
        tls: Some(tls),
        ..ServerConfig::memory(BUCKET, AK, SK)
    })
    .unwrap()
}

/// Parameters with `secure` left at its default (true): the endpoint has no scheme.
fn params(server: &RunningServer, cafile: Option<&Path>) -> Params {
    let mut p = Params::new();
    for (k, v) in [
        ("accesskey", AK),
        ("secretkey", SK),
        ("region", "ks3-cn-beijing"),
        ("bucket", BUCKET),
    ] {
        p.insert(k.into(), v.into());
    }
    p.insert("regionendpoint".into(), server.addr().to_string());
    p.insert("rootdirectory".into(), format!("/tls/{}", unique()));
    if let Some(f) = cafile {
        p.insert("cafile".into(), f.display().to_string());
    }
    p
}

struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_file: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("ks3 test CA");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    Setup { dir, ca, ca_file }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ca_trusted_with_cafile_and_presigned_urls_over_https() {
    let s = setup();
    let server = https_server(make_leaf(
        s.dir.path(),
        "good",
        &s.ca,
        &["127.0.0.1", "localhost"],
        false,
    ));
    assert!(server.endpoint().starts_with("https://"));
    let d = Driver::new(params(&server, Some(&s.ca_file)))
        .await
        .unwrap();
    assert!(
        d.config()
            .expect("KS3")
            .endpoint
            .base_url()
            .starts_with("https://"),
        "secure defaults to true"
    );
    d.put_content("/a/b", b"over tls").await.unwrap();
    assert_eq!(d.get_content("/a/b").await.unwrap(), b"over tls");
    assert_eq!(d.list("/a").await.unwrap(), vec!["/a/b".to_string()]);
    assert_eq!(server.tls_handshake_failures(), 0);

    // A presigned GET over HTTPS, fetched by curl trusting the same CA.
    let url = d.redirect_url("GET", "/a/b").await.unwrap().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(&s.ca_file)
        .arg(&url)
        .output()
        .expect("curl must be installed for this test");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"over tls");
    // Without the CA curl refuses it too: the server really is on a private CA.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Refused at once: one failed handshake, no retry, no "attempts", and the problem named.
async fn assert_refused(
    server: &RunningServer,
    cafile: Option<&Path>,
    problem: &str,
    kind: CertificateProblem,
) {
    let started = Instant::now();
    let err = match Driver::new(params(server, cafile)).await {
        // validate-config does not reach the server; the first operation does.
        Ok(d) => d.get_content("/x").await.unwrap_err(),
        Err(e) => e,
    };
    let elapsed = started.elapsed();
    let text = err.to_string();
    eprintln!("refused as expected in {elapsed:?}: {text}");
    assert_eq!(
        err.io_kind(),
        Some(IoKind::TlsCertificate(Some(kind))),
        "{err:?}"
    );
    assert!(
        text.contains(ks3_driver_host::TLS_CERTIFICATE_REFUSED),
        "not named a certificate refusal: {text}"
    );
    assert!(text.contains(problem), "{problem:?} not in: {text}");
    assert!(!text.contains("attempts"), "retried: {text}");
    assert!(!text.contains(SK) && !text.contains(AK), "{text}");
    // The server counts a failed handshake when it reads the client's alert, which may
    // come after the client has already returned: wait for the first, then long enough
    // for a retry to show up as a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.tls_handshake_failures() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.tls_handshake_failures(),
        1,
        "exactly one handshake: no retries ({text})"
    );
    assert_eq!(server.request_count(), 0);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ca_refused_at_once() {
    let s = setup();
    let server = https_server(make_leaf(
        s.dir.path(),
        "good",
        &s.ca,
        &["127.0.0.1"],
        false,
    ));
    // No cafile: the public roots do not know the private CA.
    assert_refused(
        &server,
        None,
        "unknown certificate authority",
        CertificateProblem::UnknownIssuer,
    )
    .await;
    // Another private CA in cafile does not help either.
    let other = make_ca("another CA");
    let other_file = s.dir.path().join("other.pem");
    std::fs::write(&other_file, &other.pem).unwrap();
    let server = https_server(make_leaf(
        s.dir.path(),
        "good2",
        &s.ca,
        &["127.0.0.1"],
        false,
    ));
    assert_refused(
        &server,
        Some(&other_file),
        "unknown certificate authority",
        CertificateProblem::UnknownIssuer,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_mismatch_refused_at_once() {
    let s = setup();
    let server = https_server(make_leaf(
        s.dir.path(),
        "other-name",
        &s.ca,
        &["storage.example.com"],
        false,
    ));
    assert_refused(
        &server,
        Some(&s.ca_file),
        "hostname mismatch",
        CertificateProblem::HostnameMismatch,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_refused_at_once() {
    let s = setup();
    let server = https_server(make_leaf(s.dir.path(), "old", &s.ca, &["127.0.0.1"], true));
    assert_refused(
        &server,
        Some(&s.ca_file),
        "has expired",
        CertificateProblem::Expired,
    )
    .await;
}

/// The same operations — a multipart upload, a ranged read, a listing, a move, a delete —
/// over HTTP/2 when the server offers `h2` in ALPN (as KS3's endpoints do), and over
/// HTTP/1.1 when it offers only that, with V2 and AWS4 signatures (AWS4 signs the host,
/// which HTTP/2 carries as `:authority`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_negotiated_by_alpn_with_http1_fallback() {
    let s = setup();
    let body = data(11 * MIB + 3, 11);
    for http2 in [true, false] {
        let leaf = make_leaf(
            s.dir.path(),
            &format!("alpn-{http2}"),
            &s.ca,
            &["127.0.0.1"],
            false,
        );
        let server = ks3_local::start_in_background(ServerConfig {
            tls: Some(leaf),
            http2,
            ..ServerConfig::memory(BUCKET, AK, SK)
        })
        .unwrap();
        for signing in ["v2", "aws4"] {
            let mut p = params(&server, Some(&s.ca_file));
            p.insert("chunksize".into(), (5 * MIB).to_string());
            p.insert("signatureversion".into(), signing.into());
            let d = Driver::new(p).await.unwrap();
            let what = format!("http2 offered: {http2}, signing {signing}");

            let mut w = d.writer("/dir/big", false).await.unwrap();
            w.write(&body).await.unwrap();
            w.commit().await.unwrap();
            let mut r = d.reader("/dir/big", 7).await.unwrap();
            let mut got = Vec::new();
            loop {
                let b = r.read(MIB).await.unwrap();
                if b.is_empty() {
                    break;
                }
                got.extend_from_slice(&b);
            }
            assert!(got == body[7..], "{what}: ranged read differs");
            assert_eq!(d.list("/dir").await.unwrap(), vec!["/dir/big"], "{what}");
            d.mv("/dir/big", "/dir/moved").await.unwrap();
            assert_eq!(d.stat("/dir/moved").await.unwrap().size, body.len() as u64);
            d.delete("/dir").await.unwrap();
            assert!(d.stat("/dir").await.is_err(), "{what}: deleted");
        }
        let h2 = server.http2_requests();
        if http2 {
            // Every request of both rounds: at least initiate, 3 parts, complete, GET,
            // list, copy, delete each.
            assert!(h2 >= 20, "HTTP/2 offered, yet only {h2} requests used it");
        } else {
            assert_eq!(h2, 0, "HTTP/2 not offered, yet used");
        }
        assert_eq!(server.tls_handshake_failures(), 0);
    }
}

/// Over HTTP/2 a fault costs one stream, not a connection: the server answers a request
/// it drops or loses with RST_STREAM (hyper's answer to a failed request) while the
/// connection goes on carrying the others, and a request the client gives up on (a
/// timeout) is reset the same way from its side. Every fault kind, on each kind of
/// request that a multipart write (two parts in flight at once on the one connection),
/// its completion, a ranged read, a stat, a small put and get and a listing make, is
/// retried to the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_over_http2_is_retried() {
    let s = setup();
    let leaf = make_leaf(s.dir.path(), "faults-h2", &s.ca, &["127.0.0.1"], false);
    let server = ks3_local::start_in_background(ServerConfig {
        tls: Some(leaf),
        http2: true,
        ..ServerConfig::memory(BUCKET, AK, SK)
    })
    .unwrap();
    let body = data(16 * MIB + 5, 21);
    let small = data(70_000, 22);
    let actions = [
        (
            "500 InternalError",
            FaultAction::Error {
                status: 500,
                code: "InternalError".into(),
            },
        ),
        (
            "503 SlowDown",
            FaultAction::Error {
                status: 503,
                code: "SlowDown".into(),
            },
        ),
        ("a stream reset mid-body", FaultAction::DropMidBody),
        ("a lost answer", FaultAction::LoseResponse),
        // Past `requesttimeout` (1 s): the driver resets the stream and tries again.
        (
            "an answer too late",
            FaultAction::Delay(Duration::from_secs(3)),
        ),
    ];
    for (what, action) in actions {
        let mut p = params(&server, Some(&s.ca_file));
        p.insert("chunksize".into(), (5 * MIB).to_string());
        p.insert("requesttimeout".into(), "1".into());
        let root = p["rootdirectory"].trim_start_matches('/').to_string();
        let d = Driver::new(p).await.unwrap();
        let faults = server.faults();
        let fault = |method: &str, pattern: String| {
            faults.inject(FaultRule {
                method: Some(method.into()),
                path_pattern: pattern,
                count: 1,
                action: action.clone(),
            })
        };

        fault("PUT", format!("{root}/big?partNumber=2"));
        fault("PUT", format!("{root}/big?partNumber=3"));
        fault("POST", format!("{root}/big?uploadId"));
        let mut w = d.writer("/big", false).await.unwrap();
        w.write(&body)
            .await
            .unwrap_or_else(|e| panic!("{what} on parts: {e}"));
        w.commit()
            .await
            .unwrap_or_else(|e| panic!("{what} on complete: {e}"));
        assert_eq!(faults.remaining(), 0, "{what}: the writer met every fault");

        fault("GET", format!("{root}/big"));
        let mut r = d.reader("/big", 7).await.unwrap();
        let got = r
            .read_to_end()
            .await
            .unwrap_or_else(|e| panic!("{what} on a ranged GET: {e}"));
        assert!(got == body[7..], "{what}: the ranged read differs");

        fault("HEAD", format!("{root}/big"));
        let size = d
            .stat("/big")
            .await
            .unwrap_or_else(|e| panic!("{what} on HEAD: {e}"))
            .size;
        assert_eq!(size, body.len() as u64, "{what}: stat");

        fault("PUT", format!("{root}/small"));
        d.put_content("/small", &small)
            .await
            .unwrap_or_else(|e| panic!("{what} on a PUT: {e}"));
        fault("GET", format!("{root}/small"));
        let got = d
            .get_content("/small")
            .await
            .unwrap_or_else(|e| panic!("{what} on a GET: {e}"));
        assert!(got == small, "{what}: get_content differs");

        // The listing's prefix is in the query, its slashes escaped.
        fault("GET", root.replace('/', "%2F"));
        let listed = d
            .list("/")
            .await
            .unwrap_or_else(|e| panic!("{what} on a listing: {e}"));
        assert_eq!(listed, vec!["/big", "/small"], "{what}: listing");
        assert_eq!(faults.remaining(), 0, "{what}: every fault met");
        d.delete("/big").await.unwrap();
        d.delete("/small").await.unwrap();
    }
    assert!(
        server.http2_requests() > 50,
        "the requests went over HTTP/2 ({} did)",
        server.http2_requests()
    );
    assert_eq!(server.tls_handshake_failures(), 0);
}
