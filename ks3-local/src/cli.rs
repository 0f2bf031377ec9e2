//! The `ks3-local` command line, reusable by other binaries (`ks3-driver serve-local`).
use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser};
use ks3_proto::Secret;

use crate::config::ServerConfig;
use crate::faults::FaultRule;

/// A strict KS3-compatible local object server.
///
/// Once it accepts connections, the first line on stdout is `listening on http://HOST:PORT`.
#[derive(Parser, Clone)]
#[command(name = "ks3-local", version, about, long_about = None)]
#[command(group(ArgGroup::new("storage").required(true).args(["data", "memory"])))]
pub struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9000", value_name = "HOST:PORT")]
    pub addr: String,
    /// Store objects under DIR (they survive a restart).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Keep objects in RAM only.
    #[arg(long)]
    pub memory: bool,
    /// A bucket to create at start if missing (repeatable).
    #[arg(long = "bucket", value_name = "NAME")]
    pub buckets: Vec<String>,
    /// An access key (repeatable; paired with --secret-key by order).
    #[arg(long = "access-key", value_name = "AK")]
    pub access_keys: Vec<String>,
    /// A secret key (repeatable; paired with --access-key by order). Visible to `ps`:
    /// prefer --secret-key-file or the KS3_LOCAL_SECRET_KEY environment variable.
    #[arg(long = "secret-key", value_name = "SK", value_parser = secret_arg)]
    pub secret_keys: Vec<Secret>,
    /// A file holding a secret key (surrounding whitespace ignored; `-` = stdin; repeatable,
    /// taken after the --secret-key values, paired with --access-key by order).
    #[arg(long = "secret-key-file", value_name = "FILE")]
    pub secret_key_files: Vec<PathBuf>,
    /// Serve the unauthenticated admin endpoint `/_ks3local/` (fault injection, request
    /// statistics). Only for tests: anyone who reaches the port can use it.
    #[arg(long)]
    pub admin: bool,
    /// Do not fsync before acknowledging writes (faster; for benchmarks only: an
    /// acknowledged object may be lost on power failure).
    #[arg(long)]
    pub no_fsync: bool,
    /// Seconds a request body may stall before the request fails with RequestTimeout.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub body_timeout: u64,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Over HTTPS, offer only HTTP/1.1 in ALPN (by default HTTP/2 is offered too).
    #[arg(long)]
    pub no_http2: bool,
    /// Inject faults: METHOD:PATTERN:COUNT:ACTION, ACTION = STATUS:CODE (500:InternalError,
    /// 503:SlowDown), delay=MS or drop (repeatable). METHOD `*` = any; PATTERN is a substring
    /// of the request's PATH?QUERY.
    #[arg(long = "fault", value_name = "METHOD:PATTERN:COUNT:ACTION")]
    pub faults: Vec<String>,
    /// Largest copy source in bytes (default 5 GB, as KS3).
    #[arg(long, value_name = "BYTES")]
    pub max_copy_size: Option<u64>,
    /// Largest single PUT / part in bytes (default 5 GB, as KS3).
    #[arg(long, value_name = "BYTES")]
    pub max_put_size: Option<u64>,
    /// Smallest non-last multipart part in bytes (default 5 MiB, as KS3).
    #[arg(long, value_name = "BYTES")]
    pub min_part_size: Option<u64>,
    /// Log every request (method, path, status) on stderr. Credentials are never logged.
    #[arg(long, short)]
    pub verbose: bool,
    /// Answer a Complete of an already-completed upload with the first answer again
    /// instead of 404 NoSuchUpload (some S3 servers do; for testing clients against both).
    #[arg(long)]
    pub replay_completed_uploads: bool,
    /// Delay every response head by MS milliseconds, each request on its own (concurrent
    /// requests overlap): a KS3 endpoint at a real network distance (1–30 ms away) instead
    /// of on loopback.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,
    /// KS3 region id the buckets are in, as GetBucketLocation reports it.
    #[arg(long, value_name = "REGION", default_value = crate::config::DEFAULT_REGION)]
    pub region: String,
}

