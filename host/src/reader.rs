//! A reader of an object's bytes in its own sandboxed instance: the guest opens, resumes
//! and verifies the ranged GETs; the host reads each response body's stream directly
//! (`fast-path.reader-take-stream`, `reader-stream-done`), or, for hosts without stream hand-over, through the
//! guest's `file-reader.read`.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ks3_proto::Crc64;
use wasmtime::component::{Resource, ResourceAny};
use wasmtime_wasi::p2::DynInputStream;

use crate::error::{DriverError, Error};
use crate::session::{Session, StreamRead};

/// Largest chunk asked of the guest in one `read` call (the driver caps it there too).
pub const READ_CHUNK: usize = 4 << 20;

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

/// A response body's stream, taken from the guest with `reader-take-stream`: what was read of
/// it is reported back with `reader-stream-done`, so the guest can resume and verify.
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
                let taken = self
                    .session
                    .call(&what, |e| &e.reader_take_stream, (self.handle,))
                    .await;
                match taken {
                    // The contract lets a driver decline at any time: read through it.
                    Err(Error::Driver(DriverError::UnsupportedMethod(_))) => {
                        self.through_guest = true;
                        return self.read_through_guest(max).await.map(Bytes::from);
                    }
                    Err(e) => return Err(e),
                    Ok(Some(stream)) => {
                        self.body = Some(TakenBody {
                            stream,
                            count: 0,
                            crc: Crc64::new(),
                            end: None,
                        })
                    }
                    Ok(None) => self.eof = true,
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
    /// `reader-take-stream`, and checks the whole object's CRC-64 at the end.
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
    /// Opens a reader of `path` from `offset` in `session`, a fresh instance of its own.
    pub(crate) async fn open(
        mut session: Session,
        path: &str,
        offset: i64,
        through_guest: bool,
    ) -> Result<FileReader, Error> {
        let handle = session
            .call(&format!("reader {path}"), |e| &e.reader, (path, offset))
            .await?;
        let session_fast = session.has_fast_path();
        Ok(FileReader {
            core: Some(ReaderCore {
                session,
                handle,
                path: path.to_string(),
                eof: false,
                // A driver without `fast-path` hands over no stream.
                through_guest: through_guest || !session_fast,
                body: None,
            }),
            pending: None,
            buf: Vec::new(),
            buf_pos: 0,
            position: offset.max(0) as u64,
        })
    }

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
    Error::Driver(DriverError::InvalidState(
        "reader: an earlier read was cancelled".to_string(),
    ))
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
