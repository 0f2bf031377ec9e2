//! One sandboxed store and instance of the driver component (a [`Session`]): its WASI
//! context, memory limit, wall clock, the calls into the guest, the response-body streams
//! the guest hands over, and what the guest wrote to stderr.
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::component::{
    ComponentNamedList, Instance, InstancePre, Lift, Lower, Resource, ResourceTable,
};
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynInputStream, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::activity::Activity;
use crate::bindings::{Export, Exports, Res, WitError, FAST_PATH};
use crate::driver::{CallOutcome, CallRecord};
use crate::egress::{Egress, EgressHooks};
use crate::error::{DriverError, Error, IoError, IoKind, SandboxKind};

/// Bytes of the guest's stderr kept for error messages.
const GUEST_STDERR_CAPTURE: usize = 16 << 10;

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

/// What a driver needs of each store.
pub(crate) struct SessionSpec {
    pub env: Vec<(String, String)>,
    pub egress: Arc<Egress>,
    pub memory_limit: usize,
    /// A call stops when its traffic stood still this long.
    pub idle_limit: Duration,
    /// Strings never to repeat from the guest's output (the credentials).
    pub redact: Arc<Vec<String>>,
    /// A host directory the guest sees as `/` (read and write), for a driver over
    /// `wasi:filesystem`; none for KS3.
    pub preopen: Option<std::path::PathBuf>,
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
    /// A fresh store and instance of `pre` for one operation (or one reader, writer or
    /// walker), each of its calls limited to `op_timeout`.
    pub(crate) async fn start(
        engine: &Engine,
        pre: &InstancePre<Ctx>,
        exports: &Arc<Exports>,
        op_timeout: Duration,
        log: bool,
        spec: &SessionSpec,
    ) -> Result<Session, Error> {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_CAPTURE);
        let activity = Activity::new();
        let mut wasi = WasiCtx::builder();
        wasi.envs(&spec.env)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = &spec.preopen {
            wasi.preopened_dir(dir, "/", wasmtime_wasi::FsPerms::ReadWrite)
                .map_err(|e| {
                    Error::sandbox(
                        SandboxKind::Setup,
                        format!(
                            "cannot give the driver the directory {}: {e:#}",
                            dir.display()
                        ),
                    )
                })?;
        }
        let wasi = wasi.build();
        let ctx = Ctx {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: EgressHooks::new(spec.egress.clone(), activity.clone()),
            limits: Limits {
                memory: spec.memory_limit,
                refused: None,
            },
            hard_deadline: Instant::now() + op_timeout,
            call_started: Instant::now(),
            activity,
            idle_limit: spec.idle_limit,
            stderr,
            stderr_echoed: 0,
        };
        let mut store = Store::new(engine, ctx);
        store.limiter(|c| &mut c.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().deadline() {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let timeout = op_timeout;
        let mut session = Session {
            store,
            instance: None,
            exports: exports.clone(),
            timeout,
            log,
            redact: spec.redact.clone(),
            dead: None,
            in_call: false,
        };
        let r = tokio::time::timeout(timeout, pre.instantiate_async(&mut session.store)).await;
        match r {
            Ok(Ok(i)) => {
                session.instance = Some(i);
                Ok(session)
            }
            Ok(Err(e)) if session.store.data().limits.refused.is_some() => {
                Err(session.trap_error("instantiating the driver", e))
            }
            // E.g. the pool is full (more than MAX_INSTANCES operations at once).
            Ok(Err(e)) => Err(Error::sandbox(
                SandboxKind::Start,
                format!(
                    "cannot start a driver instance: {}",
                    one_line(&format!("{e:#}"))
                ),
            )),
            Err(_) => Err(Error::sandbox(
                SandboxKind::WallClock,
                format!("instantiating the driver took longer than {timeout:?}"),
            )),
        }
    }

    /// Whether the instance may serve another operation: no call trapped, timed out or
    /// was cancelled mid-way, and the guest wrote nothing to stderr (its capture pipe is
    /// bounded and cannot be truncated; such an instance is simply not reused).
    pub(crate) fn reusable(&self) -> bool {
        self.dead.is_none()
            && !self.in_call
            && self.instance.is_some()
            && self.store.data().stderr.contents().is_empty()
    }

    /// Whether the driver exports the optional `fast-path` interface.
    pub(crate) fn has_fast_path(&self) -> bool {
        self.exports.fast_path
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
                self.denied_error(what).unwrap_or_else(|| {
                    Error::Driver(self.name_certificate_problem(DriverError::from(e)))
                })
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
        if let Some(o) = self.store.data().hooks.observer() {
            o.call(&CallRecord {
                operation: what.split(' ').next().unwrap_or(what),
                outcome: match &r {
                    Ok(_) => CallOutcome::Ok,
                    Err(e) if e.is_not_found() => CallOutcome::NotFound,
                    Err(_) => CallOutcome::Error,
                },
                took: started.elapsed(),
            });
        }
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
            self.dead = Some(Error::sandbox(
                SandboxKind::Broken,
                "an earlier call on this reader/writer was cancelled mid-way",
            ));
        }
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let Some(instance) = self.instance else {
            return Err(Error::sandbox(
                SandboxKind::Broken,
                "the driver instance is not available",
            ));
        };
        let Some(index) = export(&self.exports).index else {
            // An optional export (`fast-path`) this driver does not have.
            return Err(Error::Driver(DriverError::UnsupportedMethod(format!(
                "{what}: the driver does not export {FAST_PATH}"
            ))));
        };
        let func = instance
            .get_func(&mut self.store, index)
            .ok_or_else(|| Error::sandbox(SandboxKind::Start, format!("{what}: export missing")))?;
        let typed = func
            .typed::<P, R>(&self.store)
            .map_err(|e| Error::sandbox(SandboxKind::Start, format!("{what}: {e}")))?;
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
        let s = self.store.data_mut().table.get_mut(stream).map_err(|e| {
            Error::sandbox(SandboxKind::Broken, format!("the reader's stream: {e}"))
        })?;
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
                    return Err(Error::sandbox(
                        SandboxKind::Broken,
                        format!("the reader's stream: {e:#}"),
                    ))
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
            .map_err(|e| Error::sandbox(SandboxKind::Broken, format!("the reader's stream: {e}")))
    }

