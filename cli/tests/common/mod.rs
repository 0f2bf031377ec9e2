//! Shared by the command-line tests: the workspace's test bootstrap (`ks3-test-support`:
//! one local KS3 server per test binary, parameters, data) and the `ks3-driver` binary
//! under test.
#![allow(dead_code)]
// Each test binary uses a different part of the shared fixtures.
#![allow(unused_imports)]
pub use ks3_test_support::{data, server, start_server, unique, Params, BUCKET, MIB};
pub use ks3_test_support::{ACCESS_KEY as AK, SECRET_KEY as SK};

/// Parameters for `endpoint` under a root directory unique to `test`.
pub fn params_for(endpoint: &str, test: &str) -> Params {
    ks3_test_support::params_on(endpoint, &ks3_test_support::unique_root(test))
}

/// Parameters for the shared server under a root directory unique to `test`.
pub fn params(test: &str) -> Params {
    ks3_test_support::params(&ks3_test_support::unique_root(test))
}

/// The `ks3-driver` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ks3-driver");

/// `ks3-driver` with no KS3 configuration from the environment and no progress output.
pub fn bare_cli() -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("REGISTRY_STORAGE_KS3_") || k.starts_with("KS3_") {
            c.env_remove(k);
        }
    }
    c.env("KS3_DRIVER_PROGRESS", "never");
    c
}

/// `ks3-driver -p …` for the server at `endpoint`, under `root`.
pub fn cli_for(endpoint: &str, root: &str) -> std::process::Command {
    let mut c = bare_cli();
    for kv in [
        format!("accesskey={AK}"),
        format!("secretkey={SK}"),
        "region=ks3-cn-beijing".to_string(),
        format!("bucket={BUCKET}"),
        format!("regionendpoint={endpoint}"),
        format!("rootdirectory={root}"),
        "chunksize=5242880".to_string(),
    ] {
        c.arg("-p").arg(kv);
    }
    c
}
