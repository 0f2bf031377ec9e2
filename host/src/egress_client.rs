//! The driver's pooled egress client, for native code: what the benchmark's native
//! baseline (`ks3-bench`) sends through, so that it and the component share one pool
//! and one set of client settings. The sandbox's own requests never come this way (they
//! pass `egress.rs`'s hooks, with the allow-list); this is a door for trusted native
//! callers in the same process, and exposes no more than sending one request.
use std::sync::Arc;

use http::{Request, Response};
use ks3_driver_component::config::Config;

use crate::driver::Driver;
use crate::egress::{Destination, Egress};
use crate::error::Error;

/// The body, options and error types of [`EgressClient::send`] (wasmtime-wasi-http's).
pub use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// A handle on a pooled keep-alive client (hyper-rustls, the driver's TLS roots and
/// timeout cap). Cloning shares the pool.
#[derive(Clone)]
pub struct EgressClient(Arc<Egress>);

impl EgressClient {
    /// The pool `driver`'s component instances send through.
    pub fn of(driver: &Driver) -> Self {
        EgressClient(driver.egress().clone())
    }

    /// A pool of its own, with the client settings a driver of `config` would have,
    /// without a component runtime (the native side of the cold-start measurement).
    pub fn standalone(config: &Config) -> Result<Self, Error> {
        let allowed = Destination::from_endpoint(&config.endpoint);
        Ok(EgressClient(Egress::new(config, allowed)?))
    }

    /// Sends `req` and waits for the response head; the body streams. Runs on the
    /// caller's runtime.
    pub async fn send(
        &self,
        req: Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<Response<WasiBody>, HttpError> {
        self.0.clone().send(req, Some(options), None).await
    }
}
