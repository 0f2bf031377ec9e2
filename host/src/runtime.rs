//! The wasmtime side: one engine, linker and pre-instantiated component per process,
//! and a fresh sandboxed store + instance per operation.
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use wasmtime::component::{
    Component, ComponentNamedList, Instance, InstancePre, Lift, Linker, Lower, Resource,
    ResourceTable,
};
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynInputStream, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::activity::Activity;
use crate::bindings::{Export, Exports, Res, WitError};
use crate::cache::{self, LoadInfo};
use crate::code_in_place;
use crate::egress::{Egress, EgressHooks};
use crate::engine_config;
use crate::error::Error;
use crate::error::{IoError, IoKind};
use crate::executors::Executors;

/// The driver component built by `build.rs` from `driver/`.
pub static EMBEDDED_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ks3-driver-component.wasm"));

/// [`EMBEDDED_COMPONENT`] precompiled by `build.rs` for the build machine with the
/// runtime's engine settings (`engine_config.rs`), so that even the first start of a
/// process loads compiled code. Empty when the build skipped it (cross-compiling,
/// `KS3_DRIVER_NO_PRECOMPILE=1`); wasmtime refuses it on a CPU without the build machine's
/// features, and the runtime then compiles (or uses its on-disk cache) instead.
/// Embedded page-aligned: the process's first runtime runs it in place
/// (`code_in_place.rs`).
pub static EMBEDDED_ARTIFACT: &[u8] = code_in_place::ARTIFACT;

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
/// Bytes of the guest's stderr kept for error messages.
const GUEST_STDERR_CAPTURE: usize = 16 << 10;

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
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_CAPTURE);
        let activity = Activity::new();
        let wasi = WasiCtx::builder()
            .envs(&spec.env)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let ctx = Ctx {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: EgressHooks::new(spec.egress.clone(), activity.clone()),
            limits: Limits {
                memory: spec.memory_limit,
                refused: None,
            },
            hard_deadline: Instant::now() + self.inner.op_timeout,
            call_started: Instant::now(),
            activity,
            idle_limit: spec.idle_limit,
            stderr,
            stderr_echoed: 0,
        };
        let mut store = Store::new(&self.inner.engine, ctx);
        store.limiter(|c| &mut c.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let timeout = self.inner.op_timeout;
        let mut session = Session {
            store,
            instance: None,
            exports: self.inner.exports.clone(),
            timeout,
            log: self.inner.log_requests,
            redact: spec.redact.clone(),
            dead: None,
            in_call: false,
        };
        let r = tokio::time::timeout(
            timeout,
            self.inner.pre.instantiate_async(&mut session.store),
        )
        .await;
        match r {
            Ok(Ok(i)) => {
                session.instance = Some(i);
                Ok(session)
            }
            Ok(Err(e)) if session.store.data().limits.refused.is_some() => {
                Err(session.trap_error("instantiating the driver", e))
            }
            // E.g. the pool is full (more than MAX_INSTANCES operations at once).
            Ok(Err(e)) => Err(Error::Runtime(format!(
                "cannot start a driver instance: {}",
                one_line(&format!("{e:#}"))
            ))),
            Err(_) => Err(Error::Runtime(format!(
                "instantiating the driver took longer than {timeout:?}"
            ))),
        }
    }
}

