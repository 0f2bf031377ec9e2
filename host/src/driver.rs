//! The typed async API: every operation runs in a sandboxed instance of the driver
//! component — a warm one of the same driver for stateless operations, a fresh one for
//! each reader, writer and walker.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ks3_driver_component::config::{params_to_env, Config, Params};
use wasmtime::component::{ComponentNamedList, Lift, Lower};

use crate::bindings::{Export, Exports, Res, WitError, WitFileInfo};
use crate::egress::{Destination, Egress};
use crate::error::{DriverError, Error, SandboxKind};
pub use crate::reader::FileReader;
use crate::runtime::Runtime;
use crate::session::{Session, SessionSpec};
pub use crate::writer::FileWriter;
use crate::writer::Opening;

/// Entries pulled from the guest walker per call.
pub const WALK_BATCH: u32 = 1000;

/// Metadata of a file or of an implicit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Last modification (the Unix epoch for a directory).
    pub mod_time: SystemTime,
    pub is_dir: bool,
}

impl From<WitFileInfo> for FileInfo {
    fn from(i: WitFileInfo) -> Self {
        FileInfo {
            path: i.path,
            size: i.size,
            mod_time: UNIX_EPOCH + Duration::from_nanos(i.mod_time_ns),
            is_dir: i.is_dir,
        }
    }
}

/// What a walk callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkControl {
    Continue,
    /// Do not descend into this directory (a no-op for a file, as in distribution v3).
    SkipDir,
    /// End the walk; `walk` returns `Ok(())`.
    Stop,
}

/// How a driver call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// The path does not exist (an answer, not a failure).
    NotFound,
    Error,
}

impl CallOutcome {
    /// `ok`, `not-found` or `error`, as the `ks3_driver::call` event says.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::NotFound => "not-found",
            CallOutcome::Error => "error",
        }
    }
}

/// One call into the driver component, as the `ks3_driver::call` event reports it.
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    /// The operation (`stat`, `get-content`, `writer-commit`, …), never its arguments.
    pub operation: &'a str,
    pub outcome: CallOutcome,
    pub took: Duration,
}

/// One request the driver sent to KS3 through the host's egress.
#[derive(Debug, Clone, Copy)]
pub struct Ks3Request<'a> {
    pub method: &'a str,
    /// The answer's status; `None` when none came (connect, timeout, TLS, reset).
    pub status: Option<u16>,
    /// Until the response head (or the failure).
    pub took: Duration,
    /// A failure the driver retries (5xx — SlowDown is a 503 —, or no answer): another
    /// attempt follows while `maxretries` allows.
    pub retryable: bool,
}

/// An embedder's view of what the driver does, for metrics. Called on the task that made
/// the call or sent the request: keep it cheap and never block.
pub trait DriverObserver: Send + Sync {
    fn call(&self, _call: &CallRecord<'_>) {}
    fn ks3_request(&self, _request: &Ks3Request<'_>) {}
}

/// The KS3 storage driver, running sandboxed. Cheap to clone; clones share the
/// connection pool.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    /// The KS3 configuration; none for a component whose `name` is not `ks3`.
    config: Option<Config>,
    /// The component's `name()`.
    name: String,
    spec: SessionSpec,
    /// Warm instances parked between stateless operations (see [`IDLE_INSTANCES`]).
    idle: std::sync::Mutex<Vec<Session>>,
}

/// Instances a driver keeps warm for stateless operations (get/put-content, stat, list,
/// move, delete, redirect-url): taking a parked instance skips instantiation and the
/// guest's configuration parsing. An instance whose call trapped, timed out, was
/// cancelled or wrote to stderr is never parked; readers, writers and walkers always
/// get a fresh one.
pub const IDLE_INSTANCES: usize = 8;

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn runtime_error(e: anyhow::Error) -> Error {
    Error::sandbox(SandboxKind::Start, format!("{e:#}"))
}

impl Driver {
    /// A driver on the process-wide [`Runtime::shared`]. The parameters are validated
    /// here (with `KS3_ACCESS_KEY_ID` / `KS3_SECRET_ACCESS_KEY` from the process
    /// environment as the credential fallback) and by the component.
    pub async fn new(params: Params) -> Result<Driver, Error> {
        let runtime = Runtime::shared().map_err(runtime_error)?;
        Self::with_runtime(&runtime, params).await
    }

