//! The registries side by side: `ks3-driver registry` (the driver component) and
//! distribution's own registry 2.8.2 (Debian's `docker-registry`, its native `s3` driver,
//! AWS4), on the same local KS3 server, each under its own root directory, pushed to and
//! pulled from by the same OCI client (`oci-client`, default concurrency, monolithic
//! blob uploads as skopeo's single PATCH does) in the same run.
//!
//! Each image is pushed once to each registry, then pulled two ways: as configured by
//! default, where blob GETs answer 307 to a presigned KS3 URL (the client then reads
//! from KS3, so the registries differ only in the redirect), and with
//! `storage.redirect.disable`, where the registry streams every blob itself (a second
//! instance of each on the same root). Every pull runs twice, alternating between the
//! registries, and the faster run counts: a lone 1 GiB pull moved with the order it ran
//! in.
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ks3_driver_host::{Params, Runtime};
use ks3_registry::{Config, Registry, Storage};
use oci_client::client::{ClientConfig, ClientProtocol, Config as OciConfig, ImageLayer};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use super::{err, mibps, size_name, MIB};
use crate::image::Image;

/// The peer registry's program (Debian package `docker-registry`).
pub(crate) const DISTRIBUTION: &str = "docker-registry";

/// One image shape: its layer sizes.
struct Shape {
    name: String,
    layers: Vec<u64>,
}

/// One registry as the benchmark reaches it: where blobs redirect, and where they are
/// streamed by the registry.
struct Endpoints {
    redirecting: String,
    streaming: String,
}

/// Push and pull times of one shape through one registry.
#[derive(Clone, Copy)]
struct Times {
    push: Duration,
    pull_redirected: Duration,
    pull_streamed: Duration,
}

/// The shapes of a run: one big layer, and many small ones.
fn shapes(quick: bool) -> Vec<Shape> {
    let (big_mib, small_count, small_kib) = if quick { (64, 20, 64) } else { (1024, 200, 64) };
    vec![
        Shape {
            name: format!("1 layer of {}", size_name(big_mib)),
            layers: vec![(big_mib * MIB) as u64],
        },
        Shape {
            name: format!("{small_count} layers of {small_kib} KiB"),
            layers: vec![(small_kib as u64) << 10; small_count],
        },
    ]
}

/// Runs the comparison against the local server at `endpoint` (the benchmark's bucket
/// and keys in `params`) and returns the Markdown table, or why it was skipped.
pub async fn compare(runtime: &Runtime, params: &Params, quick: bool) -> Result<String, String> {
    if !installed() {
        return Err(format!(
            "`{DISTRIBUTION}` (distribution 2.8.2) is not installed: `apt-get install docker-registry` adds the comparison"
        ));
    }
    let shapes = shapes(quick);
    // oci-client's HTTP client needs a process-wide rustls provider, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // Ours, in this process.
    let mut ours_params = params.clone();
    ours_params.insert("rootdirectory".into(), "/bench-registry-ks3-driver".into());
    let config = Config {
        storage: Storage::Ks3(ours_params),
        ..Config::default()
    };
    let (ours_redirecting, serving_redirecting) = serve_ours(config.clone(), runtime).await?;
    let streaming_config = Config {
        redirect_disabled: true,
        ..config
    };
    let (ours_streaming, serving_streaming) = serve_ours(streaming_config, runtime).await?;
    let ours = Endpoints {
        redirecting: ours_redirecting,
        streaming: ours_streaming,
    };

    // Distribution's, in their own processes, on one root.
    let dir = tempfile::tempdir().map_err(err)?;
    let peer_redirecting = Distribution::start(&dir.path().join("redirecting"), params, true)?;
    let peer_streaming = Distribution::start(&dir.path().join("streaming"), params, false)?;
    peer_redirecting.wait_ready().await?;
    peer_streaming.wait_ready().await?;
    let theirs = Endpoints {
        redirecting: peer_redirecting.addr.clone(),
        streaming: peer_streaming.addr.clone(),
    };

    let mut results = Vec::new();
    for (i, shape) in shapes.iter().enumerate() {
        let image = Image::generate(&shape.layers, i as u64);
        let repo = format!("bench/shape{i}");
        let (o, t) = push_and_pull_both(&ours, &theirs, &repo, &image)
            .await
            .map_err(|e| format!("{}: {e}", shape.name))?;
        results.push((
            shape,
            usize::try_from(image.total_bytes()).unwrap_or(usize::MAX),
            o,
            t,
        ));
    }
    serving_redirecting.abort();
    serving_streaming.abort();
    drop(peer_redirecting);
    drop(peer_streaming);

    let mut out = String::from(
        "\nRegistries (same KS3 server, same client; push and pull of whole images; pulls best \
         of 2, alternating; redirected: blob GETs answer 307 to KS3, the default; streamed: \
         storage.redirect.disable, the registry sends the bytes):\n\n\
         | image | ks3-driver registry | distribution 2.8.2 (s3) | ks3-driver / distribution | target |\n\
         |---|---:|---:|---:|---|\n",
    );
    for (shape, bytes, ours, theirs) in results {
        for (what, o, t) in [
            ("push", ours.push, theirs.push),
            (
                "pull redirected",
                ours.pull_redirected,
                theirs.pull_redirected,
            ),
            ("pull streamed", ours.pull_streamed, theirs.pull_streamed),
        ] {
            // Speed ratio: > 1 means ours is faster.
            let ratio = t.as_secs_f64() / o.as_secs_f64().max(1e-9);
            let _ = writeln!(
                out,
                "| {what} {} (MiB/s) | {:.1} | {:.1} | {ratio:.2}× | ≥ 1×: {} |",
                shape.name,
                mibps(bytes, o),
                mibps(bytes, t),
                if ratio >= 1.0 { "met" } else { "MISSED" }
            );
        }
    }
    Ok(out)
}

