//! wasi:http as the driver's transport. The order of operations follows what wasmtime's
//! implementation requires: send the head (`handle`) before streaming the body, honour
//! `check-write`, and drop child streams before their parents.
use std::sync::Arc;
use std::time::Duration;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::Pollable;
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::config::{self, Endpoint};
use crate::http::{Body, Request, Response, Transport, TransportError, TransportErrorKind};

pub struct WasiTransport {
    https: bool,
    authority: String,
}

impl WasiTransport {
    pub fn new(endpoint: &Endpoint) -> Self {
        WasiTransport {
            https: endpoint.scheme == config::Scheme::Https,
            authority: endpoint.authority(),
        }
    }

    /// The request's head, ready for `outgoing-handler.handle`.
    fn request(
        &self,
        req: &Request,
        timeout: Duration,
    ) -> Result<(OutgoingRequest, RequestOptions), TransportError> {
        let entries: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        let fields = Fields::from_list(&entries).map_err(|e| {
            TransportError::new(
                TransportErrorKind::Protocol,
                format!("request header rejected: {e:?}"),
            )
        })?;
        let out = OutgoingRequest::new(fields);
        let method = match req.method {
            "GET" => Method::Get,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "DELETE" => Method::Delete,
            other => Method::Other(other.to_string()),
        };
        out.set_method(&method).map_err(|_| bad("method"))?;
        out.set_scheme(Some(if self.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        }))
        .map_err(|_| bad("scheme"))?;
        out.set_authority(Some(&self.authority))
            .map_err(|_| bad("authority"))?;
        out.set_path_with_query(Some(&req.path_and_query))
            .map_err(|_| bad("path"))?;

        let opts = RequestOptions::new();
        let nanos = timeout.as_nanos().min(u64::MAX as u128) as u64;
        let _ = opts.set_connect_timeout(Some(nanos.min(10_000_000_000)));
        let _ = opts.set_first_byte_timeout(Some(nanos));
        let _ = opts.set_between_bytes_timeout(Some(nanos));
        Ok((out, opts))
    }

    /// Sends the head and the whole body (blocking), then returns the pending answer.
    fn begin(
        &self,
        req: &Request,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Pending, TransportError> {
        let (out, opts) = self.request(req, timeout)?;
        let head = req.method == "HEAD";
        let has_body = !body.is_empty() || matches!(req.method, "PUT" | "POST");
        if !has_body {
            return outgoing_handler::handle(out, Some(opts))
                .map(|f| Pending::Future(f, head))
                .map_err(error_code);
        }
        let outgoing_body = out.body().map_err(|_| bad("body"))?;
        let stream = match outgoing_body.write() {
            Ok(s) => s,
            Err(_) => return Err(bad("body stream")),
        };
        // The head must go out before the body, or a body larger than the host's buffer
        // deadlocks.
        let fut = match outgoing_handler::handle(out, Some(opts)) {
            Ok(f) => f,
            Err(e) => {
                drop(stream);
                drop(outgoing_body);
                return Err(error_code(e));
            }
        };
        let written = write_all(&stream, body);
        drop(stream);
        if let Err(e) = written {
            drop(outgoing_body);
            // A server that refuses the body early (bad digest, too large) answers before
            // reading it all; its answer says more than the broken write. So does the
            // sandbox refusing the destination (not retryable, unlike a broken write).
            return match wait(fut) {
                Ok(resp) => Ok(Pending::Ready(resp, head)),
                Err(denied) if denied.kind == TransportErrorKind::Denied => Err(denied),
                Err(_) => Err(e),
            };
        }
        OutgoingBody::finish(outgoing_body, None).map_err(error_code)?;
        Ok(Pending::Future(fut, head))
    }

    /// A request whose body is written as the flight advances (`Transport::start`).
    fn launch(&self, req: &Request, body: Arc<Vec<u8>>, timeout: Duration) -> FlightState {
        let (out, opts) = match self.request(req, timeout) {
            Ok(r) => r,
            Err(e) => return FlightState::Done(Err(e)),
        };
        let Ok(outgoing) = out.body() else {
            return FlightState::Done(Err(bad("body")));
        };
        let Ok(stream) = outgoing.write() else {
            return FlightState::Done(Err(bad("body stream")));
        };
        // The head goes out first; the body follows as the flight advances.
        match outgoing_handler::handle(out, Some(opts)) {
            Ok(fut) => FlightState::Sending {
                stream,
                outgoing,
                body,
                sent: 0,
                fut,
            },
            Err(e) => {
                drop(stream);
                drop(outgoing);
                FlightState::Done(Err(error_code(e)))
            }
        }
    }
}

