//! The component: WIT exports over [`crate::ops`], and wasi:http as the transport.
#[cfg(feature = "component")]
mod component;
pub mod transport;

/// The environment the host gave the component (`wasi:cli/environment`), where the driver's
/// parameters are. Read through WASI directly, not `std::env`: the component is built
/// without std's WASI support (`wasm32-unknown-unknown`), so that it imports only the
/// interfaces it uses (std's would add `wasi:cli/exit`, stdio and terminal interfaces).
pub fn environment() -> Vec<(String, String)> {
    wasi::cli::environment::get_environment()
}
