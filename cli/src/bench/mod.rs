//! `ks3-driver bench`: the component path against the native baseline (the driver's own
//! code compiled natively, over the same pooled client) and the official Python SDK, in
//! one run against one server. Prints a Markdown table.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ks3_driver_host::{Driver, Params};
use tokio::runtime::Handle;

use crate::cli::{CliError, Context};

mod limit;
mod processes;
mod registries;
mod report;
mod schemes;
mod server;
mod sides;

use report::{Row, Target};
use server::LocalServer;
use sides::{blocking, Component, Native, Side};

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

/// Reads of each stream per side (and by the plain client); the best counts.
const STREAM_READS: usize = 3;
/// Rounds of the small-object loop (see `small_objects`).
const SMALL_ROUNDS: usize = 10;

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
    /// The whole-process put/get against curl: size and runs (the best counts).
    process_mib: usize,
    process_runs: usize,
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
                process_mib: 16,
                process_runs: 1,
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
                process_mib: 512,
                process_runs: 3,
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
    let config = ks3_driver_host::Config::from_params(&params, |k| std::env::var(k).ok())
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let handle = Handle::current();
    blocking(move || Native::standalone_stat(config, handle, &path))
        .await
        .map_err(CliError::Other)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
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

/// One side's figures: its column of the table.
#[derive(Default)]
struct Figures {
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
    cold: ColdFigures,
}

/// Median wall times of fresh `stat` processes, ms (see [`ColdStarts::measure`]).
#[derive(Default, Clone, Copy)]
struct ColdFigures {
    /// The first start after install: an empty compiled-code cache directory (the
    /// component comes from the build's precompiled artifact).
    first: f64,
    /// A later start: the same with a warmed cache directory.
    cached: f64,
    /// A first start with the precompiled artifact switched off
    /// (`KS3_DRIVER_EMBEDDED_ARTIFACT=off`, as on a CPU that refuses it): a compile.
    compile: f64,
    /// A later start with the artifact switched off: the on-disk cache's hit.
    disk_cached: f64,
}

/// The sides in the table's column order (component, native), each with its figures.
type Table<'a> = [(&'a dyn Side, Figures); 2];

/// What the steps share.
struct Run {
    sizes: Sizes,
    /// Where this run's objects go (deleted at the end).
    root: String,
    /// The 1 MiB the streams and writers repeat.
    data: Arc<Vec<u8>>,
    /// The local server, when the run has one (it counts requests and knows the keys).
    server: Option<LocalServer>,
}

impl Run {
    /// The listing requests the local server has seen so far (none without one).
    fn list_requests(&mut self) -> Option<u64> {
        self.server.as_mut().and_then(|s| s.count("GET", "prefix="))
    }

    /// `{root}/{dir}/{c or n}{suffix}`: each side's objects apart (by the initial of its
    /// name, as the paths were before the sides were a table).
    fn path(&self, dir: &str, side: &dyn Side, suffix: &str) -> String {
        format!("{}/{dir}/{}{suffix}", self.root, initial(side))
    }

    /// The side's directory of `keys` keys.
    fn key_dir(&self, side: &dyn Side) -> String {
        format!("{}/keys-{}", self.root, initial(side))
    }
}

fn initial(side: &dyn Side) -> &'static str {
    &side.name()[..1]
}

