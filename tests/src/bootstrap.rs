//! The one bootstrap of a ks3-local + driver pair for every crate's tests: `ks3-tests`
//! builds it as a module, and the host's and the command line's tests include this same
//! file (`#[path]`), since they cannot depend on `ks3-tests` (it depends on them). It uses
//! only `ks3-local`, the host's `ks3_driver_host` and std, which all those crates have.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::sync::OnceLock;

use ks3_driver_host::{Driver, Error, Params};
use ks3_local::{RunningServer, ServerConfig};

pub const ACCESS_KEY: &str = "AKLTtestaccesskey0001";
pub const SECRET_KEY: &str = "testsecretkeyTESTSECRETKEY0123456789abcd";
pub const BUCKET: &str = "registry-bucket";
pub const MIB: usize = 1 << 20;

/// The local KS3 server all tests of this binary share (in memory, own runtime).
pub fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        ks3_local::start_in_background(ServerConfig::memory(BUCKET, ACCESS_KEY, SECRET_KEY))
            .expect("start the local KS3 server")
    })
}

/// A server of its own, for tests whose faults must not be matched by the requests of
/// tests running in parallel (or that need another server configuration).
pub fn start_server(config: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut c = ServerConfig::memory(BUCKET, ACCESS_KEY, SECRET_KEY);
    config(&mut c);
    ks3_local::start_in_background(c).expect("start a local KS3 server")
}

/// Driver parameters pointing at the shared server under `root`.
pub fn params(root: &str) -> Params {
    params_on(&server().endpoint(), root)
}

/// Driver parameters pointing at the server at `endpoint` under `root`.
pub fn params_on(endpoint: &str, root: &str) -> Params {
    let mut p: Params = BTreeMap::new();
    p.insert("accesskey".into(), ACCESS_KEY.into());
    p.insert("secretkey".into(), SECRET_KEY.into());
    p.insert("region".into(), "ks3-cn-beijing".into());
    p.insert("bucket".into(), BUCKET.into());
    p.insert("regionendpoint".into(), endpoint.into());
    p.insert("rootdirectory".into(), root.into());
    // The minimum part size, as distribution's S3 tests use, so multipart paths get exercised.
    p.insert("chunksize".into(), (5 * MIB).to_string());
    p
}

/// A unique root directory for one test.
pub fn unique_root(test: &str) -> String {
    format!("/t/{test}-{}", unique())
}

/// A name no other call of this process (nor, by its clock, of an earlier run) returns.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{t:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Deterministic pseudo-random bytes (xorshift), the same for the same `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A driver with its own empty root directory.
pub async fn fresh_driver(test: &str) -> Driver {
    Driver::new(params(&unique_root(test)))
        .await
        .expect("driver")
}

/// A driver with extra or overridden parameters.
pub async fn driver_with(test: &str, extra: &[(&str, &str)]) -> Driver {
    let mut p = params(&unique_root(test));
    for (k, v) in extra {
        p.insert((*k).into(), (*v).into());
    }
    Driver::new(p).await.expect("driver")
}

/// distribution's clean-up rule: after a test, its root lists empty. A root that does not
/// exist is clean too; any other List error fails the test (it proves nothing about what
/// is left).
pub async fn assert_clean(d: &Driver) {
    match d.list("/").await {
        Ok(left) => assert!(
            left.is_empty(),
            "storage driver did not clean up properly; left: {left:?}"
        ),
        Err(Error::PathNotFound { .. }) => {}
        Err(e) => panic!("List(\"/\") failed while checking the clean-up: {e}"),
    }
}
