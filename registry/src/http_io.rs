//! HTTP plumbing: the response body type (whole or streamed through a small channel, so
//! a blob is never held in memory), reading request bodies in bounded chunks under an
//! idle timeout and a size limit, and query strings.
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::errors::RegistryError;

/// Every response's body.
pub enum Body {
    Full(Option<Bytes>),
    /// Chunks produced by a task; an `Err` ends the response abnormally (the client sees
    /// a truncated body, never a wrong one).
    Channel {
        rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
        len: Option<u64>,
    },
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn full(b: impl Into<Bytes>) -> Body {
        let b = b.into();
        Body::Full((!b.is_empty()).then_some(b))
    }

    /// A streamed body of `len` bytes (when known) and the sender that feeds it. The
    /// channel holds two chunks, so a slow client slows the producer down.
    pub fn channel(len: Option<u64>) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
        let (tx, rx) = mpsc::channel(2);
        (tx, Body::Channel { rx, len })
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Channel { rx, .. } => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Channel { len: Some(n), .. } => SizeHint::with_exact(*n),
            Body::Channel { len: None, .. } => SizeHint::default(),
        }
    }
}

/// A request's body as the handlers see it, shared with the request's handling
/// ([`RequestBody::new`]'s [`KeepBody`]), which drains what the handlers left unread
/// before the answer goes out. Over HTTP/2 a request body dropped before the client has
/// sent all of it makes the stream reset, and the reset discards the answer queued
/// behind it: the client got no answer at all (an early 400, 401, 413 or 429 was lost
/// about one time in two, measured with curl).
pub struct RequestBody {
    inner: Arc<Mutex<Incoming>>,
}

/// The handling's hold on a request's body.
pub struct KeepBody(Arc<Mutex<Incoming>>);

/// The most of an unread body drained before an answer, and how long it may take: a
/// client that sends more than that gets its answer with the stream reset (as before).
const DRAIN_MAX: u64 = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(2);

impl KeepBody {
    /// Reads and drops what the handlers left of the body, up to [`DRAIN_MAX`] bytes and
    /// [`DRAIN_TIME`], so the client has finished sending when the answer goes out.
    pub async fn drain(&self) {
        let mut left = DRAIN_MAX;
        let deadline = tokio::time::Instant::now() + DRAIN_TIME;
        loop {
            let next = std::future::poll_fn(|cx| {
                let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
                if b.is_end_stream() {
                    return Poll::Ready(None);
                }
                Pin::new(&mut *b).poll_frame(cx)
            });
            match tokio::time::timeout_at(deadline, next).await {
                Ok(Some(Ok(frame))) => {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    match left.checked_sub(n) {
                        Some(l) => left = l,
                        None => return,
                    }
                }
                // The end, a broken body, or out of time.
                _ => return,
            }
        }
    }
}

impl RequestBody {
    pub fn new(body: Incoming) -> (RequestBody, KeepBody) {
        let inner = Arc::new(Mutex::new(body));
        (
            RequestBody {
                inner: Arc::clone(&inner),
            },
            KeepBody(inner),
        )
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Pin::new(&mut *inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.lock().map(|b| b.is_end_stream()).unwrap_or(true)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.lock().map(|b| b.size_hint()).unwrap_or_default()
    }
}

/// Bytes handed to the storage writer at a time.
pub const CHUNK: usize = 1 << 20;

/// A request body read in chunks of up to [`CHUNK`] bytes.
pub struct BodyReader {
    body: RequestBody,
    idle: Duration,
    limit: Option<u64>,
    read: u64,
    pending: BytesMut,
    done: bool,
    /// An error that came after bytes still to hand out: returned once they are.
    failed: Option<RegistryError>,
    /// The least average rate, in bytes per second, after [`RATE_GRACE`].
    min_rate: Option<u64>,
    started: Instant,
}

/// How long a body may take before its average rate is held to the minimum: a client
/// may open the connection and pause (TCP slow start, a proxy) without being cut.
pub const RATE_GRACE: Duration = Duration::from_secs(10);

impl BodyReader {
    pub fn new(body: RequestBody, idle: Duration, limit: Option<u64>) -> BodyReader {
        BodyReader {
            body,
            idle,
            limit,
            read: 0,
            pending: BytesMut::new(),
            done: false,
            failed: None,
            min_rate: None,
            started: Instant::now(),
        }
    }