fn bad(what: &str) -> TransportError {
    TransportError::new(
        TransportErrorKind::Protocol,
        format!("invalid request {what}"),
    )
}

/// One request of [`Transport::start`].
pub struct WasiFlight(FlightState);

enum FlightState {
    /// The head went out; the body goes as the stream accepts it. Fields drop in
    /// declaration order: the stream before its body.
    Sending {
        stream: OutputStream,
        outgoing: OutgoingBody,
        body: Arc<Vec<u8>>,
        sent: usize,
        fut: FutureIncomingResponse,
    },
    /// The body is complete, or writing it broke (`broken`): waiting for the answer. An
    /// answer to a broken write (the server refused the body early) says more than the
    /// write error, unless it is the sandbox's refusal; without one the write error is
    /// the outcome.
    Waiting {
        fut: FutureIncomingResponse,
        broken: Option<TransportError>,
    },
    Done(Result<IncomingResponse, TransportError>),
    /// Taken by `finish`.
    Gone,
}

/// The answer of `fut` if it is in.
fn ready(fut: &FutureIncomingResponse) -> Option<Result<IncomingResponse, TransportError>> {
    match fut.get()? {
        Ok(Ok(resp)) => Some(Ok(resp)),
        Ok(Err(e)) => Some(Err(error_code(e))),
        Err(()) => Some(Err(TransportError::new(
            TransportErrorKind::Protocol,
            "response already taken",
        ))),
    }
}

/// Moves a flight on without blocking; true once the answer (or failure) is in.
fn step(state: FlightState) -> (FlightState, bool) {
    match state {
        s @ (FlightState::Done(_) | FlightState::Gone) => (s, true),
        FlightState::Waiting { fut, broken } => match ready(&fut) {
            None => (FlightState::Waiting { fut, broken }, false),
            Some(Ok(resp)) => (FlightState::Done(Ok(resp)), true),
            Some(Err(e)) => {
                let e = match broken {
                    Some(w) if e.kind != TransportErrorKind::Denied => w,
                    _ => e,
                };
                (FlightState::Done(Err(e)), true)
            }
        },
        FlightState::Sending {
            stream,
            outgoing,
            body,
            mut sent,
            fut,
        } => {
            // An answer before the whole body went (a refusal) ends the request.
            if let Some(r) = ready(&fut) {
                drop(stream);
                drop(outgoing);
                return (FlightState::Done(r), true);
            }
            let mut failed = None;
            while sent < body.len() {
                match stream.check_write() {
                    Ok(0) => break,
                    Ok(n) => {
                        let end = sent
                            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
                            .min(body.len());
                        if let Err(e) = stream.write(&body[sent..end]) {
                            failed = Some(dropped(e));
                            break;
                        }
                        sent = end;
                    }
                    Err(e) => {
                        failed = Some(dropped(e));
                        break;
                    }
                }
            }
            if failed.is_none() && sent < body.len() {
                let s = FlightState::Sending {
                    stream,
                    outgoing,
                    body,
                    sent,
                    fut,
                };
                return (s, false);
            }
            drop(stream);
            let broken = match failed {
                None => OutgoingBody::finish(outgoing, None).err().map(error_code),
                Some(f) => {
                    drop(outgoing);
                    Some(f)
                }
            };
            step(FlightState::Waiting { fut, broken })
        }
    }
}

impl WasiFlight {
    fn step(&mut self) -> bool {
        let (next, done) = step(std::mem::replace(&mut self.0, FlightState::Gone));
        self.0 = next;
        done
    }

    /// What to wait on while not done.
    fn pollables(&self) -> Vec<Pollable> {
        match &self.0 {
            FlightState::Sending { stream, fut, .. } => vec![fut.subscribe(), stream.subscribe()],
            FlightState::Waiting { fut, .. } => vec![fut.subscribe()],
            FlightState::Done(_) | FlightState::Gone => Vec::new(),
        }
    }
}

fn dropped(e: StreamError) -> TransportError {
    let msg = match e {
        StreamError::Closed => "connection closed while sending the body".to_string(),
        StreamError::LastOperationFailed(err) => {
            format!("sending the body failed: {}", err.to_debug_string())
        }
    };
    TransportError::new(TransportErrorKind::Dropped, msg)
}

