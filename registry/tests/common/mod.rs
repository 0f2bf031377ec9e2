//! Shared by the registry's integration tests: registries served over real sockets on
//! the real component, backed by `ks3-local`, and a plain HTTP client.
#![allow(dead_code)]

pub mod distribution;
pub mod token_server;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ks3_driver_host::Params;
use ks3_registry::{Config, Registry, Storage};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

/// A registry serving on `127.0.0.1:<port>` until dropped.
pub struct Served {
    pub registry: Arc<Registry>,
    pub base: String,
    pub host: String,
    task: JoinHandle<()>,
    /// The in-memory KS3 server of [`serve_yaml`]; it stops with the registry.
    _ks3: Option<ks3_local::RunningServer>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(config: Config) -> Served {
    let registry = Registry::new(config).await.expect("registry starts");
    serve_registry(registry, None).await
}

async fn serve_registry(registry: Registry, ks3: Option<ks3_local::RunningServer>) -> Served {
    let registry = Arc::new(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let r = Arc::clone(&registry);
    let task = tokio::spawn(async move {
        let _ = r.serve(listener).await;
    });
    Served {
        registry,
        base: format!("http://{addr}"),
        host: addr.to_string(),
        task,
        _ks3: ks3,
    }
}

/// A registry on an in-memory KS3 server of its own (what `ks3-driver registry` starts
/// when no storage is configured), configured by `yaml`.
pub async fn serve_yaml(yaml: &str) -> Served {
    let mut config = Config::from_yaml(yaml).expect("valid config");
    assert_eq!(config.storage, Storage::Embedded);
    let (ak, sk) = ("AKLTembedded", "embedded-secret-key");
    let server =
        ks3_local::start_in_background(ks3_local::ServerConfig::memory("registry", ak, sk))
            .expect("in-memory KS3 server");
    let params: Params = [
        ("accesskey", ak),
        ("secretkey", sk),
        ("region", "ks3-cn-beijing"),
        ("bucket", "registry"),
        ("regionendpoint", server.endpoint().as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // As the command line does: the server is on loopback, the registry serves blobs.
    config.redirect_disabled = true;
    let driver = ks3_driver_host::Driver::new(params).await.expect("driver");
    let registry = Registry::with_driver(config, driver)
        .await
        .expect("registry starts");
    serve_registry(registry, Some(server)).await
}

/// A local KS3 server shared by several registries, and the driver parameters for it.
pub struct SharedKs3 {
    pub server: ks3_local::RunningServer,
    pub params: Params,
}

pub fn shared_ks3() -> SharedKs3 {
    let server = ks3_tests::start_server(|_| {});
    let mut params = ks3_tests::params_on(&server.endpoint(), "");
    // The registry's own layout at the bucket's root, in the driver's default chunks.
    params.remove("rootdirectory");
    params.remove("chunksize");
    SharedKs3 { server, params }
}

/// A registry on the shared server, configured by `yaml` (without a storage section).
pub async fn serve_shared(ks3: &SharedKs3, yaml: &str) -> Served {
    let mut config = Config::from_yaml(yaml).expect("valid config");
    config.storage = Storage::Ks3(ks3.params.clone());
    serve(config).await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first error code of a spec error body.
    pub fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// One request; redirects are not followed.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).expect("request");
    let resp = client.request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes().to_vec();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Pushes `data` as a blob of `repo` in one `POST ?digest=`; returns its digest.
pub async fn push_blob(base: &str, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = request(
        Method::POST,
        &format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"),
        &[("content-type", "application/octet-stream")],
        data.to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    d
}

/// An OCI image manifest of `config` and `layers` (digest, size), optional subject.
pub fn oci_manifest(
    config: (&str, usize),
    layers: &[(&str, usize)],
    subject: Option<(&str, usize)>,
    artifact_type: Option<&str>,
) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s
        })).collect::<Vec<_>>(),
    });
    if let Some((d, s)) = subject {
        m["subject"] = serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s
        });
    }
    if let Some(t) = artifact_type {
        m["artifactType"] = serde_json::json!(t);
    }
    serde_json::to_vec(&m).expect("json")
}

/// Fails (never skips) when an independent client the test needs is missing.
pub fn require(tool: &str, install: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is needed by this test and is not installed: {install} (.ci/run does this)"
    );
}

/// Fails (never skips) when a Python module a test needs is missing.
pub fn require_python_module(module: &str, install: &str) {
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "the Python module `{module}` is needed by this test and is not installed: {install} (.ci/run does this)"
    );
}

/// The environment that gives a registry client (skopeo, the oras scripts) no stored
/// credentials. Both keep logins in the user's home (`~/.docker/config.json`, skopeo's
/// `auth.json`) and send them unasked to the registry a login named, and oras's `login`
/// writes there. A login one test made for `127.0.0.1:<port>` is then sent by any later
/// run whose registry draws the same port (the likely cause of a CI run where skopeo's
/// anonymous pull from a token-auth registry succeeded). So every client a test runs looks
/// at a path nobody writes (a test that logs in keeps the login in its own directory), and
/// no test writes into the developer's own credentials.
pub fn no_stored_credentials() -> [(&'static str, std::path::PathBuf); 2] {
    let nowhere = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-stored-credentials");
    [
        ("REGISTRY_AUTH_FILE", nowhere.join("auth.json")),
        ("DOCKER_CONFIG", nowhere),
    ]
}

/// Runs a command (with [`no_stored_credentials`]); panics with its output if it fails.
/// Returns stdout.
pub async fn run(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program)
        .envs(no_stored_credentials())
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
