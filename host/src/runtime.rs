//! The wasmtime side: one engine, linker and pre-instantiated component per process
//! (loaded from the embedded precompiled artifact, the on-disk cache or compiled), and
//! the executor threads; each operation's store and instance is a [`Session`].
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::Engine;

use crate::bindings::Exports;
use crate::cache::{self, LoadInfo};
use crate::code_in_place;
use crate::engine_config;
use crate::error::Error;
use crate::executors::Executors;
use crate::session::{Ctx, Session, SessionSpec};

/// The driver component built by `build.rs` from `driver/`.
pub static EMBEDDED_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ks3-driver-component.wasm"));

/// The `wasi:blobstore@0.2.0-draft` provider built by `build.rs` from `blobstore/` (world
/// `ks3:blobstore/provider`), for `ks3-driver component save|push --world blobstore`; this
/// host does not run it. Empty when the build used a prebuilt KS3 component
/// (`KS3_DRIVER_PREBUILT_COMPONENT`) without `KS3_DRIVER_PREBUILT_BLOBSTORE`, and so built
/// nothing.
pub static EMBEDDED_BLOBSTORE_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ks3-blobstore-component.wasm"));

/// [`EMBEDDED_COMPONENT`] precompiled by `build.rs` for the build machine with the
/// runtime's engine settings (`engine_config.rs`), so that even the first start of a
/// process loads compiled code. Empty when the build skipped it (cross-compiling,
/// `KS3_DRIVER_NO_PRECOMPILE=1`); wasmtime refuses it on a CPU without the build machine's
/// features, and the runtime then compiles (or uses its on-disk cache) instead.
/// Embedded page-aligned: the process's first runtime runs it in place
/// (`code_in_place.rs`).
pub static EMBEDDED_ARTIFACT: &[u8] = code_in_place::ARTIFACT;

/// The filesystem driver component (`fs-driver/`) that `build.rs` built beside the KS3
/// one, for `--component` and the tests; none when the build used a prebuilt KS3 component
/// (`KS3_DRIVER_PREBUILT_COMPONENT`) and so built nothing.
pub fn fs_driver_component_path() -> Option<&'static std::path::Path> {
    Some(env!("FS_DRIVER_COMPONENT_PATH"))
        .filter(|p| !p.is_empty())
        .map(std::path::Path::new)
}

/// `yes`, or `no (why)`: whether `build.rs` precompiled [`EMBEDDED_ARTIFACT`].
pub const PRECOMPILED: &str = env!("KS3_DRIVER_PRECOMPILED");

/// Default hard wall-clock limit of one guest call: none to speak of. A call is stopped
/// when its traffic has stood still longer than the driver's retries could take (see
/// [`crate::activity`]), which follows `requesttimeout`, `maxretries` and the work itself.
pub const DEFAULT_OP_TIMEOUT: Duration = MAX_OP_TIMEOUT;
/// Default memory limit of an instance when none is set: this, or more when `chunksize`
/// needs it (see [`RuntimeOptions::memory_limit`]).
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;
/// Longest wall-clock limit accepted (a larger `op_timeout` is reduced to it).
pub const MAX_OP_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the engine's epoch advances (the granularity of the wall-clock limit while
/// guest code runs).
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the runtime is built.
#[derive(Debug, Default, Clone)]
pub struct RuntimeOptions {
    /// Load this component file instead of the embedded one.
    pub component: Option<PathBuf>,
    /// Linear-memory limit of each instance in bytes. Default: the larger of 512 MiB and
    /// `(parts in flight + 2) × chunksize + 64 MiB` of the driver's configuration (see
    /// `uploadconcurrency`).
    pub memory_limit: Option<usize>,
    /// A hard wall-clock limit of each guest call, on top of the one that follows the
    /// driver's configuration (a call whose KS3 traffic stands still for longer than
    /// `(maxretries + 1) × (requesttimeout + 2 s) + 30 s` is stopped). Default: none.
    pub op_timeout: Option<Duration>,
    /// Where compiled components are cached; default `KS3_DRIVER_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/ks3-driver`, else `~/.cache/ks3-driver`. Not used when the embedded
    /// component's precompiled artifact ([`EMBEDDED_ARTIFACT`]) is loaded.
    pub cache_dir: Option<PathBuf>,
    /// Do not load [`EMBEDDED_ARTIFACT`]: compile the embedded component (or load it from
    /// the cache). Also on with `KS3_DRIVER_EMBEDDED_ARTIFACT=off`.
    pub ignore_embedded_artifact: bool,
    /// Forward the guest's stderr (secrets masked) as `ks3_driver::guest` tracing events.
    /// Also on with `KS3_DRIVER_LOG=1`. The KS3 request log needs no switch: it is always
    /// emitted as `ks3_driver::egress` events (method, path without the query, status, time,
    /// request id), and the embedder's subscriber decides what to show.
    pub log_requests: bool,
    /// A host directory every instance sees as `/` with read and write access: what a
    /// driver over `wasi:filesystem` (the filesystem driver, `fs-driver/`) stores its
    /// files in. None (the default) gives the component no filesystem at all.
    pub preopen: Option<PathBuf>,
}

