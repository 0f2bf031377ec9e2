//! `ks3-driver bench`: the component path against the native baseline (the driver's own
//! code compiled natively, over the same pooled client) and the official Python SDK, in
//! one run against one server. Prints a Markdown table.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ks3_driver::native::{DirPath, FilePath, NativeDriver, NativeTransport};
use ks3_driver::{Driver, Params, WalkControl};
use tokio::runtime::Handle;

use crate::cli::{CliError, Context};

mod limit;
mod registries;
mod report;
mod schemes;
mod server;

use report::{Row, Target};
use server::LocalServer;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Small sizes (64 MiB streams, 200 small objects, 1000 keys, 4 writers × 8 MiB): a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Leave out the official Python SDK's figures.
    #[arg(long)]
    pub no_sdk: bool,
    /// Internal: run the benchmark's local server (until stdin closes).
    #[arg(long, hide = true)]
    pub serve_local: bool,
    /// Internal: one native stat in a fresh process (the native cold start).
    #[arg(long, hide = true, value_name = "PATH")]
    pub native_stat: Option<String>,
}

/// What one run measures.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    quick: bool,
    stream_mib: usize,
    small_ops: usize,
    keys: usize,
    writers: usize,
    writer_mib: usize,
    cold_runs: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                quick,
                stream_mib: 64,
                small_ops: 200,
                keys: 1000,
                writers: 4,
                writer_mib: 8,
                cold_runs: 2,
            }
        } else {
            Sizes {
                quick,
                stream_mib: 1024,
                small_ops: 1000,
                keys: 10_000,
                writers: 32,
                writer_mib: 32,
                cold_runs: 5,
            }
        }
    }
}

const MIB: usize = 1 << 20;
const SMALL: usize = 4096;

pub async fn run(ctx: &Context, args: &BenchArgs) -> Result<(), CliError> {
    if args.serve_local {
        return server::serve().map_err(CliError::Other);
    }
    let configured = ctx.settings()?.params();
    let use_local = !configured.contains_key("bucket");
    if let Some(path) = &args.native_stat {
        return native_stat(configured, path.clone()).await;
    }
    let runtime = ctx.runtime()?;
    let sizes = Sizes::new(args.quick);
    let settings_args = ctx_args(ctx);
    let no_sdk = args.no_sdk;
    // A multi-threaded runtime of its own (the command line runs a single-threaded one);
    // native operations block on its handle from blocking threads.
    let result = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let server = if use_local {
            Some(LocalServer::start()?)
        } else {
            None
        };
        let params = match &server {
            Some(s) => local_params(&s.endpoint),
            None => configured,
        };
        rt.block_on(bench(runtime, params, server, sizes, settings_args, no_sdk))
    })
    .await
    .map_err(|e| CliError::Other(format!("benchmark: {e}")))?;
    result.map_err(CliError::Other)
}

fn local_params(endpoint: &str) -> Params {
    let mut p = Params::new();
    for (k, v) in [
        ("accesskey", server::AK),
        ("secretkey", server::SK),
        ("region", "ks3-cn-beijing"),
        ("bucket", server::BUCKET),
        ("regionendpoint", endpoint),
    ] {
        p.insert(k.into(), v.into());
    }
    p
}

/// The global options a child `ks3-driver` needs to reach the same configuration.
fn ctx_args(ctx: &Context) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(c) = &ctx.cli.config {
        a.push("-c".to_string());
        a.push(c.display().to_string());
    }
    for p in &ctx.cli.params {
        a.push("-p".to_string());
        a.push(p.clone());
    }
    if let Some(c) = &ctx.cli.component {
        a.push("--component".to_string());
        a.push(c.display().to_string());
    }
    a
}

