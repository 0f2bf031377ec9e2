//! The engine settings that shape the driver component's compiled code: the one definition
//! shared by `build.rs` (which precompiles the component with them) and `runtime.rs` (which
//! runs it). wasmtime refuses an artifact whose code-relevant settings differ from the
//! running engine's, so any setting added here reaches both, and the embedded artifact
//! stays loadable.
//!
//! Settings that only affect the runtime (the instance allocator, the profiler) are added
//! by `runtime.rs` on top; `host/src/runtime.rs`'s tests check that the engine it really
//! builds still accepts the embedded artifact.

/// A `wasmtime::Config` with the code-relevant settings of every engine that compiles or
/// runs the driver component.
pub fn code_config() -> wasmtime::Config {
    let mut cfg = wasmtime::Config::new();
    // The wall-clock limit: guest code checks the epoch at loop headers and function
    // entries, which is compiled into the code.
    cfg.epoch_interruption(true);
    cfg
}