/// An engine with the driver component compiled and linked. Cheap to clone; share one
/// per process ([`Runtime::shared`]).
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    pre: InstancePre<Ctx>,
    exports: Arc<Exports>,
    memory_limit: Option<usize>,
    op_timeout: Duration,
    log_requests: bool,
    load: LoadInfo,
    /// Where stateless calls run (see `executors.rs`).
    executors: Executors,
    preopen: Option<PathBuf>,
    /// The component's `name()`, asked once.
    name: tokio::sync::OnceCell<String>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("memory_limit", &self.inner.memory_limit)
            .field("op_timeout", &self.inner.op_timeout)
            .field("log_requests", &self.inner.log_requests)
            .field("load", &self.inner.load)
            .finish()
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

impl Runtime {
    /// Loads the precompiled embedded component, or compiles (or loads from the cache)
    /// the component, and links it.
    pub fn new(opts: RuntimeOptions) -> anyhow::Result<Runtime> {
        // SAFETY: EMBEDDED_ARTIFACT is, unmodified, what `Engine::precompile_component`
        // of the same (pinned) wasmtime version wrote in our own build script from our own
        // component (`build.rs`), or empty.
        unsafe { Self::with_artifact(opts, EMBEDDED_ARTIFACT) }
    }

    /// [`Runtime::new`] with `artifact` in place of [`EMBEDDED_ARTIFACT`] (the tests give
    /// it one that the engine refuses).
    ///
    /// # Safety
    ///
    /// `artifact` is empty or the output of wasmtime's `precompile_component` or
    /// `Component::serialize` (of any version or configuration: wasmtime refuses those that
    /// do not fit), as `Component::deserialize` requires.
    unsafe fn with_artifact(opts: RuntimeOptions, artifact: &[u8]) -> anyhow::Result<Runtime> {
        let engine = new_engine(
            env_flag("KS3_DRIVER_PERFMAP"),
            env_flag("KS3_DRIVER_POOLING"),
        )?;
        // SAFETY: as this function's contract.
        let (component, load) = unsafe { load_component(&engine, &opts, artifact) }?;

        let mut linker: Linker<Ctx> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = linker.instantiate_pre(&component)?;
        let exports = Arc::new(Exports::new(&pre)?);

        spawn_epoch_ticker(&engine);
        // The embedded component is the KS3 driver: no instance needs asking.
        let name = if opts.component.is_none() {
            tokio::sync::OnceCell::new_with(Some(ks3_driver_component::DRIVER_NAME.to_string()))
        } else {
            tokio::sync::OnceCell::new()
        };

        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                pre,
                exports,
                memory_limit: opts.memory_limit,
                // Bounded so that `now + op_timeout` can never overflow.
                op_timeout: opts
                    .op_timeout
                    .unwrap_or(DEFAULT_OP_TIMEOUT)
                    .clamp(Duration::from_millis(1), MAX_OP_TIMEOUT),
                log_requests: opts.log_requests || env_flag("KS3_DRIVER_LOG"),
                load,
                executors: Executors::new(),
                preopen: opts.preopen,
                name,
            }),
        })
    }

    /// The process-wide runtime with default options (made on first use).
    pub fn shared() -> anyhow::Result<Runtime> {
        static SHARED: OnceLock<Result<Runtime, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Runtime::new(RuntimeOptions::default()).map_err(|e| format!("{e:#}")))
            .clone()
            .map_err(anyhow::Error::msg)
    }

    /// How the component was loaded (embedded artifact, cache hit or compile, and how long
    /// it took).
    pub fn load_info(&self) -> &LoadInfo {
        &self.inner.load
    }

    pub fn log_requests(&self) -> bool {
        self.inner.log_requests
    }

    pub fn op_timeout(&self) -> Duration {
        self.inner.op_timeout
    }

    /// The directory instances see as `/` ([`RuntimeOptions::preopen`]).
    pub fn preopen(&self) -> Option<&std::path::Path> {
        self.inner.preopen.as_deref()
    }

    /// The component's registration name (`ks3`, `filesystem`): the embedded component's
    /// is known; another's is asked of an instance with no configuration, no directory and
    /// no network the first time.
    pub async fn driver_name(&self) -> Result<String, Error> {
        self.inner
            .name
            .get_or_try_init(|| async {
                let spec = SessionSpec {
                    env: Vec::new(),
                    egress: crate::egress::Egress::closed()?,
                    memory_limit: DEFAULT_MEMORY_LIMIT,
                    idle_limit: self.inner.op_timeout,
                    redact: Arc::new(Vec::new()),
                    preopen: None,
                };
                let mut s = self.session(&spec).await?;
                let (name,) = s.invoke::<_, (String,)>("name", |e| &e.name, ()).await?;
                Ok(name)
            })
            .await
            .cloned()
    }

    /// The memory limit for a driver whose parts are `chunk_size` bytes.
    pub(crate) fn memory_limit_for(&self, chunk_size: u64, parts_in_flight: usize) -> usize {
        self.inner.memory_limit.unwrap_or_else(|| {
            // The parts in flight, the part being filled and a copy of it (the saved
            // tail), plus room for everything else.
            let chunks = (parts_in_flight as u64).saturating_add(2);
            let need = chunk_size
                .saturating_mul(chunks)
                .saturating_add(64 << 20)
                .min(4 << 30) as usize;
            need.max(DEFAULT_MEMORY_LIMIT)
        })
    }

    /// Runs a stateless driver call on one of the runtime's executor threads.
    pub(crate) async fn run<F, T>(&self, call: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.executors.run(call).await
    }

    /// A fresh store and instance for one operation (or one reader/writer/walker).
    pub(crate) async fn session(&self, spec: &SessionSpec) -> Result<Session, Error> {
        let inner = &self.inner;
        Session::start(
            &inner.engine,
            &inner.pre,
            &inner.exports,
            inner.op_timeout,
            inner.log_requests,
            spec,
        )
        .await
    }
}

