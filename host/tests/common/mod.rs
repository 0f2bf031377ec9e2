//! Shared by the host tests: the workspace's one test bootstrap (`ks3-test-support`: one
//! local KS3 server per test binary, real sockets, parameters, data), with the host
//! tests' spelling of it.
#![allow(dead_code)]
// Each test binary uses a different part of the shared fixtures.
#![allow(unused_imports)]
use ks3_driver_host::Params;

pub use ks3_test_support::{data, server, start_server, unique, BUCKET, MIB};
pub use ks3_test_support::{ACCESS_KEY as AK, SECRET_KEY as SK};

/// Parameters for `endpoint` under a root directory unique to `test`.
pub fn params_for(endpoint: &str, test: &str) -> Params {
    ks3_test_support::params_on(endpoint, &ks3_test_support::unique_root(test))
}

/// Parameters for the shared server under a root directory unique to `test`.
pub fn params(test: &str) -> Params {
    ks3_test_support::params(&ks3_test_support::unique_root(test))
}
