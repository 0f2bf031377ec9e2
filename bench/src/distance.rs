//! "At 20 ms" (issue 29): both registries where KS3 really is — a `ks3-local` answering
//! every request [`LATENCY`] late (`ServerConfig::latency`, each request on its own, so
//! concurrent ones overlap), in this process — instead of on loopback, where a push costs
//! CPU; at a distance it costs the KS3 requests it waits on one after another.
//!
//! For `ks3-driver registry` (in this process) and distribution 2.8.2 (a child process,
//! its `s3` driver), each on its own root of the same server, by the same bare client
//! ([`crate::regclient`]):
//!
//! * a 3-layer image (one large layer, two small) pushed as skopeo pushes (every blob
//!   `HEAD`, `POST`, one `PATCH`, `PUT`; the layers at once, then the config, then the
//!   manifest) and pulled (blobs at once, redirects to KS3 followed);
//! * small images (8 layers of 64 KiB each) pushed and pulled by a sequential client
//!   with monolithic uploads (`POST`, `PUT ?digest=` with the body), one request at a time;
//! * one isolated blob upload (64 KiB) per flow, and one manifest `PUT`: the KS3
//!   requests each causes, and its *critical path* — the KS3 requests it waited on in
//!   sequence — measured as the time it takes at 20 ms minus the time the same request
//!   takes against a second server at 0 ms, in units of 20 ms (requests that overlap
//!   count once; the registry's and the client's own time cancel out). Averaged over
//!   several uploads, and given per client request;
//! * the GC mark of a store of many images with half of their manifests deleted (written
//!   straight into distribution's layout through the driver): `ks3-driver gc --dry-run -m`
//!   against `docker-registry garbage-collect --dry-run -m`, whole processes, on the same
//!   root, with the blobs each marked.
//!
//! Time ratios are speed ratios (distribution's time / ours: above 1 ours is faster);
//! count ratios are ours / distribution's (below 1 ours sends fewer).
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use ks3_driver_host::{Driver, Params, Runtime};
use ks3_local::{RunningServer, ServerConfig};
use ks3_registry::digest::Digest;
use ks3_registry::{layout, Config, Registry, Storage};

use crate::image::Image;
use crate::regclient::{self, BlobRef, Flow};
use crate::registries::{self, Distribution, DISTRIBUTION};
use crate::server::{AK, BUCKET, SK};
use crate::{err, size_name, Progress, MIB};

/// The distance of the table's server.
pub const LATENCY: Duration = Duration::from_millis(20);

/// What one run measures.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    big_layer: usize,
    small_images: usize,
    small_layers: usize,
    small_layer: usize,
    /// Isolated uploads (and manifest PUTs) per flow and server; their mean counts. With
    /// more than one, a first upload into the repository is left out of the figures.
    isolated: usize,
    /// Pulls of each image from each registry, alternating; the fastest counts.
    pull_rounds: usize,
    gc_images: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                big_layer: MIB,
                small_images: 1,
                small_layers: 2,
                small_layer: 16 << 10,
                isolated: 1,
                pull_rounds: 1,
                gc_images: 4,
            }
        } else {
            Sizes {
                big_layer: 60 * MIB,
                small_images: 4,
                small_layers: 8,
                small_layer: 64 << 10,
                isolated: 8,
                pull_rounds: 2,
                gc_images: 300,
            }
        }
    }
}

/// The two small layers of the 3-layer image.
const SMALL_OF_THREE: [u64; 2] = [512 << 10, 16 << 10];
/// The isolated uploads' blob size.
const ISOLATED_BLOB: usize = 64 << 10;

/// An isolated operation's figures: KS3 requests and critical path per operation, and
/// the critical path of each of its client requests.
#[derive(Debug, Clone, Default)]
struct Isolated {
    requests: f64,
    critical: f64,
    by_step: Vec<(&'static str, f64)>,
}

/// One registry's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    big_push: Duration,
    big_push_requests: u64,
    big_pull: Duration,
    big_pull_requests: u64,
    small_push: Duration,
    small_push_requests: u64,
    small_pull: Duration,
    small_pull_requests: u64,
    monolithic: Isolated,
    skopeo: Isolated,
    manifest: Isolated,
    gc: Duration,
    /// distribution's closing line's figures: blobs marked, blobs and manifests eligible.
    gc_counts: Option<(u64, u64, u64)>,
}

