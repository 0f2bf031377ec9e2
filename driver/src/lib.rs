//! The Kingsoft Cloud KS3 storage driver.
//!
//! The data path reads straight through: a WIT call (`wasm::component`) → a driver
//! operation (`ops`) → a signed KS3 request (`client`, `signing`; the rules in `ks3-proto`) → wasi:http
//! (`wasm::transport`) → the host. Everything but the `wasm` module is plain Rust that
//! also builds natively, so the host can validate configuration with the same code and
//! the benchmark can run the same logic as a native baseline.
pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod ops;
pub mod path;
mod signing;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use config::{Config, ConfigError, Params};
pub use error::{BackendError, DriverError, DRIVER_NAME};
pub use ops::{Driver, FileInfo, FileReader, FileWriter, Walker};
