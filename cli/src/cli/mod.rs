//! The command line: global options, one subcommand per operation, and the exit-status
//! convention (0 success, 1 driver or I/O error, 2 usage or configuration error).
//!
//! To add a command: a variant in [`Command`], a `run` arm in [`dispatch`], and a
//! handler (in `object.rs` or a new module) that takes the [`Context`].
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ks3_driver_host::settings::{Settings, Source};
use ks3_driver_host::DriverError;
use ks3_driver_host::{Config, Driver, Error, Runtime, RuntimeOptions};
use ks3_proto::Secret;

mod component;
mod demo;
mod embedded;
mod fsck;
mod gc;
mod hints;
mod json_log;
mod logging;
mod object;
mod oci;
mod progress;
mod registry;
mod show_config;

use hints::{config_hint, hint};

#[derive(Parser)]
#[command(
    name = "ks3-driver",
    version,
    about = "The KS3 storage driver (a sandboxed WebAssembly component) on the command line",
    after_help = "Parameters, lowest to highest precedence: -c FILE, REGISTRY_STORAGE_KS3_<KEY> \
                  variables, -p KEY=VALUE, --secret-key-file FILE. KS3_ACCESS_KEY_ID / \
                  KS3_SECRET_ACCESS_KEY fill empty credentials. `ks3-driver config` shows the \
                  result. Keep the secret key off the command line (`ps` shows it): \
                  --secret-key-file, KS3_SECRET_ACCESS_KEY or the -c file.\n\
                  No KS3 account? `ks3-driver demo` runs a registry push and pull on an embedded \
                  local server; `KS3_LOCAL_SECRET_KEY=SK ks3-driver serve-local --memory --bucket registry \
                  --access-key AK` runs one to point the other commands at.\n\
                  Exit status: 0 success, 1 driver error, 2 usage or configuration error.\n\n\
                  Example:\n  ks3-driver --secret-key-file ~/.ks3/secret -p accesskey=AK \
                  -p region=ks3-cn-beijing -p bucket=registry ls /docker/registry/v2"
)]
pub struct Cli {
    /// YAML file: a map of driver parameters, or a distribution config.yml (storage.ks3).
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Set one driver parameter (repeatable; wins over the file and the environment).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", global = true)]
    pub params: Vec<String>,
    /// Read the secret key from FILE (`-` = stdin; surrounding whitespace ignored), so that
    /// it is not on the command line (where `ps` shows it). The environment works too:
    /// KS3_SECRET_ACCESS_KEY or REGISTRY_STORAGE_KS3_SECRETKEY.
    /// (Not global: `serve-local` has its own --secret-key-file, the server's key.)
    #[arg(long = "secret-key-file", value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Run this component file instead of the embedded driver; or
    /// `oci://HOST[:PORT]/REPO@sha256:DIGEST`, a component pulled from an OCI registry (Wasm
    /// OCI artifact), verified, cached and run (pinned by digest, a cached one runs with no
    /// network; by tag, a warning names the digest to pin).
    #[arg(long, value_name = "FILE|oci://REF", global = true)]
    pub component: Option<PathBuf>,
    /// Give the component this host directory as its `/` (read and write), as
    /// `wasmtime run --dir` does: the storage of a driver over `wasi:filesystem` such as the
    /// filesystem driver (`--component fs_driver_component.wasm --dir /srv/data ls /`).
    /// The KS3 driver needs none.
    #[arg(long = "dir", value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Use plain HTTP for this registry (repeatable; loopback registries always are).
    #[arg(long = "insecure-registry", value_name = "HOST:PORT", global = true)]
    pub insecure_registries: Vec<String>,
    /// Log every KS3 request (method, path, status, time, request id) to stderr; never
    /// credentials, signatures or query strings.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `-p` values of secret parameters (`secretkey=…`) are masked.
impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match p.split_once('=') {
                Some((k, v)) if ks3_driver_host::settings::is_secret(k.trim()) && !v.is_empty() => {
                    format!("{k}=****")
                }
                _ => p.clone(),
            })
            .collect();
        f.debug_struct("Cli")
            .field("config", &self.config)
            .field("params", &params)
            .field("secret_key_file", &self.secret_key_file)
            .field("component", &self.component)
            .field("insecure_registries", &self.insecure_registries)
            .field("verbose", &self.verbose)
            .field("command", &self.command)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the object's content to stdout (or to a file).
    #[command(
        after_help = "Examples:\n  ks3-driver get /docker/registry/v2/repositories/app/_manifests/tags/latest/current/link\n  \
                            ks3-driver get /big.bin --offset 1048576 -o tail.bin"
    )]
    Get {
        path: String,
        /// Start at this byte.
        #[arg(
            long,
            default_value_t = 0,
            value_name = "N",
            allow_negative_numbers = true
        )]
        offset: i64,
        /// Write to FILE instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Store FILE (or stdin) at PATH, by multipart upload.
    #[command(after_help = "Examples:\n  ks3-driver put /layer.tar layer.tar\n  \
                            tar c dir | ks3-driver put /dir.tar\n  \
                            ks3-driver put /big part1 --no-commit   # upload, keep it resumable\n  \
                            ks3-driver put /big part2 --append      # resume, add, commit")]
    Put {
        path: String,
        /// Read from this file instead of stdin.
        file: Option<PathBuf>,
        /// Resume the uncommitted upload at PATH (left by --no-commit or an interrupted
        /// put) and add to it.
        #[arg(long)]
        append: bool,
        /// Close without committing: the object stays invisible and `put --append` can
        /// resume it (from this or another process).
        #[arg(long)]
        no_commit: bool,
    },
    /// Show size, modification time and type of a file or directory.
    #[command(
        after_help = "Examples:\n  ks3-driver stat /docker/registry/v2\n  ks3-driver stat --json /layer.tar"
    )]
    Stat {
        path: String,
        /// One JSON object: {"path","size","modtime","isdir"}.
        #[arg(long)]
        json: bool,
    },
    /// List the direct children of a directory.
    #[command(
        after_help = "Examples:\n  ks3-driver ls /docker/registry/v2/repositories\n  ks3-driver ls --json /"
    )]
    Ls {
        path: String,
        /// A JSON array of paths.
        #[arg(long)]
        json: bool,
    },
    /// List every file and directory under PATH, recursively, in key order.
    #[command(
        after_help = "Output: `d <path>` for a directory, `f <size> <modtime> <path>` for a file.\n\n\
                            Examples:\n  ks3-driver walk /docker/registry/v2/repositories\n  \
                            ks3-driver walk --json / | jq -r 'select(.isdir|not) | .path'"
    )]
    Walk {
        path: String,
        /// One JSON object per line: {"path","size","modtime","isdir"}.
        #[arg(long)]
        json: bool,
    },
    /// Move (rename) an object; the destination is replaced.
    #[command(
        after_help = "Example:\n  ks3-driver mv /_uploads/1234/data /blobs/sha256/ab/abcd/data"
    )]
    Mv { src: String, dst: String },
    /// Delete the object at PATH and everything under PATH/.
    #[command(
        after_help = "Example:\n  ks3-driver rm /docker/registry/v2/repositories/app/_uploads"
    )]
    Rm { path: String },
    /// Print a presigned URL (valid 20 minutes) for the object.
    #[command(
        after_help = "Examples:\n  curl -o layer.tar \"$(ks3-driver url /layer.tar)\"\n  \
                            ks3-driver url --method HEAD /layer.tar"
    )]
    Url {
        path: String,
        #[arg(long, default_value = "GET", value_parser = ["GET", "HEAD"], ignore_case = true)]
        method: String,
    },
    /// Count the objects and bytes under PATH.
    #[command(
        after_help = "Examples:\n  ks3-driver du /docker/registry/v2/blobs\n  ks3-driver du --json /"
    )]
    Du {
        path: String,
        /// One JSON object: {"path","objects","bytes"}.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective configuration (secrets masked) and where each value came from.
    #[command(
        after_help = "Example:\n  REGISTRY_STORAGE_KS3_BUCKET=registry ks3-driver -c config.yml -p region=ks3-cn-shanghai config"
    )]
    Config,
    /// Push and pull a generated image through the driver, on an embedded local KS3 server.
    #[command(
        after_help = "Needs no configuration and no network: the server runs in this process, \
                            on a free loopback port, in memory.\n\n\
                            Examples:\n  ks3-driver demo\n  ks3-driver demo --quick\n  \
                            ks3-driver demo --keep   # then explore with the printed -p flags"
    )]
    Demo(demo::DemoArgs),
    /// Run the local KS3-compatible server (the same as the `ks3-local` binary).
    #[command(
        after_help = "Prints `listening on http://HOST:PORT` first, then serves until Ctrl-C.\n\n\
                            Example:\n  KS3_LOCAL_SECRET_KEY=SK ks3-driver serve-local --memory --addr 127.0.0.1:9000 \
                            --bucket registry --access-key AK\n  \
                            KS3_SECRET_ACCESS_KEY=SK ks3-driver -p accesskey=AK -p region=ks3-cn-beijing -p bucket=registry \
                            -p regionendpoint=http://127.0.0.1:9000 ls /"
    )]
    ServeLocal(Box<ks3_local::Cli>),
    /// Run the OCI registry (Distribution Spec v1.1) with the driver component as its
    /// storage, in distribution's storage layout.
    #[command(
        after_help = "Prints `listening on http://HOST:PORT` first, then serves until Ctrl-C.\n\
                      Without any storage configuration it runs on an embedded in-memory KS3 \
                      server (and says so on stderr). -c takes distribution's config.yml \
                      (http.addr, storage.ks3, storage.delete, storage.redirect, auth.htpasswd).\n\n\
                      Examples:\n  ks3-driver registry --addr 127.0.0.1:5000\n  \
                      ks3-driver -c config.yml registry\n  \
                      skopeo copy --dest-tls-verify=false oci:image:latest docker://127.0.0.1:5000/app:latest"
    )]
    Registry(registry::RegistryArgs),
    /// Garbage-collect the registry's storage: distribution's `registry garbage-collect`.
    #[command(
        after_help = "Marks every manifest of every repository and what it references, then deletes                       every blob under blobs/ that is not marked. Prints distribution's lines                       (`<repo>: marking manifest <d> `, `<repo>: marking blob <d>`, `N blobs marked,                       N blobs and N manifests eligible for deletion`, `blob eligible for deletion: <d>`)                       and a summary. Any read error or unparsable manifest stops it before anything                       is deleted. Safe while ks3-driver registry instances serve the store: it                       announces what it would delete, waits --settle, spares whatever was pushed or                       linked meanwhile, and keeps blobs younger than --min-age (1h) for the manifests                       still to come. Not fenced: a distribution registry writing to the same store.\n\n\
                      Examples:\n  ks3-driver -c config.yml gc --dry-run\n  \
                      ks3-driver -c config.yml gc --delete-untagged --purge-uploads"
    )]
    Gc(gc::GcArgs),
    /// Remove uploads started long ago and never finished (and abort their KS3 multipart
    /// uploads): the registry's storage.maintenance.uploadpurging, run once.
    #[command(
        after_help = "Examples:\n  ks3-driver -c config.yml purge-uploads --dry-run\n  \
                            ks3-driver -c config.yml purge-uploads --age 24h"
    )]
    PurgeUploads(gc::PurgeArgs),
    /// Check the registry's store for inconsistencies (fsck): dangling tags and links,
    /// manifests whose references are missing, stale uploads, orphan driver tails.
    #[command(
        after_help = "One line per problem (`<kind> <path>: <message>`), then a summary; --json \
                      prints one JSON object per line instead (problems, repairs, then \
                      {\"summary\":{…}}). Exit status (fsck's own): 0 clean (leftovers allowed \
                      unless --strict), 1 problems found, 2 the store could not be read, a repair \
                      failed, or a usage error.\n\n\
                      Examples:\n  ks3-driver -c config.yml fsck\n  \
                      ks3-driver -c config.yml fsck --verify-digests --json\n  \
                      ks3-driver -c config.yml fsck --repair"
    )]
    Fsck(fsck::FsckArgs),
    /// Measure the sandboxed component against the native baseline and the official SDK.
    Bench(crate::bench::BenchArgs),
    /// The driver component itself: save it to a file, or push it to an OCI registry.
    #[command(
        after_help = "Examples:\n  ks3-driver component save -o ks3-driver.wasm\n  \
                      ks3-driver component push 127.0.0.1:5000/drivers/ks3:1.0\n  \
                      ks3-driver --component oci://127.0.0.1:5000/drivers/ks3@sha256:… stat /"
    )]
    Component(component::ComponentArgs),
}

