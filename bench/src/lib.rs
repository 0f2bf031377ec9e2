//! `ks3-bench`: what `ks3-driver bench` runs — the component path against the native
//! baseline (the driver's own code compiled natively, over the same pooled client:
//! [`native`]) and the official Python SDK, in one run against one server; the result is
//! Markdown tables. A library of the command line's: it runs inside the `ks3-driver`
//! binary, whose `bench --serve-local` and `bench --native-stat` (see [`serve_local`] and
//! [`native_stat`]) and `put`/`get`/`stat` it starts as child processes; progress goes to
//! the caller's [`Progress`], never to stderr.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ks3_driver_host::{Config, Driver, Params};
use tokio::runtime::Handle;

mod cold;
mod distance;
pub mod image;
mod limit;
mod mirror;
pub mod native;
mod processes;
mod regclient;
mod registries;
mod report;
mod rows;
mod schemes;
mod server;
mod sides;
mod stat_loop;
mod steps;

use cold::{ColdFigures, ColdStarts};
use report::{Row, Target};
use rows::{report, rows, size_name};
use server::LocalServer;
use sides::{blocking, Component, Native, Side};
use steps::*;

/// What to run, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Small sizes (64 MiB streams, 200 small objects, 1000 keys, 4 writers × 8 MiB): a
    /// smoke test.
    pub quick: bool,
    /// Leave out the official Python SDK's figures.
    pub no_sdk: bool,
    /// The global options a child `ks3-driver` needs to reach the same configuration
    /// (`-c`, `-p`, `--component`).
    pub child_args: Vec<String>,
    /// Only the "At 20 ms" table (the registries at a distance), nothing else.
    pub only_distance: bool,
    /// Only the "Mirror" table (proxy mode in front of distribution 2.8.2), nothing else.
    pub only_mirror: bool,
}

/// Where progress lines go (one line each, without a prefix; the command line prints
/// them on stderr).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

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

/// The whole benchmark against `configured` (the local server in a child process when it
/// names no bucket): the report's tables, Markdown, each followed by a newline.
pub async fn run(
    runtime: ks3_driver_host::Runtime,
    configured: Params,
    options: Options,
    progress: Progress,
) -> Result<String, String> {
    let sizes = Sizes::new(options.quick);
    on_bench_runtime(configured, move |rt, params, server| {
        rt.block_on(bench(runtime, params, server, sizes, options, progress))
    })
    .await
}

/// `ks3-driver bench --stat-loop N`: only `n` stats of one 4 KiB object, one at a time,
/// through the component then natively (or through one `side` alone: `component`,
/// `native`), in rounds as the main table's; a line per side and round with the median
/// and the mean. Something for a profiler to watch (docs/benchmarks.md, "Where a stat's
/// time goes").
pub async fn stat_loop(
    runtime: ks3_driver_host::Runtime,
    configured: Params,
    n: usize,
    side: Option<String>,
) -> Result<String, String> {
    on_bench_runtime(configured, move |rt, params, _server| {
        rt.block_on(stat_loop::run(runtime, params, n, side.as_deref()))
    })
    .await
}

/// Runs `f` on a blocking thread with a multi-threaded runtime of the benchmark's own (the
/// command line runs a single-threaded one; native operations block on its handle from
/// blocking threads), against the local server in a child process when `configured` names
/// no bucket, else against `configured`.
async fn on_bench_runtime(
    configured: Params,
    f: impl FnOnce(&tokio::runtime::Runtime, Params, Option<LocalServer>) -> Result<String, String>
        + Send
        + 'static,
) -> Result<String, String> {
    let use_local = !configured.contains_key("bucket");
    tokio::task::spawn_blocking(move || {
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
        f(&rt, params, server)
    })
    .await
    .map_err(|e| format!("benchmark: {e}"))?
}