pub(crate) fn installed() -> bool {
    Command::new(DISTRIBUTION)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ours, in this process, with `config`: its address and the task serving it.
async fn serve_ours(
    config: Config,
    runtime: &Runtime,
) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let registry = Arc::new(
        Registry::with_runtime(config, runtime)
            .await
            .map_err(|e| format!("ks3-driver registry: {e}"))?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let addr = listener.local_addr().map_err(err)?.to_string();
    let serving = tokio::spawn(async move {
        let _ = registry.serve(listener).await;
    });
    Ok((addr, serving))
}

/// A client as skopeo pushes: plain HTTP, one monolithic upload per blob.
fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: true,
        ..ClientConfig::default()
    })
}

/// Pushes `image` as `repo:latest` to each registry, then pulls it back from each, both
/// ways, twice, alternating (ours first, then theirs, then ours…); checks the bytes of
/// every pull. The faster of each pair counts.
async fn push_and_pull_both(
    ours: &Endpoints,
    theirs: &Endpoints,
    repo: &str,
    image: &Image,
) -> Result<(Times, Times), String> {
    let ours_push = push(&ours.redirecting, repo, image)
        .await
        .map_err(|e| format!("ks3-driver registry: {e}"))?;
    let theirs_push = push(&theirs.redirecting, repo, image)
        .await
        .map_err(|e| format!("distribution: {e}"))?;
    let mut best = [[Duration::MAX; 2]; 2];
    for _round in 0..2 {
        for (who, endpoints) in [ours, theirs].into_iter().enumerate() {
            let name = if who == 0 {
                "ks3-driver registry"
            } else {
                "distribution"
            };
            for (how, addr) in [&endpoints.redirecting, &endpoints.streaming]
                .into_iter()
                .enumerate()
            {
                let t = pull(addr, repo, image)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                best[who][how] = best[who][how].min(t);
            }
        }
    }
    let times = |push, pulls: [Duration; 2]| Times {
        push,
        pull_redirected: pulls[0],
        pull_streamed: pulls[1],
    };
    Ok((times(ours_push, best[0]), times(theirs_push, best[1])))
}

fn reference(addr: &str, repo: &str) -> Reference {
    Reference::with_tag(addr.to_string(), repo.to_string(), "latest".into())
}

/// Pushes `image` to `addr` as `repo:latest`; the time it took.
async fn push(addr: &str, repo: &str, image: &Image) -> Result<Duration, String> {
    let layers: Vec<ImageLayer> = image
        .layers
        .iter()
        .map(|l| ImageLayer::new(l.clone(), IMAGE_LAYER_MEDIA_TYPE.to_string(), None))
        .collect();
    let config = OciConfig::new(image.config.clone(), IMAGE_CONFIG_MEDIA_TYPE.into(), None);
    let t = Instant::now();
    client()
        .push(
            &reference(addr, repo),
            &layers,
            config,
            &RegistryAuth::Anonymous,
            None,
        )
        .await
        .map_err(|e| format!("push: {e}"))?;
    Ok(t.elapsed())
}

