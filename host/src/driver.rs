//! The typed async API: every operation runs in a sandboxed instance of the driver
//! component — a warm one of the same driver for stateless operations, a fresh one for
//! each reader, writer and walker.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ks3_driver_component::config::{params_to_env, Config, Params};
use ks3_proto::Crc64;
use wasmtime::component::{Resource, ResourceAny};
use wasmtime_wasi::p2::DynInputStream;

use crate::bindings::WitFileInfo;
use crate::egress::{Destination, Egress};
use crate::error::Error;
use crate::runtime::{Runtime, Session, SessionSpec, StreamRead};

/// Largest chunk handed to the guest in one `write` call.
pub const WRITE_CHUNK: usize = 1 << 20;
/// Largest chunk asked of the guest in one `read` call (the driver caps it there too).
pub const READ_CHUNK: usize = 4 << 20;
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

/// The KS3 storage driver, running sandboxed. Cheap to clone; clones share the
/// connection pool.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Runtime,
    config: Config,
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
    Error::Runtime(format!("{e:#}"))
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
        let dest = Destination::parse(allowed)
            .ok_or_else(|| Error::Runtime(format!("`{allowed}` is not http(s)://host[:port]")))?;
        Self::build(runtime, params, Some(dest)).await
    }

    async fn build(
        runtime: &Runtime,
        params: Params,
        allowed: Option<Destination>,
    ) -> Result<Driver, Error> {
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
        };
        let driver = Driver {
            inner: Arc::new(Inner {
                runtime: runtime.clone(),
                config,
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

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The driver's registration name, `ks3`.
    pub fn name(&self) -> &'static str {
        ks3_driver_component::DRIVER_NAME
    }

    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// The pooled egress client this driver's instances send through.
    pub(crate) fn egress(&self) -> &Arc<Egress> {
        &self.inner.spec.egress
    }

    /// Runs one stateless call in a warm instance on one of the runtime's executor
    /// threads (`executors.rs`), then parks the instance again (if the call left it
    /// reusable). `call` owns what it passes to the guest: the caller's borrowed
    /// arguments are copied in.
    async fn stateless<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: FnOnce(Session) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = (Session, Result<T, Error>)> + Send,
        T: Send + 'static,
    {
        let driver = self.clone();
        self.inner
            .runtime
            .run(async move {
                let s = driver.warm_session().await?;
                let (s, r) = call(s).await;
                driver.park(s);
                r
            })
            .await
    }

    /// The whole content of a (small) object.
    pub async fn get_content(&self, path: &str) -> Result<Vec<u8>, Error> {
        let path = path.to_string();
        self.stateless(|mut s| async move {
            let r = s
                .call(
                    &format!("get-content {path}"),
                    |e| &e.get_content,
                    (path.as_str(),),
                )
                .await;
            (s, r)
        })
        .await
    }

    /// Creates or replaces the object at `path`.
    pub async fn put_content(&self, path: &str, content: &[u8]) -> Result<(), Error> {
        let (path, content) = (path.to_string(), content.to_vec());
        self.stateless(|mut s| async move {
            let r = s
                .call(
                    &format!("put-content {path}"),
                    |e| &e.put_content,
                    (path.as_str(), content.as_slice()),
                )
                .await;
            (s, r)
        })
        .await
    }

    /// A reader from byte `offset`. Each response body's stream is handed over by the
    /// sandbox and read here directly; the driver inside still opens, resumes and checks.
    pub async fn reader(&self, path: &str, offset: i64) -> Result<FileReader, Error> {
        self.open_reader(path, offset, false).await
    }

    /// A reader whose bytes come through the component's `file-reader.read` (copied out
    /// of the sandbox), as a host without stream hand-over reads them. For tests and
    /// measurements of that path.
    #[doc(hidden)]
    pub async fn reader_through_guest(&self, path: &str, offset: i64) -> Result<FileReader, Error> {
        self.open_reader(path, offset, true).await
    }

    async fn open_reader(
        &self,
        path: &str,
        offset: i64,
        through_guest: bool,
    ) -> Result<FileReader, Error> {
        let mut s = self.session().await?;
        let handle = s
            .call(&format!("reader {path}"), |e| &e.reader, (path, offset))
            .await?;
        Ok(FileReader {
            core: Some(ReaderCore {
                session: s,
                handle,
                path: path.to_string(),
                eof: false,
                through_guest,
                body: None,
            }),
            pending: None,
            buf: Vec::new(),
            buf_pos: 0,
            position: offset.max(0) as u64,
        })
    }

    /// A writer; with `append`, resumes a closed, uncommitted upload. The CRC-64 of each
    /// chunk is computed here, natively, and handed to the guest with the bytes.
    pub async fn writer(&self, path: &str, append: bool) -> Result<FileWriter, Error> {
        self.open_writer(path, append, true).await
    }

    /// A writer whose guest hashes every byte itself (`file-writer.write`), as with a host
    /// that does not send checksums along. For tests and measurements of that path.
    #[doc(hidden)]
    pub async fn writer_through_guest(
        &self,
        path: &str,
        append: bool,
    ) -> Result<FileWriter, Error> {
        self.open_writer(path, append, false).await
    }

    async fn open_writer(
        &self,
        path: &str,
        append: bool,
        crc_by_host: bool,
    ) -> Result<FileWriter, Error> {
        let mut s = self.session().await?;
        let handle = s
            .call(&format!("writer {path}"), |e| &e.writer, (path, append))
            .await?;
        let mut w = FileWriter {
            session: s,
            handle,
            path: path.to_string(),
            size: 0,
            crc_by_host,
        };
        w.refresh_size().await?;
        Ok(w)
    }

    pub async fn stat(&self, path: &str) -> Result<FileInfo, Error> {
        let path = path.to_string();
        self.stateless(|mut s| async move {
            let r = s
                .call(&format!("stat {path}"), |e| &e.stat, (path.as_str(),))
                .await
                .map(FileInfo::from);
            (s, r)
        })
        .await
    }

    /// The direct children of a directory, as absolute paths.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, Error> {
        let path = path.to_string();
        self.stateless(|mut s| async move {
            let r = s
                .call(&format!("list {path}"), |e| &e.list, (path.as_str(),))
                .await;
            (s, r)
        })
        .await
    }

    pub async fn mv(&self, src: &str, dst: &str) -> Result<(), Error> {
        let (src, dst) = (src.to_string(), dst.to_string());
        self.stateless(|mut s| async move {
            let r = s
                .call(
                    &format!("move {src} {dst}"),
                    |e| &e.move_,
                    (src.as_str(), dst.as_str()),
                )
                .await;
            (s, r)
        })
        .await
    }

    /// Deletes the object at `path` and everything under `path/`.
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        let path = path.to_string();
        self.stateless(|mut s| async move {
            let r = s
                .call(&format!("delete {path}"), |e| &e.delete, (path.as_str(),))
                .await;
            (s, r)
        })
        .await
    }

    /// A presigned URL for GET or HEAD; `None` for any other method.
    pub async fn redirect_url(&self, method: &str, path: &str) -> Result<Option<String>, Error> {
        let (method, path) = (method.to_string(), path.to_string());
        self.stateless(|mut s| async move {
            let r = s
                .call(
                    &format!("redirect-url {path}"),
                    |e| &e.redirect_url,
                    (method.as_str(), path.as_str()),
                )
                .await;
            (s, r)
        })
        .await
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

struct ReaderCore {
    session: Session,
    handle: ResourceAny,
    path: String,
    eof: bool,
    /// Read with `file-reader.read` instead of taking the body's stream.
    through_guest: bool,
    /// The response body the guest handed over, read here (no copy through the sandbox).
    body: Option<TakenBody>,
}

/// A response body's stream, taken from the guest with `take-stream`: what was read of
/// it is reported back with `stream-done`, so the guest can resume and verify.
struct TakenBody {
    stream: Resource<DynInputStream>,
    count: u64,
    crc: Crc64,
    /// The stream's end (`None`: clean; else how it failed), met after the bytes last
    /// returned; not yet reported.
    end: Option<Option<String>>,
}

impl TakenBody {
    fn took(&mut self, chunk: &[u8]) {
        self.count = self.count.saturating_add(chunk.len() as u64);
        self.crc.update(chunk);
    }
}

impl ReaderCore {
    async fn read(mut self: Box<Self>, max: usize) -> (Box<Self>, Result<Vec<u8>, Error>) {
        let r = self.read_in_place(max, true).await.map(Vec::from);
        (self, r)
    }

    /// Up to `max` bytes: with `gather`, what has arrived joined into one buffer; else
    /// the next piece as the HTTP client received it (no copy at all).
    async fn read_in_place(&mut self, max: usize, gather: bool) -> Result<Bytes, Error> {
        let max = max.clamp(1, READ_CHUNK);
        if self.through_guest {
            return self.read_through_guest(max).await.map(Bytes::from);
        }
        loop {
            if self.eof {
                return Ok(Bytes::new());
            }
            let Some(body) = self.body.as_mut() else {
                let what = format!("read {}", self.path);
                match self
                    .session
                    .call(&what, |e| &e.reader_take_stream, (self.handle,))
                    .await?
                {
                    Some(stream) => {
                        self.body = Some(TakenBody {
                            stream,
                            count: 0,
                            crc: Crc64::new(),
                            end: None,
                        })
                    }
                    None => self.eof = true,
                }
                continue;
            };
            if let Some(end) = body.end.take() {
                self.body_done(end).await?;
                continue;
            }
            match self.session.read_stream(&body.stream, max, gather).await? {
                StreamRead::Data(chunk) => {
                    body.took(&chunk);
                    return Ok(chunk);
                }
                StreamRead::Last(chunk, end) => {
                    body.took(&chunk);
                    // Reported to the guest at the next read, after these bytes.
                    body.end = Some(end);
                    return Ok(chunk);
                }
                StreamRead::Closed => self.body_done(None).await?,
                StreamRead::Failed(why) => self.body_done(Some(why)).await?,
            }
        }
    }

    async fn read_through_guest(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        if self.eof {
            return Ok(Vec::new());
        }
        let what = format!("read {}", self.path);
        let chunk: Vec<u8> = self
            .session
            .call(
                &what,
                |e| &e.reader_read,
                (self.handle, u32::try_from(max).unwrap_or(u32::MAX)),
            )
            .await?;
        if chunk.is_empty() {
            self.eof = true;
        }
        Ok(chunk)
    }

    /// Gives the taken body back: the guest resumes a broken one at the next
    /// `take-stream`, and checks the whole object's CRC-64 at the end.
    async fn body_done(&mut self, broken: Option<String>) -> Result<(), Error> {
        let Some(body) = self.body.take() else {
            return Ok(());
        };
        self.session.drop_stream(body.stream)?;
        let what = format!("read {}", self.path);
        self.session
            .call(
                &what,
                |e| &e.reader_stream_done,
                (self.handle, body.count, body.crc.value(), broken.as_deref()),
            )
            .await
    }
}

type ReadFuture = Pin<Box<dyn Future<Output = (Box<ReaderCore>, Result<Vec<u8>, Error>)> + Send>>;

/// A stream of an object's bytes, with its own sandboxed instance. Also a
/// [`tokio::io::AsyncRead`].
pub struct FileReader {
    core: Option<ReaderCore>,
    /// An `AsyncRead` poll in flight (it owns the core meanwhile).
    pending: Option<ReadFuture>,
    /// Bytes fetched for `AsyncRead` and not yet consumed.
    buf: Vec<u8>,
    buf_pos: usize,
    /// Start offset plus bytes handed to the caller.
    position: u64,
}

impl FileReader {
    /// Up to `max` bytes (at most 4 MiB a call); an empty result means the end.
    pub async fn read(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        if let Some(pending) = self.pending.take() {
            let (core, r) = pending.await;
            self.core = Some(*core);
            let data = r?;
            self.buf = data;
            self.buf_pos = 0;
        }
        if self.buf_pos < self.buf.len() {
            let n = max.max(1).min(self.buf.len() - self.buf_pos);
            let out = self.buf[self.buf_pos..self.buf_pos + n].to_vec();
            self.buf_pos += n;
            self.position += n as u64;
            return Ok(out);
        }
        let out = Vec::from(self.core_mut()?.read_in_place(max, true).await?);
        self.position += out.len() as u64;
        Ok(out)
    }

    /// Up to `max` bytes (at most 4 MiB a call), as they came from KS3: the HTTP client's
    /// own buffers, not copied or joined (so often fewer than `max` bytes); an empty
    /// result means the end. What a server forwarding the bytes wants.
    pub async fn read_bytes(&mut self, max: usize) -> Result<Bytes, Error> {
        if self.pending.is_some() || self.buf_pos < self.buf.len() {
            // Bytes an `AsyncRead` poll fetched come first.
            return self.read(max).await.map(Bytes::from);
        }
        // At most `max` bytes: the stream keeps the rest of a larger frame.
        let out = self.core_mut()?.read_in_place(max, false).await?;
        self.position += out.len() as u64;
        Ok(out)
    }

    /// The reader's core; gone only when an `AsyncRead` poll that owned it was dropped.
    fn core_mut(&mut self) -> Result<&mut ReaderCore, Error> {
        self.core.as_mut().ok_or_else(cancelled_read)
    }

    /// Everything from the current position to the end.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        loop {
            let chunk = self.read(READ_CHUNK).await?;
            if chunk.is_empty() {
                return Ok(out);
            }
            if out.is_empty() {
                out = chunk;
            } else {
                out.extend_from_slice(&chunk);
            }
        }
    }

    /// The offset of the next byte `read` returns.
    pub fn position(&self) -> u64 {
        self.position
    }
}

