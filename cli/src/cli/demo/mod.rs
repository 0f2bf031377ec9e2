//! `ks3-driver demo`: the registry on the sandboxed KS3 driver component, pushed to and
//! pulled from through its HTTP API by a real OCI client library (`oci-client`), on an
//! embedded in-memory KS3 server.
//!
//! Every HTTP request the registry answers is printed with the driver calls it caused
//! (see [`trace`]): a push is distribution's upload flow (startedat, a writer resumed and
//! closed per PATCH, commit, move into `blobs/`, the repository's link), a pull is links,
//! the manifest, and redirects to presigned KS3 URLs that the client follows by itself.
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ks3_driver_host::{Driver, Params, WalkControl};
use ks3_registry::{Config, Registry, Storage};
use oci_client::client::{
    BlobResponse, ClientConfig, ClientProtocol, Config as OciConfig, ImageLayer,
};
use oci_client::manifest::{OciDescriptor, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tracing_subscriber::layer::SubscriberExt;

use super::progress::human;
use super::{CliError, Context};
use crate::image::Image;

mod trace;

/// `println!` that does not panic when stdout is closed (`ks3-driver demo | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
pub(crate) use say;

const ROOT: &str = "/docker/registry/v2";
const REPO: &str = "demo/app";
const TAG: &str = "latest";
const BUCKET: &str = "registry-demo";
const CHUNK_SIZE: u64 = 5 << 20;
/// Bytes of the ranged pull (a resumed download).
const RANGE: u64 = 4 << 20;
const MIB: u64 = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Small layers (about 14 MiB in all) for a quick check; the default image is about
    /// 140 MiB with a 104 MiB layer.
    #[arg(long)]
    pub quick: bool,
    /// Keep the registry and the local KS3 server running afterwards (until Ctrl-C) and
    /// print how to reach them.
    #[arg(long)]
    pub keep: bool,
}

fn failed(what: impl Into<String>) -> CliError {
    CliError::Other(format!("demo: {}", what.into()))
}

/// The demo's steps, in order; each prints what it did and checks what came back.
pub async fn run(ctx: &Context, args: &DemoArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let totals = Arc::new(trace::Totals::default());
    // The trace is the demo's output; a second subscriber (none is installed today) would
    // only make this fail, which is harmless: the demo then runs without the trace.
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(trace::DemoTrace::new(Arc::clone(&totals)))
            .with(super::logging::stderr_layer(ctx.cli.verbose)),
    );

    let stage = Stage::start(ctx).await?;
    let img = Image::generate(layer_sizes(args.quick), 0);
    say!(
        "image {REPO}:{TAG}: {} layers ({}) and a config blob",
        img.layers.len(),
        human(img.layer_bytes())
    );
    let client = OciClient::new(stage.addr);

    client.push(&img).await?;
    let manifest = client.pull_and_verify(&img).await?;
    client.ranged_pull(&img, &manifest).await?;
    client.tags_and_catalog().await?;
    let (objects, stored) = storage_after_push(stage.registry.driver()).await?;

    let took = started.elapsed();
    let moved = 2 * img.total_bytes() + RANGE;
    say!(
        "\ndemo done: {REPO}:{TAG} pushed and pulled through the registry's HTTP API; {} requests to the registry, {} driver calls, {} KS3 requests; {objects} objects ({}) stored; {} in {} ({})",
        totals.requests.load(std::sync::atomic::Ordering::Relaxed),
        totals.calls.load(std::sync::atomic::Ordering::Relaxed),
        stage.server.request_count(),
        human(stored),
        human(moved),
        time(took),
        rate(moved, took),
    );

    if args.keep {
        stage.keep_running().await;
    }
    stage.stop();
    Ok(())
}

fn layer_sizes(quick: bool) -> &'static [u64] {
    if quick {
        &[300 * 1024 + 7, 2 * MIB + 1, 11 * MIB + 3]
    } else {
        &[
            2 * MIB + 123,
            7 * MIB + 45,
            24 * MIB + 6789,
            104 * MIB + 321,
        ]
    }
}