/// Concurrent instances the pooling allocator (`KS3_DRIVER_POOLING=1`) has room for
/// (operations in flight plus open readers, writers, walkers and parked warm instances).
pub const MAX_INSTANCES: u32 = 1000;

/// An engine with epoch interruption and wasmtime's on-demand allocator, or, with
/// `KS3_DRIVER_POOLING=1` (and if the system grants the address-space reservation), the
/// pooling allocator, whose instances reuse pre-reserved memory slots instead of mapping
/// and unmapping a 4 GiB reservation each time.
///
/// On-demand is the default because of what `ks3-driver bench` measured: setting up a
/// pool of [`MAX_INSTANCES`] slots (a guard-page `mprotect` per stack, huge reservations
/// to unmap at exit) added ~9 ms to every process start (cached cold start 18 ms vs 9 ms),
/// while stateless operations reuse warm instances anyway, so a fresh instantiation only
/// happens per reader, writer and walker, where tens of µs do not show.
///
/// The code-relevant settings are [`engine_config::code_config`]'s, which `build.rs`
/// precompiles [`EMBEDDED_ARTIFACT`] with; `perfmap` and `pooling` only affect the runtime.
fn new_engine(perfmap: bool, pooling: bool) -> anyhow::Result<Engine> {
    let mut cfg = engine_config::code_config();
    // Publishes compiled code with the same `mprotect` as wasmtime's default, and also
    // the embedded artifact run in place (not a code-relevant setting: the artifact is
    // accepted either way).
    cfg.with_custom_code_memory(code_in_place::code_memory());
    if perfmap {
        // /tmp/perf-PID.map names the guest's functions for `perf report`.
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut pool = wasmtime::PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 4)
            // The driver has three core modules, one memory and two tables.
            .total_memories(MAX_INSTANCES)
            .total_tables(MAX_INSTANCES * 2)
            .total_stacks(MAX_INSTANCES)
            .max_memories_per_module(1)
            .max_memory_size(4 << 30);
        let mut pooled = cfg.clone();
        pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        if let Ok(engine) = Engine::new(&pooled) {
            return Ok(engine);
        }
    }
    Ok(Engine::new(&cfg)?)
}