/// Runs `fut` until it finishes, or until `activity` has stood still for `idle` (counted
/// from `started` at the earliest), or until `hard`. `Err(())` when it was stopped.
async fn until_idle<F: Future>(
    fut: F,
    activity: &Activity,
    started: Instant,
    idle: Duration,
    hard: Instant,
) -> Result<F::Output, ()> {
    tokio::pin!(fut);
    loop {
        let deadline = activity
            .last()
            .max(started)
            .checked_add(idle)
            .map_or(hard, |d| d.min(hard));
        tokio::select! {
            out = &mut fut => return Ok(out),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                let moved = activity.last().max(started).checked_add(idle).is_some_and(|d| d > now);
                if now >= hard || !moved {
                    return Err(());
                }
            }
        }
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

/// What a driver needs of each store.
pub(crate) struct SessionSpec {
    pub env: Vec<(String, String)>,
    pub egress: Arc<Egress>,
    pub memory_limit: usize,
    /// A call stops when its traffic stood still this long.
    pub idle_limit: Duration,
    /// Strings never to repeat from the guest's output (the credentials).
    pub redact: Arc<Vec<String>>,
}

/// The data of one store.
pub(crate) struct Ctx {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    limits: Limits,
    /// The current call's hard limit (`op_timeout`).
    hard_deadline: Instant,
    /// When the current call started.
    call_started: Instant,
    /// Traffic of this store; the call may go on while it moves.
    activity: Activity,
    idle_limit: Duration,
    stderr: MemoryOutputPipe,
    /// How much of `stderr` has been echoed already (the pipe can only grow).
    stderr_echoed: usize,
}

impl Ctx {
    /// When the current call must stop: `idle_limit` after its last traffic (or its
    /// start), and never after the hard limit.
    fn deadline(&self) -> Instant {
        let moving = self.activity.last().max(self.call_started);
        moving
            .checked_add(self.idle_limit)
            .map_or(self.hard_deadline, |d| d.min(self.hard_deadline))
    }
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// A per-memory size limit that remembers the growth it refused.
struct Limits {
    memory: usize,
    refused: Option<usize>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// What [`Session::read_stream`] got.
pub(crate) enum StreamRead {
    Data(Bytes),
    /// The body ended.
    Closed,
    /// The body failed, how.
    Failed(String),
    /// These bytes were the last: then the body ended (`None`) or failed (how).
    Last(Bytes, Option<String>),
}

/// One store + instance. Any trap or timeout makes it dead: later calls fail with the
/// same error instead of entering a broken instance.
pub(crate) struct Session {
    store: Store<Ctx>,
    instance: Option<Instance>,
    exports: Arc<Exports>,
    timeout: Duration,
    log: bool,
    redact: Arc<Vec<String>>,
    dead: Option<Error>,
    /// A call started and did not finish (its future was dropped): the instance may be
    /// mid-call and must not be entered again.
    in_call: bool,
}

impl Session {
    /// Whether the instance may serve another operation: no call trapped, timed out or
    /// was cancelled mid-way, and the guest wrote nothing to stderr (its capture pipe is
    /// bounded and cannot be truncated; such an instance is simply not reused).
    pub(crate) fn reusable(&self) -> bool {
        self.dead.is_none()
            && !self.in_call
            && self.instance.is_some()
            && self.store.data().stderr.contents().is_empty()
    }

    /// Calls a function returning `result<T, driver-error>`.
    pub(crate) async fn call<P, T>(
        &mut self,
        what: &str,
        export: fn(&Exports) -> &Export<Res<T>>,
        params: P,
    ) -> Result<T, Error>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        T: Lift + Send + Sync + 'static,
        (Result<T, WitError>,): ComponentNamedList + Lift,
    {
        let started = std::time::Instant::now();
        let r = match self
            .invoke::<P, (Result<T, WitError>,)>(what, export, params)
            .await
        {
            Ok((result,)) => result.map_err(|e| {
                self.denied_error(what)
                    .unwrap_or_else(|| self.name_certificate_problem(convert(e)))
            }),
            Err(e) => Err(e),
        };
        self.store.data_mut().hooks.denied.clear();
        // One event per driver call, in the caller's span (a registry request, say). `what`
        // is the operation and its path(s): never a parameter's value or credential.
        tracing::debug!(
            target: "ks3_driver::call",
            call = what,
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            outcome = match &r {
                Ok(_) => "ok",
                Err(e) if e.is_not_found() => "not-found",
                Err(_) => "error",
            },
        );
        r
    }

    /// Calls a function with a plain result list (`()` or `(T,)`).
    pub(crate) async fn invoke<P, R>(
        &mut self,
        what: &str,
        export: fn(&Exports) -> &Export<R>,
        params: P,
    ) -> Result<R, Error>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        if self.in_call {
            self.dead = Some(Error::Runtime(
                "an earlier call on this reader/writer was cancelled mid-way".into(),
            ));
        }
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let Some(instance) = self.instance else {
            return Err(Error::Runtime(
                "the driver instance is not available".into(),
            ));
        };
        let func = instance
            .get_func(&mut self.store, export(&self.exports).index)
            .ok_or_else(|| Error::Runtime(format!("{what}: export missing")))?;
        let typed = func
            .typed::<P, R>(&self.store)
            .map_err(|e| Error::Runtime(format!("{what}: {e}")))?;
        let data = self.store.data_mut();
        let now = Instant::now();
        data.call_started = now;
        data.hard_deadline = now + self.timeout;
        data.hooks.denied.clear();
        data.limits.refused = None;
        let (activity, idle, hard) = (data.activity.clone(), data.idle_limit, data.hard_deadline);
        self.in_call = true;
        let outcome = until_idle(
            typed.call_async(&mut self.store, params),
            &activity,
            now,
            idle,
            hard,
        )
        .await;
        self.in_call = false;
        let result = match outcome {
            Ok(Ok(r)) => Ok(r),
            // The guest was waiting on I/O that stood still (or the hard limit passed), or
            // the epoch deadline stopped it while it ran.
            Err(_) => Err(self.wall_clock_error(what)),
            Ok(Err(trap))
                if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) =>
            {
                Err(self.wall_clock_error(what))
            }
            Ok(Err(trap)) => Err(self.trap_error(what, trap)),
        };
        if let Err(e) = &result {
            self.dead = Some(e.clone());
        }
        self.flush_guest_stderr();
        result
    }

    /// Up to `max` bytes of a stream the guest handed over (a reader's response body),
    /// read here without entering the guest, waiting for the first byte at most the idle
    /// limit. With `gather`, the frames that have arrived, joined; without, the next
    /// frame as the HTTP client holds it (never copied).
    pub(crate) async fn read_stream(
        &mut self,
        stream: &Resource<DynInputStream>,
        max: usize,
        gather: bool,
    ) -> Result<StreamRead, Error> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let idle = self.store.data().idle_limit;
        let s = self
            .store
            .data_mut()
            .table
            .get_mut(stream)
            .map_err(|e| Error::Runtime(format!("the reader's stream: {e}")))?;
        let mut out: Vec<u8> = Vec::new();
        while out.len() < max {
            match s.read(max - out.len()) {
                Ok(bytes) if bytes.is_empty() => {
                    if !out.is_empty() {
                        break;
                    }
                    // Nothing buffered: wait for the next frame (or the end, or a failure).
                    if tokio::time::timeout(idle, s.ready()).await.is_err() {
                        return Ok(StreamRead::Failed(format!(
                            "no bytes of the response body for {} s",
                            idle.as_secs()
                        )));
                    }
                }
                // Without `gather`, the frame as it came from the HTTP client (no copy);
                // a large one is not worth copying either.
                Ok(bytes) if out.is_empty() && (!gather || bytes.len() >= max / 2) => {
                    return Ok(StreamRead::Data(bytes))
                }
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(StreamError::Closed) if out.is_empty() => return Ok(StreamRead::Closed),
                // What arrived before the end goes with it: a stream reports its end once.
                Err(StreamError::Closed) => return Ok(StreamRead::Last(out.into(), None)),
                Err(StreamError::LastOperationFailed(e)) => {
                    let why = format!("reading the response body: {e:#}");
                    if out.is_empty() {
                        return Ok(StreamRead::Failed(why));
                    }
                    return Ok(StreamRead::Last(out.into(), Some(why)));
                }
                Err(StreamError::Trap(e)) => {
                    return Err(Error::Runtime(format!("the reader's stream: {e:#}")))
                }
            }
        }
        Ok(StreamRead::Data(out.into()))
    }

    /// Drops a stream the guest handed over (before the guest drops its parents).
    pub(crate) fn drop_stream(&mut self, stream: Resource<DynInputStream>) -> Result<(), Error> {
        self.store
            .data_mut()
            .table
            .delete(stream)
            .map(drop)
            .map_err(|e| Error::Runtime(format!("the reader's stream: {e}")))
    }

    fn wall_clock_error(&self, what: &str) -> Error {
        let data = self.store.data();
        if Instant::now() >= data.hard_deadline {
            Error::Runtime(format!(
                "{what} exceeded the wall-clock limit of {:?}",
                self.timeout
            ))
        } else {
            Error::Runtime(format!(
                "{what} stopped: no traffic with KS3 for {:?} (the wall-clock limit that follows requesttimeout and maxretries)",
                data.idle_limit
            ))
        }
    }

    /// A TLS certificate refusal, which the guest only knows as such, with what the host
    /// saw wrong with the certificate.
    fn name_certificate_problem(&self, e: Error) -> Error {
        match e {
            Error::Io(IoError {
                kind: IoKind::TlsCertificate(None),
                message,
            }) => match self.store.data().hooks.tls_problem() {
                Some((problem, words)) => Error::Io(IoError::new(
                    IoKind::TlsCertificate(Some(problem)),
                    format!("{message} ({words})"),
                )),
                None => Error::Io(IoError::new(IoKind::TlsCertificate(None), message)),
            },
            other => other,
        }
    }

    /// The egress refusals of the last call, as the host's error.
    fn denied_error(&self, what: &str) -> Option<Error> {
        let data = self.store.data();
        let first = data.hooks.denied.first()?;
        Some(Error::Runtime(format!(
            "{what}: request to {first} refused: the driver may only reach {}",
            data.hooks.allowed()
        )))
    }

    fn trap_error(&mut self, what: &str, trap: wasmtime::Error) -> Error {
        let data = self.store.data();
        if let Some(refused) = data.limits.refused {
            return Error::Runtime(format!(
                "{what}: the driver exceeded its memory limit of {} (it asked for {})",
                mib(data.limits.memory),
                mib(refused)
            ));
        }
        let mut msg = format!(
            "{what}: the driver trapped: {}",
            one_line(&trap.to_string())
        );
        if let Some(root) = trap.chain().last().map(|e| e.to_string()) {
            let root = one_line(&root);
            if !msg.contains(&root) {
                msg.push_str(&format!(" ({root})"));
            }
        }
        let said = self.guest_stderr_tail();
        if !said.is_empty() {
            msg.push_str(&format!("; driver stderr: {said}"));
        }
        Error::Runtime(msg)
    }

    /// The last line of what the guest wrote to stderr, credentials removed.
    fn guest_stderr_tail(&self) -> String {
        let bytes = self.store.data().stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let mut line: String = line.chars().take(300).collect();
        for s in self.redact.iter().filter(|s| !s.is_empty()) {
            line = line.replace(s.as_str(), "****");
        }
        line
    }

    fn flush_guest_stderr(&mut self) {
        if !self.log {
            return;
        }
        let data = self.store.data();
        let bytes = data.stderr.contents();
        let Some(new) = bytes.get(data.stderr_echoed..).filter(|b| !b.is_empty()) else {
            return;
        };
        let mut text = String::from_utf8_lossy(new).into_owned();
        for s in self.redact.iter().filter(|s| !s.is_empty()) {
            text = text.replace(s.as_str(), "****");
        }
        for line in text.lines() {
            tracing::info!(target: "ks3_driver::guest", "{line}");
        }
        // The WASI context keeps writing into this same pipe; remember what was shown.
        self.store.data_mut().stderr_echoed = bytes.len();
    }
}

fn mib(n: usize) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The WIT error as the typed error.
pub(crate) fn convert(e: WitError) -> Error {
    match e {
        WitError::PathNotFound(path) => Error::PathNotFound { path },
        WitError::InvalidPath(path) => Error::InvalidPath { path },
        WitError::InvalidOffset(o) => Error::InvalidOffset {
            path: o.path,
            offset: o.offset,
        },
        WitError::UnsupportedMethod(_) => Error::UnsupportedMethod,
        WitError::Backend(b) => Error::Backend(ks3_driver_component::BackendError {
            code: b.code,
            status: b.status,
            message: b.message,
            request_id: b.request_id,
            path: b.path,
        }),
        WitError::Config(c) => Error::Config {
            parameter: c.parameter,
            message: c.message,
        },
        WitError::Io(e) => Error::Io(IoError::new(e.kind.into(), e.message)),
        WitError::InvalidState(m) => Error::InvalidState(m),
    }
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
