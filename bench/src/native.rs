//! The native baseline: the driver's own KS3 logic (signing, XML, operations) compiled
//! natively, sending through the very same pooled egress client a [`Driver`]'s
//! component instances use (the host's [`EgressClient`]). `ks3-driver bench` compares
//! the two paths with it. It was the host's `native` module; it is the benchmark's alone.
//!
//! The driver's [`Transport`] is synchronous; the client is async. Native operations must
//! therefore run on a thread that may block — a `tokio::task::spawn_blocking` closure or
//! a plain thread — and the transport drives each request with [`Handle::block_on`] on
//! the runtime that owns the pool. Response bodies stream frame by frame, never buffered
//! whole.
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use ks3_driver_component::http::{
    Body, Request, Response, Transport, TransportError, TransportErrorKind,
};
use ks3_driver_host::egress_client::{EgressClient, HttpError, RequestOptions, WasiBody};
use ks3_driver_host::{Config, Driver, Error};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// The native driver type: KS3 operations over [`NativeTransport`].
pub type NativeDriver = ks3_driver_component::Driver<NativeTransport>;

/// The validated paths the native driver's operations take.
pub use ks3_driver_component::path::{DirPath, FilePath};

/// A [`Transport`] over a driver's pooled egress client.
pub struct NativeTransport {
    egress: EgressClient,
    handle: Handle,
    base: String,
}

impl NativeTransport {
    /// Shares `driver`'s connection pool; requests run on the runtime of `handle`.
    pub fn new(driver: &Driver, config: &Config, handle: Handle) -> Self {
        NativeTransport {
            egress: EgressClient::of(driver),
            handle,
            base: config.endpoint.base_url(),
        }
    }

    /// Its own pool (same client settings), without a component runtime: the native
    /// side of the cold-start measurement.
    pub fn standalone(config: &Config, handle: Handle) -> Result<Self, Error> {
        Ok(NativeTransport {
            egress: EgressClient::standalone(config)?,
            handle,
            base: config.endpoint.base_url(),
        })
    }

    fn build(&self, req: &Request, body: &[u8]) -> Result<http::Request<WasiBody>, TransportError> {
        self.build_with(req, Bytes::copy_from_slice(body))
    }

    /// A request whose body is shared with the caller, not copied.
    fn build_shared(
        &self,
        req: &Request,
        body: Arc<Vec<u8>>,
    ) -> Result<http::Request<WasiBody>, TransportError> {
        self.build_with(req, Bytes::from_owner(SharedBody(body)))
    }

    fn build_with(
        &self,
        req: &Request,
        body: Bytes,
    ) -> Result<http::Request<WasiBody>, TransportError> {
        let mut b = http::Request::builder()
            .method(req.method)
            .uri(format!("{}{}", self.base, req.path_and_query));
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let body = Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync();
        b.body(body).map_err(|e| {
            TransportError::new(
                TransportErrorKind::Protocol,
                format!("invalid request: {e}"),
            )
        })
    }

    /// Sends and waits for the response head.
    async fn request(
        egress: EgressClient,
        req: http::Request<WasiBody>,
        timeout: Duration,
    ) -> Result<http::Response<WasiBody>, TransportError> {
        let options = RequestOptions {
            connect_timeout: Some(timeout.min(Duration::from_secs(10))),
            first_byte_timeout: Some(timeout),
            between_bytes_timeout: Some(timeout),
        };
        egress.send(req, options).await.map_err(error_code)
    }

    fn response(&self, resp: http::Response<WasiBody>) -> Response {
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Response {
            status,
            headers,
            body: Box::new(NativeBody {
                body: Some(resp.into_body()),
                pending: Bytes::new(),
                handle: self.handle.clone(),
            }),
        }
    }
}

impl Transport for NativeTransport {
    fn send(
        &self,
        req: &Request,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let req = self.build(req, body)?;
        let resp = self
            .handle
            .block_on(Self::request(self.egress.clone(), req, timeout))?;
        Ok(self.response(resp))
    }

    fn send_all(
        &self,
        reqs: &[(Request, &[u8])],
        timeout: Duration,
    ) -> Vec<Result<Response, TransportError>> {
        // Like the component's transport: all in flight at once.
        let tasks: Vec<_> = reqs
            .iter()
            .map(|(r, b)| {
                self.build(r, b).map(|req| {
                    self.handle
                        .spawn(Self::request(self.egress.clone(), req, timeout))
                })
            })
            .collect();
        tasks
            .into_iter()
            .map(|t| {
                let resp = t.and_then(|task| {
                    self.handle.block_on(task).unwrap_or_else(|e| {
                        Err(TransportError::new(
                            TransportErrorKind::Protocol,
                            format!("request task failed: {e}"),
                        ))
                    })
                })?;
                Ok(self.response(resp))
            })
            .collect()
    }

    type Flight = NativeFlight;

    fn start(&self, req: &Request, body: Arc<Vec<u8>>, timeout: Duration) -> NativeFlight {
        let req = match self.build_shared(req, body) {
            Ok(r) => r,
            Err(e) => return NativeFlight::Done(Err(e)),
        };
        NativeFlight::Running(
            self.handle
                .spawn(Self::request(self.egress.clone(), req, timeout)),
        )
    }

