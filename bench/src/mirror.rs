//! "Mirror" (issue 30): `ks3-driver registry` in proxy mode (a pull-through cache) in
//! front of an upstream distribution 2.8.2 (`docker-registry`, on filesystem storage in a
//! temporary directory, a child process), the cache on a `ks3-local` of its own (in this
//! process, in memory, redirects on as by default).
//!
//! An image (one large layer and two small ones) is pushed to the upstream, then pulled
//! by the bare client of [`crate::regclient`] (the manifest, then the blobs at once,
//! redirects followed, every digest checked):
//!
//! * **direct** — from the upstream itself;
//! * **first** — through the mirror, which has none of it: the manifest fetched and
//!   stored, each blob streamed to the client while it is written to KS3;
//! * **second** — through the mirror again once the fill has committed (the blobs linked
//!   into the repository): the tag revalidated upstream (a `HEAD`), the manifest from
//!   KS3, the blobs by a 307 to KS3.
//!
//! All three twice: with the upstream on loopback (where the mirror's own work on the
//! bytes — hashing, the driver's writes, ks3-local storing them — is all there is to
//! see), then with both the direct client and the mirror reaching it through a relay
//! that gives its answers one shared [`LINK`] of bandwidth, as a remote upstream would.
//! Each round uses an image of its own (another repository, so the cache misses again);
//! the fastest of the rounds counts for each pull. Targets (issue 30's "done when"): the
//! first pull ≤ 1.2× the direct time; the second ≥ 2× faster than the first.
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ks3_driver_host::{Driver, Runtime};
use ks3_local::ServerConfig;
use ks3_registry::digest::Digest;
use ks3_registry::{layout, Config, Registry, Storage};

use crate::image::Image;
use crate::regclient::{self, BlobRef, Flow};
use crate::registries::{self, DISTRIBUTION};
use crate::server::{AK, BUCKET, SK};
use crate::{err, size_name, Progress, MIB};

/// The two small layers of the image.
const SMALL_LAYERS: [u64; 2] = [512 << 10, 16 << 10];
/// The mirror's root in its bucket.
const ROOT: &str = "/bench-mirror-ks3-driver";

/// The figures of one run: the fastest of the rounds.
#[derive(Debug, Clone, Copy)]
struct Figures {
    direct: Duration,
    first: Duration,
    second: Duration,
}