/// The embedded KS3 server and the registry on the component, serving on a local port.
struct Stage {
    server: ks3_local::RunningServer,
    params: Params,
    registry: Arc<Registry>,
    addr: std::net::SocketAddr,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Stage {
    async fn start(ctx: &Context) -> Result<Stage, CliError> {
        let super::embedded::Embedded { server, mut params } =
            super::embedded::Embedded::start(BUCKET, "AKLTdemo")
                .map_err(|e| failed(format!("cannot start: {e}")))?;
        let endpoint = server.endpoint();
        say!("ks3-driver demo: an image pushed and pulled through the registry on the sandboxed KS3 driver component");
        say!(
            "local KS3 server {endpoint} (in memory), bucket {BUCKET}, chunksize {}",
            human(CHUNK_SIZE)
        );
        params.insert("chunksize".into(), CHUNK_SIZE.to_string());

        let t = Instant::now();
        let runtime = ctx.runtime()?;
        let config = Config {
            storage: Storage::Ks3(params.clone()),
            delete_enabled: true,
            ..Config::default()
        };
        let registry = Registry::with_runtime(config, &runtime)
            .await
            .map_err(|e| failed(format!("the registry did not start: {e}")))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| failed(format!("cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| failed(format!("listener: {e}")))?;
        let registry = Arc::new(registry);
        let serving = {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move { registry.serve(listener).await })
        };
        say!(
            "registry http://{addr} on the driver component (started in {}); client: oci-client, {} PATCHes",
            time(t.elapsed()),
            human(4 * MIB)
        );
        Ok(Stage {
            server,
            params,
            registry,
            addr,
            serving,
        })
    }

    /// `--keep`: serve until Ctrl-C, after saying how to reach both servers.
    async fn keep_running(&self) {
        say!("\nthe registry and the local KS3 server keep running until Ctrl-C:");
        say!(
            "  skopeo inspect --tls-verify=false docker://{}/{REPO}:{TAG}",
            self.addr
        );
        let flags: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| k.as_str() != "chunksize")
            .map(|(k, v)| format!("-p {k}={v}"))
            .collect();
        say!("  ks3-driver {} walk {ROOT}", flags.join(" "));
        let _ = std::io::Write::flush(&mut std::io::stdout());
        ks3_local::wait_for_signal().await;
    }

    fn stop(self) {
        self.serving.abort();
        drop(self.server);
    }
}

/// oci-client against the registry, one request at a time so that the trace reads in order.
struct OciClient {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
}

impl OciClient {
    fn new(addr: std::net::SocketAddr) -> OciClient {
        // oci-client's HTTP client needs a process-wide rustls provider even for plain
        // HTTP; an already installed one is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            max_concurrent_upload: 1,
            max_concurrent_download: 1,
            ..ClientConfig::default()
        });
        OciClient {
            client,
            reference: Reference::with_tag(addr.to_string(), REPO.to_string(), TAG.to_string()),
            auth: RegistryAuth::Anonymous,
        }
    }

    async fn push(&self, img: &Image) -> Result<(), CliError> {
        say!("\npush {REPO}:{TAG}");
        let layers: Vec<ImageLayer> = img
            .layers
            .iter()
            .map(|l| ImageLayer::new(l.clone(), IMAGE_LAYER_MEDIA_TYPE.to_string(), None))
            .collect();
        let oci_config = OciConfig::new(
            img.config.clone(),
            IMAGE_CONFIG_MEDIA_TYPE.to_string(),
            None,
        );
        let t = Instant::now();
        let pushed = self
            .client
            .push(&self.reference, &layers, oci_config, &self.auth, None)
            .await
            .map_err(|e| failed(format!("push: {e}")))?;
        let took = t.elapsed();
        say!(
            "pushed {} in {} ({}): {}",
            human(img.total_bytes()),
            time(took),
            rate(img.total_bytes(), took),
            pushed.manifest_url
        );
        Ok(())
    }

    /// Pulls the image and compares every blob with what was pushed; returns the manifest's
    /// layer descriptors.
    async fn pull_and_verify(&self, img: &Image) -> Result<Vec<OciDescriptor>, CliError> {
        say!("\npull {REPO}:{TAG}");
        let t = Instant::now();
        let pulled = self
            .client
            .pull(&self.reference, &self.auth, vec![IMAGE_LAYER_MEDIA_TYPE])
            .await
            .map_err(|e| failed(format!("pull: {e}")))?;
        let took = t.elapsed();
        if pulled.layers.len() != img.layers.len() {
            return Err(failed(format!(
                "pulled {} layers, pushed {}",
                pulled.layers.len(),
                img.layers.len()
            )));
        }
        for (i, (got, want)) in pulled.layers.iter().zip(&img.layers).enumerate() {
            if got.data != *want {
                return Err(failed(format!("layer {} came back different", i + 1)));
            }
        }
        if pulled.config.data != img.config {
            return Err(failed("the config blob came back different"));
        }
        say!(
            "pulled {} in {} ({}): the client fetched each blob from KS3 through the presigned URL of the 307; every layer's bytes verified against what was pushed, sha256 verified by the client",
            human(img.total_bytes()),
            time(took),
            rate(img.total_bytes(), took)
        );
        pulled
            .manifest
            .map(|m| m.layers)
            .ok_or_else(|| failed("the pulled image has no manifest"))
    }

    /// A resumed download: a range of the largest layer, through the same redirect.
    async fn ranged_pull(&self, img: &Image, layers: &[OciDescriptor]) -> Result<(), CliError> {
        let (biggest, layer) = img
            .layers
            .iter()
            .enumerate()
            .max_by_key(|(_, l)| l.len())
            .ok_or_else(|| failed("no layers"))?;
        let descriptor = layers
            .get(biggest)
            .ok_or_else(|| failed("the pulled manifest has too few layers"))?;
        let offset = layer.len() as u64 / 3;
        say!(
            "\nranged pull: {} from byte {offset} of layer {}",
            human(RANGE),
            biggest + 1
        );
        let t = Instant::now();
        let partial = self
            .client
            .pull_blob_stream_partial(&self.reference, descriptor, offset, Some(RANGE))
            .await
            .map_err(|e| failed(format!("ranged pull: {e}")))?;
        let BlobResponse::Partial(mut stream) = partial else {
            return Err(failed("the ranged pull was answered with the whole blob"));
        };
        let mut got = Vec::new();
        while let Some(chunk) = stream.stream.next().await {
            got.extend_from_slice(&chunk.map_err(|e| failed(format!("ranged pull: {e}")))?);
        }
        let want = layer
            .get(offset as usize..(offset + RANGE) as usize)
            .ok_or_else(|| failed("the largest layer is shorter than the range"))?;
        if got != want {
            return Err(failed("the ranged pull returned other bytes"));
        }
        say!(
            "range of {} bytes verified in {}",
            got.len(),
            time(t.elapsed())
        );
        Ok(())
    }

    async fn tags_and_catalog(&self) -> Result<(), CliError> {
        say!("\ntags and catalog");
        let tags = self
            .client
            .list_tags(&self.reference, &self.auth, None, None)
            .await
            .map_err(|e| failed(format!("tags list: {e}")))?;
        let catalog = self
            .client
            .catalog(&self.reference, &self.auth, None, None)
            .await
            .map_err(|e| failed(format!("catalog: {e}")))?;
        say!(
            "tags of {}: {:?}; catalog: {:?}",
            tags.name,
            tags.tags,
            catalog.repositories
        );
        if tags.tags != [TAG] || catalog.repositories != [REPO] {
            return Err(failed("the tag list or the catalog is not what was pushed"));
        }
        Ok(())
    }
}

