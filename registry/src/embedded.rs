//! The embedded default: with no storage configured, an in-memory `ks3-local` in this
//! process (its own thread and runtime), with fresh random credentials, so the registry
//! works with no setup at all.
use ks3_driver_host::Params;

use crate::StartError;

const BUCKET: &str = "registry";
const REGION: &str = "ks3-cn-beijing";

pub struct Embedded {
    pub server: ks3_local::RunningServer,
    pub params: Params,
}

pub fn start() -> Result<Embedded, StartError> {
    let e = Embedded::start(BUCKET, "AKLTlocal")?;
    eprintln!(
        "ks3-registry: no storage configured: started an in-memory KS3 server (ks3-local) at {}, bucket {BUCKET}; its content is lost when the registry stops",
        e.server.endpoint()
    );
    Ok(e)
}

impl Embedded {
    /// An in-memory ks3-local with `bucket`, fresh random credentials (the access key
    /// starting with `access_key_prefix`), and the driver parameters for it: the embedded
    /// default's server, and the demo's.
    pub fn start(bucket: &str, access_key_prefix: &str) -> Result<Embedded, StartError> {
        let ak = format!("{access_key_prefix}{}", token(16));
        let sk = token(40);
        let server =
            ks3_local::start_in_background(ks3_local::ServerConfig::memory(bucket, &ak, &sk))
                .map_err(|e| StartError::Embedded(format!("{e:#}")))?;
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