/// The driver component for `engine`: with `opts.component`, that file through the
/// on-disk cache; else the embedded component, from its precompiled `artifact` when there
/// is one and the engine accepts it, else through the on-disk cache.
///
/// # Safety
///
/// As [`Runtime::with_artifact`]'s.
unsafe fn load_component(
    engine: &Engine,
    opts: &RuntimeOptions,
    artifact: &[u8],
) -> anyhow::Result<(Component, LoadInfo)> {
    let file_bytes;
    let wasm: &[u8] = match &opts.component {
        Some(path) => {
            file_bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read component {}: {e}", path.display()))?;
            &file_bytes
        }
        None => {
            let ignore = opts.ignore_embedded_artifact
                || std::env::var("KS3_DRIVER_EMBEDDED_ARTIFACT")
                    .is_ok_and(|v| matches!(v.trim(), "off" | "0" | "no" | "false"));
            if !ignore {
                // SAFETY: as this function's contract.
                if let Some(loaded) = unsafe { deserialize_embedded(engine, artifact) } {
                    return Ok(loaded);
                }
            }
            EMBEDDED_COMPONENT
        }
    };
    // Only now the cache's directory and the component's digest (its file name): a start
    // from the embedded artifact needs neither.
    let dir = cache::cache_dir(opts.cache_dir.as_deref());
    cache::load_or_compile(engine, wasm, dir.as_deref())
}

/// The embedded component from its precompiled `artifact`, or `None` (saying why at debug
/// level) when there is none or `engine` refuses it (wasmtime checks the artifact's
/// version, engine settings and CPU features against its own).
///
/// # Safety
///
/// As [`Runtime::with_artifact`]'s.
unsafe fn deserialize_embedded(engine: &Engine, artifact: &[u8]) -> Option<(Component, LoadInfo)> {
    if artifact.is_empty() {
        tracing::debug!(
            target: "ks3_driver::cache",
            "no precompiled component in this build (precompiled: {PRECOMPILED}); compiling"
        );
        return None;
    }
    let started = Instant::now();
    // In place for the process's first runtime, where supported; else `deserialize`
    // copies the artifact into fresh memory that it makes executable.
    // SAFETY: as this function's contract; the memory is a static's, never written, and
    // `claim` hands it out once, so no other image registers the same code.
    let in_place = code_in_place::claim(artifact)
        .and_then(|memory| unsafe { Component::deserialize_raw(engine, memory) }.ok());
    let (loaded, how) = match in_place {
        Some(component) => (Ok(component), "embedded-in-place"),
        // SAFETY: as this function's contract.
        None => (
            unsafe { Component::deserialize(engine, artifact) },
            "embedded",
        ),
    };
    match loaded {
        Ok(component) => Some((
            component,
            LoadInfo {
                cache: how,
                path: None,
                elapsed: started.elapsed(),
            },
        )),
        Err(e) => {
            tracing::debug!(
                target: "ks3_driver::cache",
                "the embedded precompiled component does not fit this engine or CPU ({e:#}); compiling"
            );
            None
        }
    }
}