fn write_all(out: &OutputStream, mut buf: &[u8]) -> Result<(), TransportError> {
    while !buf.is_empty() {
        let permit = loop {
            match out.check_write() {
                Ok(0) => out.subscribe().block(),
                Ok(n) => break n as usize,
                Err(e) => return Err(dropped(e)),
            }
        };
        let n = permit.min(buf.len());
        out.write(&buf[..n]).map_err(dropped)?;
        buf = &buf[n..];
    }
    Ok(())
}

/// A request whose head has gone out; the flag: whether it was a HEAD.
enum Pending {
    Future(FutureIncomingResponse, bool),
    Ready(IncomingResponse, bool),
}

impl Pending {
    fn response(self) -> Result<Response, TransportError> {
        match self {
            Pending::Future(f, head) => into_response(wait(f)?, head),
            Pending::Ready(r, head) => into_response(r, head),
        }
    }
}

fn wait(fut: FutureIncomingResponse) -> Result<IncomingResponse, TransportError> {
    fut.subscribe().block();
    match fut.get() {
        Some(Ok(Ok(resp))) => Ok(resp),
        Some(Ok(Err(e))) => Err(error_code(e)),
        Some(Err(())) | None => Err(TransportError::new(
            TransportErrorKind::Protocol,
            "response already taken",
        )),
    }
}

/// The answer to a request (`head`: a HEAD). A response that has no body by HTTP's rules
/// is not consumed: its body's stream is never opened, read to its end and dropped, which
/// spares a stat or a PUT's answer five or six calls into the host.
fn into_response(resp: IncomingResponse, head: bool) -> Result<Response, TransportError> {
    let status = resp.status();
    let headers: Vec<(String, String)> = resp
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, utf8_lossy(v)))
        .collect();
    if has_no_body(head, status, &headers) {
        return Ok(Response {
            status,
            headers,
            body: Box::new(WasiBody {
                deferred: None,
                stream: None,
                body: None,
                resp: None,
            }),
        });
    }
    let body = resp.consume().map_err(|_| {
        TransportError::new(TransportErrorKind::Protocol, "response body unavailable")
    })?;
    let stream = body.stream().map_err(|_| {
        TransportError::new(
            TransportErrorKind::Protocol,
            "response body stream unavailable",
        )
    })?;
    Ok(Response {
        status,
        headers,
        body: Box::new(WasiBody {
            deferred: None,
            stream: Some(stream),
            body: Some(body),
            resp: Some(resp),
        }),
    })
}