    fn wall_clock_error(&self, what: &str) -> Error {
        let data = self.store.data();
        if Instant::now() >= data.hard_deadline {
            Error::sandbox(
                SandboxKind::WallClock,
                format!("{what} exceeded the wall-clock limit of {:?}", self.timeout),
            )
        } else {
            Error::sandbox(
                SandboxKind::WallClock,
                format!(
                    "{what} stopped: no traffic with KS3 for {:?} (the wall-clock limit that follows requesttimeout and maxretries)",
                    data.idle_limit
                ),
            )
        }
    }

    /// A TLS certificate refusal, which the guest only knows as such, with what the host
    /// saw wrong with the certificate.
    fn name_certificate_problem(&self, e: DriverError) -> DriverError {
        match e {
            DriverError::Io(IoError {
                kind: IoKind::TlsCertificate(None),
                message,
            }) => match self.store.data().hooks.tls_problem() {
                Some((problem, words)) => DriverError::Io(IoError::new(
                    IoKind::TlsCertificate(Some(problem)),
                    format!("{message} ({words})"),
                )),
                None => DriverError::Io(IoError::new(IoKind::TlsCertificate(None), message)),
            },
            other => other,
        }
    }

    /// The egress refusals of the last call, as the host's error.
    fn denied_error(&self, what: &str) -> Option<Error> {
        let data = self.store.data();
        let first = data.hooks.denied.first()?;
        Some(Error::sandbox(
            SandboxKind::Denied,
            format!(
                "{what}: request to {first} refused: the driver may only reach {}",
                data.hooks.allowed()
            ),
        ))
    }

    fn trap_error(&mut self, what: &str, trap: wasmtime::Error) -> Error {
        let data = self.store.data();
        if let Some(refused) = data.limits.refused {
            return Error::sandbox(
                SandboxKind::Memory,
                format!(
                    "{what}: the driver exceeded its memory limit of {} (it asked for {})",
                    mib(data.limits.memory),
                    mib(refused)
                ),
            );
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
        Error::sandbox(SandboxKind::Trap, msg)
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
