//! Webhook notifications (`notifications`, issue 30), over real sockets: an HTTP sink in
//! this test receives the events of pushes, pulls, mounts and deletes through this
//! registry and through distribution 2.8.2 with the same `notifications` config; the
//! shapes must match. Then delivery: an endpoint down and then answering 500 loses no
//! event and keeps their order; pushes do not wait for an endpoint that hangs; a full
//! queue drops the oldest events and counts them in `/metrics`.
mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::distribution::{Distribution, Options, S3Target};
use common::{request, sha256, Resp};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

const UA: &str = "notify-test/1.0";

/// One POST the sink received.
#[derive(Debug, Clone)]
struct Received {
    status: u16,
    content_type: String,
    authorization: String,
    events: Vec<Value>,
}

/// An HTTP endpoint that records what is POSTed to it and answers `status`.
struct Sink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sink {
    /// A port that nothing listens on yet (the sink is down until [`Sink::up`]).
    fn down() -> Sink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Sink {
            port,
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            task: None,
        }
    }

    async fn started() -> Sink {
        let mut s = Sink::down();
        s.up().await;
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    /// Starts listening (again) on its port.
    async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("sink binds");
        let got = Arc::clone(&self.got);
        let status = Arc::clone(&self.status);
        self.task = Some(tokio::spawn(async move {
            // Connections end with the accept loop (a stopped sink answers nothing).
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let got = Arc::clone(&got);
                let status = Arc::clone(&status);
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let got = Arc::clone(&got);
                        let status = status.load(Ordering::SeqCst);
                        async move {
                            let h = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string()
                            };
                            let (content_type, authorization) =
                                (h("content-type"), h("authorization"));
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            let body = body.unwrap_or_default();
                            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let events = v["events"].as_array().cloned().unwrap_or_default();
                            got.lock().unwrap().push(Received {
                                status,
                                content_type,
                                authorization,
                                events,
                            });
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }));
    }

    /// The events it accepted (answered 2xx), in arrival order.
    fn delivered(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status < 300)
            .flat_map(|r| r.events.clone())
            .collect()
    }

    fn posts(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` events were accepted (at most `within`); returns them.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let d = self.delivered();
            if d.len() >= n {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events arrived within {within:?}: {d:#?}",
                d.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// distribution's `notifications` section for one endpoint.
fn notifications_yaml(url: &str, extra: &str) -> String {
    format!(
        "notifications:
  events:
    includereferences: true
  endpoints:
    - name: sink
      url: {url}
      headers:
        Authorization: [Bearer sink-token]
      timeout: 1s
      threshold: 3
      backoff: 100ms
{extra}"
    )
}

async fn req(method: Method, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Resp {
    let mut h = vec![("user-agent", UA)];
    h.extend_from_slice(headers);
    request(method, url, &h, body).await
}

/// The absolute URL of an upload's `Location` (relative here, absolute in 2.8.2), with
/// `extra` query parameters added.
fn location(base: &str, r: &Resp, extra: &str) -> String {
    let loc = r.header("location").expect("location");
    let abs = if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc.to_string()
    };
    if extra.is_empty() {
        abs
    } else if abs.contains('?') {
        format!("{abs}&{extra}")
    } else {
        format!("{abs}?{extra}")
    }
}

/// A blob pushed as clients do: POST, then one PUT with the bytes (`chunked`: POST,
/// PATCH with the bytes, PUT without).
async fn upload(base: &str, repo: &str, data: &[u8], chunked: bool) -> String {
    let d = sha256(data);
    let r = req(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "POST: {:?}", r.body);
    let (r, put_body) = if chunked {
        let patch = location(base, &r, "");
        let p = req(
            Method::PATCH,
            &patch,
            &[("content-type", "application/octet-stream")],
            data.to_vec(),
        )
        .await;
        assert_eq!(p.status, StatusCode::ACCEPTED);
        (p, Vec::new())
    } else {
        (r, data.to_vec())
    };
    let url = location(base, &r, &format!("digest={d}"));
    let done = req(
        Method::PUT,
        &url,
        &[("content-type", "application/octet-stream")],
        put_body,
    )
    .await;
    assert_eq!(
        done.status,
        StatusCode::CREATED,
        "PUT: {:?}",
        String::from_utf8_lossy(&done.body)
    );
    d
}

/// The same operations on a registry at `base`; returns (config, layer, manifest)
/// digests. Events expected, in order: push config, push layer, push manifest (tag v1),
/// pull manifest by tag (GET), pull manifest by digest (HEAD), pull layer (GET), pull
/// config (HEAD), mount layer into app2, delete manifest, delete its tag v1, delete the
/// mounted layer in app2. A miss (404) makes none.
async fn operations(base: &str) -> (String, String, String) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = common::bytes(70_000, 30);
    let cd = upload(base, "notify/app", &config, false).await;
    let ld = upload(base, "notify/app", &layer, true).await;
    let m = common::oci_manifest((&cd, config.len()), &[(&ld, layer.len())], None, None);
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let r = req(
        Method::PUT,
        &format!("{base}/v2/notify/app/manifests/v1"),
        &[("content-type", oci)],
        m.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let md = sha256(&m);
    let miss = req(
        Method::GET,
        &format!("{base}/v2/notify/app/manifests/nope"),
        &[("accept", oci)],
        "",
    )
    .await;
    assert_eq!(miss.status, StatusCode::NOT_FOUND);
    let r = req(
        Method::GET,
        &format!("{base}/v2/notify/app/manifests/v1"),
        &[("accept", oci)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = req(
        Method::HEAD,
        &format!("{base}/v2/notify/app/manifests/{md}"),
        &[("accept", oci)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = req(
        Method::GET,
        &format!("{base}/v2/notify/app/blobs/{ld}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = req(
        Method::HEAD,
        &format!("{base}/v2/notify/app/blobs/{cd}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = req(
        Method::POST,
        &format!("{base}/v2/notify/app2/blobs/uploads/?mount={ld}&from=notify/app"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "mount");
    let r = req(
        Method::DELETE,
        &format!("{base}/v2/notify/app/manifests/{md}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = req(
        Method::DELETE,
        &format!("{base}/v2/notify/app2/blobs/{ld}"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    (cd, ld, md)
}

const EXPECTED: usize = 11;

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What must match 2.8.2's: per event, its action and method, its key set and those of
/// `target`, `request`, `actor` and `source`, and the keys of each reference.
fn shape(e: &Value) -> String {
    let refs: Vec<Vec<String>> = e["target"]["references"]
        .as_array()
        .map(|a| a.iter().map(keys).collect())
        .unwrap_or_default();
    format!(
        "{} {} event{:?} target{:?} refs{:?} request{:?} actor{:?} source{:?}",
        e["action"].as_str().unwrap_or("?"),
        e["request"]["method"].as_str().unwrap_or("?"),
        keys(e),
        keys(&e["target"]),
        refs,
        keys(&e["request"]),
        keys(&e["actor"]),
        keys(&e["source"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_match_distribution() {
    let ours_sink = Sink::started().await;
    let theirs_sink = Sink::started().await;
    let served = common::serve_yaml(&format!(
        "storage:\n  delete:\n    enabled: true\n{}",
        notifications_yaml(&ours_sink.url(), "")
    ))
    .await;
    let ks3 = common::shared_ks3();
    let dist = Distribution::start(
        &S3Target::of(&ks3, "/notify"),
        &Options {
            redirect: false,
            extra_yaml: notifications_yaml(&theirs_sink.url(), ""),
            ..Options::default()
        },
    );
    let (cd, ld, md) = operations(&served.base).await;
    operations(&dist.base).await;
    let ours = ours_sink.wait_for(EXPECTED, Duration::from_secs(20)).await;
    let theirs = theirs_sink
        .wait_for(EXPECTED, Duration::from_secs(20))
        .await;
    // Nothing more comes (a 404 makes no event).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ours_sink.delivered().len(),
        EXPECTED,
        "{:#?}",
        ours_sink.delivered()
    );
    assert_eq!(
        theirs_sink.delivered().len(),
        EXPECTED,
        "{:#?}",
        theirs_sink.delivered()
    );

    let ours_shapes: Vec<String> = ours.iter().map(shape).collect();
    let theirs_shapes: Vec<String> = theirs.iter().map(shape).collect();
    for (i, (a, b)) in ours_shapes.iter().zip(&theirs_shapes).enumerate() {
        assert_eq!(
            a,
            b,
            "event {i} differs from 2.8.2's:\nours:   {}\ntheirs: {}",
            serde_json::to_string_pretty(&ours[i]).unwrap(),
            serde_json::to_string_pretty(&theirs[i]).unwrap()
        );
    }

    // The envelope as distribution's: its media type, the configured headers.
    for p in ours_sink.posts() {
        assert_eq!(
            p.content_type,
            "application/vnd.docker.distribution.events.v1+json"
        );
        assert_eq!(p.authorization, "Bearer sink-token");
        assert_eq!(p.events.len(), 1);
    }
    assert_eq!(theirs_sink.posts()[0].authorization, "Bearer sink-token");

    // The values, event by event, against what was done (and 2.8.2's where comparable).
    let host = &served.host;
    let port = host.rsplit_once(':').unwrap().1;
    for (e, t) in ours.iter().zip(&theirs) {
        assert_eq!(e["request"]["useragent"], UA);
        assert_eq!(e["request"]["host"], host.as_str());
        assert!(e["request"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
        assert!(e["source"]["addr"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{port}")));
        assert_eq!(e["source"]["instanceID"], ours[0]["source"]["instanceID"]);
        assert_eq!(e["actor"], serde_json::json!({}));
        assert_eq!(e["target"]["mediaType"], t["target"]["mediaType"]);
        assert_eq!(e["target"]["size"], t["target"]["size"]);
        assert_eq!(e["target"]["digest"], t["target"]["digest"]);
        assert_eq!(e["target"]["tag"], t["target"]["tag"]);
        assert_eq!(e["target"]["repository"], t["target"]["repository"]);
        assert_eq!(e["target"]["fromRepository"], t["target"]["fromRepository"]);
        assert_eq!(e["target"]["references"], t["target"]["references"]);
        let ts = e["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('T'), "{ts}");
    }
    let ids: std::collections::BTreeSet<&str> =
        ours.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), EXPECTED);
    let url = |kind: &str, d: &str, repo: &str| format!("{}/v2/{repo}/{kind}/{d}", served.base);
    assert_eq!(ours[0]["target"]["url"], url("blobs", &cd, "notify/app"));
    assert_eq!(ours[1]["target"]["length"], 70_000);
    assert_eq!(
        ours[2]["target"]["url"],
        url("manifests", &md, "notify/app")
    );
    assert_eq!(ours[2]["target"]["tag"], "v1");
    assert_eq!(ours[2]["target"]["references"][1]["digest"], ld.as_str());
    assert_eq!(ours[7]["target"]["fromRepository"], "notify/app");
    assert_eq!(ours[9]["target"]["tag"], "v1");
}

/// Blobs pushed one by one (monolithic POST `?digest=`); their digests in push order.
async fn push_blobs(base: &str, n: usize, seed: u64) -> (Vec<String>, Vec<Duration>) {
    let mut digests = Vec::new();
    let mut took = Vec::new();
    for i in 0..n {
        let data = common::bytes(4096, seed + i as u64);
        let t = Instant::now();
        digests.push(common::push_blob(base, "notify/q", &data).await);
        took.push(t.elapsed());
    }
    (digests, took)
}

fn digests_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["target"]["digest"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_then_failing_endpoint_loses_nothing_and_keeps_order() {
    let mut sink = Sink::down();
    let served = common::serve_yaml(&notifications_yaml(&sink.url(), "")).await;
    let (first, _) = push_blobs(&served.base, 10, 100).await;
    // Down: the events wait.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.posts().is_empty());
    // Up, answering 500: each attempt is refused, nothing is lost.
    sink.status.store(500, Ordering::SeqCst);
    sink.up().await;
    let (second, _) = push_blobs(&served.base, 10, 200).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.posts().len() < 5 {
        assert!(Instant::now() < deadline, "no attempt reached the sink");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sink.delivered().is_empty());
    // The first event is the one retried, with its id kept.
    let attempts = sink.posts();
    let first_id = &attempts[0].events[0]["id"];
    assert!(attempts.iter().all(|p| &p.events[0]["id"] == first_id));
    assert_eq!(attempts[0].events[0]["target"]["digest"], first[0].as_str());
    // Recovered: every event, once each, in the order pushed.
    sink.status.store(200, Ordering::SeqCst);
    let got = sink.wait_for(20, Duration::from_secs(20)).await;
    let want: Vec<String> = first.into_iter().chain(second).collect();
    assert_eq!(digests_of(&got), want);
    assert_eq!(got[0]["id"], *first_id);
    let m = served.registry.metrics_text();
    assert!(
        m.contains(
            "registry_notifications_events_total{endpoint=\"sink\",outcome=\"delivered\"} 20"
        ),
        "{m}"
    );
    assert!(
        m.contains("registry_notifications_pending{endpoint=\"sink\"} 0"),
        "{m}"
    );
    assert!(!m.contains("outcome=\"dropped\""), "{m}");
    assert!(
        m.contains("registry_notifications_failures_total{endpoint=\"sink\"}"),
        "{m}"
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_do_not_wait_for_a_hanging_endpoint() {
    // An endpoint that accepts connections and never answers: each POST waits its
    // whole timeout (5 s here), then the retries back off.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_url = format!("http://{}/events", hang.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    let plain = common::serve_yaml("").await;
    let notified = common::serve_yaml(
        &notifications_yaml(&hang_url, "").replace("timeout: 1s", "timeout: 5s"),
    )
    .await;
    // Warm both (connections, the driver's instances), then measure alternately.
    push_blobs(&plain.base, 3, 1000).await;
    push_blobs(&notified.base, 3, 2000).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..4u64 {
        a.extend(push_blobs(&plain.base, 10, 3000 + round * 100).await.1);
        b.extend(push_blobs(&notified.base, 10, 4000 + round * 100).await.1);
    }
    let (ma, mb) = (median(a.clone()), median(b.clone()));
    let (worst_a, worst_b) = (*a.iter().max().unwrap(), *b.iter().max().unwrap());
    eprintln!("push median: no notifications {ma:?}, endpoint hanging {mb:?}; worst {worst_a:?} vs {worst_b:?}");
    // Generous: a shared two-core machine; a push that waited for the endpoint would
    // take 5 s.
    assert!(mb <= ma * 2 + Duration::from_millis(50), "{ma:?} vs {mb:?}");
    assert!(worst_b < Duration::from_secs(2), "{worst_b:?}");
    let m = notified.registry.metrics_text();
    assert!(
        m.contains("registry_notifications_pending{endpoint=\"sink\"} 43"),
        "{m}"
    );
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_and_counts_them() {
    let mut sink = Sink::down();
    let served = common::serve_yaml(&notifications_yaml(&sink.url(), "      queuesize: 5\n")).await;
    let (pushed, _) = push_blobs(&served.base, 12, 500).await;
    let m = served.registry.metrics_text();
    let dropped_line = m
        .lines()
        .find(|l| {
            l.starts_with(
                "registry_notifications_events_total{endpoint=\"sink\",outcome=\"dropped\"}",
            )
        })
        .unwrap_or_else(|| panic!("no dropped count: {m}"));
    let dropped: usize = dropped_line.rsplit(' ').next().unwrap().parse().unwrap();
    sink.up().await;
    // What is left: the event being retried when the queue filled (the first one
    // pushed, unless the sender had not taken it yet), then the newest five.
    let kept = pushed.len() - dropped;
    let got = sink.wait_for(kept, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivered().len(), kept);
    let got = digests_of(&got);
    assert!(kept == 5 || kept == 6, "kept {kept}, dropped {dropped}");
    assert_eq!(got[got.len() - 5..], pushed[pushed.len() - 5..]);
    if kept == 6 {
        assert_eq!(got[0], pushed[0]);
    }
    let m = served.registry.metrics_text();
    assert!(
        m.contains(&format!(
            "registry_notifications_events_total{{endpoint=\"sink\",outcome=\"delivered\"}} {kept}"
        )),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_is_the_authenticated_user_and_filters_apply() {
    let sink = Sink::started().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, format!("alice:{}\n", bcrypt::hash("pw", 4).unwrap())).unwrap();
    // Blob events ignored by media type, pulls by action: only the manifest push remains.
    let filters = "      ignoredmediatypes: [application/octet-stream]\n      ignore:\n        actions: [pull]\n";
    let served = common::serve_yaml(&format!(
        "storage:\n  delete:\n    enabled: true\nauth:\n  htpasswd:\n    realm: r\n    path: {}\n{}",
        file.display(),
        notifications_yaml(&sink.url(), filters)
    ))
    .await;
    let auth = format!("Basic {}", base64_encode(b"alice:pw"));
    let a: &[(&str, &str)] = &[("authorization", &auth)];
    let config = b"{}".to_vec();
    let cd = sha256(&config);
    let r = req(
        Method::POST,
        &format!("{}/v2/x/blobs/uploads/?digest={cd}", served.base),
        a,
        config.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let m = common::oci_manifest((&cd, config.len()), &[], None, None);
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let mut h = a.to_vec();
    h.push(("content-type", oci));
    let r = req(
        Method::PUT,
        &format!("{}/v2/x/manifests/t", served.base),
        &h,
        m,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = req(
        Method::GET,
        &format!("{}/v2/x/manifests/t", served.base),
        &[a[0], ("accept", oci)],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A delete by tag (not in 2.8.2): one event naming the tag.
    let r = req(
        Method::DELETE,
        &format!("{}/v2/x/manifests/t", served.base),
        a,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivered().len(), 2, "{:#?}", sink.delivered());
    assert_eq!(got[1]["action"], "delete");
    assert_eq!(
        got[1]["target"],
        serde_json::json!({"repository": "x", "tag": "t"})
    );
    assert_eq!(got[1]["actor"], serde_json::json!({"name": "alice"}));
    assert_eq!(got[0]["action"], "push");
    assert_eq!(got[0]["target"]["mediaType"], oci);
    assert_eq!(got[0]["actor"], serde_json::json!({"name": "alice"}));
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Pulls through a mirror at `base` of what the upstream holds as `notify/mirror:v1`
/// (`cd` the config, `ld` the layer, `md` the manifest). Events expected, in order:
/// pull manifest by tag (GET; uncached, fetched), pull layer (GET; uncached, streamed
/// while stored), pull config (HEAD; uncached, the upstream's HEAD), pull config (GET;
/// uncached), then once cached: pull layer (GET), pull config (HEAD), pull manifest by
/// digest (GET).
async fn mirror_pulls(base: &str, cd: &str, ld: &str, md: &str) {
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let get = |what: String, method: Method| {
        let url = format!("{base}/v2/notify/mirror/{what}");
        async move {
            let r = req(method.clone(), &url, &[("accept", oci)], "").await;
            assert_eq!(r.status, StatusCode::OK, "{method} {url}");
            r
        }
    };
    get("manifests/v1".into(), Method::GET).await;
    let r = get(format!("blobs/{ld}"), Method::GET).await;
    assert_eq!(sha256(&r.body), ld, "the streamed layer");
    get(format!("blobs/{cd}"), Method::HEAD).await;
    get(format!("blobs/{cd}"), Method::GET).await;
    // Cached by now (a fill commits just after its last bytes went out).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = get(format!("blobs/{ld}"), Method::GET).await;
    assert_eq!(sha256(&r.body), ld, "the cached layer");
    get(format!("blobs/{cd}"), Method::HEAD).await;
    get(format!("manifests/{md}"), Method::GET).await;
}

/// A mirror (proxy mode) with notifications: every pull through it is a `pull` event —
/// the first, streamed pull of an uncached blob and a pull of a cached one alike — with
/// the same events, keys and values as 2.8.2 in proxy mode with the same `notifications`
/// section sends; the upstream's fetches and the cache's stores make none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_emits_pull_events_as_2_8_2s_proxy_does() {
    const PULLS: usize = 7;
    let ks3 = common::shared_ks3();
    let upstream = Distribution::start(
        &S3Target::of(&ks3, "/notify-mirror-upstream"),
        &Options {
            redirect: false,
            ..Options::default()
        },
    );
    let config = br#"{"architecture":"amd64","os":"linux","mirror":1}"#.to_vec();
    let layer = common::bytes(3 << 20, 31);
    let cd = upload(&upstream.base, "notify/mirror", &config, false).await;
    let ld = upload(&upstream.base, "notify/mirror", &layer, false).await;
    let m = common::oci_manifest((&cd, config.len()), &[(&ld, layer.len())], None, None);
    let r = req(
        Method::PUT,
        &format!("{}/v2/notify/mirror/manifests/v1", upstream.base),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        m.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let md = sha256(&m);

    let proxy = format!("proxy:\n  remoteurl: {}\n", upstream.base);
    let ours_sink = Sink::started().await;
    let theirs_sink = Sink::started().await;
    let served = common::serve_yaml(&format!(
        "{proxy}{}",
        notifications_yaml(&ours_sink.url(), "")
    ))
    .await;
    let dist = Distribution::start(
        &S3Target::of(&ks3, "/notify-mirror-dist"),
        &Options {
            redirect: false,
            extra_yaml: format!("{proxy}{}", notifications_yaml(&theirs_sink.url(), "")),
            ..Options::default()
        },
    );
    mirror_pulls(&served.base, &cd, &ld, &md).await;
    mirror_pulls(&dist.base, &cd, &ld, &md).await;
    let ours = ours_sink.wait_for(PULLS, Duration::from_secs(20)).await;
    let theirs = theirs_sink.wait_for(PULLS, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ours_sink.delivered().len(), PULLS, "{ours:#?}");
    assert_eq!(theirs_sink.delivered().len(), PULLS, "{theirs:#?}");
    for (i, (e, t)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(
            shape(e),
            shape(t),
            "event {i} differs from 2.8.2's:\nours:   {}\ntheirs: {}",
            serde_json::to_string_pretty(e).unwrap(),
            serde_json::to_string_pretty(t).unwrap()
        );
        assert_eq!(e["action"], "pull");
        for k in ["mediaType", "size", "length", "digest", "tag", "repository"] {
            assert_eq!(e["target"][k], t["target"][k], "event {i}: target.{k}");
        }
        assert_eq!(e["request"]["host"], served.host.as_str());
        assert_eq!(e["request"]["useragent"], UA);
    }
    let digests: Vec<&str> = ours
        .iter()
        .map(|e| e["target"]["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [&md, &ld, &cd, &cd, &ld, &cd, &md]);
    assert_eq!(
        ours[1]["target"]["size"],
        3 << 20,
        "the streamed pull's size"
    );
    assert_eq!(
        ours[1]["target"]["url"],
        format!("{}/v2/notify/mirror/blobs/{ld}", served.base)
    );
    assert_eq!(ours[4]["target"]["size"], 3 << 20, "the cached pull's size");
    assert_eq!(ours[0]["target"]["tag"], "v1");
}
