//! Health, metrics and the access log, through real clients: the debug port's
//! `/debug/health` and `/metrics` (checked by Prometheus' own `promtool`), the storage
//! health check failing and recovering under ks3-local's injected faults — side by side
//! with distribution 2.8.2 (`docker-registry`) on the same ks3-local —, and the
//! `ks3_registry::request` events.
mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::distribution::{Distribution, Options, S3Target};
use common::*;
use http::{Method, StatusCode};
use ks3_local::{FaultAction, FaultRule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// distribution 2.8.2's answer on the main port while its health check fails, its newline
/// included (observed by running it; the test compares it with the live one too).
const UNAVAILABLE_BODY: &str = r#"{"errors":[{"code":"UNAVAILABLE","message":"service unavailable","detail":"health check failed: please see /debug/health"}]}
"#;

const DEBUG_YAML: &str = "storage:
  redirect:
    disable: true
http:
  debug:
    addr: 127.0.0.1:0
    prometheus:
      enabled: true
      path: /metrics
";

/// A registry on `ks3` configured by `yaml`, with its debug server on a port of its own;
/// returns it and the debug server's base URL.
async fn serve_with_debug(ks3: &SharedKs3, yaml: &str) -> (Served, String) {
    let served = serve_shared(ks3, yaml).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let debug = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(served.registry.serve_debug(listener));
    (served, debug)
}

async fn get(url: &str) -> Resp {
    request(Method::GET, url, &[], "").await
}

/// `name{labels} value` lines of a scrape, as a map (comments left out).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The sum of every series of `family` whose labels contain all of `labels`.
fn sum(s: &BTreeMap<String, f64>, family: &str, labels: &[&str]) -> f64 {
    s.iter()
        .filter(|(k, _)| {
            k.strip_prefix(family)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|l| k.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(debug: &str) -> BTreeMap<String, f64> {
    let r = get(&format!("{debug}/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    samples(&String::from_utf8_lossy(&r.body))
}

/// Waits (at most 10 s) until `check` holds for a scrape; returns that scrape.
async fn scrape_until(
    debug: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(debug).await;
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: never seen in {s:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_moves_the_metrics_and_promtool_accepts_them() {
    require("promtool", "apt-get install -y prometheus");
    let ks3 = shared_ks3();
    let (served, debug) = serve_with_debug(&ks3, DEBUG_YAML).await;
    let base = &served.base;

    // The debug endpoints are on the debug port only, as 2.8.2.
    for path in ["/metrics", "/debug/health"] {
        assert_eq!(
            get(&format!("{base}{path}")).await.status,
            StatusCode::NOT_FOUND,
            "{path} on the main port"
        );
    }
    let health = get(&format!("{debug}/debug/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, b"{}");
    let r = get(&format!("{debug}/metrics")).await;
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    let before = samples(&String::from_utf8_lossy(&r.body));

    // A push: a blob in one POST, a config, a manifest.
    let layer = bytes(300_000, 7);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer_d = push_blob(base, "obs/app", &layer).await;
    let config_d = push_blob(base, "obs/app", &config).await;
    let manifest = oci_manifest(
        (&config_d, config.len()),
        &[(&layer_d, layer.len())],
        None,
        None,
    );
    let put = request(
        Method::PUT,
        &format!("{base}/v2/obs/app/manifests/v1"),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let pulled = get(&format!("{base}/v2/obs/app/blobs/{layer_d}")).await;
    assert!(pulled.body == layer, "the pull: {}", pulled.status);

    let pushed = (layer.len() + config.len() + manifest.len()) as f64;
    let req_total = "registry_http_requests_total";
    let after = scrape_until(&debug, "the pull's bytes out", |s| {
        sum(
            s,
            "registry_http_response_bytes_total",
            &["handler=\"blob\""],
        ) >= layer.len() as f64
    })
    .await;
    let moved =
        |family: &str, labels: &[&str]| sum(&after, family, labels) - sum(&before, family, labels);
    assert_eq!(
        moved(
            req_total,
            &["code=\"201\"", "handler=\"blob_upload\"", "method=\"POST\""]
        ),
        2.0
    );
    assert_eq!(
        moved(
            req_total,
            &["code=\"201\"", "handler=\"manifest\"", "method=\"PUT\""]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "registry_http_request_duration_seconds_count",
            &["handler=\"manifest\"", "method=\"PUT\""]
        ),
        1.0
    );
    // Exactly the bodies read: the two blobs and the manifest.
    assert_eq!(moved("registry_http_request_bytes_total", &[]), pushed);
    assert!(moved("registry_storage_actions_total", &["outcome=\"ok\""]) >= 3.0);
    assert!(
        moved(
            "registry_storage_action_seconds_count",
            &["action=\"put-content-writerless\""]
        ) >= 1.0
    );
    assert!(
        moved(
            "registry_ks3_requests_total",
            &["method=\"PUT\"", "status=\"2xx\""]
        ) >= 3.0
    );
    // Scrapes go to the debug port: no main-port request is in flight now.
    assert_eq!(sum(&after, "registry_http_in_flight_requests", &[]), 0.0);

    // Prometheus' own checker accepts the exposition (it reads stdin).
    let text = get(&format!("{debug}/metrics")).await.body;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&text).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics refused:\n{}{}\n---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&text)
    );
}

/// An upload counts as in progress while its data is arriving, and no longer after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_in_flight_is_counted() {
    let ks3 = shared_ks3();
    let (served, debug) = serve_with_debug(&ks3, DEBUG_YAML).await;
    let start = request(
        Method::POST,
        &format!("{}/v2/obs/up/blobs/uploads/", served.base),
        &[],
        "",
    )
    .await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let location = start.header("location").expect("location").to_string();
    let path = location
        .strip_prefix(&served.base)
        .unwrap_or(&location)
        .to_string();
    let gauge = |s: &BTreeMap<String, f64>| sum(s, "registry_uploads_in_progress", &[]);
    assert_eq!(gauge(&scrape(&debug).await), 0.0);

    // Half the body, then a pause: the PATCH holds its upload slot meanwhile.
    let data = bytes(2000, 3);
    let mut conn = tokio::net::TcpStream::connect(&served.host)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        served.host,
        data.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&data[..1000]).await.expect("half");
    scrape_until(&debug, "one upload in progress", |s| gauge(s) == 1.0).await;
    conn.write_all(&data[1000..]).await.expect("rest");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.expect("answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    scrape_until(&debug, "no upload in progress", |s| gauge(s) == 0.0).await;
}

/// Waits (at most 20 s) until `url` answers `status`; returns that answer.
async fn until_status(url: &str, status: StatusCode) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(url).await;
        if r.status == status {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: still {} ({}), waiting for {status}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every request to KS3 answered 500 InternalError (the health check's too).
fn break_storage(ks3: &SharedKs3) {
    ks3.server.faults().inject(FaultRule {
        method: None,
        path_pattern: String::new(),
        count: u32::MAX,
        action: FaultAction::Error {
            status: 500,
            code: "InternalError".into(),
        },
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_failing_makes_both_registries_unavailable_until_it_recovers() {
    let mut ks3 = shared_ks3();
    // Fewer retries: the probe's verdict comes sooner (the count is what is asserted).
    ks3.params.insert("maxretries".into(), "1".into());
    let yaml = format!(
        "{DEBUG_YAML}health:\n  storagedriver:\n    enabled: true\n    interval: 300ms\n    threshold: 2\n"
    );
    let (served, debug) = serve_with_debug(&ks3, &yaml).await;
    let dist = Distribution::start(&S3Target::of(&ks3, "/dist"), &Options::default());
    let ours_health = format!("{debug}/debug/health");
    let theirs_health = format!("{}/debug/health", dist.debug_base);

    for (who, url) in [("ours", &ours_health), ("2.8.2", &theirs_health)] {
        let r = until_status(url, StatusCode::OK).await;
        assert_eq!(r.body, b"{}", "{who}");
    }
    let v2 = get(&format!("{}/v2/", served.base)).await;
    assert_eq!(v2.status, StatusCode::OK);
    let retryable_before = sum(
        &scrape(&debug).await,
        "registry_ks3_retryable_failures_total",
        &[],
    );

    break_storage(&ks3);
    let ours = until_status(&ours_health, StatusCode::SERVICE_UNAVAILABLE).await;
    let theirs = until_status(&theirs_health, StatusCode::SERVICE_UNAVAILABLE).await;
    // One check, named after the driver (`storagedriver_s3` there), with the error.
    for (who, r, key) in [
        ("ours", &ours, "storagedriver_ks3"),
        ("2.8.2", &theirs, "storagedriver_s3"),
    ] {
        let body = r.json();
        let map = body.as_object().expect("an object");
        assert_eq!(map.len(), 1, "{who}: {body}");
        let err = map[key].as_str().unwrap_or("");
        assert!(!err.is_empty(), "{who}: {body}");
        assert!(
            err.contains("500") || err.contains("InternalError"),
            "{who}: {body}"
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8"),
            "{who}"
        );
    }
    // Every request on the main port, even one that is no API endpoint, gets the 503.
    for path in ["/v2/", "/", "/v2/obs/app/manifests/v1"] {
        let mine = get(&format!("{}{path}", served.base)).await;
        let dists = get(&format!("{}{path}", dist.base)).await;
        for (who, r) in [("ours", &mine), ("2.8.2", &dists)] {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{who} {path}");
            assert_eq!(
                String::from_utf8_lossy(&r.body),
                UNAVAILABLE_BODY,
                "{who} {path}"
            );
            assert_eq!(r.error_code(), "UNAVAILABLE");
            // 2.8.2's health gate answers before its API handlers add the header.
            assert_eq!(r.header("docker-distribution-api-version"), None, "{who}");
        }
    }
    // The probes' failed KS3 requests are the kind the driver retries.
    let s = scrape(&debug).await;
    assert!(sum(&s, "registry_ks3_retryable_failures_total", &[]) > retryable_before);
    assert!(sum(&s, "registry_ks3_requests_total", &["status=\"5xx\""]) >= 1.0);
    assert!(
        sum(
            &s,
            "registry_storage_actions_total",
            &["action=\"stat\"", "outcome=\"error\""]
        ) >= 2.0
    );

    // Both recover by themselves.
    ks3.server.faults().clear();
    for url in [&ours_health, &theirs_health] {
        until_status(url, StatusCode::OK).await;
    }
    assert_eq!(
        get(&format!("{}/v2/", served.base)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{}/v2/", dist.base)).await.status,
        StatusCode::OK
    );
}

// --- the access log -------------------------------------------------------------------

/// The `ks3_registry::request` "response completed" events of this process, one line of
/// `name=value` each.
fn access_log() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LINES.get_or_init(|| {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let _ = tracing::subscriber::set_global_default(capture::Capture {
            lines: Arc::clone(&lines),
        });
        lines
    })
}

mod capture {
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    pub struct Capture {
        pub lines: Arc<Mutex<Vec<String>>>,
    }

    struct Fields<'a>(&'a mut String);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
        fn record_str(&mut self, field: &Field, value: &str) {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }

    static NEXT: AtomicU64 = AtomicU64::new(1);

    impl Subscriber for Capture {
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            meta.target().starts_with("ks3_")
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(NEXT.fetch_add(1, Ordering::Relaxed))
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            // Every event of the libraries, to check no secret reaches any of them.
            let mut line = format!("{}:", event.metadata().target());
            event.record(&mut Fields(&mut line));
            self.lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

/// The access-log lines of the request with id `id` (waits up to 5 s for `n` of them:
/// a line is written once the response body is done).
async fn lines_of(id: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found: Vec<String> = access_log()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|l| {
                l.starts_with("ks3_registry::request:")
                    && l.contains("response completed")
                    && l.contains(&format!("request_id={id} "))
            })
            .cloned()
            .collect();
        if found.len() >= n || Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_user_and_never_a_secret() {
    access_log();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("htpasswd");
    let password = "s3cret-pass-WORD";
    let hash = bcrypt::hash(password, 4).expect("bcrypt");
    std::fs::write(&file, format!("carol:{hash}\n")).expect("htpasswd");
    let ks3 = shared_ks3();
    let yaml = format!(
        "auth:\n  htpasswd:\n    realm: obs\n    path: {}\n",
        file.display()
    );
    let served = serve_shared(
        &ks3,
        &format!("{yaml}storage:\n  redirect:\n    disable: true\n"),
    )
    .await;
    let auth = basic("carol", password);
    let data = bytes(5000, 9);
    let d = sha256(&data);
    let id = format!("obs-{}", ks3_tests::unique());
    let r = request(
        Method::POST,
        &format!("{}/v2/obs/log/blobs/uploads/?digest={d}", served.base),
        &[("authorization", &auth), ("x-request-id", &id)],
        data.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let lines = lines_of(&id, 1).await;
    assert_eq!(lines.len(), 1, "one line per request: {lines:?}");
    let line = &lines[0];
    for field in [
        "method=POST".to_string(),
        "route=blob_upload".into(),
        "status=201".into(),
        format!("bytes_in={}", data.len()),
        "bytes_out=0".into(),
        "user=carol".into(),
        " micros=".into(),
    ] {
        assert!(line.contains(&field), "{field} missing: {line}");
    }

    // A refused login: logged without a user; a pull's bytes out are counted.
    let id2 = format!("obs-{}", ks3_tests::unique());
    let refused = request(
        Method::GET,
        &format!("{}/v2/obs/log/blobs/{d}", served.base),
        &[
            ("authorization", &basic("carol", "wrong")),
            ("x-request-id", &id2),
        ],
        "",
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let id3 = format!("obs-{}", ks3_tests::unique());
    let pulled = request(
        Method::GET,
        &format!("{}/v2/obs/log/blobs/{d}?token=query-secret", served.base),
        &[("authorization", &auth), ("x-request-id", &id3)],
        "",
    )
    .await;
    assert!(pulled.body == data, "the pull: {}", pulled.status);
    let refused_line = lines_of(&id2, 1).await.concat();
    assert!(refused_line.contains("status=401"), "{refused_line}");
    assert!(!refused_line.contains("user="), "{refused_line}");
    let pulled_line = lines_of(&id3, 1).await.concat();
    assert!(
        pulled_line.contains(&format!("bytes_out={}", data.len())),
        "{pulled_line}"
    );

    // Nothing any library logged holds the password, the header or the query.
    let all = access_log()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .join("\n");
    let b64 = auth.trim_start_matches("Basic ");
    for secret in [
        password,
        "wrong",
        b64,
        "query-secret",
        &ks3.params["secretkey"],
    ] {
        assert!(!all.contains(secret), "`{secret}` was logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accesslog_disabled_writes_no_request_line() {
    access_log();
    let ks3 = shared_ks3();
    let served = serve_shared(&ks3, "log:\n  accesslog:\n    disabled: true\n").await;
    let id = format!("obs-{}", ks3_tests::unique());
    let r = request(
        Method::GET,
        &format!("{}/v2/", served.base),
        &[("x-request-id", &id)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // The registry with the log on writes its line in this time (the test above).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lines_of(&id, 1).await.is_empty());
}