    /// A driver on `runtime`.
    pub async fn with_runtime(runtime: &Runtime, params: Params) -> Result<Driver, Error> {
        Self::build(runtime, params, None).await
    }

    /// Test hook for the sandbox: a driver whose egress allow-list is `allowed`
    /// (`http(s)://host[:port]`) instead of its configured endpoint, so a test can show
    /// that the guest's requests to the endpoint are refused.
    #[doc(hidden)]
    pub async fn with_egress_override(
        runtime: &Runtime,
        params: Params,
        allowed: &str,
    ) -> Result<Driver, Error> {
        let dest = Destination::parse(allowed).ok_or_else(|| {
            Error::sandbox(
                SandboxKind::Setup,
                format!("`{allowed}` is not http(s)://host[:port]"),
            )
        })?;
        Self::build(runtime, params, Some(dest)).await
    }

    async fn build(
        runtime: &Runtime,
        params: Params,
        allowed: Option<Destination>,
    ) -> Result<Driver, Error> {
        let name = runtime.driver_name().await?;
        if name != ks3_driver_component::DRIVER_NAME {
            return Self::build_other(runtime, name, params).await;
        }
        let config = Config::from_params(&params, |k| std::env::var(k).ok())?;
        // Credentials found through the environment fallback travel explicitly: the
        // guest sees no environment but its configuration.
        let mut guest_params = params;
        guest_params.insert("accesskey".into(), config.access_key.expose().to_string());
        guest_params.insert("secretkey".into(), config.secret_key.expose().to_string());
        let allowed = allowed.unwrap_or_else(|| Destination::from_endpoint(&config.endpoint));
        let egress = Egress::new(&config, allowed)?;
        let spec = SessionSpec {
            env: params_to_env(&guest_params),
            egress,
            memory_limit: runtime.memory_limit_for(config.chunk_size, config.parts_in_flight()),
            idle_limit: crate::activity::idle_limit(
                config.request_timeout_secs,
                config.max_retries,
            ),
            redact: Arc::new(vec![
                config.access_key.expose().to_string(),
                config.secret_key.expose().to_string(),
            ]),
            preopen: runtime.preopen().map(Into::into),
        };
        Self::finish(runtime, Some(config), name, spec).await
    }

    /// A driver whose component is not the KS3 one (`name` is its `name()`): its
    /// parameters go to the guest as `REGISTRY_STORAGE_<NAME>_<PARAMETER>`, unchecked by the
    /// host; it gets no network (a closed egress) and the runtime's preopened directory.
    async fn build_other(runtime: &Runtime, name: String, params: Params) -> Result<Driver, Error> {
        let prefix = format!("REGISTRY_STORAGE_{}_", name.to_ascii_uppercase());
        let spec = SessionSpec {
            env: params
                .iter()
                .map(|(k, v)| (format!("{prefix}{}", k.to_ascii_uppercase()), v.clone()))
                .collect(),
            egress: Egress::closed()?,
            memory_limit: runtime.memory_limit_for(0, 0),
            // No traffic moves the idle clock of a driver without network: only the hard
            // limit applies.
            idle_limit: runtime.op_timeout(),
            redact: Arc::new(Vec::new()),
            preopen: runtime.preopen().map(Into::into),
        };
        Self::finish(runtime, None, name, spec).await
    }

    async fn finish(
        runtime: &Runtime,
        config: Option<Config>,
        name: String,
        spec: SessionSpec,
    ) -> Result<Driver, Error> {
        let driver = Driver {
            inner: Arc::new(Inner {
                runtime: runtime.clone(),
                config,
                name,
                spec,
                idle: std::sync::Mutex::new(Vec::new()),
            }),
        };
        // The component checks the same configuration with the same code; this also
        // proves the component loads and runs before the driver is handed out.
        let mut s = driver.session().await?;
        s.call("validate-config", |e| &e.validate_config, ())
            .await?;
        driver.park(s);
        Ok(driver)
    }

    async fn session(&self) -> Result<Session, Error> {
        self.inner.runtime.session(&self.inner.spec).await
    }