/// `ks3-driver bench --serve-local`: the benchmark's local server, in the child process
/// [`run`] starts (until stdin closes; the protocol is on its stdin and stdout).
pub fn serve_local() -> Result<(), String> {
    server::serve()
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

/// `ks3-driver bench --native-stat PATH`: one native stat with a client of its own, in a
/// fresh process (the native cold start [`run`] measures).
pub async fn native_stat(config: Config, path: String) -> Result<(), String> {
    let handle = Handle::current();
    blocking(move || Native::standalone_stat(config, handle, &path)).await
}

/// The component driver on `params`, its KS3 configuration and the native driver over
/// its pooled client: the two sides every comparison runs (of KS3 drivers only).
async fn drivers(
    runtime: &ks3_driver_host::Runtime,
    params: Params,
) -> Result<(Driver, Config, Native), String> {
    let driver = Driver::with_runtime(runtime, params).await.map_err(err)?;
    let config = driver.config().cloned().ok_or_else(|| {
        format!(
            "the bench compares KS3 drivers; this component is `{}`",
            driver.name()
        )
    })?;
    let native = Native::new(&driver, &config, Handle::current());
    Ok((driver, config, native))
}

/// Where this run's objects go, apart from any other run's: `/ks3-driver-bench/<pid>-<ms>`.
fn run_root() -> String {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("/ks3-driver-bench/{}-{stamp}", std::process::id())
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
    /// Where progress lines go.
    say: Progress,
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
    options: Options,
    say: Progress,
) -> Result<String, String> {
    let (driver, config, native) = drivers(&runtime, params.clone()).await?;
    let component = Component(driver.clone());
    let mut table: Table = [
        (&component, Figures::default()),
        (&native, Figures::default()),
    ];
    let mut run = Run {
        sizes,
        root: run_root(),
        data: payload(),
        server,
        say,
    };
    (run.say)(&format!("{sizes:?}, root {}", run.root));
    if options.only_distance {
        let _ = (&component, &native, &table);
        return at_a_distance(&run, &runtime, &options.child_args).await;
    }
    if options.only_mirror {
        let _ = (&component, &native, &table);
        return Ok(mirror_table(&run, &runtime).await);
    }

    streams(&run, &mut table).await?;
    let limit = plain_http_limit(&run).await;
    (run.say)("streams done");
    small_objects(&run, &mut table).await?;
    (run.say)("small objects done");
    fill_directories(&run, &native, &table).await?;
    listing(&mut run, &mut table).await?;
    (run.say)("listing done");
    concurrent_writers(&run, &mut table).await?;
    (run.say)("concurrent writers done");
    let child_args = options.child_args.clone();
    let processes = whole_processes(&run, &params, options.child_args.clone()).await;
    cold_starts(&run, &driver, &params, options.child_args, &mut table).await?;
    (run.say)("cold starts done");
    let sdk = sdk(&run, options.no_sdk).await?;
    let schemes = signature_schemes(&run, &runtime, &params).await?;
    let registries = registries(&run, &runtime, &params).await;
    let distance = at_a_distance(&run, &runtime, &child_args).await;
    let mirror = mirror_table(&run, &runtime).await;

    // Clean up (best effort).
    let _ = driver.delete(&run.root).await;

    let rows = rows(
        sizes,
        &table,
        &config,
        limit,
        sdk.as_ref(),
        processes.as_ref(),
    );
    let mut out = report(&run, &rows, &config, sdk.is_some(), &schemes, registries);
    match distance {
        Ok(table) => out.push_str(&table),
        Err(why) => out.push_str(&format!(
            "\nAt {} ms: skipped: {why}\n",
            distance::LATENCY.as_millis()
        )),
    }
    out.push_str(&mirror);
    Ok(out)
}

/// The "Mirror" table (issue 30), or a line saying why it was skipped (see `mirror.rs`).
async fn mirror_table(run: &Run, runtime: &ks3_driver_host::Runtime) -> String {
    let t = std::time::Instant::now();
    match mirror::compare(runtime, run.sizes.quick, &run.say).await {
        Ok(table) => {
            (run.say)(&format!(
                "mirror done in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
            table
        }
        Err(why) => {
            (run.say)(&format!("mirror skipped: {why}"));
            format!("\nMirror: skipped: {why}\n")
        }
    }
}

/// The "At 20 ms" table (issue 29), or why not: both registries on a second, in-process
/// ks3-local that answers every request 20 ms late (see `distance.rs`).
async fn at_a_distance(
    run: &Run,
    runtime: &ks3_driver_host::Runtime,
    child_args: &[String],
) -> Result<String, String> {
    let t = std::time::Instant::now();
    let r = distance::compare(runtime, run.sizes.quick, child_args, &run.say).await;
    match &r {
        Ok(_) => (run.say)(&format!(
            "at 20 ms done in {:.1} s",
            t.elapsed().as_secs_f64()
        )),
        Err(why) => (run.say)(&format!("at 20 ms skipped: {why}")),
    }
    r
}
