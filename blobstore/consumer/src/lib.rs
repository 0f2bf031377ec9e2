//! The composition test's program: written only against `wasi:blobstore@0.2.0-draft`
//! (the WIT in `../wit/deps`), it knows nothing of KS3. `wac plug` composes it with the
//! blobstore component; the stock `wasmtime run -S http` runs the result (`consumer.rs`,
//! wasm32 only). [`pattern`] is the data it writes, also used by the test to check it.
#![cfg_attr(target_arch = "wasm32", no_std)]
extern crate alloc;

use alloc::vec::Vec;

#[cfg(target_arch = "wasm32")]
mod consumer;

/// The name of the 12 MiB object the program leaves, and its length and seed.
pub const BIG_NAME: &str = "big/12m.bin";
pub const BIG_LEN: usize = 12 << 20;
pub const BIG_SEED: u64 = 12;
/// A small object the program leaves, and its content.
pub const KEPT_NAME: &str = "hello/kept.txt";
pub const HELLO: &[u8] = b"hello, blobstore";
/// Where the program writes its outcome: `ok`, or what failed.
pub const REPORT_NAME: &str = "report.txt";

/// `len` bytes of a 64-bit LCG's high bits, little-endian, from `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len.saturating_add(8));
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&(state >> 11).to_le_bytes());
    }
    out.truncate(len);
    out
}