impl Command {
    /// Commands that talk to the configured KS3 bucket.
    fn needs_configuration(&self) -> bool {
        matches!(
            self,
            Command::Get { .. }
                | Command::Put { .. }
                | Command::Stat { .. }
                | Command::Ls { .. }
                | Command::Walk { .. }
                | Command::Mv { .. }
                | Command::Rm { .. }
                | Command::Url { .. }
                | Command::Du { .. }
                | Command::Gc(_)
                | Command::PurgeUploads(_)
                | Command::Fsck(_)
        )
    }
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
    /// Stdout was closed by its reader (`… | head`): stop quietly, exit 0.
    Closed,
    /// A command with statuses of its own (`fsck`): exit `code`, saying `message` unless
    /// it is empty.
    Status { code: u8, message: String },
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
            CliError::Driver { error, .. }
                if matches!(**error, Error::Driver(DriverError::Config { .. })) =>
            {
                2
            }
            CliError::Driver { .. } | CliError::Other(_) => 1,
            CliError::Closed => 0,
            CliError::Status { code, .. } => *code,
        }
    }

    /// One line: the operation and path, the error kind, the message, and what to do
    /// (`config`, when valid, lets the hint name the signing scheme). Never a secret (the
    /// driver's errors carry none).
    fn message(&self, config: Option<&Config>) -> String {
        let line = match self {
            CliError::Usage(m) => format!("configuration error: {m}"),
            CliError::Driver { op, path, error } => {
                let hint = hint(error, config)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!("{op} {path}: {}: {error}{hint}", error.kind())
            }
            CliError::Other(m) => m.clone(),
            CliError::Closed => String::new(),
            CliError::Status { message, .. } => message.clone(),
        };
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The driver parameters of the command line: `-c`, the environment and `-p` merged
/// (see [`Settings::resolve`]), then the secret key of `--secret-key-file`.
pub fn resolve_settings(cli: &Cli) -> Result<Settings, String> {
    let mut s = Settings::resolve(cli.config.as_deref(), &Settings::process_env(), &cli.params)
        .map_err(|e| e.message)?;
    if let Some(path) = &cli.secret_key_file {
        let flag = cli.params.iter().any(|p| {
            p.split_once('=')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("secretkey"))
        });
        if flag {
            return Err(
                "--secret-key-file and -p secretkey=… both give the secret key: use one".into(),
            );
        }
        let sk = Secret::read_file(path)?;
        s.set(
            "secretkey",
            sk.expose().to_string(),
            Source::SecretKeyFile(path.clone()),
        );
    }
    Ok(s)
}

