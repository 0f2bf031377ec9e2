//! The command line: global options, one subcommand per operation, and the exit-status
//! convention (0 success, 1 driver or I/O error, 2 usage or configuration error).
//!
//! To add a command: a variant in [`Command`], a `run` arm in [`dispatch`], and a
//! handler (in `object.rs` or a new module) that takes the [`Context`].
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ks3_driver::settings::Settings;
use ks3_driver::{Driver, Error, Runtime, RuntimeOptions};

mod object;

#[derive(Debug, Parser)]
#[command(
    name = "ks3-driver",
    version,
    about = "The KS3 storage driver (a sandboxed WebAssembly component) on the command line",
    after_help = "Parameters, lowest to highest precedence: -c FILE, REGISTRY_STORAGE_KS3_<KEY> \
                  variables, -p KEY=VALUE. KS3_ACCESS_KEY_ID / KS3_SECRET_ACCESS_KEY fill empty \
                  credentials.\nExit status: 0 success, 1 driver error, 2 usage or configuration error."
)]
pub struct Cli {
    /// YAML file: a map of driver parameters, or a distribution config.yml (storage.ks3).
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Set one driver parameter (repeatable; wins over the file and the environment).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", global = true)]
    pub params: Vec<String>,
    /// Run this component file instead of the embedded driver.
    #[arg(long, value_name = "FILE", global = true)]
    pub component: Option<PathBuf>,
    /// Log every KS3 request (method, path, status, time, request id) to stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the object's content to stdout.
    Get { path: String },
    /// Store FILE (or stdin) at PATH.
    Put {
        path: String,
        /// Read from this file instead of stdin.
        file: Option<PathBuf>,
    },
    /// Show size, modification time and type of a file or directory.
    Stat { path: String },
    /// Delete the object at PATH and everything under PATH/.
    Rm { path: String },
    /// Print a presigned URL (valid 20 minutes) for the object.
    Url {
        path: String,
        #[arg(long, default_value = "GET", value_parser = ["GET", "HEAD"], ignore_case = true)]
        method: String,
    },
}

/// Why a command failed, and so which exit status.
#[derive(Debug)]
pub enum CliError {
    /// Bad arguments or configuration: exit 2.
    Usage(String),
    /// The driver failed an operation on `path`: exit 1 (2 for a configuration error).
    Driver {
        op: &'static str,
        path: String,
        error: Box<Error>,
    },
    /// Local I/O or the sandbox failed: exit 1.
    Other(String),
}

impl CliError {
    pub fn driver(op: &'static str, path: &str, error: Error) -> Self {
        CliError::Driver {
            op,
            path: path.to_string(),
            error: Box::new(error),
        }
    }

    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Driver { error, .. } if matches!(**error, Error::Config { .. }) => 2,
            CliError::Driver { .. } | CliError::Other(_) => 1,
        }
    }

    /// One line: the operation and path, the error kind, the message. Never a secret
    /// (the driver's errors carry none).
    fn message(&self) -> String {
        let line = match self {
            CliError::Usage(m) => format!("configuration error: {m}"),
            CliError::Driver { op, path, error } => {
                format!("{op} {path}: {}: {error}", error.kind())
            }
            CliError::Other(m) => m.clone(),
        };
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// What commands share: the parsed options, and the driver once it is needed.
pub struct Context {
    pub cli: Cli,
}

impl Context {
    /// The merged parameters with their sources.
    pub fn settings(&self) -> Result<Settings, CliError> {
        Settings::resolve(
            self.cli.config.as_deref(),
            &Settings::process_env(),
            &self.cli.params,
        )
        .map_err(|e| CliError::Usage(e.message))
    }

    pub fn runtime(&self) -> Result<Runtime, CliError> {
        Runtime::new(RuntimeOptions {
            component: self.cli.component.clone(),
            log_requests: self.cli.verbose,
            ..RuntimeOptions::default()
        })
        .map_err(|e| CliError::Other(format!("sandbox: {e:#}")))
    }

    /// A driver from the merged configuration.
    pub async fn driver(&self) -> Result<Driver, CliError> {
        let params = self.settings()?.params();
        let runtime = self.runtime()?;
        Driver::with_runtime(&runtime, params)
            .await
            .map_err(|e| match e {
                Error::Config { .. } => CliError::Usage(e.to_string()),
                other => CliError::Other(format!("{}: {other}", other.kind())),
            })
    }
}

async fn dispatch(ctx: &Context) -> Result<(), CliError> {
    match &ctx.cli.command {
        Command::Get { path } => object::get(ctx, path).await,
        Command::Put { path, file } => object::put(ctx, path, file.as_deref()).await,
        Command::Stat { path } => object::stat(ctx, path).await,
        Command::Rm { path } => object::rm(ctx, path).await,
        Command::Url { path, method } => object::url(ctx, path, method).await,
    }
}

pub fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2; --help/--version exit 0.
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ks3-driver: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ctx = Context { cli };
    match rt.block_on(dispatch(&ctx)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ks3-driver: {}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}