async fn native_stat(params: Params, path: String) -> Result<(), CliError> {
    let config = ks3_driver::Config::from_params(&params, |k| std::env::var(k).ok())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let handle = Handle::current();
    tokio::task::spawn_blocking(move || {
        let t = NativeTransport::standalone(&config, handle).map_err(|e| e.to_string())?;
        let d = NativeDriver::new(config, t);
        d.stat(&native_dir(&path)?)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| CliError::Other(e.to_string()))?
    .map_err(CliError::Other)
}

/// The native driver takes validated paths, as the component's WIT boundary makes them.
fn native_file(p: &str) -> Result<FilePath, String> {
    FilePath::parse(p).map_err(err)
}

fn native_dir(p: &str) -> Result<DirPath, String> {
    DirPath::parse(p).map_err(err)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs a native operation on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(err)?
}

/// 1 MiB of incompressible bytes.
fn payload() -> Arc<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(MIB);
    while v.len() < MIB {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Arc::new(v)
}

fn mibps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// This process's resident set, bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples the RSS every 2 ms until dropped; `peak()` is the highest seen.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RssSampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = rss();
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(2));
            }
            peak.max(rss())
        });
        RssSampler {
            stop,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

/// p50, p99 in µs and ops/s of latencies.
fn lat_stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let total: Duration = v.iter().sum();
    v.sort();
    let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)].as_secs_f64() * 1e6;
    (v.len() as f64 / total.as_secs_f64(), at(50), at(99))
}

#[derive(Default)]
struct Side {
    write_mibps: f64,
    read_mibps: f64,
    /// op -> (ops/s, p50 µs, p99 µs)
    small: BTreeMap<&'static str, (f64, f64, f64)>,
    list_ms: f64,
    walk_ms: f64,
    walk_lists: Option<u64>,
    delete_ms: f64,
    concurrent_mibps: f64,
    peak_mib: f64,
    cold_nocache_ms: f64,
    cold_cached_ms: f64,
}

