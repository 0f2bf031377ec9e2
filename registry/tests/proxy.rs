//! Proxy mode (issue 30): this registry as a pull-through cache in front of distribution
//! 2.8.2 (Debian's `docker-registry`) upstreams — one with token authentication (the
//! PyJWT token server of `clients/token_server.py`), one with htpasswd, one open — with
//! skopeo as the client: pulls byte-identical to the upstream's, cached images pulled
//! with the upstream stopped, a re-tag upstream seen at the next pull, one upstream fetch
//! for concurrent pulls of one blob, writes refused as 2.8.2 in proxy mode refuses them,
//! and `proxy.ttl` expiring what was cached, from a schedule that survives a restart.
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::distribution::{Distribution, Options, S3Target};
use common::token_server::TokenServer;
use common::*;
use http::{Method, StatusCode};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn tools() {
    require("skopeo", "apt-get install -y skopeo");
    require("umoci", "apt-get install -y umoci");
    common::distribution::require_docker_registry();
}

/// A root of its own in the shared bucket, for one test's registry.
fn root(tag: &str) -> String {
    format!("/{tag}-{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u32
}

/// Our registry in proxy mode on its own root of the shared bucket.
async fn mirror(ks3: &SharedKs3, root: &str, proxy_yaml: &str) -> Served {
    let mut config = ks3_registry::Config::from_yaml(proxy_yaml).expect("valid config");
    let mut params = ks3.params.clone();
    params.insert("rootdirectory".into(), root.into());
    config.storage = ks3_registry::Storage::Ks3(params);
    config.redirect_disabled = true;
    serve(config).await
}

fn proxy_yaml(remote: &str, creds: Option<(&str, &str)>, ttl: &str) -> String {
    let mut y = format!("proxy:\n  remoteurl: {remote}\n  ttl: {ttl}\n");
    if let Some((u, p)) = creds {
        y.push_str(&format!("  username: {u}\n  password: {p}\n"));
    }
    y
}

/// An OCI layout with tag `v1`: one small layer (`content`) and one of `big` random
/// bytes, built with umoci.
async fn image(dir: &Path, content: &str, big: usize) -> PathBuf {
    let layout = dir.join("layout");
    let l = path_str(&layout);
    run("umoci", &["init", "--layout", l]).await;
    run("umoci", &["new", "--image", &format!("{l}:v0")]).await;
    let bundle = dir.join("bundle");
    let b = path_str(&bundle);
    run(
        "umoci",
        &["unpack", "--rootless", "--image", &format!("{l}:v0"), b],
    )
    .await;
    std::fs::write(bundle.join("rootfs/hello.txt"), content).expect("write");
    std::fs::write(
        bundle.join("rootfs/big.bin"),
        bytes(big, content.len() as u64),
    )
    .expect("write");
    run("umoci", &["repack", "--image", &format!("{l}:v1"), b]).await;
    layout
}

async fn push(layout: &Path, dest: &str, creds: Option<&str>) {
    let src = format!("oci:{}:v1", path_str(layout));
    let mut args = vec!["--insecure-policy", "copy", "--dest-tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src.as_str(), dest]);
    run("skopeo", &args).await;
}

/// `skopeo copy docker://… dir:DIR`: the manifest and every blob as files.
async fn pull(src: &str, dir: &Path, creds: Option<&str>) -> Result<(), String> {
    let dest = format!("dir:{}", path_str(dir));
    let mut args = vec!["--insecure-policy", "copy", "--src-tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--src-creds", c]);
    }
    args.extend([src, dest.as_str()]);
    let out = tokio::process::Command::new("skopeo")
        .envs(no_stored_credentials())
        .args(&args)
        .output()
        .await
        .expect("skopeo runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every file of a `dir:` copy (manifest and blobs), by name.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name() != "version")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

fn upstream(ks3: &SharedKs3, tag: &str, extra_yaml: String) -> Distribution {
    Distribution::start(
        &S3Target::of(ks3, &root(tag)),
        &Options {
            extra_yaml,
            ..Default::default()
        },
    )
}

/// Pulls until `f` holds or 30 s pass.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_upstream_byte_identical_offline_and_retagged() {
    tools();
    let tokens = TokenServer::start(serde_json::json!({
        "alice": {"password": "alice-pw", "grants": {"team/app": ["pull", "push"]}, "alg": "RS256", "kid": "x5c"},
        "mirror": {"password": "mirror-pw", "grants": {"*": ["pull"]}, "alg": "ES256", "kid": "x5c"},
    }));
    let ks3 = shared_ks3();
    let up = upstream(&ks3, "up-token", tokens.yaml(false));
    let work = tempfile::tempdir().expect("work");
    let v1 = image(&work.path().join("one"), "first\n", 3 << 20).await;
    let v2 = image(&work.path().join("two"), "second\n", 1 << 20).await;
    let upstream_ref = format!("docker://{}/team/app:v1", up.host);
    push(&v1, &upstream_ref, Some("alice:alice-pw")).await;

    let m = mirror(
        &ks3,
        &root("mirror-token"),
        &proxy_yaml(&up.base, Some(("mirror", "mirror-pw")), "168h"),
    )
    .await;
    // tags/list is the upstream's while it is up (nothing cached yet).
    let tags_url = format!("{}/v2/team/app/tags/list", m.base);
    let r = request(Method::GET, &tags_url, &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
    let through = format!("docker://{}/team/app:v1", m.host);
    let direct = work.path().join("direct");
    pull(&upstream_ref, &direct, Some("alice:alice-pw"))
        .await
        .expect("direct pull");
    let first = work.path().join("first");
    pull(&through, &first, None)
        .await
        .expect("pull through the mirror");
    assert_eq!(
        files(&first),
        files(&direct),
        "byte-identical to the upstream"
    );
    // The second pull is served from the cache: the upstream sees only the tag's HEAD.
    let log_before = up.log().lines().count();
    let second = work.path().join("second");
    pull(&through, &second, None).await.expect("cached pull");
    assert_eq!(files(&second), files(&direct));
    let new_lines = up
        .log()
        .lines()
        .skip(log_before)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !new_lines.contains("/blobs/sha256:"),
        "a cached pull fetched blobs upstream:\n{new_lines}"
    );

    // Re-tagged upstream: the next pull through the mirror sees the new image.
    push(&v2, &upstream_ref, Some("alice:alice-pw")).await;
    let direct2 = work.path().join("direct2");
    pull(&upstream_ref, &direct2, Some("alice:alice-pw"))
        .await
        .expect("direct pull");
    let retagged = work.path().join("retagged");
    pull(&through, &retagged, None)
        .await
        .expect("pull after re-tag");
    assert_eq!(files(&retagged), files(&direct2), "the re-tag is seen");
    assert_ne!(files(&retagged), files(&direct));

    // Upstream stopped: what was cached still pulls; what was not is unknown.
    drop(up);
    let offline = work.path().join("offline");
    pull(&through, &offline, None)
        .await
        .expect("cached image pulls with the upstream down");
    assert_eq!(files(&offline), files(&direct2));
    // …and tags/list the cached tags.
    let r = request(Method::GET, &tags_url, &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["tags"], serde_json::json!(["v1"]));
    let r = request(
        Method::GET,
        &format!("{}/v2/team/app/manifests/never", m.base),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "MANIFEST_UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_upstream_with_basic_credentials() {
    tools();
    let dir = tempfile::tempdir().expect("dir");
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("up-pw", 5).expect("bcrypt");
    std::fs::write(&htpasswd, format!("up:{hash}\n")).expect("htpasswd");
    let ks3 = shared_ks3();
    let up = upstream(
        &ks3,
        "up-basic",
        format!(
            "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
            path_str(&htpasswd)
        ),
    );
    let layout = image(&dir.path().join("img"), "basic\n", 512 << 10).await;
    let upstream_ref = format!("docker://{}/lib/basic:v1", up.host);
    push(&layout, &upstream_ref, Some("up:up-pw")).await;
    let direct = dir.path().join("direct");
    pull(&upstream_ref, &direct, Some("up:up-pw"))
        .await
        .expect("direct pull");

    let m = mirror(
        &ks3,
        &root("mirror-basic"),
        &proxy_yaml(&up.base, Some(("up", "up-pw")), "168h"),
    )
    .await;
    let through = dir.path().join("through");
    pull(&format!("docker://{}/lib/basic:v1", m.host), &through, None)
        .await
        .expect("pull through the mirror with Basic credentials upstream");
    assert_eq!(files(&through), files(&direct));

    // Without credentials the upstream refuses the mirror: nothing to serve.
    let anon = mirror(
        &ks3,
        &root("mirror-anon"),
        &proxy_yaml(&up.base, None, "168h"),
    )
    .await;
    let r = request(
        Method::GET,
        &format!("{}/v2/lib/basic/manifests/v1", anon.base),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.error_code());

    // 2.8.2 in proxy mode sends no Basic credentials upstream (registry-notes §10): its
    // pull fails where ours works.
    let dist = Distribution::start(
        &S3Target::of(&ks3, &root("dist-basic")),
        &Options {
            extra_yaml: proxy_yaml(&up.base, Some(("up", "up-pw")), "168h"),
            ..Default::default()
        },
    );
    let theirs = dir.path().join("theirs");
    let r = pull(
        &format!("docker://{}/lib/basic:v1", dist.host),
        &theirs,
        None,
    )
    .await;
    eprintln!("2.8.2 in proxy mode before an htpasswd upstream: {r:?}");
    assert!(r.is_err(), "2.8.2 was expected to fail here");
}

/// Pushes a blob to 2.8.2 (which answers a monolithic `POST ?digest=` with a session):
/// `POST`, then `PUT ?digest=` with the bytes. Returns its digest.
async fn upload(base: &str, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = request(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").expect("location").to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = request(
        Method::PUT,
        &format!("{url}{sep}digest={d}"),
        &[("content-type", "application/octet-stream")],
        data.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    d
}

/// Lines of the upstream's access log that are `GET`s of `path`.
fn upstream_gets(up: &Distribution, path: &str) -> usize {
    let needle = format!("\"GET {path} ");
    up.log().lines().filter(|l| l.contains(&needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_of_one_blob_fetch_it_once() {
    common::distribution::require_docker_registry();
    let ks3 = shared_ks3();
    let up = upstream(&ks3, "up-conc", String::new());
    let data = bytes(6 << 20, 42);
    let d = upload(&up.base, "conc/app", &data).await;
    let m = mirror(
        &ks3,
        &root("mirror-conc"),
        &proxy_yaml(&up.base, None, "168h"),
    )
    .await;
    let url = format!("{}/v2/conc/app/blobs/{d}", m.base);
    let pulls = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { request(Method::GET, &url, &[], "").await })
    });
    for p in futures::future::join_all(pulls).await {
        let r = p.expect("task");
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(sha256(&r.body), d, "every client gets the blob");
    }
    let path = format!("/v2/conc/app/blobs/{d}");
    assert_eq!(
        upstream_gets(&up, &path),
        1,
        "one upstream fetch for 8 pulls"
    );
    // Cached: a later pull does not reach the upstream.
    let r = request(Method::GET, &url, &[], "").await;
    assert_eq!(sha256(&r.body), d);
    assert_eq!(upstream_gets(&up, &path), 1);

    // 2.8.2 in proxy mode, the same 8 pulls of another blob (for the docs' comparison).
    let data2 = bytes(6 << 20, 43);
    let d2 = upload(&up.base, "conc/app", &data2).await;
    let dist = Distribution::start(
        &S3Target::of(&ks3, &root("dist-conc")),
        &Options {
            extra_yaml: proxy_yaml(&up.base, None, "168h"),
            ..Default::default()
        },
    );
    let url2 = format!("{}/v2/conc/app/blobs/{d2}", dist.base);
    let pulls = (0..8).map(|_| {
        let url = url2.clone();
        tokio::spawn(async move { request(Method::GET, &url, &[], "").await })
    });
    for p in futures::future::join_all(pulls).await {
        assert_eq!(sha256(&p.expect("task").body), d2);
    }
    eprintln!(
        "2.8.2 in proxy mode: 8 concurrent pulls of one blob made {} upstream GETs",
        upstream_gets(&up, &format!("/v2/conc/app/blobs/{d2}"))
    );
}

/// A request: method, path, headers, body.
type Case = (Method, String, Vec<(&'static str, &'static str)>, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_as_2_8_2_refuses_them() {
    common::distribution::require_docker_registry();
    let ks3 = shared_ks3();
    let up = upstream(&ks3, "up-writes", String::new());
    let data = bytes(1000, 7);
    let d = upload(&up.base, "w/app", &data).await;
    let ours = mirror(
        &ks3,
        &root("mirror-writes"),
        &proxy_yaml(&up.base, None, "168h"),
    )
    .await;
    let theirs = Distribution::start(
        &S3Target::of(&ks3, &root("dist-writes")),
        &Options {
            extra_yaml: proxy_yaml(&up.base, None, "168h"),
            ..Default::default()
        },
    );
    let manifest = oci_manifest((&d, 1000), &[(&d, 1000)], None, None);
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v2/w/app/blobs/uploads/".into(),
            vec![],
            vec![],
        ),
        (
            Method::POST,
            format!("/v2/w/app/blobs/uploads/?digest={d}"),
            vec![],
            data.clone(),
        ),
        (
            Method::POST,
            format!("/v2/w/app/blobs/uploads/?mount={d}&from=other"),
            vec![],
            vec![],
        ),
        (
            Method::PUT,
            "/v2/w/app/manifests/v1".into(),
            vec![("content-type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.clone(),
        ),
        (
            Method::DELETE,
            "/v2/w/app/manifests/v1".into(),
            vec![],
            vec![],
        ),
        (
            Method::DELETE,
            format!("/v2/w/app/blobs/{d}"),
            vec![],
            vec![],
        ),
    ];
    for (method, path, headers, body) in cases {
        let a = request(
            method.clone(),
            &format!("{}{path}", ours.base),
            &headers,
            body.clone(),
        )
        .await;
        let b = request(
            method.clone(),
            &format!("{}{path}", theirs.base),
            &headers,
            body,
        )
        .await;
        assert_eq!(
            (a.status, a.error_code()),
            (b.status, b.error_code()),
            "{method} {path}: ours vs 2.8.2"
        );
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    // Pulls still work on both.
    for base in [&ours.base, &theirs.base] {
        let r = request(Method::GET, &format!("{base}/v2/w/app/blobs/{d}"), &[], "").await;
        assert_eq!(r.body, data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expires_cached_content_from_a_schedule_that_survives_a_restart() {
    tools();
    let ks3 = shared_ks3();
    let up = upstream(&ks3, "up-ttl", String::new());
    let work = tempfile::tempdir().expect("work");
    let layout = image(&work.path().join("img"), "ttl\n", 64 << 10).await;
    push(&layout, &format!("docker://{}/t/app:v1", up.host), None).await;
    let mroot = root("mirror-ttl");
    let yaml = proxy_yaml(&up.base, None, "8s");
    let m = mirror(&ks3, &mroot, &yaml).await;
    let through = format!("docker://{}/t/app:v1", m.host);
    pull(&through, &work.path().join("first"), None)
        .await
        .expect("pull through");
    // The schedule is in the bucket: the manifest's before it was answered, the blobs'
    // once their flights stored them (the client's last byte can come first).
    let expiry_dir = "/docker/registry/v2/_proxy/expiry";
    let scheduled = m.registry.driver().clone();
    eventually("manifest, config and layer scheduled", || {
        let driver = scheduled.clone();
        async move { driver.list(expiry_dir).await.unwrap_or_default().len() >= 3 }
    })
    .await;
    let layer_links = "/docker/registry/v2/repositories/t/app/_layers/sha256";
    eventually("config and layer linked", || {
        let driver = scheduled.clone();
        async move { driver.list(layer_links).await.unwrap_or_default().len() >= 2 }
    })
    .await;
    // Restart (the first instance stops before anything expired), upstream gone.
    drop(m);
    drop(up);
    let m = mirror(&ks3, &mroot, &yaml).await;
    let manifest_url = format!("{}/v2/t/app/manifests/v1", m.base);
    let r = request(Method::GET, &manifest_url, &[], "").await;
    assert_eq!(r.status, StatusCode::OK, "cached, upstream down");
    let layers = m
        .registry
        .driver()
        .list("/docker/registry/v2/repositories/t/app/_layers/sha256")
        .await
        .expect("layer links");
    assert!(!layers.is_empty());
    eventually("the cached manifest expires", || {
        let url = manifest_url.clone();
        async move { request(Method::GET, &url, &[], "").await.status == StatusCode::NOT_FOUND }
    })
    .await;
    let driver = m.registry.driver().clone();
    eventually("every cached item expires and the schedule empties", || {
        let driver = driver.clone();
        async move {
            let layers = driver
                .list("/docker/registry/v2/repositories/t/app/_layers/sha256")
                .await
                .unwrap_or_default();
            let entries = driver.list(expiry_dir).await.unwrap_or_default();
            layers.is_empty() && entries.is_empty()
        }
    })
    .await;
    assert!(pull(&through, &work.path().join("gone"), None)
        .await
        .is_err());
}

/// A TCP relay to `target` that passes the target's answers on at about `rate` bytes/s
/// (requests go through at once).
async fn slow_relay(target: String, rate: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut buf = vec![0u8; 16 << 10];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let pause = Duration::from_secs_f64(n as f64 / rate as f64);
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_pull_is_streamed_while_the_blob_is_stored() {
    use http_body_util::{BodyExt, Empty};
    common::distribution::require_docker_registry();
    let ks3 = shared_ks3();
    // The upstream serves blob bytes itself (no redirect), through a 1 MiB/s relay.
    let up = Distribution::start(
        &S3Target::of(&ks3, &root("up-stream")),
        &Options {
            redirect: false,
            ..Default::default()
        },
    );
    let data = bytes(4 << 20, 9);
    let d = upload(&up.base, "s/app", &data).await;
    let relay = slow_relay(up.host.clone(), 1 << 20).await;
    let m = mirror(
        &ks3,
        &root("mirror-stream"),
        &proxy_yaml(&relay, None, "168h"),
    )
    .await;
    let hex = d.strip_prefix("sha256:").expect("sha256");
    let link = format!("/docker/registry/v2/repositories/s/app/_layers/sha256/{hex}/link");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let started = Instant::now();
    let resp = client
        .get(
            format!("{}/v2/s/app/blobs/{d}", m.base)
                .parse()
                .expect("uri"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    eprintln!("headers at {:?}", started.elapsed());
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let first = body.frame().await.expect("a frame").expect("bytes");
    got.extend_from_slice(first.data_ref().expect("data"));
    let first_at = started.elapsed();
    eprintln!("first frame {} bytes at {first_at:?}", got.len());
    assert!(
        m.registry.driver().stat(&link).await.is_err(),
        "the blob was linked before its bytes were all fetched"
    );
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.expect("frame").into_data() {
            got.extend_from_slice(&d);
        }
    }
    let total = started.elapsed();
    assert_eq!(sha256(&got), d);
    eprintln!("first bytes after {first_at:?}, the whole blob after {total:?}");
    assert!(
        first_at * 4 < total,
        "the first bytes came at {first_at:?} of {total:?}: not streamed"
    );
    let driver = m.registry.driver().clone();
    eventually("the blob is linked once stored", || {
        let (driver, link) = (driver.clone(), link.clone());
        async move { driver.stat(&link).await.is_ok() }
    })
    .await;
    // And is now served from the cache, not the (slow) upstream.
    let r = request(
        Method::GET,
        &format!("{}/v2/s/app/blobs/{d}", m.base),
        &[],
        "",
    )
    .await;
    assert_eq!(sha256(&r.body), d);
}