/// The whole run: named steps, each measuring both sides of `table` in turn where it
/// compares them, then the report.
async fn bench(
    runtime: ks3_driver_host::Runtime,
    params: Params,
    server: Option<LocalServer>,
    sizes: Sizes,
    child_args: Vec<String>,
    no_sdk: bool,
) -> Result<(), String> {
    let driver = Driver::with_runtime(&runtime, params.clone())
        .await
        .map_err(err)?;
    let component = Component(driver.clone());
    let native = Native::new(&driver, Handle::current());
    let mut table: Table = [
        (&component, Figures::default()),
        (&native, Figures::default()),
    ];
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut run = Run {
        sizes,
        root: format!("/ks3-driver-bench/{}-{stamp}", std::process::id()),
        data: payload(),
        server,
    };
    eprintln!("ks3-driver bench: {sizes:?}, root {}", run.root);

    streams(&run, &mut table).await?;
    let limit = plain_http_limit(&run).await;
    eprintln!("ks3-driver bench: streams done");
    small_objects(&run, &mut table).await?;
    eprintln!("ks3-driver bench: small objects done");
    fill_directories(&run, &native, &table).await?;
    listing(&mut run, &mut table).await?;
    eprintln!("ks3-driver bench: listing done");
    concurrent_writers(&run, &mut table).await?;
    eprintln!("ks3-driver bench: concurrent writers done");
    let processes = whole_processes(&run, &params, child_args.clone()).await;
    cold_starts(&run, &driver, &params, child_args, &mut table).await?;
    eprintln!("ks3-driver bench: cold starts done");
    let sdk = sdk(&run, no_sdk).await?;
    let schemes = signature_schemes(&run, &runtime, &params).await?;
    let registries = registries(&run, &runtime, &params).await;

    // Clean up (best effort).
    let _ = driver.delete(&run.root).await;

    let rows = rows(
        sizes,
        &table,
        driver.config(),
        limit,
        sdk.as_ref(),
        processes.as_ref(),
    );
    report(
        &run,
        &rows,
        driver.config(),
        sdk.is_some(),
        &schemes,
        registries,
    );
    Ok(())
}

/// One upload and one download of `stream_mib` per side, with the resident memory sampled
/// during the upload (the writer's buffers are what the memory row judges).
async fn streams(run: &Run, table: &mut Table<'_>) -> Result<(), String> {
    let (mib, big) = (run.sizes.stream_mib, run.sizes.stream_mib * MIB);
    for (side, f) in table.iter_mut() {
        let path = format!("{}/stream/{}", run.root, side.name());
        let base = rss();
        let sampler = RssSampler::start();
        let took = side.upload(path.clone(), run.data.clone(), mib).await?;
        f.peak_mib = sampler.peak().saturating_sub(base) as f64 / MIB as f64;
        f.write_mibps = mibps(big, took);
    }
    // Reads are short (a 1 GiB read takes ~0.4 s here) and swing with where the
    // scheduler puts the threads: each side reads in turn, `STREAM_READS` times, the
    // first side alternating, and its best read counts.
    for round in 0..STREAM_READS {
        for i in 0..table.len() {
            let (side, f) = &mut table[(i + round) % table.len()];
            let path = format!("{}/stream/{}", run.root, side.name());
            let (took, got) = side.download(path).await?;
            if got != big {
                return Err(format!("{} read {got} of {big} bytes", side.name()));
            }
            f.read_mibps = f.read_mibps.max(mibps(big, took));
        }
    }
    Ok(())
}

/// The same stream by a plain HTTP client, (write, read) MiB/s: the stream rows' physical
/// limit. Local server only: the client signs with its keys.
async fn plain_http_limit(run: &Run) -> Option<(f64, f64)> {
    let server = run.server.as_ref()?;
    let (mib, big) = (run.sizes.stream_mib, run.sizes.stream_mib * MIB);
    match limit::limit(&server.endpoint, mib, run.data.clone(), STREAM_READS).await {
        Ok((up, down)) => Some((mibps(big, up), mibps(big, down))),
        Err(e) => {
            eprintln!("ks3-driver bench: plain-HTTP figures skipped: {e}");
            None
        }
    }
}

/// Put, get and stat of 4 KiB, one at a time, `small_ops` times per side, in
/// `SMALL_ROUNDS` rounds that alternate the sides (and which goes first), so that both
/// sample the same stretches of the machine's time; the latencies of all rounds count.
async fn small_objects(run: &Run, table: &mut Table<'_>) -> Result<(), String> {
    let body = Arc::new(vec![7u8; SMALL]);
    let per_round = run.sizes.small_ops.div_ceil(SMALL_ROUNDS);
    let mut all: Vec<sides::Latencies> = vec![Default::default(); table.len()];
    for round in 0..SMALL_ROUNDS {
        let ops = round * per_round..((round + 1) * per_round).min(run.sizes.small_ops);
        for i in 0..table.len() {
            let at = (i + round) % table.len();
            let (side, _) = &table[at];
            let paths = ops
                .clone()
                .map(|i| run.path("small", *side, &format!("{i:06}")))
                .collect();
            for (op, v) in side.small_objects(paths, body.clone()).await? {
                all[at].entry(op).or_default().extend(v);
            }
        }
    }
    for ((_, f), lat) in table.iter_mut().zip(all) {
        for (op, v) in lat {
            f.small.insert(op, lat_stats(v));
        }
    }
    Ok(())
}