async fn bench(
    runtime: ks3_driver::Runtime,
    params: Params,
    mut server: Option<LocalServer>,
    sizes: Sizes,
    child_args: Vec<String>,
    no_sdk: bool,
) -> Result<(), String> {
    let driver = Driver::with_runtime(&runtime, params.clone())
        .await
        .map_err(err)?;
    let native = NativeDriver::new(
        driver.config().clone(),
        NativeTransport::new(&driver, Handle::current()),
    );
    let chunk = driver.config().chunk_size;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let root = format!("/ks3-driver-bench/{}-{stamp}", std::process::id());
    let data = payload();
    let mut c = Side::default();
    let mut n = Side::default();
    eprintln!("ks3-driver bench: {sizes:?}, root {root}");

    // Streams, with the memory sampled during each upload.
    let big = sizes.stream_mib * MIB;
    {
        let path = format!("{root}/stream/component");
        let base = rss();
        let sampler = RssSampler::start();
        let t = Instant::now();
        let mut w = driver.writer(&path, false).await.map_err(err)?;
        for _ in 0..sizes.stream_mib {
            w.write(&data).await.map_err(err)?;
        }
        w.commit().await.map_err(err)?;
        c.write_mibps = mibps(big, t.elapsed());
        drop(w);
        c.peak_mib = sampler.peak().saturating_sub(base) as f64 / MIB as f64;

        let t = Instant::now();
        let mut r = driver.reader(&path, 0).await.map_err(err)?;
        let mut got = 0;
        loop {
            let b = r.read(4 * MIB).await.map_err(err)?;
            if b.is_empty() {
                break;
            }
            got += b.len();
        }
        c.read_mibps = mibps(big, t.elapsed());
        if got != big {
            return Err(format!("component read {got} of {big} bytes"));
        }
    }
    {
        let path = format!("{root}/stream/native");
        let (nd, d) = (native.clone(), data.clone());
        let mib = sizes.stream_mib;
        let base = rss();
        let sampler = RssSampler::start();
        let took = blocking(move || {
            let t = Instant::now();
            let mut w = nd.writer(&native_file(&path)?, false).map_err(err)?;
            for _ in 0..mib {
                w.write(&d).map_err(err)?;
            }
            w.commit().map_err(err)?;
            let up = t.elapsed();
            drop(w);
            let t = Instant::now();
            let mut r = nd.reader(&native_file(&path)?, 0).map_err(err)?;
            let mut got = 0;
            loop {
                let b = r.read(4 * MIB).map_err(err)?;
                if b.is_empty() {
                    break;
                }
                got += b.len();
            }
            if got != mib * MIB {
                return Err(format!("native read {got} bytes"));
            }
            Ok((up, t.elapsed()))
        })
        .await?;
        n.peak_mib = sampler.peak().saturating_sub(base) as f64 / MIB as f64;
        n.write_mibps = mibps(big, took.0);
        n.read_mibps = mibps(big, took.1);
    }
    // The same stream by a plain HTTP client (local server only: it knows the keys).
    let limit = match &server {
        Some(s) => match limit::limit(&s.endpoint, sizes.stream_mib, data.clone()).await {
            Ok((up, down)) => Some((mibps(big, up), mibps(big, down))),
            Err(e) => {
                eprintln!("ks3-driver bench: plain-HTTP figures skipped: {e}");
                None
            }
        },
        None => None,
    };
    eprintln!("ks3-driver bench: streams done");

    // Small objects: put, get, stat of 4 KiB, one at a time.
    let small = vec![7u8; SMALL];
    {
        let mut lat: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for i in 0..sizes.small_ops {
            let p = format!("{root}/small/c{i:06}");
            let t = Instant::now();
            driver.put_content(&p, &small).await.map_err(err)?;
            lat.entry("put").or_default().push(t.elapsed());
            let t = Instant::now();
            let got = driver.get_content(&p).await.map_err(err)?;
            lat.entry("get").or_default().push(t.elapsed());
            if got.len() != SMALL {
                return Err("component get-content: wrong size".into());
            }
            let t = Instant::now();
            driver.stat(&p).await.map_err(err)?;
            lat.entry("stat").or_default().push(t.elapsed());
        }
        for (op, v) in lat {
            c.small.insert(op, lat_stats(v));
        }
    }
    {
        let (nd, root2, ops) = (native.clone(), root.clone(), sizes.small_ops);
        let small = small.clone();
        let lat = blocking(move || {
            let mut lat: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
            for i in 0..ops {
                let p = format!("{root2}/small/n{i:06}");
                let t = Instant::now();
                nd.put_content(&native_file(&p)?, &small).map_err(err)?;
                lat.entry("put").or_default().push(t.elapsed());
                let t = Instant::now();
                let got = nd.get_content(&native_file(&p)?).map_err(err)?;
                lat.entry("get").or_default().push(t.elapsed());
                if got.len() != SMALL {
                    return Err("native get-content: wrong size".to_string());
                }
                let t = Instant::now();
                nd.stat(&native_dir(&p)?).map_err(err)?;
                lat.entry("stat").or_default().push(t.elapsed());
            }
            Ok(lat)
        })
        .await?;
        for (op, v) in lat {
            n.small.insert(op, lat_stats(v));
        }
    }
    eprintln!("ks3-driver bench: small objects done");

    // A directory of `keys` keys for each side (filled natively, 8 threads; not timed).
    for side in ["c", "n"] {
        let dir = format!("{root}/keys-{side}");
        let mut tasks = Vec::new();
        for t in 0..8 {
            let (nd, dir, keys) = (native.clone(), dir.clone(), sizes.keys);
            tasks.push(tokio::task::spawn_blocking(move || {
                for i in (t..keys).step_by(8) {
                    nd.put_content(&native_file(&format!("{dir}/k{i:06}"))?, b"x")
                        .map_err(err)?;
                }
                Ok::<_, String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(err)??;
        }
    }
    {
        let dir = format!("{root}/keys-c");
        let t = Instant::now();
        let listed = driver.list(&dir).await.map_err(err)?;
        c.list_ms = ms(t.elapsed());
        check_count("component list", listed.len(), sizes.keys)?;
        let before = server.as_mut().and_then(|s| s.count("GET", "prefix="));
        let t = Instant::now();
        let mut seen = 0usize;
        driver
            .walk(&dir, None, |_| {
                seen += 1;
                Ok(WalkControl::Continue)
            })
            .await
            .map_err(err)?;
        c.walk_ms = ms(t.elapsed());
        let after = server.as_mut().and_then(|s| s.count("GET", "prefix="));
        c.walk_lists = before.zip(after).map(|(b, a)| a - b);
        check_count("component walk", seen, sizes.keys)?;
        let t = Instant::now();
        driver.delete(&dir).await.map_err(err)?;
        c.delete_ms = ms(t.elapsed());
    }
    {
        let dir = format!("{root}/keys-n");
        let (nd, d2) = (native.clone(), dir.clone());
        let (list_ms, listed) = blocking(move || {
            let t = Instant::now();
            let listed = nd.list(&native_dir(&d2)?).map_err(err)?;
            Ok((ms(t.elapsed()), listed.len()))
        })
        .await?;
        n.list_ms = list_ms;
        check_count("native list", listed, sizes.keys)?;
        let before = server.as_mut().and_then(|s| s.count("GET", "prefix="));
        let nd = native.clone();
        let d2 = dir.clone();
        let (walk_ms, seen) = blocking(move || {
            let t = Instant::now();
            let mut w = nd.walk(&native_dir(&d2)?, None).map_err(err)?;
            let mut seen = 0;
            loop {
                let b = w.next(1000).map_err(err)?;
                if b.is_empty() {
                    break;
                }
                seen += b.len();
            }
            Ok((ms(t.elapsed()), seen))
        })
        .await?;
        let after = server.as_mut().and_then(|s| s.count("GET", "prefix="));
        n.walk_ms = walk_ms;
        n.walk_lists = before.zip(after).map(|(b, a)| a - b);
        check_count("native walk", seen, sizes.keys)?;
        let nd = native.clone();
        n.delete_ms = blocking(move || {
            let t = Instant::now();
            nd.delete(&native_file(&dir)?).map_err(err)?;
            Ok(ms(t.elapsed()))
        })
        .await?;
    }
    eprintln!("ks3-driver bench: listing done");

    // Concurrent writers.
    let total = sizes.writers * sizes.writer_mib * MIB;
    {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..sizes.writers {
            let (drv, d, p) = (driver.clone(), data.clone(), format!("{root}/conc/c{i}"));
            let mib = sizes.writer_mib;
            tasks.push(tokio::spawn(async move {
                let mut w = drv.writer(&p, false).await.map_err(err)?;
                for _ in 0..mib {
                    w.write(&d).await.map_err(err)?;
                }
                w.commit().await.map_err(err)
            }));
        }
        for t in tasks {
            t.await.map_err(err)??;
        }
        c.concurrent_mibps = mibps(total, t.elapsed());
    }
    {
        let t = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..sizes.writers {
            let (nd, d, p) = (native.clone(), data.clone(), format!("{root}/conc/n{i}"));
            let mib = sizes.writer_mib;
            tasks.push(tokio::task::spawn_blocking(move || {
                let mut w = nd.writer(&native_file(&p)?, false).map_err(err)?;
                for _ in 0..mib {
                    w.write(&d).map_err(err)?;
                }
                w.commit().map_err(err)
            }));
        }
        for t in tasks {
            t.await.map_err(err)??;
        }
        n.concurrent_mibps = mibps(total, t.elapsed());
    }
    eprintln!("ks3-driver bench: concurrent writers done");

    // Cold start: fresh processes, each doing one stat.
    let cold_path = format!("{root}/cold");
    driver.put_content(&cold_path, b"cold").await.map_err(err)?;
    let endpoint = server.as_ref().map(|s| s.endpoint.clone());
    let cold = {
        let (args, p, runs) = (child_args.clone(), cold_path.clone(), sizes.cold_runs);
        let params = params.clone();
        blocking(move || cold_starts(&args, endpoint.as_deref(), &params, &p, runs)).await?
    };
    c.cold_nocache_ms = cold.0;
    c.cold_cached_ms = cold.1;
    n.cold_nocache_ms = cold.2;
    n.cold_cached_ms = cold.2;
    eprintln!("ks3-driver bench: cold starts done");

    // The official SDK against the same server.
    let sdk = match (&server, no_sdk) {
        (_, true) => Err("left out (--no-sdk)".to_string()),
        (None, _) => Err("only run against the local server".to_string()),
        (Some(s), _) => {
            let hp = s.host_port().to_string();
            blocking(move || Ok(run_sdk(&hp, sizes))).await?
        }
    };
    if let Err(why) = &sdk {
        eprintln!("ks3-driver bench: ks3sdk figures skipped: {why}");
    }

    // The signature schemes side by side (component only).
    let schemes = schemes::compare(
        &runtime,
        &params,
        &root,
        sizes.stream_mib,
        sizes.small_ops,
        &data,
    )
    .await?;
    eprintln!("ks3-driver bench: signature schemes done");

    // The registries side by side (only on the local server: distribution's s3 driver is
    // pointed at it with the same keys).
    let registries = match &server {
        None => Err("only run against the local server".to_string()),
        Some(_) => registries::compare(&runtime, &params, sizes.quick).await,
    };
    match &registries {
        Ok(_) => eprintln!("ks3-driver bench: registries done"),
        Err(why) => eprintln!("ks3-driver bench: registry comparison skipped: {why}"),
    }

    // Clean up (best effort).
    let _ = driver.delete(&root).await;

    let sdk = sdk.ok();
    let sdkv = |k: &str| sdk.as_ref().and_then(|m| m.get(k).copied());
    // The writer holds its parts in flight, the part being filled and the tail's copy.
    let chunks_held = driver.config().parts_in_flight() as f64 + 2.0;
    let mem_limit = chunks_held * chunk as f64 / MIB as f64 + 64.0;
    let mut rows = vec![
        Row::rate(
            &format!("stream write {} (MiB/s)", size_name(sizes.stream_mib)),
            c.write_mibps,
            n.write_mibps,
            sdkv("upload_mibps"),
            Target::RatioAtLeast(0.9),
        )
        .with_limit(limit.map(|l| l.0)),
        Row::rate(
            &format!("stream read {} (MiB/s)", size_name(sizes.stream_mib)),
            c.read_mibps,
            n.read_mibps,
            sdkv("download_mibps"),
            Target::RatioAtLeast(0.9),
        )
        .with_limit(limit.map(|l| l.1)),
    ];
    for op in ["put", "get", "stat"] {
        let name = match op {
            "put" => "put-content",
            "get" => "get-content",
            _ => "stat",
        };
        let (co, cp50, cp99) = c.small[op];
        let (no, np50, np99) = n.small[op];
        rows.push(Row::rate(
            &format!("{name} 4 KiB (ops/s)"),
            co,
            no,
            sdkv(&format!("small_{op}_ops")),
            Target::None,
        ));
        rows.push(Row::latency(
            &format!("{name} 4 KiB p50 (µs)"),
            cp50,
            np50,
            sdkv(&format!("small_{op}_p50_us")),
            Target::WithinOf(150.0),
        ));
        rows.push(Row::latency(
            &format!("{name} 4 KiB p99 (µs)"),
            cp99,
            np99,
            sdkv(&format!("small_{op}_p99_us")),
            Target::None,
        ));
    }
    let k = keys_name(sizes.keys);
    rows.push(Row::latency(
        &format!("list of a {k}-key directory (ms)"),
        c.list_ms,
        n.list_ms,
        None,
        Target::None,
    ));
    rows.push(Row::latency(
        &format!("walk of {k} keys (ms)"),
        c.walk_ms,
        n.walk_ms,
        None,
        Target::None,
    ));
    let max_lists = (sizes.keys as f64 / 1000.0).ceil() + 1.0;
    rows.push(Row::count(
        &format!("walk of {k} keys: list requests"),
        c.walk_lists.map(|v| v as f64),
        n.walk_lists.map(|v| v as f64),
        Target::AtMost(max_lists),
    ));
    rows.push(Row::latency(
        &format!("delete of {k} keys (ms)"),
        c.delete_ms,
        n.delete_ms,
        None,
        Target::None,
    ));
    rows.push(Row::rate(
        &format!(
            "{} concurrent writers × {} MiB (MiB/s)",
            sizes.writers, sizes.writer_mib
        ),
        c.concurrent_mibps,
        n.concurrent_mibps,
        None,
        Target::RatioAtLeast(0.8),
    ));
    rows.push(Row::latency(
        "cold start to first op, no cache (ms)",
        c.cold_nocache_ms,
        n.cold_nocache_ms,
        None,
        Target::None,
    ));
    rows.push(Row::latency(
        "cold start to first op, cached (ms)",
        c.cold_cached_ms,
        n.cold_cached_ms,
        None,
        Target::AtMost(20.0),
    ));
    rows.push(Row::latency(
        &format!(
            "peak RSS growth, {} upload (MiB)",
            size_name(sizes.stream_mib)
        ),
        c.peak_mib,
        n.peak_mib,
        None,
        Target::AtMost(mem_limit),
    ));
    println!(
        "{}",
        report::table(&rows, chunk, server.is_some(), sdk.is_some())
    );
    println!("{schemes}");
    match registries {
        Ok(table) => println!("{table}"),
        Err(why) => println!("\nRegistries: skipped: {why}"),
    }
    Ok(())
}

fn check_count(what: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got} entries, expected {want}"))
    }
}

fn size_name(mib: usize) -> String {
    if mib >= 1024 && mib.is_multiple_of(1024) {
        format!("{} GiB", mib / 1024)
    } else {
        format!("{mib} MiB")
    }
}

fn keys_name(n: usize) -> String {
    if n >= 10_000 {
        format!("{} {:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

/// Median wall time of `runs` child processes: (component without cache, component
/// cached, native), ms.
fn cold_starts(
    child_args: &[String],
    endpoint: Option<&str>,
    params: &Params,
    path: &str,
    runs: usize,
) -> Result<(f64, f64, f64), String> {
    let exe = std::env::current_exe().map_err(err)?;
    let mut base_args: Vec<String> = child_args.to_vec();
    if endpoint.is_some() {
        for (k, v) in params {
            base_args.push("-p".into());
            base_args.push(format!("{k}={v}"));
        }
    }
    let scratch = std::env::temp_dir().join(format!("ks3-driver-bench-{}", std::process::id()));
    let run = |extra: &[&str], cache: &PathBuf| -> Result<f64, String> {
        let t = Instant::now();
        let out = Command::new(&exe)
            .args(&base_args)
            .args(extra)
            .env("KS3_DRIVER_CACHE_DIR", cache)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(err)?;
        let took = ms(t.elapsed());
        if !out.status.success() {
            return Err(format!(
                "cold-start child failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(took)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let result = (|| {
        let mut fresh = Vec::new();
        for i in 0..runs {
            let dir = scratch.join(format!("fresh-{i}"));
            fresh.push(run(&["stat", path], &dir)?);
        }
        let warm = scratch.join("warm");
        run(&["stat", path], &warm)?;
        let mut cached = Vec::new();
        for _ in 0..runs {
            cached.push(run(&["stat", path], &warm)?);
        }
        let mut native = Vec::new();
        let off = scratch.join("unused");
        for _ in 0..runs {
            native.push(run(&["bench", "--native-stat", path], &off)?);
        }
        Ok((median(fresh), median(cached), median(native)))
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The official SDK's figures, or why there are none.
fn run_sdk(host_port: &str, sizes: Sizes) -> Result<BTreeMap<String, f64>, String> {
    let script = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sdk/bench_ks3sdk.py"),
        PathBuf::from("tests/sdk/bench_ks3sdk.py"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or("tests/sdk/bench_ks3sdk.py not found")?;
    let probe = Command::new("python3")
        .args(["-c", "import ks3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => {}
        Ok(_) => return Err("python3 has no ks3sdk (pip install ks3sdk==1.18.0)".into()),
        Err(_) => return Err("no python3".into()),
    }
    let out = Command::new("python3")
        .arg(&script)
        .args([host_port, server::BUCKET, server::AK, server::SK])
        .args(["--size-mib", &sizes.stream_mib.to_string()])
        .args(["--small", &sizes.small_ops.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(err)?;
    if !out.status.success() {
        return Err(format!(
            "bench_ks3sdk.py failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(err)?;
    let map = v
        .as_object()
        .ok_or("bench_ks3sdk.py: not a JSON object")?
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
        .collect();
    Ok(map)
}