fn cancelled_read() -> Error {
    Error::InvalidState("reader: an earlier read was cancelled".to_string())
}

impl tokio::io::AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.buf_pos < this.buf.len() {
                let n = out.remaining().min(this.buf.len() - this.buf_pos);
                out.put_slice(&this.buf[this.buf_pos..this.buf_pos + n]);
                this.buf_pos += n;
                this.position += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.pending.is_none() {
                let Some(core) = this.core.take() else {
                    return Poll::Ready(Err(std::io::Error::other(cancelled_read())));
                };
                if core.eof {
                    this.core = Some(core);
                    return Poll::Ready(Ok(()));
                }
                let want = out.remaining().max(1 << 20);
                this.pending = Some(Box::pin(Box::new(core).read(want)));
            }
            let Some(pending) = this.pending.as_mut() else {
                continue;
            };
            let (core, r) = match pending.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(v) => v,
            };
            this.pending = None;
            this.core = Some(*core);
            match r {
                Ok(data) if data.is_empty() => return Poll::Ready(Ok(())),
                Ok(data) => {
                    this.buf = data;
                    this.buf_pos = 0;
                }
                Err(e) => return Poll::Ready(Err(std::io::Error::other(e))),
            }
        }
    }
}

/// An upload in progress, with its own sandboxed instance.
pub struct FileWriter {
    session: Session,
    handle: ResourceAny,
    path: String,
    size: u64,
    /// Send each chunk's CRC-64 along (`write-with-crc64`).
    crc_by_host: bool,
}