/// What commands share: the parsed options, and the driver once it is needed.
pub struct Context {
    pub cli: Cli,
}

impl Context {
    /// The merged parameters with their sources.
    pub fn settings(&self) -> Result<Settings, CliError> {
        resolve_settings(&self.cli).map_err(CliError::Usage)
    }

    pub fn runtime(&self) -> Result<Runtime, CliError> {
        Runtime::new(RuntimeOptions {
            component: self.cli.component.clone(),
            log_requests: self.cli.verbose,
            preopen: self.cli.dir.clone(),
            ..RuntimeOptions::default()
        })
        .map_err(|e| CliError::Other(format!("sandbox: {e:#}")))
    }

    /// A driver from the merged configuration.
    pub async fn driver(&self) -> Result<Driver, CliError> {
        let settings = self.settings()?;
        // A driver on a directory (`--dir`) may need no parameters at all.
        if settings.iter().next().is_none()
            && self.cli.dir.is_none()
            && self.cli.command.needs_configuration()
        {
            let mut message = "no KS3 configuration: give the driver parameters (accesskey, \
                 secretkey, region, bucket, …) with -c FILE, -p KEY=VALUE or \
                 REGISTRY_STORAGE_KS3_<KEY> variables (see `ks3-driver --help`); no KS3 \
                 account? try `ks3-driver demo`, or `ks3-driver serve-local` for a local server"
                .to_string();
            if self.cli.component.is_some() {
                message.push_str(
                    "; a component that stores in a directory (the filesystem driver) needs \
                     --dir DIR",
                );
            }
            return Err(CliError::Usage(message));
        }
        let params = settings.params();
        let runtime = self.runtime()?;
        Driver::with_runtime(&runtime, params)
            .await
            .map_err(|e| match e {
                Error::Driver(DriverError::Config { ref parameter, .. }) => {
                    let h = config_hint(parameter);
                    CliError::Usage(format!("{e} ({h})"))
                }
                other => {
                    let config =
                        Config::from_params(&settings.params(), |k| std::env::var(k).ok()).ok();
                    let h = hint(&other, config.as_ref())
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    CliError::Other(format!("{}: {other}{h}", other.kind()))
                }
            })
    }
}