    fn advance(&self, flights: &mut [NativeFlight], block: bool) -> Vec<usize> {
        let done = |flights: &mut [NativeFlight]| -> Vec<usize> {
            flights
                .iter()
                .enumerate()
                .filter(|(_, f)| match f {
                    NativeFlight::Running(t) => t.is_finished(),
                    NativeFlight::Done(_) => true,
                })
                .map(|(i, _)| i)
                .collect()
        };
        let ready = done(flights);
        if !ready.is_empty() || !block || flights.is_empty() {
            return ready;
        }
        // Wait until one task is done (its result stays in the task for `finish`).
        self.handle.block_on(poll_fn(|cx| {
            let mut any = false;
            for f in flights.iter_mut() {
                if let NativeFlight::Running(t) = f {
                    if let Poll::Ready(r) = Pin::new(t).poll(cx) {
                        *f = NativeFlight::Done(r.unwrap_or_else(|e| Err(task_failed(e))));
                        any = true;
                    }
                }
            }
            if any {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        done(flights)
    }

    fn finish(&self, flight: NativeFlight) -> Result<Response, TransportError> {
        let resp = match flight {
            NativeFlight::Done(r) => r?,
            NativeFlight::Running(t) => self
                .handle
                .block_on(t)
                .unwrap_or_else(|e| Err(task_failed(e)))?,
        };
        Ok(self.response(resp))
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// A request in flight on the runtime (`Transport::start`).
pub enum NativeFlight {
    Running(JoinHandle<Result<http::Response<WasiBody>, TransportError>>),
    Done(Result<http::Response<WasiBody>, TransportError>),
}

fn task_failed(e: tokio::task::JoinError) -> TransportError {
    TransportError::new(
        TransportErrorKind::Protocol,
        format!("request task failed: {e}"),
    )
}

/// A shared body as `Bytes` without a copy.
struct SharedBody(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// A streamed response body: each `read` takes the frames already received (at least
/// one, waiting for it), up to `max` bytes.
struct NativeBody {
    body: Option<WasiBody>,
    /// The unread rest of a frame larger than the last `read` wanted.
    pending: Bytes,
    handle: Handle,
}

impl NativeBody {
    fn take(&mut self, out: &mut Vec<u8>, max: usize) {
        let n = self.pending.len().min(max - out.len());
        out.extend_from_slice(&self.pending.split_to(n));
    }
}

impl Body for NativeBody {
    fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>, TransportError> {
        let max = max.max(1);
        let mut out = Vec::new();
        self.take(&mut out, max);
        if out.len() == max {
            return Ok(Some(out));
        }
        let Some(mut body) = self.body.take() else {
            return Ok((!out.is_empty()).then_some(out));
        };
        let handle = self.handle.clone();
        let (done, err) = handle.block_on(async {
            let mut waited = !out.is_empty();
            loop {
                let frame = if waited {
                    // Only what is ready now; never wait once there is data.
                    let ready = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
                        Poll::Ready(f) => Poll::Ready(Some(f)),
                        Poll::Pending => Poll::Ready(None),
                    })
                    .await;
                    match ready {
                        Some(f) => f,
                        None => return (false, None),
                    }
                } else {
                    body.frame().await
                };
                match frame {
                    None => return (true, None),
                    Some(Err(e)) => return (true, Some(e)),
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            if data.is_empty() {
                                continue;
                            }
                            waited = true;
                            self.pending = data;
                            self.take(&mut out, max);
                            if out.len() == max {
                                return (body.is_end_stream(), None);
                            }
                        }
                    }
                }
            }
        });
        if let Some(e) = err {
            let mut t = error_code(e);
            if t.kind == TransportErrorKind::Connect || t.kind == TransportErrorKind::Protocol {
                t.kind = TransportErrorKind::Dropped;
            }
            t.message = format!("reading the response body: {}", t.message);
            return Err(t);
        }
        if !done {
            self.body = Some(body);
        }
        if out.is_empty() && done && self.pending.is_empty() {
            return Ok(None);
        }
        Ok(Some(out))
    }
}

/// The same classification as the component's transport.
fn error_code(e: HttpError) -> TransportError {
    use TransportErrorKind::*;
    let kind = match &e {
        HttpError::DnsTimeout
        | HttpError::ConnectionTimeout
        | HttpError::ConnectionReadTimeout
        | HttpError::ConnectionWriteTimeout => Timeout,
        HttpError::DnsError { .. }
        | HttpError::DestinationNotFound
        | HttpError::DestinationUnavailable
        | HttpError::DestinationIpProhibited
        | HttpError::DestinationIpUnroutable
        | HttpError::ConnectionRefused
        | HttpError::Connect(_)
        | HttpError::TlsProtocolError
        | HttpError::TlsAlertReceived { .. } => Connect,
        HttpError::ConnectionTerminated
        | HttpError::ConnectionLimitReached
        | HttpError::HttpResponseIncomplete => Dropped,
        HttpError::HttpRequestDenied => Denied,
        HttpError::TlsCertificateError => TlsCertificate,
        _ => Protocol,
    };
    TransportError::new(kind, format!("{e:?}"))
}
