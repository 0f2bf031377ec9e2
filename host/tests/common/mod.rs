//! Shared by the host tests: the workspace's one test bootstrap (`tests/src/bootstrap.rs`:
//! one local KS3 server per test binary, real sockets, parameters, data), with the
//! host tests' spelling of it.
#![allow(dead_code)]
// Each test binary uses a different part of the shared fixtures.
#![allow(unused_imports)]
#[path = "../../../tests/src/bootstrap.rs"]
mod bootstrap;

use ks3_driver_host::Params;

pub use bootstrap::{data, server, start_server, unique, BUCKET, MIB};
pub use bootstrap::{ACCESS_KEY as AK, SECRET_KEY as SK};

/// Parameters for `endpoint` under a root directory unique to `test`.
pub fn params_for(endpoint: &str, test: &str) -> Params {
    bootstrap::params_on(endpoint, &bootstrap::unique_root(test))
}

/// Parameters for the shared server under a root directory unique to `test`.
pub fn params(test: &str) -> Params {
    bootstrap::params(&bootstrap::unique_root(test))
}
