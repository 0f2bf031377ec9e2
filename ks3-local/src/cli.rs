//! The `ks3-local` command line, reusable by other binaries (`ks3-driver serve-local`).
use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser};

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
    /// A secret key (repeatable; paired with --access-key by order).
    #[arg(long = "secret-key", value_name = "SK")]
    pub secret_keys: Vec<String>,
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
            .field(
                "secret_keys",
                &format!("<{} redacted>", self.secret_keys.len()),
            )
            .field("faults", &self.faults)
            .field("verbose", &self.verbose)
            .field("replay_completed_uploads", &self.replay_completed_uploads)
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
        if self.access_keys.len() != self.secret_keys.len() {
            return Err(format!(
                "{} --access-key but {} --secret-key: they pair up by order",
                self.access_keys.len(),
                self.secret_keys.len()
            ));
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
            credentials: self
                .access_keys
                .iter()
                .cloned()
                .zip(self.secret_keys.iter().cloned())
                .collect(),
            max_copy_size: self.max_copy_size.unwrap_or(d.max_copy_size),
            max_put_size: self.max_put_size.unwrap_or(d.max_put_size),
            min_part_size: self.min_part_size.unwrap_or(d.min_part_size),
            verbose: self.verbose,
            replay_completed_uploads: self.replay_completed_uploads,
            region: self.region.clone(),
        };
        Ok((config, faults))
    }
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

/// Runs the server until SIGINT / SIGTERM. Prints `listening on http://HOST:PORT` first.
pub fn run_cli(cli: Cli) -> ExitCode {
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
