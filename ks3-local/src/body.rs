//! Response bodies (bytes, streamed files, truncated for fault injection) and request-body
//! helpers.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::error::S3Error;
use crate::store::{Opened, Sink};

pub type RespBody = UnsyncBoxBody<Bytes, io::Error>;

pub fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> RespBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

const CHUNK: usize = 256 * 1024;

/// Streams `len` bytes of a file.
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = this.remaining.min(CHUNK as u64) as usize;
        if this.buf.len() < want {
            this.buf.resize(want, 0);
        }
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        ready!(Pin::new(&mut this.file).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "object file shorter than its metadata",
            ))));
        }
        this.remaining -= n as u64;
        let chunk = this.buf.split_to(n).freeze();
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A body over `len` bytes of opened data starting at `offset`.
pub async fn data_body(opened: Opened, offset: u64, len: u64) -> io::Result<RespBody> {
    match opened {
        Opened::Mem(b) => {
            let start = (offset as usize).min(b.len());
            let end = (offset.saturating_add(len) as usize).min(b.len());
            Ok(full(b.slice(start..end)))
        }
        Opened::File(f) => {
            let mut file = tokio::fs::File::from_std(f);
            if offset > 0 {
                file.seek(io::SeekFrom::Start(offset)).await?;
            }
            Ok(FileBody {
                file,
                remaining: len,
                buf: BytesMut::new(),
            }
            .boxed_unsync())
        }
    }
}

/// Passes `allowed` bytes of the inner body, lets them reach the wire, then fails (which
/// makes hyper drop the connection mid-body).
pub struct Truncate {
    inner: RespBody,
    allowed: u64,
    total: u64,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Truncate {
    pub fn new(inner: RespBody, allowed: u64) -> Self {
        let total = inner.size_hint().exact().unwrap_or(u64::MAX);
        Truncate {
            inner,
            allowed,
            total,
            pause: None,
        }
    }
}

impl Body for Truncate {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let cut = || {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault injection: dropped mid-body",
            )
        };
        if this.allowed == 0 {
            // Pending for a moment lets hyper flush what was sent so far.
            let pause = this.pause.get_or_insert_with(|| {
                Box::pin(tokio::time::sleep(std::time::Duration::from_millis(50)))
            });
            ready!(pause.as_mut().poll(cx));
            return Poll::Ready(Some(Err(cut())));
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() as u64 > this.allowed {
                        data.truncate(this.allowed as usize);
                    }
                    this.allowed -= data.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(_) => Poll::Ready(Some(Err(cut()))),
            },
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => Poll::Ready(Some(Err(cut()))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.total == u64::MAX {
            SizeHint::default()
        } else {
            SizeHint::with_exact(self.total)
        }
    }
}

fn incomplete() -> S3Error {
    let mut e = S3Error::new(
        400,
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    );
    e.close = true;
    e
}

/// Streams a request body of `expected` bytes into `sink`. A body that ends early or breaks
/// → `IncompleteBody` (the data is then dropped with the sink, never published).
pub async fn receive(body: &mut Incoming, sink: &mut Sink, expected: u64) -> Result<(), S3Error> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| incomplete())?;
        if let Ok(data) = frame.into_data() {
            if sink.len() + data.len() as u64 > expected {
                return Err(incomplete());
            }
            sink.write(&data).await.map_err(S3Error::io)?;
        }
    }
    if sink.len() != expected {
        return Err(incomplete());
    }
    Ok(())
}

/// Collects a small request body, at most `limit` bytes.
pub async fn collect(body: &mut Incoming, limit: usize) -> Result<Bytes, S3Error> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| incomplete())?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                let mut e =
                    S3Error::new(400, "MaxMessageLengthExceeded", "Your request was too big.")
                        .with("MaxMessageLengthBytes", limit.to_string());
                e.close = true;
                return Err(e);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards the rest of a body (bounded), so an early answer does not break a
/// client still sending. Returns `false` if the body was left unread.
pub async fn drain(body: &mut Incoming, limit: u64) -> bool {
    if body.is_end_stream() {
        return true;
    }
    if body.size_hint().upper().is_none_or(|u| u > limit) {
        return false;
    }
    let fut = async {
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), fut)
        .await
        .unwrap_or(false)
}
