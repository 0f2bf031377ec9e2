//! The bodies of the fuzz targets.
//!
//! Each `pub fn <target>(data: &[u8])` feeds arbitrary bytes to the project's real parsers
//! and asserts what must hold for every input: no panic, and the invariants noted at each
//! target (round trips, bounds). `fuzz/fuzz_targets/<target>.rs` (cargo-fuzz, nightly)
//! calls these functions; `tests/corpus.rs` replays every committed corpus entry
//! (`fuzz/corpus/<target>/`) through them on the pinned toolchain, as part of
//! `cargo test --workspace`.
mod config;
mod input;
pub mod ks3_local;
mod paths;
mod responses;
mod signing;

pub use config::config;
pub use ks3_local::ks3_local_requests;
pub use paths::paths;
pub use responses::ks3_responses;
pub use signing::signing;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its `fuzz/fuzz_targets/<name>.rs` and corpus).
pub const TARGETS: &[(&str, Target)] = &[
    ("ks3_responses", ks3_responses),
    ("signing", signing),
    ("paths", paths),
    ("config", config),
    ("ks3_local_requests", ks3_local_requests),
];
