//! The KS3 client: builds each API call, signs it (`signing`: V2, KSS4 or AWS4), sends it through the
//! [`Transport`], retries what is safe to retry, and maps KS3's errors. Every request of
//! the driver goes through [`Client::call`].
use std::sync::Arc;
use std::time::Duration;

use ks3_proto::encode::{encode_component, encode_key};
use ks3_proto::xml::{self, Document};
use ks3_proto::{Crc64, RetryPolicy};

use crate::config::Config;
use crate::error::{BackendError, DriverError, IoError};
use crate::http::{Request, Response, Transport, TransportError};
use crate::signing::{self, ToSign};

/// Largest error or XML response body the driver reads.
pub const MAX_XML: usize = 16 << 20;

/// What to send: everything but the signature and the date.
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
}

/// A failed attempt: the error, and whether trying again could succeed (5xx, throttling,
/// timeouts, dropped connections).
#[derive(Debug)]
pub struct Failed {
    pub error: DriverError,
    pub retryable: bool,
}

pub struct Client<T> {
    pub config: Config,
    pub transport: T,
}

impl<T: Transport> Client<T> {
    pub fn new(config: Config, transport: T) -> Self {
        Client { config, transport }
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

    fn encoded_query(
        query: &[(&'static str, Option<String>)],
    ) -> Vec<(&'static str, Option<String>)> {
        query
            .iter()
            .map(|(k, v)| (*k, v.as_ref().map(|v| encode_component(v))))
            .collect()
    }

    /// Builds and signs the request for `call` at the current time, in the configured
    /// scheme (the only place requests are signed, with [`Client::presign`]).
    pub fn sign(&self, call: &Call<'_>) -> Result<Request, DriverError> {
        let query = Self::encoded_query(&call.query);
        let path = self.url_path(call.key);
        let mut path_and_query = path.clone();
        for (i, (k, v)) in query.iter().enumerate() {
            path_and_query.push(if i == 0 { '?' } else { '&' });
            path_and_query.push_str(k);
            if let Some(v) = v {
                path_and_query.push('=');
                path_and_query.push_str(v);
            }
        }
        let md5 = if call.md5 {
            ks3_proto::digest::content_md5(call.body)
        } else {
            String::new()
        };
        let decoded: Vec<(&str, Option<&str>)> =
            call.query.iter().map(|(k, v)| (*k, v.as_deref())).collect();
        let headers = signing::headers(
            &self.config,
            &ToSign {
                method: call.method,
                key: call.key,
                path: &path,
                query_encoded: &query,
                query_decoded: &decoded,
                content_type: call.content_type,
                content_md5: &md5,
                headers: &call.headers,
                body: call.body,
                now_unix: self.transport.now_unix(),
            },
        )?;
        Ok(Request {
            method: call.method,
            path_and_query,
            headers,
        })
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

    /// How this client retries (the host's wall clock allows for the same budget).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new(self.config.max_retries, self.config.request_timeout_secs)
    }

    /// Sleeps before retry number `attempt` (1, 2, …).
    pub(crate) fn backoff(&self, attempt: u32) {
        let pause = self
            .retry_policy()
            .backoff(attempt, self.transport.random_u64());
        self.transport.sleep(pause);
    }

    /// Sends `call`, retrying connection failures, timeouts, 5xx and throttling; returns
    /// a 2xx response (body unread) or the error. `ok_statuses` lists non-2xx statuses the
    /// caller handles itself (404 for HEAD, 416 for ranged reads).
    pub fn call(&self, call: &Call<'_>, ok_statuses: &[u16]) -> Result<Response, DriverError> {
        let mut attempt = 0;
        loop {
            match self.attempt(call, ok_statuses, attempt) {
                Ok(resp) => return Ok(resp),
                Err(f) if f.retryable && self.retry_policy().may_retry(attempt) => {
                    attempt += 1;
                    self.backoff(attempt);
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Like [`call`](Self::call), and reads the whole body (at most `limit` bytes) inside
    /// the same retry: a connection cut while the answer arrives is retried like one cut
    /// before it. For answers the driver needs whole (XML, small objects, tails).
    pub fn call_buffered(
        &self,
        call: &Call<'_>,
        ok_statuses: &[u16],
        limit: usize,
    ) -> Result<Response, DriverError> {
        self.call_buffered_counted(call, ok_statuses, limit)
            .map(|(resp, _)| resp)
    }

    /// [`call_buffered`](Self::call_buffered), also saying how many attempts failed
    /// before the one answered: a request that creates something (initiating an upload)
    /// may have done so in an attempt whose answer was lost.
    pub fn call_buffered_counted(
        &self,
        call: &Call<'_>,
        ok_statuses: &[u16],
        limit: usize,
    ) -> Result<(Response, u32), DriverError> {
        let first = self.attempt(call, ok_statuses, 0);
        self.buffered_retries(call, ok_statuses, limit, first)
    }

    /// Reads the answer of attempt `first` whole and, while that fails in a way worth
    /// retrying, tries again (the retry loop of [`call_buffered`](Self::call_buffered)).
    fn buffered_retries(
        &self,
        call: &Call<'_>,
        ok_statuses: &[u16],
        limit: usize,
        first: Result<Response, Failed>,
    ) -> Result<(Response, u32), DriverError> {
        let mut attempt = 0;
        let mut outcome = first;
        loop {
            let whole = outcome.and_then(|mut resp| match resp.read_all(limit) {
                Ok(body) => {
                    resp.body = Box::new(Buffered(Some(body)));
                    Ok(resp)
                }
                Err(e) => Err(Failed {
                    retryable: e.retryable(),
                    error: transport_error(call, &e, attempt),
                }),
            });
            match whole {
                Ok(resp) => return Ok((resp, attempt)),
                Err(f) if f.retryable && self.retry_policy().may_retry(attempt) => {
                    attempt += 1;
                    self.backoff(attempt);
                    outcome = self.attempt(call, ok_statuses, attempt);
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Two independent calls as [`call_buffered`](Self::call_buffered) would make them
    /// one after the other, but with their first attempts in flight at once: one round
    /// trip for both. Each is then retried on its own. `ok_statuses` and `limit` are per
    /// call, as for `call_buffered`.
    pub fn call_buffered_pair(
        &self,
        calls: [(&Call<'_>, &[u16], usize); 2],
    ) -> [Result<Response, DriverError>; 2] {
        let (Ok(a), Ok(b)) = (self.sign(calls[0].0), self.sign(calls[1].0)) else {
            // Signing fails only for a call that can never be made; each says why alone.
            return calls.map(|(call, ok, limit)| self.call_buffered(call, ok, limit));
        };
        let sent = self.transport.send_all(
            &[(a, calls[0].0.body), (b, calls[1].0.body)],
            self.timeout(),
        );
        let Ok(sent) = <[_; 2]>::try_from(sent) else {
            // A transport that answers another number of requests than it was given is
            // broken; the calls are repeated one at a time (both are safe to repeat).
            return calls.map(|(call, ok, limit)| self.call_buffered(call, ok, limit));
        };
        let finish = |(call, ok, limit): (&Call<'_>, &[u16], usize), sent| {
            let first = self.outcome(call, sent, ok, 0);
            self.buffered_retries(call, ok, limit, first)
                .map(|(resp, _)| resp)
        };
        let [sent_a, sent_b] = sent;
        let [call_a, call_b] = calls;
        [finish(call_a, sent_a), finish(call_b, sent_b)]
    }

    /// One attempt at `call`, for requests that are not safe to repeat blindly (Complete):
    /// the caller decides what to do before trying again. `earlier` counts the attempts
    /// made before this one, for the error message.
    pub fn attempt(
        &self,
        call: &Call<'_>,
        ok_statuses: &[u16],
        earlier: u32,
    ) -> Result<Response, Failed> {
        let req = self.sign(call).map_err(|error| Failed {
            error,
            retryable: false,
        })?;
        self.outcome(
            call,
            self.transport.send(&req, call.body, self.timeout()),
            ok_statuses,
            earlier,
        )
    }

    /// Signs `call` and starts it without waiting (see [`Transport::start`]); `body` is
    /// what goes out (`call.body` is what was signed: the same bytes).
    pub fn start(&self, call: &Call<'_>, body: Arc<Vec<u8>>) -> Result<T::Flight, DriverError> {
        let req = self.sign(call)?;
        Ok(self.transport.start(&req, body, self.timeout()))
    }

    /// Judges what came back for one attempt at `call`, as [`attempt`](Self::attempt).
    pub fn outcome(
        &self,
        call: &Call<'_>,
        sent: Result<Response, TransportError>,
        ok_statuses: &[u16],
        earlier: u32,
    ) -> Result<Response, Failed> {
        match sent {
            Ok(resp) if (200..300).contains(&resp.status) || ok_statuses.contains(&resp.status) => {
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
                error: transport_error(call, &e, earlier),
            }),
        }
    }

    /// Like [`call`](Self::call) for several independent calls at once (multipart copy
    /// parts); each is retried on its own.
    pub fn call_all(&self, calls: &[Call<'_>]) -> Vec<Result<Response, DriverError>> {
        let reqs: Vec<(Request, &[u8])> = match calls
            .iter()
            .map(|c| self.sign(c).map(|r| (r, c.body)))
            .collect::<Result<_, _>>()
        {
            Ok(reqs) => reqs,
            Err(e) => return calls.iter().map(|_| Err(e.clone())).collect(),
        };
        let first = self.transport.send_all(&reqs, self.timeout());
        first
            .into_iter()
            .zip(calls)
            .map(|(r, c)| match r {
                Ok(resp) if (200..300).contains(&resp.status) => Ok(resp),
                _ => self.call(c, &[]),
            })
            .collect()
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
