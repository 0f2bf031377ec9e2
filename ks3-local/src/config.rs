//! Server configuration.
use std::net::SocketAddr;
use std::path::PathBuf;

use ks3_proto::Secret;

use crate::limits::{FIVE_GB, FIVE_MIB};

/// The region a server claims unless told otherwise.
pub const DEFAULT_REGION: &str = "ks3-cn-beijing";

/// How to run a server. Build it with [`ServerConfig::memory`], [`ServerConfig::on_disk`] or
/// struct-update syntax over [`Default`]:
///
/// ```
/// # use ks3_local::ServerConfig;
/// let cfg = ServerConfig {
///     buckets: vec!["b".into()],
///     credentials: vec![("AK".into(), "SK".into())],
///     ..ServerConfig::default()
/// };
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// `None` keeps everything in RAM (`--memory`); `Some(dir)` stores objects under `dir`,
    /// where they survive a restart.
    pub data_dir: Option<PathBuf>,
    /// Buckets created at start when missing (buckets already in `data_dir` are kept too).
    pub buckets: Vec<String>,
    /// `(access key, secret key)` pairs that may sign requests.
    pub credentials: Vec<(String, Secret)>,
    /// Largest copy source (CopyObject, and the copied range of UploadPartCopy); larger →
    /// 400 `EntityTooLarge`. Default 5 GB, as KS3. Lower it in tests.
    pub max_copy_size: u64,
    /// Largest body of a single PUT or upload part; larger → 400 `EntityTooLarge`.
    /// Default 5 GB, as KS3.
    pub max_put_size: u64,
    /// Smallest size of every part but the last at Complete; smaller → 400 `EntityTooSmall`.
    /// Default 5 MiB.
    pub min_part_size: u64,
    /// Log one line per request on stderr (method, path, status; never credentials).
    pub verbose: bool,
    /// How a Complete of an upload that was already completed is answered: `false` (the
    /// default) `404 NoSuchUpload`, as KS3 answers once the upload is gone; `true` the
    /// first Complete's answer again, as some S3 servers do. Clients must handle both.
    pub replay_completed_uploads: bool,
    /// The KS3 region id the buckets live in (`ks3-cn-beijing`): what GetBucketLocation
    /// answers, as its V4 region name (`BEIJING`). V4 credential scopes may name any region.
    pub region: String,
    /// Serve the unauthenticated admin endpoint (`/_ks3local/faults`, `/_ks3local/stats`,
    /// see the README's *Fault injection*) — `--admin`. Off by default: anyone who reaches
    /// the port could inject faults. The in-process handles
    /// ([`crate::RunningServer::faults`], [`crate::RunningServer::requests_matching`]) work
    /// either way.
    pub admin: bool,
    /// `fsync` each body file and its directory before a PUT, part, copy, initiate or
    /// Complete is acknowledged on disk (default `true`; `--no-fsync` for benchmarks:
    /// then an acknowledged write may be lost on power failure, never seen half-written).
    pub fsync: bool,
    /// How long a request body may stall (no byte received) before the request is answered
    /// `400 RequestTimeout` and the connection closed. Default 60 s.
    pub body_timeout: std::time::Duration,
    /// Authenticated requests remembered for [`crate::RunningServer::requests_matching`]
    /// (a ring: the oldest go first). Default 65 536.
    pub request_log_capacity: usize,
    /// Serve HTTPS with this certificate chain and key (PEM files) instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// Over HTTPS, offer HTTP/2 as well as HTTP/1.1 in ALPN (as KS3's endpoints do; the
    /// client chooses). Default true; plain HTTP is always HTTP/1.1.
    pub http2: bool,
    /// How late every response head leaves (`--latency`): the round trip of a KS3
    /// endpoint that is not on this machine. Requests wait independently, so requests in
    /// flight at once overlap as they would on a real network; what adds up is the
    /// requests a client waits on one after another. Default zero. The admin endpoint is
    /// never delayed.
    pub latency: std::time::Duration,
}

/// PEM files of a TLS server identity (`--tls-cert`, `--tls-key`).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Secret keys are never printed.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .field("buckets", &self.buckets)
            .field("credentials", &self.credentials)
            .field("max_copy_size", &self.max_copy_size)
            .field("max_put_size", &self.max_put_size)
            .field("min_part_size", &self.min_part_size)
            .field("verbose", &self.verbose)
            .field("replay_completed_uploads", &self.replay_completed_uploads)
            .field("region", &self.region)
            .field("admin", &self.admin)
            .field("fsync", &self.fsync)
            .field("body_timeout", &self.body_timeout)
            .field("request_log_capacity", &self.request_log_capacity)
            .field("tls", &self.tls)
            .field("http2", &self.http2)
            .field("latency", &self.latency)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            buckets: Vec::new(),
            credentials: Vec::new(),
            max_copy_size: FIVE_GB,
            max_put_size: FIVE_GB,
            min_part_size: FIVE_MIB,
            verbose: false,
            replay_completed_uploads: false,
            region: DEFAULT_REGION.to_string(),
            admin: false,
            fsync: true,
            body_timeout: std::time::Duration::from_secs(60),
            request_log_capacity: 65_536,
            tls: None,
            http2: true,
            latency: std::time::Duration::ZERO,
        }
    }
}

impl ServerConfig {
    /// In-memory server on `127.0.0.1:0` with one bucket and one key pair.
    pub fn memory(bucket: &str, ak: &str, sk: &str) -> Self {
        ServerConfig {
            buckets: vec![bucket.to_string()],
            credentials: vec![(ak.to_string(), Secret::new(sk))],
            ..ServerConfig::default()
        }
    }

    /// On-disk server on `127.0.0.1:0` storing under `dir`, with one bucket and one key pair.
    pub fn on_disk(dir: impl Into<PathBuf>, bucket: &str, ak: &str, sk: &str) -> Self {
        ServerConfig {
            data_dir: Some(dir.into()),
            ..ServerConfig::memory(bucket, ak, sk)
        }
    }
}

/// KS3 bucket naming (`ks3_proto::names::check_bucket_name`, shared with the driver).
pub fn valid_bucket_name(name: &str) -> bool {
    ks3_proto::names::check_bucket_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(valid_bucket_name("registry-bucket"));
        assert!(valid_bucket_name("a.b-c1"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("Upper"));
        assert!(!valid_bucket_name("-abc"));
        assert!(!valid_bucket_name("kss-bucket"));
        assert!(!valid_bucket_name("192.168.1.1"));
        assert!(!valid_bucket_name("_ks3local"));
    }

    #[test]
    fn debug_hides_secrets() {
        let d = format!("{:?}", ServerConfig::memory("b", "AKID", "TOPSECRET"));
        assert!(d.contains("AKID") && !d.contains("TOPSECRET"), "{d}");
    }
}