/// One registry at both distances.
struct Side {
    name: &'static str,
    far: regclient::Registry,
    near: regclient::Registry,
}

fn server(latency: Duration) -> Result<RunningServer, String> {
    let mut c = ServerConfig::memory(BUCKET, AK, SK);
    c.latency = latency;
    ks3_local::start_in_background(c).map_err(|e| format!("cannot start ks3-local: {e:#}"))
}

fn params_of(server: &RunningServer) -> Params {
    crate::local_params(&server.endpoint())
}

/// The table, or why it was skipped. `child_args` are the global options a child
/// `ks3-driver` needs (`--component`).
pub async fn compare(
    runtime: &Runtime,
    quick: bool,
    child_args: &[String],
    say: &Progress,
) -> Result<String, String> {
    if !registries::installed() {
        return Err(format!(
            "`{DISTRIBUTION}` (distribution 2.8.2) is not installed: `apt-get install docker-registry` adds the comparison"
        ));
    }
    let sizes = Sizes::new(quick);
    let far = server(LATENCY)?;
    let near = server(Duration::ZERO)?;

    // Ours on each server, in this process (redirects on: the default with storage).
    let mut serving = Vec::new();
    let mut ours_addr = Vec::new();
    for s in [&far, &near] {
        let mut p = params_of(s);
        p.insert("rootdirectory".into(), "/bench-distance-ks3-driver".into());
        let config = Config {
            storage: Storage::Ks3(p),
            ..Config::default()
        };
        let registry = Arc::new(
            Registry::with_runtime(config, runtime)
                .await
                .map_err(|e| format!("ks3-driver registry: {e}"))?,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(err)?;
        ours_addr.push(listener.local_addr().map_err(err)?.to_string());
        serving.push(tokio::spawn(async move {
            let _ = registry.serve(listener).await;
        }));
    }
    // Theirs, in child processes.
    let dir = tempfile::tempdir().map_err(err)?;
    let peer_far = Distribution::start(&dir.path().join("far"), &params_of(&far), true)?;
    let peer_near = Distribution::start(&dir.path().join("near"), &params_of(&near), true)?;
    peer_far.wait_ready().await?;
    peer_near.wait_ready().await?;
    let sides = [
        Side {
            name: "ks3-driver registry",
            far: regclient::Registry::new(&ours_addr[0]),
            near: regclient::Registry::new(&ours_addr[1]),
        },
        Side {
            name: "distribution",
            far: regclient::Registry::new(&peer_far.addr),
            near: regclient::Registry::new(&peer_near.addr),
        },
    ];

    let mut figures = [Figures::default(), Figures::default()];
    let small = small_images(&sizes);
    let measured = async {
        images(&sizes, &sides, &far, &small, &mut figures).await?;
        say("at 20 ms: images done");
        for (i, side) in sides.iter().enumerate() {
            figures[i].monolithic = isolated_uploads(&sizes, side, &far, Flow::Monolithic)
                .await
                .map_err(|e| format!("{}: {e}", side.name))?;
            figures[i].skopeo = isolated_uploads(&sizes, side, &far, Flow::Skopeo)
                .await
                .map_err(|e| format!("{}: {e}", side.name))?;
            figures[i].manifest = isolated_manifests(&sizes, side, &far, &small[0])
                .await
                .map_err(|e| format!("{}: {e}", side.name))?;
        }
        say("at 20 ms: isolated uploads done");
        gc(&sizes, runtime, &far, child_args, dir.path(), &mut figures).await?;
        say("at 20 ms: gc done");
        Ok::<(), String>(())
    }
    .await;
    for s in serving {
        s.abort();
    }
    drop(peer_far);
    drop(peer_near);
    measured?;
    Ok(table(&sizes, &figures))
}

/// Requests the server saw during `f`, and its time.
async fn counted<F: std::future::Future<Output = Result<(), String>>>(
    server: &RunningServer,
    f: F,
) -> Result<(Duration, u64), String> {
    let before = server.request_count();
    let t = Instant::now();
    f.await?;
    let took = t.elapsed();
    Ok((took, server.request_count().saturating_sub(before)))
}

/// The small images, the same every run.
fn small_images(sizes: &Sizes) -> Vec<Image> {
    (0..sizes.small_images)
        .map(|i| {
            Image::generate(
                &vec![sizes.small_layer as u64; sizes.small_layers],
                2910 + i as u64,
            )
        })
        .collect()
}

/// The 3-layer image (skopeo's concurrent uploads) and the small images (a sequential
/// monolithic client), pushed to each registry, then pulled from each twice, alternating
/// (the faster pull counts; the first one's requests).
async fn images(
    sizes: &Sizes,
    sides: &[Side; 2],
    far: &RunningServer,
    small: &[Image],
    figures: &mut [Figures; 2],
) -> Result<(), String> {
    let mut shape = vec![sizes.big_layer as u64];
    shape.extend(SMALL_OF_THREE);
    let big = Image::generate(&shape, 2900);
    for (i, side) in sides.iter().enumerate() {
        let r = &side.far;
        let named = |e: String| format!("{}: {e}", side.name);
        let (t, n) = counted(
            far,
            r.push_image(
                "bench/three",
                "v1",
                &big.layers,
                big.config.clone(),
                Flow::Skopeo,
                true,
            ),
        )
        .await
        .map_err(named)?;
        (figures[i].big_push, figures[i].big_push_requests) = (t, n);
        let (t, n) = counted(far, async {
            for (k, img) in small.iter().enumerate() {
                r.push_image(
                    "bench/small",
                    &format!("v{k}"),
                    &img.layers,
                    img.config.clone(),
                    Flow::Monolithic,
                    false,
                )
                .await?;
            }
            Ok(())
        })
        .await
        .map_err(named)?;
        (figures[i].small_push, figures[i].small_push_requests) = (t, n);
    }
    for round in 0..sizes.pull_rounds {
        for (i, side) in sides.iter().enumerate() {
            let r = &side.far;
            let named = |e: String| format!("{}: {e}", side.name);
            let (t, n) = counted(far, r.pull_image("bench/three", "v1", true))
                .await
                .map_err(named)?;
            if round == 0 {
                figures[i].big_pull = t;
                figures[i].big_pull_requests = n;
            }
            figures[i].big_pull = figures[i].big_pull.min(t);
            let (t, n) = counted(far, async {
                for k in 0..small.len() {
                    r.pull_image("bench/small", &format!("v{k}"), false).await?;
                }
                Ok(())
            })
            .await
            .map_err(named)?;
            if round == 0 {
                figures[i].small_pull = t;
                figures[i].small_pull_requests = n;
            }
            figures[i].small_pull = figures[i].small_pull.min(t);
        }
    }
    Ok(())
}

/// A fresh 64 KiB blob, different for every `n`.
fn blob(n: u64) -> Bytes {
    Image::generate(&[ISOLATED_BLOB as u64], 7_000_000 + n)
        .layers
        .remove(0)
}

/// Critical path of each step: (time at 20 ms − time at 0 ms) / 20 ms, from the summed
/// times of `runs` operations.
fn critical(
    steps: &[&'static str],
    far: &[Duration],
    near: &[Duration],
    runs: usize,
) -> Vec<(&'static str, f64)> {
    steps
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let diff = far[k].as_secs_f64() - near[k].as_secs_f64();
            (*s, (diff / runs as f64 / LATENCY.as_secs_f64()).max(0.0))
        })
        .collect()
}