    /// A parked warm instance, or a fresh one.
    async fn warm_session(&self) -> Result<Session, Error> {
        let parked = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match parked {
            Some(s) => Ok(s),
            None => self.session().await,
        }
    }

    /// Parks `s` for the next stateless operation if it is healthy and there is room.
    fn park(&self, s: Session) {
        if !s.reusable() {
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_INSTANCES {
            idle.push(s);
            return;
        }
        drop(idle);
        drop(s);
    }

    /// Reports every call and KS3 request of this driver and of its clones (they share
    /// one egress) to `observer`, replacing any earlier one.
    pub fn with_observer(self, observer: Arc<dyn DriverObserver>) -> Driver {
        self.inner.spec.egress.set_observer(observer);
        self
    }

    /// The validated KS3 configuration; none when the component is another driver.
    pub fn config(&self) -> Option<&Config> {
        self.inner.config.as_ref()
    }

    /// The driver's registration name, the component's `name()`: `ks3` for the embedded
    /// component.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The pooled egress client this driver's instances send through.
    pub(crate) fn egress(&self) -> &Arc<Egress> {
        &self.inner.spec.egress
    }

    /// Runs one stateless call (`export` with `params`, named `what` in events and
    /// errors) in a warm instance on one of the runtime's executor threads
    /// (`executors.rs`), then parks the instance again (if the call left it reusable).
    /// `params` are owned: the caller's borrowed arguments are copied in.
    async fn stateless<P, T>(
        &self,
        what: String,
        export: fn(&Exports) -> &Export<Res<T>>,
        params: P,
    ) -> Result<T, Error>
    where
        P: ComponentNamedList + Lower + Send + Sync + 'static,
        T: Lift + Send + Sync + 'static,
        (Result<T, WitError>,): ComponentNamedList + Lift,
    {
        let driver = self.clone();
        self.inner
            .runtime
            .run(async move {
                let mut s = driver.warm_session().await?;
                let r = s.call(&what, export, params).await;
                driver.park(s);
                r
            })
            .await
    }

    /// The whole content of a (small) object.
    pub async fn get_content(&self, path: &str) -> Result<Vec<u8>, Error> {
        let what = format!("get-content {path}");
        self.stateless(what, |e| &e.get_content, (path.to_string(),))
            .await
    }

    /// Creates or replaces the object at `path`.
    pub async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), Error> {
        let what = format!("put-content {path}");
        let params = (path.to_string(), content.to_vec());
        self.stateless(what, |e| &e.put_content, params).await
    }

    /// [`Self::put_content`] at a path no writer is ever opened at, which the caller
    /// promises (`fast-path.put-content-writerless`, `wit/README.md`): the KS3 driver then
    /// sends the content alone, without probing for a closed writer's tail. A driver
    /// without it gets `put-content`, which is the same but for that probe.
    pub async fn put_content_writerless(&self, path: &str, content: &[u8]) -> Result<(), Error> {
        let what = format!("put-content-writerless {path}");
        let params = (path.to_string(), content.to_vec());
        match self
            .stateless(what, |e| &e.put_content_writerless, params)
            .await
        {
            Err(Error::Driver(DriverError::UnsupportedMethod(_))) => {
                self.put_content(path, content).await
            }
            done => done,
        }
    }

    /// A reader from byte `offset`. Each response body's stream is handed over by the
    /// sandbox and read here directly; the driver inside still opens, resumes and checks.
    pub async fn reader(&self, path: &str, offset: i64) -> Result<FileReader, Error> {
        FileReader::open(self.session().await?, path, offset, false).await
    }

    /// A reader whose bytes come through the component's `file-reader.read` (copied out
    /// of the sandbox), as a host without stream hand-over reads them. For tests and
    /// measurements of that path.
    #[doc(hidden)]
    pub async fn reader_through_guest(&self, path: &str, offset: i64) -> Result<FileReader, Error> {
        FileReader::open(self.session().await?, path, offset, true).await
    }

    /// A writer; with `append`, resumes a closed, uncommitted upload. The CRC-64 of each
    /// chunk is computed here, natively, and handed to the guest with the bytes.
    pub async fn writer(&self, path: &str, append: bool) -> Result<FileWriter, Error> {
        FileWriter::open(
            self.session().await?,
            path,
            Opening::Writer { append },
            true,
        )
        .await
    }