/// Advances the engine's epoch while the engine is alive.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("ks3-driver-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => return,
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Driver, Params};

    /// A driver on `rt` against a fresh in-memory ks3-local: a put and a get.
    async fn round_trip(rt: &Runtime) {
        let server =
            ks3_local::start_in_background(ks3_local::ServerConfig::memory("bkt", "AK", "SK"))
                .unwrap();
        let mut p = Params::new();
        for (k, v) in [
            ("accesskey", "AK"),
            ("secretkey", "SK"),
            ("region", "ks3-cn-beijing"),
            ("bucket", "bkt"),
            ("regionendpoint", server.endpoint().as_str()),
        ] {
            p.insert(k.into(), v.into());
        }
        let d = Driver::with_runtime(rt, p).await.unwrap();
        d.put_content("/x", b"runs").await.unwrap();
        assert_eq!(d.get_content("/x").await.unwrap(), b"runs");
    }

    #[tokio::test]
    async fn the_default_runtime_loads_the_embedded_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let rt = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache.clone()),
            ..RuntimeOptions::default()
        })
        .unwrap();
        // A native build precompiles (`build.rs`); only a cross build or
        // KS3_DRIVER_NO_PRECOMPILE leaves the artifact out, and says so.
        if PRECOMPILED == "yes" {
            assert!(!EMBEDDED_ARTIFACT.is_empty());
            // In place when this is the process's first runtime (tests/in_place.rs).
            assert!(
                rt.load_info().cache.starts_with("embedded"),
                "{:?}",
                rt.load_info()
            );
            assert!(!cache.exists(), "the disk cache is not even created");
        } else {
            assert!(PRECOMPILED.starts_with("no ("), "{PRECOMPILED}");
            assert!(EMBEDDED_ARTIFACT.is_empty());
            assert_eq!(rt.load_info().cache, "miss");
        }
        round_trip(&rt).await;
    }

    /// The allocator and the profiler are not in `engine_config`: the engines that
    /// `new_engine` builds with them still accept the artifact.
    #[test]
    fn runtime_only_settings_keep_the_artifact_loadable() {
        if PRECOMPILED != "yes" {
            return;
        }
        for (perfmap, pooling) in [(false, false), (false, true), (true, false)] {
            let engine = new_engine(perfmap, pooling).unwrap();
            // SAFETY: as `Runtime::new`'s.
            let loaded = unsafe { Component::deserialize(&engine, EMBEDDED_ARTIFACT) };
            assert!(
                loaded.is_ok(),
                "perfmap {perfmap}, pooling {pooling}: {:?}",
                loaded.err()
            );
        }
        let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", std::process::id()));
    }

    /// An artifact the engine refuses (here one of an engine without epoch interruption;
    /// another CPU's is refused by the same check) is not fatal: the runtime compiles, and
    /// the disk cache works as before.
    #[tokio::test]
    async fn a_refused_artifact_falls_back_to_compiling() {
        let other = Engine::new(&wasmtime::Config::new()).unwrap();
        let foreign = other.precompile_component(EMBEDDED_COMPONENT).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = RuntimeOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            ..RuntimeOptions::default()
        };
        // SAFETY: wasmtime's own output.
        let rt = unsafe { Runtime::with_artifact(opts.clone(), &foreign) }.unwrap();
        assert_eq!(rt.load_info().cache, "miss", "{:?}", rt.load_info());
        round_trip(&rt).await;
        // No artifact at all (a cross build): the cache written above.
        // SAFETY: empty.
        let rt = unsafe { Runtime::with_artifact(opts.clone(), &[]) }.unwrap();
        assert_eq!(rt.load_info().cache, "hit");
        // And the switch that leaves a good artifact unused.
        let rt = Runtime::new(RuntimeOptions {
            ignore_embedded_artifact: true,
            ..opts
        })
        .unwrap();
        assert_eq!(rt.load_info().cache, "hit");
    }
}