fn isolated(steps: Vec<(&'static str, f64)>, requests: u64, runs: usize) -> Isolated {
    Isolated {
        requests: requests as f64 / runs as f64,
        critical: steps.iter().map(|(_, c)| c).sum(),
        by_step: steps,
    }
}

/// `sizes.isolated` uploads of a fresh blob by `flow`, one at a time, into a repository
/// that exists already, at 20 ms and at 0 ms alternately.
async fn isolated_uploads(
    sizes: &Sizes,
    side: &Side,
    far_server: &RunningServer,
    flow: Flow,
) -> Result<Isolated, String> {
    let repo = format!("bench/isolated-{flow:?}").to_lowercase();
    let steps = flow.steps();
    let salt = if flow == Flow::Skopeo { 1 << 20 } else { 0 };
    if sizes.isolated > 1 {
        // Not measured: the repository's first upload.
        side.far.push_blob(&repo, blob(salt + 999), flow).await?;
        side.near.push_blob(&repo, blob(salt + 999), flow).await?;
    }
    let (mut far, mut near) = (
        vec![Duration::ZERO; steps.len()],
        vec![Duration::ZERO; steps.len()],
    );
    let mut requests = 0;
    for n in 0..sizes.isolated as u64 {
        let data = blob(salt + n);
        let before = far_server.request_count();
        let t = side.far.push_blob(&repo, data.clone(), flow).await?;
        requests += far_server.request_count().saturating_sub(before);
        far.iter_mut().zip(t).for_each(|(a, t)| *a += t);
        let t = side.near.push_blob(&repo, data, flow).await?;
        near.iter_mut().zip(t).for_each(|(a, t)| *a += t);
    }
    Ok(isolated(
        critical(steps, &far, &near, sizes.isolated),
        requests,
        sizes.isolated,
    ))
}

/// `sizes.isolated` manifest PUTs (each a new manifest and tag) of the first small
/// image's config and first layer, which the repository has at 20 ms (pushed by
/// [`images`]) and is given at 0 ms, at 20 ms and at 0 ms alternately.
async fn isolated_manifests(
    sizes: &Sizes,
    side: &Side,
    far_server: &RunningServer,
    small: &Image,
) -> Result<Isolated, String> {
    let repo = "bench/small";
    let (config, layer) = (small.config.clone(), small.layers[0].clone());
    let refs = (BlobRef::of(&config), BlobRef::of(&layer));
    side.near.push_blob(repo, config, Flow::Monolithic).await?;
    side.near.push_blob(repo, layer, Flow::Monolithic).await?;
    let (mut far, mut near) = (Duration::ZERO, Duration::ZERO);
    let mut requests = 0;
    for n in 0..sizes.isolated as u64 {
        let m = regclient::manifest(&refs.0, std::slice::from_ref(&refs.1), Some(n));
        let before = far_server.request_count();
        far += side
            .far
            .push_manifest(repo, &format!("m{n}"), m.clone())
            .await?;
        requests += far_server.request_count().saturating_sub(before);
        near += side.near.push_manifest(repo, &format!("m{n}"), m).await?;
    }
    Ok(isolated(
        critical(&["PUT manifest"], &[far], &[near], sizes.isolated),
        requests,
        sizes.isolated,
    ))
}

/// The GC store's root directory.
const GC_ROOT: &str = "/bench-gc";

/// Writes a store of `sizes.gc_images` images (in 10 repositories; each a config, a
/// layer and a manifest, all linked as a push leaves them) under [`GC_ROOT`] on the far
/// server, with every second image's manifest deleted as distribution deletes one (its
/// revision link and tags gone, its blobs and layer links left); then times both
/// collectors' dry-run mark with `-m` on it.
async fn gc(
    sizes: &Sizes,
    runtime: &Runtime,
    far: &RunningServer,
    child_args: &[String],
    dir: &Path,
    figures: &mut [Figures; 2],
) -> Result<(), String> {
    let mut params = params_of(far);
    params.insert("rootdirectory".into(), GC_ROOT.into());
    let driver = Driver::with_runtime(runtime, params.clone())
        .await
        .map_err(err)?;
    let mut objects: Vec<(String, Bytes)> = Vec::new();
    for i in 0..sizes.gc_images {
        let repo = format!("gc/repo{}", i % 10);
        let config = Bytes::from(format!("{{\"architecture\":\"amd64\",\"image\":{i}}}"));
        let layer = blob(3_000_000 + i as u64).slice(..4096);
        let (c, l) = (BlobRef::of(&config), BlobRef::of(&layer));
        let manifest = regclient::manifest(&c, std::slice::from_ref(&l), None);
        let m = BlobRef::of(&manifest);
        let digest = |b: &BlobRef| Digest::parse(&b.digest).ok_or("a digest");
        let (cd, ld, md) = (digest(&c)?, digest(&l)?, digest(&m)?);
        let link = |d: &Digest| Bytes::from(d.to_string());
        for (d, data) in [(&cd, config), (&ld, layer), (&md, manifest)] {
            objects.push((layout::blob_data(d), data));
        }
        objects.push((layout::layer_link(&repo, &cd), link(&cd)));
        objects.push((layout::layer_link(&repo, &ld), link(&ld)));
        if i % 2 == 0 {
            let tag = format!("t{i}");
            objects.push((layout::revision_link(&repo, &md), link(&md)));
            objects.push((layout::tag_current_link(&repo, &tag), link(&md)));
            objects.push((layout::tag_index_link(&repo, &tag, &md), link(&md)));
        }
    }
    let results: Vec<Result<(), String>> = futures::stream::iter(objects)
        .map(|(path, data)| {
            let d = driver.clone();
            async move { d.put_content(&path, &data).await.map_err(err) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>, String>>()?;

    // Ours: this very binary's `gc`, the server's keys as `-p` (a benchmark's own keys).
    let exe_path = std::env::current_exe().map_err(err)?;
    let mut ours = Command::new(&exe_path);
    ours.args(child_args);
    for (k, v) in &params {
        ours.arg("-p").arg(format!("{k}={v}"));
    }
    // distribution's offline collection: no blob spared for its age, no second look.
    ours.args(["gc", "--dry-run", "-m", "--min-age", "0s"]);
    if gc_knows_settle(&exe_path, child_args) {
        ours.args(["--settle", "0s"]);
    }
    // Theirs: its config file on the same root (listening address unused).
    let config = registries::write_config(
        &dir.join("gc"),
        &params_of(far),
        GC_ROOT,
        "127.0.0.1:0",
        true,
    )?;
    let mut theirs = Command::new(DISTRIBUTION);
    theirs
        .args(["garbage-collect", "--dry-run", "-m"])
        .arg(&config)
        .env_remove("AWS_CA_BUNDLE");
    for (i, cmd) in [ours, theirs].into_iter().enumerate() {
        let (took, out) = tokio::task::spawn_blocking(move || run_timed(cmd))
            .await
            .map_err(err)??;
        figures[i].gc = took;
        figures[i].gc_counts = gc_counts(&out);
    }
    Ok(())
}

/// Whether this binary's `gc` has `--settle` (the online collection's second look, a
/// wait this offline comparison skips).
fn gc_knows_settle(exe: &Path, child_args: &[String]) -> bool {
    Command::new(exe)
        .args(child_args)
        .args(["gc", "--help"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--settle"))
}

/// Runs `cmd` to its end; its time and stdout (an error with its stderr if it failed).
fn run_timed(mut cmd: Command) -> Result<(Duration, String), String> {
    let t = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let took = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((took, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// distribution's closing line, which `ks3-driver gc` prints too: `N blobs marked, N
/// blobs and N manifests eligible for deletion`.
fn gc_counts(out: &str) -> Option<(u64, u64, u64)> {
    let line = out.lines().find(|l| l.contains("blobs marked, "))?;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [marked, blobs, manifests, ..] => Some((marked, blobs, manifests)),
        _ => None,
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The Markdown table.
fn table(sizes: &Sizes, f: &[Figures; 2]) -> String {
    let (o, t) = (&f[0], &f[1]);
    let big = format!(
        "3 layers ({} + {} KiB + {} KiB)",
        size_name(sizes.big_layer / MIB),
        SMALL_OF_THREE[0] >> 10,
        SMALL_OF_THREE[1] >> 10
    );
    let small = format!(
        "{} × {} layers of {} KiB",
        sizes.small_images,
        sizes.small_layers,
        sizes.small_layer >> 10
    );
    // 3 layers + config; each small image's layers + config.
    let big_blobs = 4.0;
    let small_blobs = (sizes.small_images * (sizes.small_layers + 1)) as f64;
    let mut out = format!(
        "\nAt {} ms (a second ks3-local answering every request {} ms late, in-process; both \
         registries on it, each on its own root, driven by the same bare client; time ratios \
         are speeds, distribution's time / ours; count ratios ours / distribution's; critical \
         path: KS3 requests waited on in sequence, (time at {} ms − time at 0 ms) / {} ms, \
         mean of {} uploads):\n\n\
         | at {} ms | ks3-driver registry | distribution 2.8.2 (s3) | ks3-driver / distribution | target |\n\
         |---|---:|---:|---:|---|\n",
        LATENCY.as_millis(),
        LATENCY.as_millis(),
        LATENCY.as_millis(),
        LATENCY.as_millis(),
        sizes.isolated,
        LATENCY.as_millis(),
    );
    let speed =
        |out: &mut String, name: String, a: Duration, b: Duration, at_least: Option<f64>| {
            let ratio = secs(b) / secs(a).max(1e-9);
            let target = match at_least {
                Some(x) => format!("≥ {x}×: {}", if ratio >= x { "met" } else { "MISSED" }),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "| {name} (s) | {:.2} | {:.2} | {ratio:.2}× | {target} |",
                secs(a),
                secs(b)
            );
        };
    let count = |out: &mut String, name: String, a: f64, b: f64, at_most_theirs: bool| {
        let ratio = a / b.max(1e-9);
        let target = if at_most_theirs {
            format!("≤ distribution: {}", if a <= b { "met" } else { "MISSED" })
        } else {
            String::new()
        };
        let _ = writeln!(out, "| {name} | {a:.1} | {b:.1} | {ratio:.2}× | {target} |");
    };
    speed(
        &mut out,
        format!("push {big}, concurrent as skopeo"),
        o.big_push,
        t.big_push,
        Some(1.5),
    );
    count(
        &mut out,
        format!("push {big}: KS3 requests"),
        o.big_push_requests as f64,
        t.big_push_requests as f64,
        false,
    );
    count(
        &mut out,
        format!("push {big}: KS3 requests per blob (manifest included)"),
        o.big_push_requests as f64 / big_blobs,
        t.big_push_requests as f64 / big_blobs,
        true,
    );
    speed(
        &mut out,
        format!("pull {big}, concurrent"),
        o.big_pull,
        t.big_pull,
        Some(1.2),
    );
    count(
        &mut out,
        format!("pull {big}: KS3 requests"),
        o.big_pull_requests as f64,
        t.big_pull_requests as f64,
        false,
    );
    speed(
        &mut out,
        format!("push {small}, sequential monolithic"),
        o.small_push,
        t.small_push,
        Some(1.5),
    );
    count(
        &mut out,
        format!("push {small}: KS3 requests"),
        o.small_push_requests as f64,
        t.small_push_requests as f64,
        false,
    );
    count(
        &mut out,
        format!("push {small}: KS3 requests per blob (manifests included)"),
        o.small_push_requests as f64 / small_blobs,
        t.small_push_requests as f64 / small_blobs,
        true,
    );
    speed(
        &mut out,
        format!("pull {small}, sequential"),
        o.small_pull,
        t.small_pull,
        Some(1.2),
    );
    count(
        &mut out,
        format!("pull {small}: KS3 requests"),
        o.small_pull_requests as f64,
        t.small_pull_requests as f64,
        false,
    );
    for (what, a, b) in [
        (
            "one blob upload, POST + PUT with body (64 KiB)",
            &o.monolithic,
            &t.monolithic,
        ),
        (
            "one blob upload as skopeo, HEAD + POST + PATCH + PUT (64 KiB)",
            &o.skopeo,
            &t.skopeo,
        ),
        ("one manifest PUT", &o.manifest, &t.manifest),
    ] {
        count(
            &mut out,
            format!("{what}: KS3 requests"),
            a.requests,
            b.requests,
            true,
        );
        count(
            &mut out,
            format!("{what}: critical path"),
            a.critical,
            b.critical,
            false,
        );
    }
    speed(
        &mut out,
        format!(
            "GC mark, {} images, half their manifests deleted, dry run -m",
            sizes.gc_images
        ),
        o.gc,
        t.gc,
        Some(10.0),
    );
    let counts = |c: Option<(u64, u64, u64)>| {
        c.map_or("n/a".to_string(), |(m, b, k)| {
            format!("{m} marked, {b} + {k} eligible")
        })
    };
    let same = o.gc_counts.is_some() && o.gc_counts == t.gc_counts;
    let _ = writeln!(
        out,
        "| GC: blobs marked, blobs + manifests eligible | {} | {} | {} |  |",
        counts(o.gc_counts),
        counts(t.gc_counts),
        if same { "the same" } else { "DIFFER" }
    );
    // The critical path by client request.
    let by_step = |i: &Isolated| {
        i.by_step
            .iter()
            .map(|(s, c)| format!("{s} {c:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "\nCritical path by client request (KS3 round trips): POST + PUT: ours {}; distribution {}. \
         skopeo: ours {}; distribution {}.",
        by_step(&o.monolithic),
        by_step(&t.monolithic),
        by_step(&o.skopeo),
        by_step(&t.skopeo)
    );
    out
}
