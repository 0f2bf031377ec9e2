//! Response bodies (bytes, streamed files, truncated for fault injection) and request-body
//! helpers.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::Response;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use crate::error::S3Error;
use crate::store::Opened;

pub type RespBody = UnsyncBoxBody<Bytes, io::Error>;

/// Sets a response header; a name or value that is not valid HTTP is left out rather
/// than failing the whole response.
pub fn set(resp: &mut Response<RespBody>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        resp.headers_mut().insert(n, v);
    }
}

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
        Opened::Mem(m) => Ok(Pieces(m.range(offset, len).into()).boxed_unsync()),
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

/// Shared buffers sent one after the other: an object in RAM, one buffer or the parts a
/// Complete joined.
struct Pieces(std::collections::VecDeque<Bytes>);

impl Body for Pieces {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
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

/// A request body, checked on the way in against the SHA-256 a V4 signature claimed for it
/// (`x-amz-content-sha256` / `x-kss-content-sha256`). The check happens when the body ends,
/// so a handler that streams the body into a sink sees the error before it publishes
/// anything.
pub struct ReqBody {
    inner: Incoming,
    /// The claimed digest and the running hash of what arrived so far.
    check: Option<([u8; 32], Sha256)>,
    /// How long the body may stall; the timer re-arms with every frame.
    idle: Option<std::time::Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum ReqBodyError {
    /// The connection broke or the framing was invalid.
    Transport,
    /// No byte arrived for the body timeout.
    Timeout,
    /// The body is complete but its SHA-256 is not the one signed (hex: claimed, computed).
    Sha256Mismatch(String, String),
}

impl std::fmt::Display for ReqBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReqBodyError::Transport => f.write_str("the request body broke off"),
            ReqBodyError::Timeout => f.write_str("the request body stalled"),
            ReqBodyError::Sha256Mismatch(..) => {
                f.write_str("the body's SHA-256 is not the signed one")
            }
        }
    }
}

impl std::error::Error for ReqBodyError {}

impl ReqBody {
    /// A body taken as it comes.
    pub fn unchecked(inner: Incoming) -> Self {
        ReqBody {
            inner,
            check: None,
            idle: None,
            timer: None,
        }
    }

    /// Fails the body with [`ReqBodyError::Timeout`] when no frame arrives for `idle`.
    pub fn with_idle_timeout(mut self, idle: std::time::Duration) -> Self {
        self.idle = Some(idle);
        self
    }

    /// A body whose SHA-256 must be `claimed_hex` (64 lower-case hex digits; anything else
    /// can never match, so such a body always fails).
    pub fn checked(inner: Incoming, claimed_hex: &str) -> Self {
        // A claim that is not hex can never match: all-ones is no input's SHA-256 in
        // practice, so the check then fails as it should.
        let want = parse_hex32(claimed_hex).unwrap_or([0xff; 32]);
        ReqBody {
            inner,
            check: Some((want, Sha256::new())),
            idle: None,
            timer: None,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = ReqBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReqBodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let polled = match (polled, this.idle) {
            (Poll::Pending, Some(idle)) => {
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                this.timer = None;
                return Poll::Ready(Some(Err(ReqBodyError::Timeout)));
            }
            (Poll::Pending, None) => return Poll::Pending,
            (Poll::Ready(r), _) => {
                this.timer = None;
                r
            }
        };
        match polled {
            Some(Ok(frame)) => {
                if let (Some((_, h)), Some(d)) = (this.check.as_mut(), frame.data_ref()) {
                    h.update(d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(_)) => Poll::Ready(Some(Err(ReqBodyError::Transport))),
            None => match this.check.take() {
                Some((want, h)) => {
                    let got: [u8; 32] = h.finalize().into();
                    if got == want {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Err(ReqBodyError::Sha256Mismatch(
                            ks3_proto::digest::hex(&want),
                            ks3_proto::digest::hex(&got),
                        ))))
                    }
                }
                None => Poll::Ready(None),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.check.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `XAmzContentSHA256Mismatch`: the body is not the one the V4 signature covers.
pub fn sha256_mismatch(claimed: &str, computed: &str) -> S3Error {
    S3Error::new(
        400,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
    .with("ClientComputedContentSHA256", claimed)
    .with("S3ComputedContentSHA256", computed)
}

pub fn body_error(e: ReqBodyError) -> S3Error {
    match e {
        ReqBodyError::Transport => incomplete(),
        ReqBodyError::Timeout => {
            let mut e = S3Error::new(
                400,
                "RequestTimeout",
                "Your socket connection to the server was not read from or written to within \
                 the timeout period.",
            );
            e.close = true;
            e
        }
        ReqBodyError::Sha256Mismatch(claimed, computed) => sha256_mismatch(&claimed, &computed),
    }
}

/// `IncompleteBody`: fewer bytes than `Content-Length` said, or a broken body.
pub fn incomplete() -> S3Error {
    let mut e = S3Error::new(
        400,
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    );
    e.close = true;
    e
}

/// Collects a small request body, at most `limit` bytes.
pub async fn collect(body: &mut ReqBody, limit: usize) -> Result<Bytes, S3Error> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
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
pub async fn drain<B: Body + Unpin>(body: &mut B, limit: u64) -> bool {
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