/// A directory of `keys` keys per side for `listing`. Filled by the native driver on 8
/// blocking threads for both sides alike, and not timed: only the listing is measured.
async fn fill_directories(run: &Run, native: &Native, table: &Table<'_>) -> Result<(), String> {
    const THREADS: usize = 8;
    for (side, _) in table {
        let dir = run.key_dir(*side);
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let (native, dir, keys) = (native.clone(), dir.clone(), run.sizes.keys);
                tokio::task::spawn_blocking(move || {
                    for i in (t..keys).step_by(THREADS) {
                        native.put(&format!("{dir}/k{i:06}"), b"x")?;
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(err)??;
        }
    }
    Ok(())
}

/// List, walk (counting the listing requests it makes, when the local server can tell)
/// and delete of each side's directory of `keys` keys.
async fn listing(run: &mut Run, table: &mut Table<'_>) -> Result<(), String> {
    let keys = run.sizes.keys;
    for (side, f) in table.iter_mut() {
        let dir = run.key_dir(*side);
        let (took, listed) = side.list(dir.clone()).await?;
        f.list_ms = ms(took);
        check_count(&format!("{} list", side.name()), listed, keys)?;

        let before = run.list_requests();
        let (took, seen) = side.walk(dir.clone()).await?;
        f.walk_ms = ms(took);
        f.walk_lists = before.zip(run.list_requests()).map(|(b, a)| a - b);
        check_count(&format!("{} walk", side.name()), seen, keys)?;

        f.delete_ms = ms(side.delete(dir).await?);
    }
    Ok(())
}

/// `writers` uploads of `writer_mib` each at once per side: the aggregate rate.
async fn concurrent_writers(run: &Run, table: &mut Table<'_>) -> Result<(), String> {
    let (writers, mib) = (run.sizes.writers, run.sizes.writer_mib);
    let total = writers * mib * MIB;
    for (side, f) in table.iter_mut() {
        let paths = (0..writers)
            .map(|i| run.path("conc", *side, &i.to_string()))
            .collect();
        let t = Instant::now();
        side.concurrent_uploads(paths, run.data.clone(), mib)
            .await?;
        f.concurrent_mibps = mibps(total, t.elapsed());
    }
    Ok(())
}

/// Fresh processes, each doing one stat of an object this step puts: per side the median
/// wall times of [`ColdFigures`] (all the same figure for a side that keeps no compiled
/// code).
async fn cold_starts(
    run: &Run,
    driver: &Driver,
    params: &Params,
    child_args: Vec<String>,
    table: &mut Table<'_>,
) -> Result<(), String> {
    let path = format!("{}/cold", run.root);
    driver.put_content(&path, b"cold").await.map_err(err)?;
    let children = ColdStarts::new(child_args, run.server.is_some(), params, run.sizes)?;
    for (side, f) in table.iter_mut() {
        let (args, caches) = (side.cold_stat_args(&path), side.caches_code());
        let children = children.clone();
        f.cold = blocking(move || children.measure(&args, caches)).await?;
    }
    Ok(())
}

/// `ks3-driver put` and `get` as whole processes against curl on presigned URLs, or
/// `None` (and why, on stderr). Only on the local server, whose keys make the URLs.
async fn whole_processes(
    run: &Run,
    params: &Params,
    child_args: Vec<String>,
) -> Option<processes::ProcessFigures> {
    let measured = match &run.server {
        None => Err("only run against the local server".to_string()),
        Some(server) => match std::env::current_exe() {
            Err(e) => Err(e.to_string()),
            Ok(exe) => {
                let mut base_args = child_args;
                for (k, v) in params {
                    base_args.push("-p".into());
                    base_args.push(format!("{k}={v}"));
                }
                let p = processes::Processes {
                    exe,
                    base_args,
                    endpoint: format!("http://{}", server.host_port()),
                    path: format!("{}/processes", run.root),
                };
                let (data, mib, runs) = (
                    Arc::clone(&run.data),
                    run.sizes.process_mib,
                    run.sizes.process_runs,
                );
                blocking(move || p.measure(&data, mib, runs)).await
            }
        },
    };
    match measured {
        Ok(f) => {
            eprintln!("ks3-driver bench: whole processes done");
            Some(f)
        }
        Err(why) => {
            eprintln!("ks3-driver bench: whole-process figures skipped: {why}");
            None
        }
    }
}

/// The official SDK's figures against the same server, or `None` (and why, on stderr).
async fn sdk(run: &Run, no_sdk: bool) -> Result<Option<BTreeMap<String, f64>>, String> {
    let sdk = match (&run.server, no_sdk) {
        (_, true) => Err("left out (--no-sdk)".to_string()),
        (None, _) => Err("only run against the local server".to_string()),
        (Some(s), _) => {
            let (hp, sizes) = (s.host_port().to_string(), run.sizes);
            blocking(move || Ok(run_sdk(&hp, sizes))).await?
        }
    };
    if let Err(why) = &sdk {
        eprintln!("ks3-driver bench: ks3sdk figures skipped: {why}");
    }
    Ok(sdk.ok())
}

/// The signature schemes side by side (component only): their table.
async fn signature_schemes(
    run: &Run,
    runtime: &ks3_driver_host::Runtime,
    params: &Params,
) -> Result<String, String> {
    let table = schemes::compare(
        runtime,
        params,
        &run.root,
        run.sizes.stream_mib,
        run.sizes.small_ops,
        &run.data,
    )
    .await?;
    eprintln!("ks3-driver bench: signature schemes done");
    Ok(table)
}

/// The registries side by side, or why not. Only on the local server: distribution's s3
/// driver is pointed at it with the same keys.
async fn registries(
    run: &Run,
    runtime: &ks3_driver_host::Runtime,
    params: &Params,
) -> Result<String, String> {
    let registries = match &run.server {
        None => Err("only run against the local server".to_string()),
        Some(_) => registries::compare(runtime, params, run.sizes.quick).await,
    };
    match &registries {
        Ok(_) => eprintln!("ks3-driver bench: registries done"),
        Err(why) => eprintln!("ks3-driver bench: registry comparison skipped: {why}"),
    }
    registries
}

/// Prints the three tables: the sides' (with the plain-HTTP and SDK columns), the
/// signature schemes' and the registries' (or why there is none).
fn report(
    run: &Run,
    rows: &[Row],
    config: &ks3_driver_host::Config,
    sdk: bool,
    schemes: &str,
    registries: Result<String, String>,
) {
    let local = run.server.is_some();
    println!("{}", report::table(rows, config.chunk_size, local, sdk));
    println!("{schemes}");
    match registries {
        Ok(table) => println!("{table}"),
        Err(why) => println!("\nRegistries: skipped: {why}"),
    }
}

/// The main table's rows from both sides' figures, the plain-HTTP limit and the SDK's.
fn rows(
    sizes: Sizes,
    table: &Table<'_>,
    config: &ks3_driver_host::Config,
    limit: Option<(f64, f64)>,
    sdk: Option<&BTreeMap<String, f64>>,
    processes: Option<&processes::ProcessFigures>,
) -> Vec<Row> {
    let [(_, c), (_, n)] = table;
    let sdkv = |k: &str| sdk.and_then(|m| m.get(k).copied());
    // The writer holds its parts in flight, the part being filled and the tail's copy.
    let chunks_held = config.parts_in_flight() as f64 + 2.0;
    let mem_limit = chunks_held * config.chunk_size as f64 / MIB as f64 + 64.0;
    let mut rows = vec![
        Row::rate(
            &format!("stream write {} (MiB/s)", size_name(sizes.stream_mib)),
            c.write_mibps,
            n.write_mibps,
            sdkv("upload_mibps"),
            Target::RatioAtLeast(0.9),
        )
        .with_limit(limit.map(|l| l.0))
        .and(Target::LimitRatioAtLeast(0.9))
        .and(Target::SdkRatioAtLeast(2.0)),
        Row::rate(
            &format!("stream read {} (MiB/s)", size_name(sizes.stream_mib)),
            c.read_mibps,
            n.read_mibps,
            sdkv("download_mibps"),
            Target::RatioAtLeast(0.95),
        )
        .with_limit(limit.map(|l| l.1))
        .and(Target::LimitRatioAtLeast(0.9)),
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
            Target::SdkRatioAtLeast(4.0),
        ));
        rows.push(Row::latency(
            &format!("{name} 4 KiB p50 (µs)"),
            cp50,
            np50,
            sdkv(&format!("small_{op}_p50_us")),
            Target::AtMostTimes(1.5, np50, "native"),
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
        Target::RatioAtLeast(0.9),
    ));
    rows.push(Row::latency(
        "cold start to first op, no cache (ms)",
        c.cold.first,
        n.cold.first,
        None,
        Target::AtMostTimes(2.0, c.cold.cached, "cached"),
    ));
    rows.push(Row::latency(
        "cold start to first op, cached (ms)",
        c.cold.cached,
        n.cold.cached,
        None,
        Target::AtMost(10.0),
    ));
    let whole = size_name(sizes.process_mib);
    rows.push(Row::against_curl(
        &format!("`ks3-driver put` {whole}, whole process (ms)"),
        processes.map(|p| (ms(p.ours_put), ms(p.curl_put))),
        1.3,
    ));
    rows.push(Row::against_curl(
        &format!("`ks3-driver get` {whole}, whole process (ms)"),
        processes.map(|p| (ms(p.ours_get), ms(p.curl_get))),
        1.3,
    ));
    rows.push(Row::latency(
        "cold start to first op, artifact off, no cache (ms)",
        c.cold.compile,
        n.cold.compile,
        None,
        Target::None,
    ));
    rows.push(Row::latency(
        "cold start to first op, artifact off, cached (ms)",
        c.cold.disk_cached,
        n.cold.disk_cached,
        None,
        Target::None,
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
    rows
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

/// Runs fresh `ks3-driver` processes against the benchmark's configuration.
#[derive(Clone)]
struct ColdStarts {
    exe: PathBuf,
    /// The global options, and with the local server its parameters (its port is new).
    base_args: Vec<String>,
    runs: usize,
}

impl ColdStarts {
    fn new(
        child_args: Vec<String>,
        local: bool,
        params: &Params,
        sizes: Sizes,
    ) -> Result<Self, String> {
        let mut base_args = child_args;
        if local {
            for (k, v) in params {
                base_args.push("-p".into());
                base_args.push(format!("{k}={v}"));
            }
        }
        Ok(ColdStarts {
            exe: std::env::current_exe().map_err(err)?,
            base_args,
            runs: sizes.cold_runs,
        })
    }

    /// Median wall times of `runs` processes with `args`, ms. With `caches`, for each of
    /// [`ColdFigures`]' rows: each uncached run gets an empty cache directory, the cached
    /// runs share one warmed first; with the precompiled artifact on, then off. Without,
    /// all figures are the same runs'.
    fn measure(&self, args: &[String], caches: bool) -> Result<ColdFigures, String> {
        let scratch = std::env::temp_dir().join(format!("ks3-driver-bench-{}", std::process::id()));
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let result = (|| {
            if !caches {
                let off = scratch.join("unused");
                let times = (0..self.runs)
                    .map(|_| self.run(args, &off, true))
                    .collect::<Result<Vec<_>, _>>()?;
                let m = median(times);
                return Ok(ColdFigures {
                    first: m,
                    cached: m,
                    compile: m,
                    disk_cached: m,
                });
            }
            // (first start, later start) with the artifact on or off.
            let pair = |artifact: bool, tag: &str| -> Result<(f64, f64), String> {
                let fresh = (0..self.runs)
                    .map(|i| self.run(args, &scratch.join(format!("{tag}-fresh-{i}")), artifact))
                    .collect::<Result<Vec<_>, _>>()?;
                let warm = scratch.join(format!("{tag}-warm"));
                self.run(args, &warm, artifact)?;
                let cached = (0..self.runs)
                    .map(|_| self.run(args, &warm, artifact))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((median(fresh), median(cached)))
            };
            let (first, cached) = pair(true, "artifact")?;
            let (compile, disk_cached) = pair(false, "no-artifact")?;
            Ok(ColdFigures {
                first,
                cached,
                compile,
                disk_cached,
            })
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// One process's wall time, ms, with the precompiled artifact on or off.
    fn run(&self, args: &[String], cache: &PathBuf, artifact: bool) -> Result<f64, String> {
        let mut cmd = Command::new(&self.exe);
        if artifact {
            cmd.env_remove("KS3_DRIVER_EMBEDDED_ARTIFACT");
        } else {
            cmd.env("KS3_DRIVER_EMBEDDED_ARTIFACT", "off");
        }
        let t = Instant::now();
        let out = cmd
            .args(&self.base_args)
            .args(args)
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
    }
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
