//! The KS3 client: builds each API call, signs the built request (`signing`: V2, KSS4 or
//! AWS4), sends it through the [`Transport`], retries what is safe to retry, and maps KS3's
//! errors. Every request of the driver is a [`Call`] that goes out through
//! [`Client::send`] or [`Client::send_all`] (a multipart part's streamed upload through
//! [`Client::start`], whose answer [`Client::judge`] reads the same way).
use std::sync::Arc;
use std::time::Duration;

use ks3_proto::encode::{encode_component, encode_key};
use ks3_proto::xml::{self, Document};
use ks3_proto::{Crc64, RetryPolicy};

use crate::config::Config;
use crate::error::{BackendError, DriverError, IoError};
use crate::http::{Request, Response, Transport, TransportError};
use crate::signing;

/// Largest error or XML response body the driver reads.
pub const MAX_XML: usize = 16 << 20;

/// One KS3 call: what to send (everything but the signature and the date) and how
/// ([`Retry`], which statuses the caller handles, whether the answer is read whole).
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub method: &'static str,
    /// Object key; empty for bucket-level calls.
    pub key: &'a str,
    /// Query parameters, unencoded. `None` value = bare sub-resource (`?uploads`).
    pub query: Vec<(&'static str, Option<String>)>,
    /// Extra headers (lower-case `x-kss-*`, `range`, …).
    pub headers: Vec<(&'static str, String)>,
    pub content_type: Option<&'static str>,
    /// Send `Content-MD5` of the body.
    pub md5: bool,
    pub body: &'a [u8],
    /// The driver path the call serves, for error messages.
    pub path: &'a str,
    /// Non-2xx statuses the caller handles itself (404 for HEAD, 416 for ranged reads).
    pub accept: &'a [u16],
    pub retry: Retry,
    /// Read the whole answer (at most this many bytes) inside the retry, so a connection
    /// cut while it arrives is retried like one cut before it: for answers the driver
    /// needs whole (XML, small objects, tails). `None`: the body streams, unread.
    pub buffered: Option<usize>,
}

/// Whether a call may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Safe to repeat: connection failures, timeouts, 5xx and throttling are tried again
    /// after a backoff, as the [`RetryPolicy`] allows.
    Idempotent,
    /// One attempt, for a request not safe to repeat blindly (Complete): the caller
    /// decides what to do before trying again. `earlier` counts the attempts it made
    /// before this one, for the error message.
    Once { earlier: u32 },
}

impl Retry {
    /// The number of a call's first attempt: 0, or the caller's count for `Once`.
    fn first_attempt(self) -> u32 {
        match self {
            Retry::Idempotent => 0,
            Retry::Once { earlier } => earlier,
        }
    }
}

impl<'a> Call<'a> {
    pub fn new(method: &'static str, key: &'a str, path: &'a str) -> Self {
        Call {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            content_type: None,
            md5: false,
            body: &[],
            path,
            accept: &[],
            retry: Retry::Idempotent,
            buffered: None,
        }
    }
    pub fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.push((k, Some(v.into())));
        self
    }
    pub fn subresource(mut self, k: &'static str) -> Self {
        self.query.push((k, None));
        self
    }
    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
    pub fn body(mut self, body: &'a [u8], content_type: &'static str, md5: bool) -> Self {
        self.body = body;
        self.content_type = Some(content_type);
        self.md5 = md5;
        self
    }
    /// Non-2xx statuses that come back as answers, not errors.
    pub fn accept(mut self, statuses: &'a [u16]) -> Self {
        self.accept = statuses;
        self
    }
    /// Reads the whole answer, at most `limit` bytes, inside the retry.
    pub fn buffered(mut self, limit: usize) -> Self {
        self.buffered = Some(limit);
        self
    }
    /// One attempt only, after `earlier` ones (see [`Retry::Once`]).
    pub fn once(mut self, earlier: u32) -> Self {
        self.retry = Retry::Once { earlier };
        self
    }
}

/// A failed attempt: the error, and whether trying again could succeed (5xx, throttling,
/// timeouts, dropped connections).
#[derive(Debug)]
pub struct Failed {
    pub error: DriverError,
    pub retryable: bool,
}

