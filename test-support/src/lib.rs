//! `ks3-test-support`: the workspace's one test bootstrap of a ks3-local server and driver
//! parameters, for the tests of every crate (`ks3-tests`, the host's, the command line's,
//! the registry's through `ks3-tests`). It depends on `ks3-local` and std only — not on
//! the host nor the command line — so any crate can take it as a dev-dependency, with no
//! `#[path]` include. Parameters are plain maps (the host's `Params` is this same type).
use std::collections::BTreeMap;
use std::sync::OnceLock;

use ks3_local::{RunningServer, ServerConfig};

pub const ACCESS_KEY: &str = "AKLTtestaccesskey0001";
pub const SECRET_KEY: &str = "testsecretkeyTESTSECRETKEY0123456789abcd";
pub const BUCKET: &str = "registry-bucket";
pub const MIB: usize = 1 << 20;

/// Driver parameters: the host's `ks3_driver_host::Params` is this same map type.
pub type Params = BTreeMap<String, String>;

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
    let mut p = Params::new();
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

/// What a KS3 component (the driver, the `wasi:blobstore` provider) may import, without
/// versions, sorted: its way out (wasi:http and the streams of its bodies), its
/// configuration (the environment), clocks (request dates, retry backoff) and randomness
/// (backoff jitter). No stdio, exit or terminal interfaces (the components are built
/// without std's WASI support, `host/build.rs`), no filesystem, no sockets.
pub const KS3_COMPONENT_IMPORTS: [&str; 9] = [
    "wasi:cli/environment",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/wall-clock",
    "wasi:http/outgoing-handler",
    "wasi:http/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/random",
];

/// An external tool a test runs: `$env_var`, else the first `name` on `PATH`, else in
/// cargo's bin directory (where `cargo install` puts it). Missing, the test fails with
/// `install` (how to get it): a skipped test would hide a broken promise.
pub fn tool(name: &str, env_var: &str, install: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is needed by this test and is not installed: {install} (.ci/run does this)")
        })
}