/// One line to stdout; a closed stdout ends the command quietly.
pub fn out_line(line: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CliError::Closed),
        Err(e) => Err(CliError::Other(format!("writing stdout: {e}"))),
    }
}

async fn dispatch(ctx: &Context) -> Result<(), CliError> {
    match &ctx.cli.command {
        Command::Get {
            path,
            offset,
            output,
        } => object::get(ctx, path, *offset, output.as_deref()).await,
        Command::Put {
            path,
            file,
            append,
            no_commit,
        } => object::put(ctx, path, file.as_deref(), *append, *no_commit).await,
        Command::Stat { path, json } => object::stat(ctx, path, *json).await,
        Command::Ls { path, json } => object::ls(ctx, path, *json).await,
        Command::Walk { path, json } => object::walk(ctx, path, *json).await,
        Command::Mv { src, dst } => object::mv(ctx, src, dst).await,
        Command::Rm { path } => object::rm(ctx, path).await,
        Command::Url { path, method } => object::url(ctx, path, method).await,
        Command::Du { path, json } => object::du(ctx, path, *json).await,
        Command::Config => show_config::run(ctx),
        Command::Demo(args) => demo::run(ctx, args).await,
        Command::Gc(args) => gc::run(ctx, args).await,
        Command::PurgeUploads(args) => gc::run_purge(ctx, args).await,
        Command::Fsck(args) => fsck::run(ctx, args).await,
        // Handled in `main` (they run their own runtimes).
        Command::ServeLocal(_) | Command::Registry(_) => Ok(()),
        Command::Bench(args) => crate::bench::run(ctx, args).await,
        Command::Component(args) => component::run(ctx, args).await,
    }
}