/// A header value as text: its own bytes when they are UTF-8 (as they nearly always are:
/// no copy, no second allocation), otherwise with U+FFFD for what is not.
fn utf8_lossy(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether a response has no body whatever its headers say of the content (RFC 9110
/// §6.4.1): the answer to a HEAD, a 1xx, 204 or 304, or one whose Content-Length is 0
/// (without a Transfer-Encoding, which would override it).
fn has_no_body(head: bool, status: u16, headers: &[(String, String)]) -> bool {
    let empty = || {
        crate::http::find_header(headers, "content-length").is_some_and(|v| v.trim() == "0")
            && crate::http::find_header(headers, "transfer-encoding").is_none()
    };
    head || status < 200 || status == 204 || status == 304 || empty()
}

/// Fields drop in declaration order: the stream before the body before the response.
struct WasiBody {
    stream: Option<InputStream>,
    /// An error met while draining ahead; reported by the next `read`.
    deferred: Option<TransportError>,
    body: Option<IncomingBody>,
    resp: Option<IncomingResponse>,
}

/// What a response body's stream needs alive while the host reads it: wasmtime refuses to
/// drop a body (and a response) whose stream is still open. Drop it only after the host
/// dropped the stream. Fields drop in declaration order: the body before the response.
pub struct StreamParents {
    _body: Option<IncomingBody>,
    _resp: Option<IncomingResponse>,
}

/// A response body handed over as its wasi:io stream (see [`hand_over`]).
pub enum HandedOver {
    Stream(InputStream, StreamParents),
    /// The body had already ended: nothing to hand over.
    Ended,
    /// The body had already failed (while draining ahead), how.
    Broken(String),
}

/// Takes the wasi:io stream out of a body this transport returned, for the host to read
/// directly. `None`: not one of this transport's bodies.
pub fn hand_over(body: &mut dyn Body) -> Option<HandedOver> {
    let wasi = body.as_any_mut()?.downcast_mut::<WasiBody>()?;
    if let Some(e) = wasi.deferred.take() {
        return Some(HandedOver::Broken(e.to_string()));
    }
    let handed = match wasi.stream.take() {
        Some(stream) => HandedOver::Stream(
            stream,
            StreamParents {
                _body: wasi.body.take(),
                _resp: wasi.resp.take(),
            },
        ),
        None => HandedOver::Ended,
    };
    Some(handed)
}

fn stream_error(e: wasi::io::error::Error) -> TransportError {
    let msg = e.to_debug_string();
    let kind = if msg.to_ascii_lowercase().contains("timeout") {
        TransportErrorKind::Timeout
    } else {
        TransportErrorKind::Dropped
    };
    TransportError::new(kind, format!("reading the response body: {msg}"))
}

impl Body for WasiBody {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, TransportError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let Some(stream) = self.stream.as_ref() else {
            return Ok(None);
        };
        let mut chunk = match stream.blocking_read(max as u64) {
            Ok(chunk) => chunk,
            Err(StreamError::Closed) => {
                self.stream = None;
                return Ok(None);
            }
            Err(StreamError::LastOperationFailed(e)) => {
                self.stream = None;
                return Err(stream_error(e));
            }
        };
        // One blocking read returns one frame of the host's body (often 16 KiB); take what
        // else has already arrived so each call across the component boundary moves up to
        // `max` bytes.
        while chunk.len() < max {
            match stream.read((max - chunk.len()) as u64) {
                Ok(more) if more.is_empty() => break,
                Ok(more) => chunk.extend_from_slice(&more),
                Err(StreamError::Closed) => {
                    self.stream = None;
                    break;
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    self.stream = None;
                    self.deferred = Some(stream_error(e));
                    break;
                }
            }
        }
        Ok(Some(chunk))
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }
}

fn error_code(e: ErrorCode) -> TransportError {
    use TransportErrorKind::*;
    let kind = match &e {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => Timeout,
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::TlsProtocolError
        | ErrorCode::TlsAlertReceived(_) => Connect,
        ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete => Dropped,
        ErrorCode::HttpRequestDenied => Denied,
        ErrorCode::TlsCertificateError => TlsCertificate,
        _ => Protocol,
    };
    TransportError::new(kind, format!("{e:?}"))
}

impl Transport for WasiTransport {
    fn send(
        &self,
        req: &Request,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        self.begin(req, body, timeout)?.response()
    }

    fn send_all(
        &self,
        reqs: &[(Request, &[u8])],
        timeout: Duration,
    ) -> Vec<Result<Response, TransportError>> {
        // Start every request, then collect the responses: the host runs them concurrently.
        let started: Vec<_> = reqs
            .iter()
            .map(|(r, b)| self.begin(r, b, timeout))
            .collect();
        started
            .into_iter()
            .map(|p| p.and_then(Pending::response))
            .collect()
    }

    type Flight = WasiFlight;

    fn start(&self, req: &Request, body: Arc<Vec<u8>>, timeout: Duration) -> WasiFlight {
        let mut f = WasiFlight(self.launch(req, body, timeout));
        f.step();
        f
    }

    fn advance(&self, flights: &mut [WasiFlight], block: bool) -> Vec<usize> {
        loop {
            let done: Vec<usize> = flights
                .iter_mut()
                .enumerate()
                .filter_map(|(i, f)| f.step().then_some(i))
                .collect();
            if !done.is_empty() || !block || flights.is_empty() {
                return done;
            }
            // Until a body stream takes more bytes or an answer comes in.
            let pollables: Vec<Pollable> = flights.iter().flat_map(WasiFlight::pollables).collect();
            let refs: Vec<&Pollable> = pollables.iter().collect();
            wasi::io::poll::poll(&refs);
        }
    }

    fn finish(&self, mut flight: WasiFlight) -> Result<Response, TransportError> {
        while !flight.step() {
            let pollables = flight.pollables();
            let refs: Vec<&Pollable> = pollables.iter().collect();
            wasi::io::poll::poll(&refs);
        }
        match std::mem::replace(&mut flight.0, FlightState::Gone) {
            FlightState::Done(r) => into_response(r?, false),
            _ => Err(TransportError::new(
                TransportErrorKind::Protocol,
                "request already finished",
            )),
        }
    }

    fn sleep(&self, d: Duration) {
        wasi::clocks::monotonic_clock::subscribe_duration(d.as_nanos().min(u64::MAX as u128) as u64).block();
    }

    fn random_u64(&self) -> u64 {
        wasi::random::random::get_random_u64()
    }

    // wasi:clocks directly, not `std::time`: the component is built without std's WASI
    // support (wasm32-unknown-unknown), where `SystemTime::now` is unsupported.
    fn now_unix(&self) -> i64 {
        let now = wasi::clocks::wall_clock::now();
        i64::try_from(now.seconds).unwrap_or(i64::MAX)
    }
}
