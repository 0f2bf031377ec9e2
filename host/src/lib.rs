//! `ks3_driver_host` (package `ks3-driver-host`): the KS3 storage driver, a WebAssembly
//! component, run in a wasmtime sandbox behind a typed async Rust API. The command line
//! is the `ks3-driver` package (`cli/`), which depends on this crate.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ks3_driver_host::Error> {
//! use ks3_driver_host::{Driver, Params};
//! let mut p = Params::new();
//! for (k, v) in [("accesskey", "AK"), ("secretkey", "SK"), ("region", "ks3-cn-beijing"), ("bucket", "registry")] {
//!     p.insert(k.into(), v.into());
//! }
//! let driver = Driver::new(p).await?;
//! driver.put_content("/hello", b"world").await?;
//! assert_eq!(driver.get_content("/hello").await?, b"world");
//! # Ok(()) }
//! ```
//!
//! Sandbox: each driver's operations run in instances of their own (no filesystem, no
//! sockets, no environment but the driver's configuration); stateless operations reuse a
//! few warm instances of the same driver, readers, writers and walkers get fresh ones,
//! and an instance whose call trapped or timed out is never used again. wasi:http egress
//! only to the configured endpoint, guest request timeouts capped, a memory limit and a
//! wall-clock limit. A trap is an [`Error::Sandbox`] and does not affect the next
//! operation; the driver's own errors are [`Error::Driver`], its [`DriverError`] as is.
//!
//! Environment:
//! * `KS3_DRIVER_LOG=1` — log each KS3 request (method, path without query, status, time,
//!   request id) and the driver's own stderr to stderr;
//! * `KS3_DRIVER_CACHE_DIR=DIR` (or `off`) — where compiled components are cached
//!   (default `$XDG_CACHE_HOME/ks3-driver` or `~/.cache/ks3-driver`); the cache is only
//!   used when the build's precompiled component ([`runtime::EMBEDDED_ARTIFACT`]) is not:
//!   on a CPU that refuses it, for another component file, or with
//! * `KS3_DRIVER_EMBEDDED_ARTIFACT=off` — compile the embedded component (or load it from
//!   the cache) instead of loading the precompiled artifact;
//! * `KS3_DRIVER_POOLING=1` — use wasmtime's pooling allocator (room for
//!   [`runtime::MAX_INSTANCES`] instances, reserved up front) instead of the on-demand
//!   one; faster fresh instances, ~9 ms slower process start;
//! * `KS3_DRIVER_PERFMAP=1` — write `/tmp/perf-PID.map` so `perf report` names the
//!   guest's functions;
//! * at build time, `KS3_DRIVER_PREBUILT_COMPONENT=FILE` embeds that component instead of
//!   building `driver/`, and `KS3_DRIVER_NO_PRECOMPILE=1` leaves out the precompiled
//!   artifact (as cross builds do).
mod activity;
mod bindings;
mod cache;
mod code_in_place;
mod driver;
mod egress;
pub mod egress_client;
mod engine_config;
mod error;
mod executors;
mod reader;
pub mod runtime;
mod session;
pub mod settings;
mod writer;

pub use bytes::Bytes;
pub use cache::LoadInfo;
/// The compiled cache's directory and its trust rules, for other files kept under it.
pub use cache::{
    cache_dir, check_private_dir, create_private_dir, read_private_file, write_private_file,
};
pub use driver::{
    CallOutcome, CallRecord, Driver, DriverObserver, FileInfo, FileReader, FileWriter, Ks3Request,
    WalkControl,
};
pub use error::{
    CertificateProblem, DriverError, Error, IoError, IoKind, SandboxError, SandboxKind,
};
pub use ks3_driver_component::config::{
    Config, Params, SigningScheme, V4Namespace, ENV_PREFIX, PARAMETERS,
};
pub use ks3_driver_component::http::TLS_CERTIFICATE_REFUSED;
pub use ks3_driver_component::BackendError;
pub use runtime::{
    fs_driver_component_path, Runtime, RuntimeOptions, EMBEDDED_BLOBSTORE_COMPONENT,
    EMBEDDED_COMPONENT,
};