    /// Also fail the body when, after [`RATE_GRACE`], fewer than `rate` bytes a second
    /// have arrived on average: a client trickling a byte now and then would otherwise
    /// hold an upload slot for as long as it likes (the idle timeout alone never fires).
    pub fn with_min_rate(mut self, rate: Option<u64>) -> BodyReader {
        self.min_rate = rate.filter(|r| *r > 0);
        self
    }

    /// How long the next frame may take: the idle timeout, or less when the average
    /// rate would fall under the minimum before then (`true`: the rate is the bound).
    fn frame_wait(&self) -> (Duration, bool) {
        let Some(rate) = self.min_rate else {
            return (self.idle, false);
        };
        // The time by which `read` bytes are exactly the minimum rate's worth.
        let earned =
            Duration::try_from_secs_f64(self.read as f64 / rate as f64).unwrap_or(Duration::MAX);
        let Some(due) = self.started.checked_add(RATE_GRACE.saturating_add(earned)) else {
            return (self.idle, false);
        };
        let left = due.saturating_duration_since(Instant::now());
        if left < self.idle {
            (left, true)
        } else {
            (self.idle, false)
        }
    }

    /// The next chunk (`None` at the end). Fails when the client is silent for the idle
    /// timeout, when the connection breaks, and when the body passes the limit; bytes
    /// received before such a failure are handed out first (an upload keeps them).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        while !self.done && self.pending.len() < CHUNK {
            match self.next_frame().await {
                Ok(Some(data)) => self.pending.extend_from_slice(&data),
                Ok(None) => self.done = true,
                Err(e) => {
                    self.done = true;
                    if self.pending.is_empty() {
                        return Err(e);
                    }
                    self.failed = Some(e);
                }
            }
        }
        if self.pending.is_empty() {
            return match self.failed.take() {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        let n = self.pending.len().min(CHUNK);
        Ok(Some(self.pending.split_to(n).freeze()))
    }

    /// The next data frame's bytes, counted against the limit.
    async fn next_frame(&mut self) -> Result<Option<Bytes>, RegistryError> {
        loop {
            let (wait, rate_bound) = self.frame_wait();
            let frame = tokio::time::timeout(wait, self.body.frame())
                .await
                .map_err(|_| {
                    if rate_bound {
                        RegistryError::Timeout(format!(
                            "the request body arrived at under {} bytes/s (limits.minbodyrate)",
                            self.min_rate.unwrap_or(0)
                        ))
                    } else {
                        RegistryError::Timeout(format!(
                            "the request body stalled for {} s",
                            self.idle.as_secs()
                        ))
                    }
                })?;
            let data = match frame {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(RegistryError::BlobUploadInvalid(format!(
                        "reading the request body: {e}"
                    )))
                }
                // Trailers carry no data.
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
            };
            self.read = self
                .read
                .checked_add(data.len() as u64)
                .ok_or_else(|| RegistryError::TooLarge("body too large".into()))?;
            crate::metrics::received(data.len());
            if let Some(limit) = self.limit {
                if self.read > limit {
                    return Err(RegistryError::TooLarge(format!(
                        "request body over the limit of {limit} bytes"
                    )));
                }
            }
            return Ok(Some(data));
        }
    }

    /// The whole body, refused past `max` bytes (manifests).
    pub async fn read_all(mut self, max: u64) -> Result<Vec<u8>, RegistryError> {
        self.limit = Some(self.limit.map_or(max, |l| l.min(max)));
        let mut out = Vec::new();
        while let Some(c) = self.next_chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }
}

/// The decoded `key=value` pairs of a query string, in order.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `application/x-www-form-urlencoded` decoding; an invalid escape is kept as written.
fn form_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_decode(&s)
}

/// `%XX` decoding of a URL path or query part; an invalid escape is kept as written and
/// bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `%`-encoding of everything but unreserved characters (for `Link` URLs).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = query_pairs(Some("digest=sha256%3Aab&from=a%2Fb&n=&x"));
        assert_eq!(query_get(&q, "digest"), Some("sha256:ab"));
        assert_eq!(query_get(&q, "from"), Some("a/b"));
        assert_eq!(query_get(&q, "n"), Some(""));
        assert_eq!(query_get(&q, "x"), Some(""));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_encode("a/b:c"), "a%2Fb%3Ac");
    }
}