/// Secret keys are never printed.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("addr", &self.addr)
            .field("data", &self.data)
            .field("memory", &self.memory)
            .field("buckets", &self.buckets)
            .field("access_keys", &self.access_keys)
            .field("secret_keys", &self.secret_keys)
            .field("secret_key_files", &self.secret_key_files)
            .field("admin", &self.admin)
            .field("no_fsync", &self.no_fsync)
            .field("tls_cert", &self.tls_cert)
            .field("no_http2", &self.no_http2)
            .field("faults", &self.faults)
            .field("verbose", &self.verbose)
            .field("replay_completed_uploads", &self.replay_completed_uploads)
            .field("latency", &self.latency)
            .finish_non_exhaustive()
    }
}

impl Cli {
    /// The server configuration and fault rules these arguments describe.
    pub fn to_config(&self) -> Result<(ServerConfig, Vec<FaultRule>), String> {
        let addr: SocketAddr = self
            .addr
            .to_socket_addrs()
            .map_err(|e| format!("--addr {}: {e}", self.addr))?
            .next()
            .ok_or_else(|| format!("--addr {}: no address", self.addr))?;
        let mut secrets = self.secret_keys.clone();
        for f in &self.secret_key_files {
            secrets.push(Secret::read_file(f)?);
        }
        if secrets.is_empty() {
            if let Ok(sk) = std::env::var(SECRET_ENV) {
                if !sk.trim().is_empty() {
                    secrets.push(Secret::new(sk.trim()));
                }
            }
        }
        if self.access_keys.len() != secrets.len() {
            return Err(format!(
                "{} --access-key but {} secret keys (--secret-key, --secret-key-file, \
                 {SECRET_ENV}): they pair up by order",
                self.access_keys.len(),
                secrets.len()
            ));
        }
        if self.body_timeout == 0 {
            return Err("--body-timeout must be at least 1 second".into());
        }
        if self.access_keys.is_empty() {
            return Err("at least one --access-key / --secret-key pair is required".into());
        }
        let faults = self
            .faults
            .iter()
            .map(|f| FaultRule::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        let d = ServerConfig::default();
        let config = ServerConfig {
            addr,
            data_dir: if self.memory { None } else { self.data.clone() },
            buckets: self.buckets.clone(),
            credentials: self.access_keys.iter().cloned().zip(secrets).collect(),
            max_copy_size: self.max_copy_size.unwrap_or(d.max_copy_size),
            max_put_size: self.max_put_size.unwrap_or(d.max_put_size),
            min_part_size: self.min_part_size.unwrap_or(d.min_part_size),
            verbose: self.verbose,
            replay_completed_uploads: self.replay_completed_uploads,
            region: self.region.clone(),
            admin: self.admin,
            fsync: !self.no_fsync,
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            request_log_capacity: d.request_log_capacity,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(crate::config::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            http2: !self.no_http2,
            latency: std::time::Duration::from_millis(self.latency),
        };
        Ok((config, faults))
    }
}

/// The environment variable a single secret key may come from (when no --secret-key or
/// --secret-key-file is given).
pub const SECRET_ENV: &str = "KS3_LOCAL_SECRET_KEY";

/// `--secret-key`'s value, held as a [`Secret`] from the start.
fn secret_arg(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// Parses `args` (program name first) and runs; what `main` of `ks3-local` does.
pub fn cli_main<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => run_cli(cli),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(e.exit_code().clamp(0, 255) as u8)
        }
    }
}

/// The program's stderr: the library's events (`ks3_local::*`), warnings always, one
/// line per request with `--verbose`. The library itself never writes to stderr.
fn install_logging(verbose: bool) {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    let level = if verbose {
        tracing::Level::INFO
    } else {
        tracing::Level::WARN
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_level(false)
        .with_filter(tracing_subscriber::filter::Targets::new().with_target("ks3_local", level));
    // Only fails when a subscriber is already installed: then that one logs.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

/// Runs the server until SIGINT / SIGTERM. Prints `listening on http://HOST:PORT` first.
pub fn run_cli(cli: Cli) -> ExitCode {
    install_logging(cli.verbose);
    let (config, faults) = match cli.to_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ks3-local: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ks3-local: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match crate::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ks3-local: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        for f in faults {
            server.faults().inject(f);
        }
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {}", server.endpoint());
            if server.admin_enabled() {
                eprintln!(
                    "ks3-local: admin endpoint enabled at {}/_ks3local/ (unauthenticated: for tests only)",
                    server.endpoint()
                );
            }
            let _ = out.flush();
        }
        wait_for_signal().await;
        server.shutdown();
        ExitCode::SUCCESS
    })
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