    /// `writer(path, true)`, or where that is path-not-found, `writer(path, false)`, in
    /// one call (`fast-path.writer-append-or-create`): the KS3 driver then does not clear
    /// again a path its resume just found empty. A driver without it gets the two calls.
    pub async fn writer_append_or_create(&self, path: &str) -> Result<FileWriter, Error> {
        FileWriter::open(self.session().await?, path, Opening::AppendOrCreate, true).await
    }

    /// A writer whose guest hashes every byte itself (`file-writer.write`), as with a host
    /// that does not send checksums along. For tests and measurements of that path.
    #[doc(hidden)]
    pub async fn writer_through_guest(
        &self,
        path: &str,
        append: bool,
    ) -> Result<FileWriter, Error> {
        FileWriter::open(
            self.session().await?,
            path,
            Opening::Writer { append },
            false,
        )
        .await
    }

    pub async fn stat(&self, path: &str) -> Result<FileInfo, Error> {
        let what = format!("stat {path}");
        self.stateless(what, |e| &e.stat, (path.to_string(),))
            .await
            .map(FileInfo::from)
    }

    /// The direct children of a directory, as absolute paths.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, Error> {
        let what = format!("list {path}");
        self.stateless(what, |e| &e.list, (path.to_string(),)).await
    }

    pub async fn mv(&self, src: &str, dst: &str) -> Result<(), Error> {
        let what = format!("move {src} {dst}");
        let params = (src.to_string(), dst.to_string());
        self.stateless(what, |e| &e.move_, params).await
    }

    /// [`Self::mv`] to a destination no writer is ever opened at, which the caller
    /// promises (`fast-path.move-to-writerless`): the KS3 driver then does not clear the
    /// destination of closed writers' state. A driver without it gets `move`.
    pub async fn mv_to_writerless(&self, src: &str, dst: &str) -> Result<(), Error> {
        let what = format!("move-to-writerless {src} {dst}");
        let params = (src.to_string(), dst.to_string());
        match self
            .stateless(what, |e| &e.move_to_writerless, params)
            .await
        {
            Err(Error::Driver(DriverError::UnsupportedMethod(_))) => self.mv(src, dst).await,
            done => done,
        }
    }

    /// Deletes the object at `path` and everything under `path/`.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        let what = format!("delete {path}");
        self.stateless(what, |e| &e.delete, (path.to_string(),))
            .await
    }

    /// A presigned URL for GET or HEAD; `None` for any other method.
    pub async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>, Error> {
        let what = format!("redirect-url {path}");
        let params = (method.to_string(), path.to_string());
        self.stateless(what, |e| &e.redirect_url, params).await
    }

    /// Walks everything under `path` in key order, calling `f` for each file and
    /// directory. See [`WalkControl`]; an error from `f` ends the walk and is returned.
    pub async fn walk<F>(
        &self,
        path: &str,
        start_after: Option<&str>,
        mut f: F,
    ) -> Result<(), Error>
    where
        F: FnMut(&FileInfo) -> Result<WalkControl, Error> + Send,
    {
        let mut s = self.session().await?;
        let what = format!("walk {path}");
        let walker = s.call(&what, |e| &e.walk, (path, start_after)).await?;
        let mut skipped: Vec<String> = Vec::new();
        loop {
            let batch = s
                .call(&what, |e| &e.walker_next, (walker, WALK_BATCH))
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            for entry in batch {
                let info = FileInfo::from(entry);
                if skipped.iter().any(|d| is_under(&info.path, d)) {
                    continue;
                }
                match f(&info)? {
                    WalkControl::Continue => {}
                    WalkControl::Stop => return Ok(()),
                    WalkControl::SkipDir if info.is_dir => {
                        s.invoke::<_, ()>(
                            &what,
                            |e| &e.walker_skip_directory,
                            (walker, info.path.as_str()),
                        )
                        .await?;
                        skipped.push(info.path);
                    }
                    WalkControl::SkipDir => {}
                }
            }
            // Entries of a skipped directory can only follow it in this batch; the
            // guest leaves them out of the next ones.
            skipped.clear();
        }
    }
}

fn is_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}