impl FileWriter {
    /// Appends `data`, handed to the guest in calls of at most 1 MiB.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let handle = self.handle;
        let what = format!("write {}", self.path);
        let result = async {
            for chunk in data.chunks(WRITE_CHUNK) {
                if self.crc_by_host {
                    let crc = Crc64::checksum(chunk);
                    self.session
                        .call::<_, ()>(&what, |e| &e.writer_write_with_crc64, (handle, chunk, crc))
                        .await?;
                } else {
                    self.session
                        .call::<_, ()>(&what, |e| &e.writer_write, (handle, chunk))
                        .await?;
                }
            }
            Ok(())
        }
        .await;
        // The size is what the guest accepted, even after a failed chunk.
        let refreshed = self.refresh_size().await;
        result.and(refreshed)
    }

    /// Bytes accepted so far (including those of a resumed upload).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Persists what was written, without making it visible, so `writer(path, true)`
    /// can resume.
    pub async fn close(&mut self) -> Result<(), Error> {
        let handle = self.handle;
        let what = format!("close {}", self.path);
        let result = self
            .session
            .call(&what, |e| &e.writer_close, (handle,))
            .await;
        self.settle(result).await
    }

    /// Aborts the upload; nothing is left behind.
    pub async fn cancel(&mut self) -> Result<(), Error> {
        let handle = self.handle;
        let what = format!("cancel {}", self.path);
        let result = self
            .session
            .call(&what, |e| &e.writer_cancel, (handle,))
            .await;
        self.settle(result).await
    }

    /// Makes the content visible at the path. On an error the upload is kept: `commit`
    /// again, or resume it with `writer(path, true)`.
    pub async fn commit(&mut self) -> Result<(), Error> {
        let handle = self.handle;
        let what = format!("commit {}", self.path);
        let result = self
            .session
            .call(&what, |e| &e.writer_commit, (handle,))
            .await;
        self.settle(result).await
    }

    /// After a call that may change the writer's state, [`size`](Self::size) is what the
    /// guest says, not what the host remembers. A trapped instance has nothing to say;
    /// the call's own error is the one that matters.
    async fn settle(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        let refreshed = self.refresh_size().await;
        match result {
            Ok(()) => refreshed,
            Err(e) => Err(e),
        }
    }

    async fn refresh_size(&mut self) -> Result<(), Error> {
        let handle = self.handle;
        let what = format!("size {}", self.path);
        let (size,) = self
            .session
            .invoke::<_, (u64,)>(&what, |e| &e.writer_size, (handle,))
            .await?;
        self.size = size;
        Ok(())
    }
}