impl From<Failed> for DriverError {
    fn from(f: Failed) -> Self {
        f.error
    }
}

/// What a call brought back.
pub struct Sent {
    /// A 2xx or accepted answer; its body read already for a buffered call.
    pub resp: Response,
    /// How many attempts failed before the one answered: a request that creates
    /// something (initiating an upload) may have done so in an attempt whose answer was
    /// lost.
    pub failed_attempts: u32,
}

/// What each call of [`Client::send_all`] does once the first attempts, sent together,
/// are back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBatch {
    /// Goes on as [`Client::send`] would after its first attempt (that attempt judged,
    /// retried after a backoff when worth it).
    Continue,
    /// Unless its first attempt succeeded, is sent again on its own with all its retries
    /// (multipart copy parts: a failure inside a burst says little about the part).
    Resend,
}

pub struct Client<T> {
    pub config: Config,
    pub transport: T,
}

impl<T: Transport> Client<T> {
    pub fn new(config: Config, transport: T) -> Self {
        Client { config, transport }
    }

    /// How this client retries (the host's wall clock allows for the same budget).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.config.max_retries, self.config.request_timeout_secs)
    }

    pub fn timeout(&self) -> Duration {
        self.retry_policy().request_timeout
    }

    /// `/bucket/key` (path style) or `/key`, percent-encoded.
    fn url_path(&self, key: &str) -> String {
        if self.config.endpoint.path_style {
            format!("/{}/{}", self.config.bucket, encode_key(key))
        } else {
            format!("/{}", encode_key(key))
        }
    }

    /// Builds the request for `call` and signs it at the current time, in the configured
    /// scheme (the only place requests are signed, with [`Client::presign`]).
    pub fn sign(&self, call: &Call<'_>) -> Result<Request, DriverError> {
        let mut path_and_query = self.url_path(call.key);
        for (i, (k, v)) in call.query.iter().enumerate() {
            path_and_query.push(if i == 0 { '?' } else { '&' });
            path_and_query.push_str(k);
            if let Some(v) = v {
                path_and_query.push('=');
                path_and_query.push_str(&encode_component(v));
            }
        }
        let mut req = signing::build(&self.config, call, path_and_query);
        signing::sign(
            &self.config,
            &mut req,
            call.key,
            call.body,
            self.transport.now_unix(),
        )?;
        Ok(req)
    }

    /// A presigned URL for `method` on `key`, valid until `expires_unix`, in the
    /// configured scheme.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        expires_unix: i64,
    ) -> Result<String, DriverError> {
        let path = self.url_path(key);
        let q = signing::presigned(
            &self.config,
            method,
            key,
            &path,
            self.transport.now_unix(),
            expires_unix,
        )?;
        Ok(format!("{}{path}?{q}", self.config.endpoint.base_url()))
    }

    /// Sleeps before retry number `attempt` (1, 2, …).
    pub(crate) fn backoff(&self, attempt: u32) {
        let pause = self
            .retry_policy()
            .backoff(attempt, self.transport.random_u64());
        self.transport.sleep(pause);
    }

    /// Sends `call` as it describes: a 2xx or accepted answer, or the error of the last
    /// attempt (a `Failed` turns into its `DriverError` with `?`).
    pub fn send(&self, call: &Call<'_>) -> Result<Sent, Failed> {
        self.go_on(call, self.attempt(call, call.retry.first_attempt()))
    }

    /// Several independent calls with their first attempts in flight at once (one round
    /// trip for all); each then goes on on its own, as `after` says. One result per
    /// call, in order.
    pub fn send_all(&self, calls: &[Call<'_>], after: AfterBatch) -> Vec<Result<Sent, Failed>> {
        let reqs: Result<Vec<(Request, &[u8])>, DriverError> = calls
            .iter()
            .map(|c| self.sign(c).map(|r| (r, c.body)))
            .collect();
        let sent = reqs
            .ok()
            .map(|reqs| self.transport.send_all(&reqs, self.timeout()))
            .filter(|sent| sent.len() == calls.len());
        let Some(sent) = sent else {
            // Signing fails only for a call that can never be made: each says why alone.
            // A transport that answers another number of requests than it was given is
            // broken: the calls are made one at a time.
            return calls.iter().map(|c| self.send(c)).collect();
        };
        sent.into_iter()
            .zip(calls)
            .map(
                |(sent, call)| match (after, self.judge(call, sent, call.retry.first_attempt())) {
                    (AfterBatch::Resend, Err(_)) => self.send(call),
                    (_, judged) => self.go_on(call, judged),
                },
            )
            .collect()
    }

    /// Signs `call` and starts it without waiting (see [`Transport::start`]); `body` is
    /// what goes out (`call.body` is what was signed: the same bytes). The flight's answer
    /// is for [`judge`](Self::judge); its retries are the caller's.
    pub fn start(&self, call: &Call<'_>, body: Arc<Vec<u8>>) -> Result<T::Flight, DriverError> {
        let req = self.sign(call)?;
        Ok(self.transport.start(&req, body, self.timeout()))
    }

    /// Attempt number `attempt` at `call`: signed now, sent, judged.
    fn attempt(&self, call: &Call<'_>, attempt: u32) -> Result<Response, Failed> {
        let req = self.sign(call).map_err(|error| Failed {
            error,
            retryable: false,
        })?;
        let sent = self.transport.send(&req, call.body, self.timeout());
        self.judge(call, sent, attempt)
    }

    /// Takes `call` from the judged answer of its first attempt to the end: reads the
    /// answer whole when the call is buffered, and while that fails in a way worth
    /// retrying and the call and the policy allow, tries again after a backoff.
    fn go_on(&self, call: &Call<'_>, first: Result<Response, Failed>) -> Result<Sent, Failed> {
        let start = call.retry.first_attempt();
        let mut attempt = start;
        let mut outcome = first;
        loop {
            let whole = match call.buffered {
                Some(limit) => outcome.and_then(|resp| read_whole(call, resp, limit, attempt)),
                None => outcome,
            };
            match whole {
                Ok(resp) => {
                    return Ok(Sent {
                        resp,
                        failed_attempts: attempt - start,
                    })
                }
                Err(f)
                    if f.retryable
                        && call.retry == Retry::Idempotent
                        && self.retry_policy().may_retry(attempt) =>
                {
                    attempt += 1;
                    self.backoff(attempt);
                    outcome = self.attempt(call, attempt);
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// Judges what came back for attempt number `attempt` of `call`: a 2xx or accepted
    /// answer, or the error and whether trying again could help.
    pub fn judge(
        &self,
        call: &Call<'_>,
        sent: Result<Response, TransportError>,
        attempt: u32,
    ) -> Result<Response, Failed> {
        match sent {
            Ok(resp) if (200..300).contains(&resp.status) || call.accept.contains(&resp.status) => {
                Ok(resp)
            }
            Ok(resp) => {
                let err = self.backend_error(resp, call.path);
                Err(Failed {
                    retryable: retryable_status(&err),
                    error: DriverError::Backend(err),
                })
            }
            Err(e) => Err(Failed {
                retryable: e.retryable(),
                error: transport_error(call, &e, attempt),
            }),
        }
    }

    /// Reads a 2xx XML body as a `D` (its root must be `D`'s, every required field present,
    /// every number in range); a 200 carrying `<Error>` (KS3 does that for complete and
    /// copy) becomes a backend error.
    pub fn read_xml<D: Document>(&self, mut resp: Response, path: &str) -> Result<D, DriverError> {
        let request_id = request_id(&resp);
        let body = resp
            .read_all(MAX_XML)
            .map_err(|e| DriverError::transport(path, "reading KS3's response", &e))?;
        let unreadable = |e: xml::XmlError| {
            DriverError::Backend(BackendError {
                code: String::new(),
                status: resp.status,
                message: format!("unreadable response body: {e}"),
                request_id: request_id.clone(),
                path: path.into(),
            })
        };
        if xml::root_name(&body).map_err(unreadable)? == xml::ErrorResponse::ROOT {
            let e = xml::from_xml::<xml::ErrorResponse>(&body).map_err(unreadable)?;
            return Err(DriverError::Backend(backend_error_of(
                e,
                resp.status,
                &request_id,
                path,
            )));
        }
        xml::from_xml(&body).map_err(unreadable)
    }

    /// Turns an error response into a [`BackendError`], reading its XML body if any.
    pub fn backend_error(&self, mut resp: Response, path: &str) -> BackendError {
        let request_id = request_id(&resp);
        let status = resp.status;
        let body = resp.read_all(64 << 10).unwrap_or_default();
        match xml::from_xml::<xml::ErrorResponse>(&body) {
            Ok(e) => backend_error_of(e, status, &request_id, path),
            _ => BackendError {
                code: default_code(status).into(),
                status,
                message: if body.is_empty() {
                    format!("HTTP {status} without an error body")
                } else {
                    format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )
                },
                request_id,
                path: path.into(),
            },
        }
    }

    /// Checks KS3's CRC-64 of what it stored against ours, when it sent one.
    pub fn verify_crc(
        &self,
        resp: &Response,
        expected: u64,
        path: &str,
    ) -> Result<(), DriverError> {
        match resp.header("x-kss-checksum-crc64ecma") {
            None => Ok(()),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(got) if got == expected => Ok(()),
                _ => Err(DriverError::integrity(
                    path,
                    format!("integrity check failed: KS3 stored CRC-64 {v}, the driver sent data with CRC-64 {expected}"),
                )),
            },
        }
    }
}

/// KS3's request id: `x-kss-request-id`, or `x-amz-request-id` from a server that answers
/// AWS4 requests in S3's dialect only.
fn request_id(resp: &Response) -> String {
    resp.header("x-kss-request-id")
        .or_else(|| resp.header("x-amz-request-id"))
        .unwrap_or("")
        .to_string()
}

/// Reads the body of `resp` whole (at most `limit` bytes) into it; a failure is judged
/// like one of attempt number `attempt`.
fn read_whole(
    call: &Call<'_>,
    mut resp: Response,
    limit: usize,
    attempt: u32,
) -> Result<Response, Failed> {
    match resp.read_all(limit) {
        Ok(body) => {
            resp.body = Box::new(Buffered(Some(body)));
            Ok(resp)
        }
        Err(e) => Err(Failed {
            retryable: e.retryable(),
            error: transport_error(call, &e, attempt),
        }),
    }
}

/// A body already read into memory.
struct Buffered(Option<Vec<u8>>);

impl crate::http::Body for Buffered {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, TransportError> {
        match self.0.take() {
            Some(mut v) if !v.is_empty() => {
                if v.len() > max.max(1) {
                    self.0 = Some(v.split_off(max.max(1)));
                }
                Ok(Some(v))
            }
            _ => Ok(None),
        }
    }
}

/// CRC-64 of a buffer, the way KS3 reports it.
pub fn crc64(data: &[u8]) -> u64 {
    Crc64::checksum(data)
}

fn retryable_status(e: &BackendError) -> bool {
    matches!(e.status, 500 | 502 | 503 | 504)
        || matches!(
            e.code.as_str(),
            "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"
        )
}

fn default_code(status: u16) -> &'static str {
    match status {
        400 => "InvalidArgument",
        403 => "AccessDenied",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        416 => "InvalidRange",
        _ => "",
    }
}

fn backend_error_of(
    e: xml::ErrorResponse,
    status: u16,
    request_id: &str,
    path: &str,
) -> BackendError {
    BackendError {
        code: e.code,
        status,
        message: e.message.unwrap_or_default(),
        request_id: e
            .request_id
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| request_id.to_string()),
        path: path.to_string(),
    }
}

fn transport_error(call: &Call<'_>, e: &TransportError, retries: u32) -> DriverError {
    let tried = if retries > 0 {
        format!(" after {} attempts", retries + 1)
    } else {
        String::new()
    };
    DriverError::Io(IoError::new(
        e.kind.into(),
        format!(
            "{} {} failed{tried}: {e} (path {})",
            call.method,
            if call.key.is_empty() { "/" } else { call.key },
            call.path
        ),
    ))
}
