//! Shared by the host tests: one local KS3 server per test binary (own runtime, real
//! sockets) and driver parameters for it.
#![allow(dead_code)]
use std::sync::OnceLock;

use ks3_driver::Params;
use ks3_local::{RunningServer, ServerConfig};

pub const AK: &str = "AKLThosttest0001";
pub const SK: &str = "hostTestSecretKey0123456789abcdefghij";
pub const BUCKET: &str = "host-tests";
pub const MIB: usize = 1 << 20;

pub fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        ks3_local::start_in_background(ServerConfig::memory(BUCKET, AK, SK))
            .expect("start ks3-local")
    })
}

/// Parameters for `endpoint` under a root directory unique to `test`.
pub fn params_for(endpoint: &str, test: &str) -> Params {
    let mut p = Params::new();
    for (k, v) in [
        ("accesskey", AK),
        ("secretkey", SK),
        ("region", "ks3-cn-beijing"),
        ("bucket", BUCKET),
        ("chunksize", "5242880"),
    ] {
        p.insert(k.into(), v.into());
    }
    p.insert("regionendpoint".into(), endpoint.into());
    p.insert("rootdirectory".into(), format!("/host/{test}-{}", unique()));
    p
}

pub fn params(test: &str) -> Params {
    params_for(&server().endpoint(), test)
}

pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Deterministic pseudo-random bytes.
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