/// Pulls `repo:latest` from `addr`, checks its layers against `image`; the time it took.
async fn pull(addr: &str, repo: &str, image: &Image) -> Result<Duration, String> {
    let t = Instant::now();
    let pulled = client()
        .pull(
            &reference(addr, repo),
            &RegistryAuth::Anonymous,
            vec![IMAGE_LAYER_MEDIA_TYPE],
        )
        .await
        .map_err(|e| format!("pull from {addr}: {e}"))?;
    let took = t.elapsed();
    // The client collects layers in the order their downloads finish.
    let digests = |layers: &mut dyn Iterator<Item = &[u8]>| {
        let mut v: Vec<[u8; 32]> = layers.map(|l| Sha256::digest(l).into()).collect();
        v.sort_unstable();
        v
    };
    if digests(&mut pulled.layers.iter().map(|l| &l.data[..]))
        != digests(&mut image.layers.iter().map(|l| &l[..]))
    {
        return Err(format!(
            "the layers pulled from {addr} differ from the pushed ones"
        ));
    }
    Ok(took)
}

/// distribution's registry in a child process, killed on drop.
pub(crate) struct Distribution {
    child: Child,
    pub(crate) addr: String,
}

/// distribution's `config.yml` in `dir` (created) for the local server of `params`,
/// storing under `root`, listening on `addr`; `redirect` false sets
/// `storage.redirect.disable`. Its path.
pub(crate) fn write_config(
    dir: &Path,
    params: &Params,
    root: &str,
    addr: &str,
    redirect: bool,
) -> Result<std::path::PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(err)?;
    let get = |k: &str| {
        params
            .get(k)
            .cloned()
            .ok_or_else(|| format!("benchmark parameters lack {k}"))
    };
    // Keys go into a file only this user can read, never onto a command line.
    let yaml = format!(
        "version: 0.1\n\
             log: {{level: error, accesslog: {{disabled: true}}}}\n\
             storage:\n  \
               s3:\n    \
                 accesskey: \"{}\"\n    \
                 secretkey: \"{}\"\n    \
                 region: us-east-1\n    \
                 regionendpoint: \"{}\"\n    \
                 bucket: \"{}\"\n    \
                 rootdirectory: {root}\n    \
                 v4auth: true\n    \
                 secure: false\n  \
               delete: {{enabled: true}}\n  \
               redirect: {{disable: {}}}\n  \
               maintenance: {{uploadpurging: {{enabled: false}}}}\n\
             http: {{addr: \"{addr}\", secret: bench-only-secret}}\n\
             health: {{storagedriver: {{enabled: false}}}}\n",
        get("accesskey")?,
        get("secretkey")?,
        get("regionendpoint")?,
        get("bucket")?,
        !redirect,
    );
    let path = dir.join("config.yml");
    let mut f = open_private(&path)?;
    f.write_all(yaml.as_bytes()).map_err(err)?;
    drop(f);
    Ok(path)
}

impl Distribution {
    /// Started with its config file in `dir` (created), storing under
    /// `/bench-registry-distribution`; `redirect` false sets `storage.redirect.disable`.
    pub(crate) fn start(
        dir: &Path,
        params: &Params,
        redirect: bool,
    ) -> Result<Distribution, String> {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").map_err(err)?;
            l.local_addr().map_err(err)?.to_string()
        };
        let path = write_config(dir, params, "/bench-registry-distribution", &addr, redirect)?;
        let child = Command::new(DISTRIBUTION)
            .arg("serve")
            .arg(&path)
            // Its Go SDK panics on the CA bundle some environments name; KS3 here is HTTP.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {DISTRIBUTION}: {e}"))?;
        Ok(Distribution { child, addr })
    }

    pub(crate) async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(s) = tokio::net::TcpStream::connect(&self.addr).await {
                drop(s);
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "{DISTRIBUTION} did not listen on {} within 30 s",
            self.addr
        ))
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn open_private(path: &Path) -> Result<std::fs::File, String> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
