//! The embedded default of `ks3-driver registry` (and the demo's server): an in-memory
//! `ks3-local` in this process (its own thread and runtime), with fresh random
//! credentials, so the registry works with no setup at all. The command line's wiring,
//! not the registry library's: the registry takes the driver made here.
use ks3_driver_host::Params;

/// The embedded default's bucket.
pub const BUCKET: &str = "registry";
const REGION: &str = "ks3-cn-beijing";

pub struct Embedded {
    pub server: ks3_local::RunningServer,
    pub params: Params,
}

impl Embedded {
    /// An in-memory ks3-local with `bucket`, fresh random credentials (the access key
    /// starting with `access_key_prefix`), and the driver parameters for it: the embedded
    /// default's server, and the demo's.
    pub fn start(bucket: &str, access_key_prefix: &str) -> Result<Embedded, String> {
        let ak = format!("{access_key_prefix}{}", token(16));
        let sk = token(40);
        let server =
            ks3_local::start_in_background(ks3_local::ServerConfig::memory(bucket, &ak, &sk))
                .map_err(|e| format!("embedded KS3 server: {e:#}"))?;
        let mut params = Params::new();
        for (k, v) in [
            ("accesskey", ak.as_str()),
            ("secretkey", sk.as_str()),
            ("region", REGION),
            ("bucket", bucket),
            ("regionendpoint", server.endpoint().as_str()),
        ] {
            params.insert(k.to_string(), v.to_string());
        }
        Ok(Embedded { server, params })
    }
}

fn token(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