/// The upstream: distribution 2.8.2 on filesystem storage, killed when dropped.
struct Upstream {
    child: Child,
    addr: String,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Upstream {
    fn start(dir: &Path) -> Result<Upstream, String> {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").map_err(err)?;
            l.local_addr().map_err(err)?.to_string()
        };
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(err)?;
        let yaml = format!(
            "version: 0.1\n\
             log: {{level: error, accesslog: {{disabled: true}}}}\n\
             storage:\n  \
               filesystem: {{rootdirectory: \"{}\"}}\n  \
               maintenance: {{uploadpurging: {{enabled: false}}}}\n\
             http: {{addr: \"{addr}\", secret: bench-only-secret}}\n\
             health: {{storagedriver: {{enabled: false}}}}\n",
            data.display()
        );
        let path = dir.join("config.yml");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(yaml.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let child = Command::new(DISTRIBUTION)
            .arg("serve")
            .arg(&path)
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {DISTRIBUTION}: {e}"))?;
        Ok(Upstream { child, addr })
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok() {
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

/// The bandwidth of the second link to the upstream (shared by every connection).
const LINK: u64 = 50 * MIB as u64;

/// The table, or why it was skipped.
pub async fn compare(runtime: &Runtime, quick: bool, say: &Progress) -> Result<String, String> {
    if !registries::installed() {
        return Err(format!(
            "`{DISTRIBUTION}` (distribution 2.8.2) is not installed: `apt-get install docker-registry` adds the mirror rows"
        ));
    }
    let (big, rounds) = if quick { (MIB, 1) } else { (60 * MIB, 5) };
    let dir = tempfile::tempdir().map_err(err)?;
    let upstream = Upstream::start(dir.path())?;
    let ks3 = ks3_local::start_in_background(ServerConfig::memory(BUCKET, AK, SK))
        .map_err(|e| format!("cannot start ks3-local: {e:#}"))?;
    upstream.wait_ready().await?;
    let (relay, relaying) = throttled_relay(upstream.addr.clone(), LINK).await?;
    let measured = async {
        let near = measure(
            runtime,
            &ks3.endpoint(),
            &upstream.addr,
            "loopback",
            big,
            rounds,
            say,
        )
        .await?;
        let far = measure(runtime, &ks3.endpoint(), &relay, "link", big, rounds, say).await?;
        Ok::<_, String>((near, far))
    }
    .await;
    relaying.abort();
    drop(upstream);
    let (near, far) = measured?;
    let image = format!(
        "3 layers ({} + {} KiB + {} KiB)",
        size_name(big / MIB),
        SMALL_LAYERS[0] >> 10,
        SMALL_LAYERS[1] >> 10
    );
    Ok(table(&image, rounds, &near, &far))
}

/// A mirror of the upstream at `upstream` (`host:port`, direct or through the relay) on
/// its own root of the ks3-local at `endpoint`, and `rounds` rounds of the three pulls;
/// the fastest of each.
async fn measure(
    runtime: &Runtime,
    endpoint: &str,
    upstream: &str,
    name: &str,
    big: usize,
    rounds: u64,
    say: &Progress,
) -> Result<Figures, String> {
    let mut params = crate::local_params(endpoint);
    params.insert("rootdirectory".into(), format!("{ROOT}-{name}"));
    let driver = Driver::with_runtime(runtime, params.clone())
        .await
        .map_err(err)?;
    let mut config = Config::from_yaml(&format!(
        "proxy:\n  remoteurl: http://{upstream}\n  ttl: 168h\n"
    ))
    .map_err(|e| format!("the mirror's configuration: {e}"))?;
    config.storage = Storage::Ks3(params);
    let registry = Arc::new(
        Registry::with_driver(config, driver.clone())
            .await
            .map_err(|e| format!("ks3-driver registry (proxy mode): {e}"))?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let mirror_addr = listener.local_addr().map_err(err)?.to_string();
    let serving = tokio::spawn(async move {
        let _ = registry.serve(listener).await;
    });
    let up = regclient::Registry::new(upstream);
    let mirror = regclient::Registry::new(&mirror_addr);
    let measured = async {
        let mut best: Option<Figures> = None;
        for round in 0..rounds {
            let mut shape = vec![big as u64];
            shape.extend(SMALL_LAYERS);
            let image = Image::generate(&shape, 3000 + round + 100 * name.len() as u64);
            let repo = format!("bench/mirror-{name}-{round}");
            up.push_image(
                &repo,
                "v1",
                &image.layers,
                image.config.clone(),
                Flow::Monolithic,
                true,
            )
            .await
            .map_err(|e| format!("push to the upstream: {e}"))?;
            let timed = |r: &regclient::Registry, what: &'static str| {
                let (r, repo) = (r.clone(), repo.clone());
                async move {
                    let t = Instant::now();
                    r.pull_image(&repo, "v1", true)
                        .await
                        .map_err(|e| format!("{what}: {e}"))?;
                    Ok::<_, String>(t.elapsed())
                }
            };
            let direct = timed(&up, "direct pull").await?;
            let first = timed(&mirror, "first pull through the mirror").await?;
            cached(&driver, &repo, &image).await?;
            let second = timed(&mirror, "second pull through the mirror").await?;
            say(&format!(
                "mirror ({name}): round {round}: direct {:.3} s, first {:.3} s, second {:.3} s",
                direct.as_secs_f64(),
                first.as_secs_f64(),
                second.as_secs_f64()
            ));
            let f = Figures {
                direct,
                first,
                second,
            };
            best = Some(match best {
                None => f,
                Some(b) => Figures {
                    direct: b.direct.min(f.direct),
                    first: b.first.min(f.first),
                    second: b.second.min(f.second),
                },
            });
        }
        best.ok_or_else(|| "no round".to_string())
    }
    .await;
    serving.abort();
    measured
}

/// A TCP relay to `target` whose answers (upstream to client) share one link of `rate`
/// bytes per second, as a remote upstream's would: its address and the task serving it.
async fn throttled_relay(
    target: String,
    rate: u64,
) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(err)?;
    let addr = listener.local_addr().map_err(err)?.to_string();
    // When the link is free again.
    let link = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                continue;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
                let _ = sw.shutdown().await;
            });
            let link = Arc::clone(&link);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let at = {
                        let mut free = link.lock().unwrap_or_else(|p| p.into_inner());
                        let start = (*free).max(tokio::time::Instant::now());
                        *free = start + Duration::from_secs_f64(n as f64 / rate as f64);
                        *free
                    };
                    // Sleeping only when well ahead keeps the rate exact despite the
                    // timer's millisecond granularity.
                    if at > tokio::time::Instant::now() + Duration::from_millis(4) {
                        tokio::time::sleep_until(at).await;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    Ok((addr, task))
}

/// Waits (at most 30 s) until the mirror has linked every blob of `image` into `repo`:
/// the fill commits after the last bytes reached the client.
async fn cached(driver: &Driver, repo: &str, image: &Image) -> Result<(), String> {
    let mut links = vec![BlobRef::of(&image.config)];
    links.extend(image.layers.iter().map(|l| BlobRef::of(l)));
    let deadline = Instant::now() + Duration::from_secs(30);
    for b in links {
        let d = Digest::parse(&b.digest).ok_or("a digest")?;
        let link = layout::layer_link(repo, &d);
        while driver.stat(&link).await.is_err() {
            if Instant::now() > deadline {
                return Err(format!("the mirror did not cache {} within 30 s", b.digest));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// The Markdown table.
fn table(image: &str, rounds: u64, near: &Figures, far: &Figures) -> String {
    let mut out = format!(
        "\nMirror (`ks3-driver registry` in proxy mode on an in-memory ks3-local, in-process, \
         redirects on; the upstream distribution 2.8.2 on filesystem storage, on loopback, then \
         behind a relay that gives its answers one {} MiB/s link; pulls by the bare client, \
         blobs at once; a new image per round, the fastest of {rounds} counts):\n\n\
         | mirror, pull of {image} | time (s) | ratio | target |\n\
         |---|---:|---:|---|\n",
        LINK >> 20
    );
    for (f, upstream) in [
        (near, "upstream on loopback".to_string()),
        (far, format!("upstream over {} MiB/s", LINK >> 20)),
    ] {
        rows(&mut out, &upstream, f);
    }
    out
}

/// The three rows of one upstream.
fn rows(out: &mut String, upstream: &str, f: &Figures) {
    let s = |d: Duration| d.as_secs_f64();
    let first_ratio = s(f.first) / s(f.direct).max(1e-9);
    let second_speed = s(f.first) / s(f.second).max(1e-9);
    let judge = |ok: bool| if ok { "met" } else { "MISSED" };
    let _ = writeln!(
        out,
        "| {upstream}: direct from the upstream | {:.3} | 1.00× |  |",
        s(f.direct)
    );
    let _ = writeln!(
        out,
        "| {upstream}: first through the mirror (cache miss, streamed while stored) | {:.3} | {first_ratio:.2}× the direct | ≤ 1.2×: {} |",
        s(f.first),
        judge(first_ratio <= 1.2)
    );
    let _ = writeln!(
        out,
        "| {upstream}: second through the mirror (from the cache) | {:.3} | {second_speed:.2}× faster than the first | ≥ 2×: {} |",
        s(f.second),
        judge(second_speed >= 2.0)
    );
}
