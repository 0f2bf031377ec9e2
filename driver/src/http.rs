//! The transport seam: the driver builds and signs requests; a [`Transport`] moves bytes.
//! In the component that is wasi:http (`crate::wasm::transport`); natively the host can
//! plug in its own client (the benchmark's baseline does).
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A request ready to send: the path is already percent-encoded and the headers signed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    /// `/key?query` (or `/bucket/key?query` in path style).
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Case-insensitive header lookup.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A streamed response body.
pub trait Body {
    /// Up to `max` more bytes; `Ok(None)` at the end.
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, TransportError>;

    /// The concrete body, for the transport's own code (the component hands a wasi:http
    /// body's stream to its host this way); `None` for bodies that have nothing to hand.
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}

/// An empty body.
pub struct NoBody;
impl Body for NoBody {
    fn read(&mut self, _max: usize) -> Result<Option<Vec<u8>>, TransportError> {
        Ok(None)
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Body>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Reads the whole body, failing if it exceeds `limit` bytes.
    pub fn read_all(&mut self, limit: usize) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.read(1 << 20)? {
            if out.len() + chunk.len() > limit {
                return Err(TransportError::new(
                    TransportErrorKind::Protocol,
                    format!("response body larger than {limit} bytes"),
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// Could not connect (refused, DNS, TLS handshake).
    Connect,
    /// No response, or no body bytes, within the timeout.
    Timeout,
    /// The connection broke mid-request or mid-response.
    Dropped,
    /// The host's sandbox refused the destination.
    Denied,
    /// The server's TLS certificate was refused (unknown CA, expired, another host name).
    TlsCertificate,
    /// A malformed response or another failure that a retry will not fix.
    Protocol,
}

#[derive(Debug, Clone)]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
    pub fn retryable(&self) -> bool {
        // A refused certificate is not: retrying cannot help, and the error says so at
        // once instead of "connection failed" six times later.
        matches!(
            self.kind,
            TransportErrorKind::Connect | TransportErrorKind::Timeout | TransportErrorKind::Dropped
        )
    }
}

/// How a refused server certificate starts its error text (the host adds what was wrong
/// with it).
pub const TLS_CERTIFICATE_REFUSED: &str = "TLS certificate refused";

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == TransportErrorKind::TlsCertificate {
            return write!(
                f,
                "{TLS_CERTIFICATE_REFUSED}: the server's certificate could not be verified"
            );
        }
        let what = match self.kind {
            TransportErrorKind::Connect => "connection failed",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Dropped => "connection dropped",
            TransportErrorKind::Denied => "request denied by the sandbox",
            TransportErrorKind::TlsCertificate => TLS_CERTIFICATE_REFUSED,
            TransportErrorKind::Protocol => "bad response",
        };
        write!(f, "{what}: {}", self.message)
    }
}

/// Moves requests and responses. Implementations own connections; the driver owns
/// signing, retries and semantics.
pub trait Transport {
    /// Sends `req` with `body` and waits for the response head.
    fn send(
        &self,
        req: &Request,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError>;

    /// Sends several requests at once and waits for all; the default sends them one by one.
    fn send_all(
        &self,
        reqs: &[(Request, &[u8])],
        timeout: Duration,
    ) -> Vec<Result<Response, TransportError>> {
        reqs.iter().map(|(r, b)| self.send(r, b, timeout)).collect()
    }

    /// A request started by [`start`](Self::start) and not finished yet: its body goes
    /// out, and its answer comes in, as [`advance`](Self::advance) drives it.
    type Flight;

    /// Starts `req` with `body` and returns without waiting for the answer, so that
    /// several requests (multipart upload parts) are in flight at once. The transport
    /// keeps a reference to the body until the flight is finished.
    fn start(&self, req: &Request, body: Arc<Vec<u8>>, timeout: Duration) -> Self::Flight;

    /// Moves every flight on (sends what body bytes can go now). With `block`, waits
    /// until at least one flight has its answer (or failed), unless `flights` is empty.
    /// Returns the indexes of the flights whose answer is in: [`finish`](Self::finish)
    /// takes it without blocking.
    fn advance(&self, flights: &mut [Self::Flight], block: bool) -> Vec<usize>;

    /// The answer of a flight (its response head; the body streams): waits for it if
    /// [`advance`](Self::advance) did not report it yet.
    fn finish(&self, flight: Self::Flight) -> Result<Response, TransportError>;

    /// Blocks for `d` (retry backoff).
    fn sleep(&self, d: Duration);

    /// Wall-clock time, Unix seconds (request dates, presigned expiry).
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    /// Some randomness for backoff jitter.
    fn random_u64(&self) -> u64 {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// The flight of a transport that has no non-blocking requests: [`Transport::start`]
/// sends at once and keeps the answer (`Transport::advance` then reports every flight).
pub type Sent = Result<Response, TransportError>;