pub fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2; --help/--version exit 0.
    let mut cli = Cli::parse();
    if let Command::ServeLocal(local) = cli.command {
        return ks3_local::run_cli(*local);
    }
    // `--component oci://…`: pulled (or found in the cache) before anything runs, so that
    // every command, the registry's included, loads a verified local file.
    if let Some(spec) = cli.component.as_ref().and_then(|c| c.to_str()) {
        if spec.starts_with("oci://") {
            let rt = match runtime(tokio::runtime::Builder::new_current_thread()) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let spec = spec.to_string();
            match rt.block_on(oci::resolve(&spec, &cli.insecure_registries)) {
                Ok(path) => cli.component = Some(path),
                Err(m) => {
                    let _ = writeln!(std::io::stderr(), "ks3-driver: --component: {m}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    if let Command::Registry(args) = &cli.command {
        return registry::main(&cli, args);
    }
    // The demo stacks the same stderr layer under its own trace.
    if !matches!(cli.command, Command::Demo(_)) {
        logging::install(cli.verbose);
    }
    let rt = match runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let ctx = Context { cli };
    match rt.block_on(dispatch(&ctx)) {
        Ok(()) | Err(CliError::Closed) => ExitCode::SUCCESS,
        Err(CliError::Status { code, message }) if message.is_empty() => ExitCode::from(code),
        Err(e) => {
            // Not `eprintln!`: a closed stderr must not turn an error into a panic.
            let config = ctx
                .settings()
                .ok()
                .and_then(|s| Config::from_params(&s.params(), |k| std::env::var(k).ok()).ok());
            let _ = writeln!(
                std::io::stderr(),
                "ks3-driver: {}",
                e.message(config.as_ref())
            );
            ExitCode::from(e.exit_code())
        }
    }
}

/// The async runtime `builder` makes, or the exit code after saying why it could not.
pub(crate) fn runtime(
    mut builder: tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("ks3-driver: cannot start the async runtime: {e}");
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::hints::tests::backend;
    use super::*;

    #[test]
    fn debug_masks_secret_params() {
        let cli = Cli::parse_from([
            "ks3-driver",
            "-p",
            "secretkey=TOPSECRETvalue",
            "-p",
            "bucket=shown-bucket",
            "serve-local",
            "--memory",
            "--access-key",
            "AK",
            "--secret-key",
            "LOCALSECRETvalue",
        ]);
        let shown = format!("{cli:?} {cli:#?}");
        assert!(!shown.contains("TOPSECRETvalue"), "{shown}");
        assert!(!shown.contains("LOCALSECRETvalue"), "{shown}");
        assert!(shown.contains("shown-bucket"), "{shown}");
    }

    #[test]
    fn debug_of_settings_from_a_secret_key_file_masks_the_secret() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, b"FILESECRETvalue\n").unwrap();
        let path = f.path().to_str().unwrap().to_string();
        let cli = Cli::parse_from([
            "ks3-driver",
            "--secret-key-file",
            &path,
            "-p",
            "accesskey=SHOWNak",
            "ls",
            "/",
        ]);
        let s = resolve_settings(&cli).unwrap();
        assert_eq!(s.params()["secretkey"], "FILESECRETvalue");
        assert_eq!(
            s.get("secretkey").unwrap().source,
            Source::SecretKeyFile(f.path().to_path_buf())
        );
        let shown = format!("{cli:?} {cli:#?} {s:?} {s:#?}");
        assert!(!shown.contains("FILESECRETvalue"), "{shown}");
        assert!(shown.contains(&path), "{shown}");
    }

    #[test]
    fn messages_are_one_line_with_exit_codes() {
        let e = CliError::driver("stat", "/x", backend("RequestTimeTooSkewed"));
        let m = e.message(None);
        assert!(
            !m.contains('\n') && m.starts_with("stat /x: backend: ") && m.contains("clock"),
            "{m}"
        );
        assert_eq!(e.exit_code(), 1);
        let e = CliError::driver(
            "put",
            "/x",
            Error::Driver(DriverError::Config {
                parameter: "chunksize".into(),
                message: "too\nsmall".into(),
            }),
        );
        assert_eq!(e.exit_code(), 2);
        assert!(!e.message(None).contains('\n'));
        assert_eq!(CliError::Usage("u".into()).exit_code(), 2);
        assert_eq!(CliError::Closed.exit_code(), 0);
    }
}