/// What is left in the bucket, checked through the driver directly: no upload directory,
/// and how many objects of what size.
async fn storage_after_push(driver: &Driver) -> Result<(u64, u64), CliError> {
    say!("\nstorage after the push");
    let uploads = format!("{ROOT}/repositories/{REPO}/_uploads");
    match driver.stat(&uploads).await {
        Err(e) if e.is_not_found() => say!(
            "  {} → not found: every upload was cleaned up",
            shown(&uploads)
        ),
        Err(e) => return Err(CliError::driver("stat", &uploads, e)),
        Ok(_) => return Err(failed("upload directories were left behind")),
    }
    let (objects, stored) = count_objects(driver).await?;
    say!("  {ROOT}: {objects} objects, {}", human(stored));
    Ok((objects, stored))
}

async fn count_objects(driver: &Driver) -> Result<(u64, u64), CliError> {
    let (mut objects, mut stored) = (0u64, 0u64);
    driver
        .walk(ROOT, None, |info| {
            if !info.is_dir {
                objects += 1;
                stored += info.size;
            }
            Ok(WalkControl::Continue)
        })
        .await
        .map_err(|e| CliError::driver("walk", ROOT, e))?;
    Ok((objects, stored))
}

fn time(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn rate(bytes: u64, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-6);
    format!("{}/s", human((bytes as f64 / secs) as u64))
}

/// `…/repositories/demo/app/x` → `x`, `…/v2/blobs/y` → `blobs/y`, for display.
fn shown(path: &str) -> String {
    let repo = format!("{ROOT}/repositories/{REPO}/");
    if let Some(rest) = path.strip_prefix(&repo) {
        return rest.to_string();
    }
    path.strip_prefix(&format!("{ROOT}/"))
        .unwrap_or(path)
        .to_string()
}

/// The paths of a driver call (`move` has two), shortened for display.
fn shown_paths(paths: &str) -> String {
    paths
        .split(' ')
        .map(|p| compact(&shown(p)))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Shortens long hex runs (digests, upload ids) in a displayed path.
fn compact(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let (prefix, rest) = match seg.split_once(':') {
                Some((alg, hex)) => (format!("{alg}:"), hex),
                None => (String::new(), seg),
            };
            if rest.len() > 16 && rest.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-') {
                format!("{prefix}{}…", &rest[..8])
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_helpers() {
        let blob = format!("{ROOT}/blobs/sha256/ab/{}/data", "ab".repeat(32));
        assert_eq!(compact(&shown(&blob)), "blobs/sha256/ab/abababab…/data");
        let link = format!(
            "{ROOT}/repositories/{REPO}/_layers/sha256/{}/link",
            "c".repeat(64)
        );
        assert_eq!(compact(&shown(&link)), "_layers/sha256/cccccccc…/link");
        assert_eq!(
            compact("/v2/demo/app/blobs/sha256:0123456789abcdef0123"),
            "/v2/demo/app/blobs/sha256:01234567…"
        );
        assert_eq!(shown_paths(&format!("{ROOT}/a {ROOT}/b")), "a → b");
        assert_eq!(
            compact("/v2/demo/app/manifests/latest"),
            "/v2/demo/app/manifests/latest"
        );
    }
}
