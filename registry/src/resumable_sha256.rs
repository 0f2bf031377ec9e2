//! A SHA-256 whose state can be saved after one request and restored in another, in the
//! byte format of Go's `crypto/sha256` `MarshalBinary` — the format of distribution's
//! `_uploads/<id>/hashstates/sha256/<offset>` files — so that an upload started by
//! distribution can be finished here, and the other way round, without re-reading it.
//!
//! The rounds are `sha2`'s (hardware-accelerated where the CPU allows); this module only
//! keeps the chaining value, the partial block and the length, and does the final padding
//! (FIPS 180-4 §5.1.1).
use sha2::block_api::compress256;

const BLOCK: usize = 64;
/// Go's `magic256` followed by 8 state words, the block buffer and the length.
const MAGIC: &[u8; 4] = b"sha\x03";
pub const MARSHALED_SIZE: usize = 4 + 8 * 4 + BLOCK + 8;

/// FIPS 180-4 §5.3.3: the initial hash value of SHA-256.
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

#[derive(Clone)]
pub struct ResumableSha256 {
    h: [u32; 8],
    block: [u8; BLOCK],
    /// Bytes pending in `block` (always `< 64`).
    pending: usize,
    /// Total bytes hashed.
    len: u64,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        ResumableSha256 {
            h: INITIAL,
            block: [0; BLOCK],
            pending: 0,
            len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn update(&mut self, mut data: &[u8]) {
        // A u64 byte count cannot overflow for any stream that fits in storage; wrapping
        // matches the 2^64-bit modulus of the algorithm anyway.
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.pending > 0 {
            let take = (BLOCK - self.pending).min(data.len());
            self.block[self.pending..self.pending + take].copy_from_slice(&data[..take]);
            self.pending += take;
            data = &data[take..];
            if self.pending < BLOCK {
                return;
            }
            compress256(&mut self.h, &[self.block]);
            self.pending = 0;
        }
        let (blocks, rest) = data.as_chunks::<BLOCK>();
        if !blocks.is_empty() {
            compress256(&mut self.h, blocks);
        }
        self.block[..rest.len()].copy_from_slice(rest);
        self.pending = rest.len();
    }

    pub fn finalize(mut self) -> [u8; 32] {
        let bit_len = self.len.wrapping_mul(8);
        let mut tail = [0u8; 2 * BLOCK];
        tail[..self.pending].copy_from_slice(&self.block[..self.pending]);
        tail[self.pending] = 0x80;
        // One block if the length still fits after the 0x80 byte, else two.
        let total = if self.pending + 1 + 8 <= BLOCK {
            BLOCK
        } else {
            2 * BLOCK
        };
        tail[total - 8..total].copy_from_slice(&bit_len.to_be_bytes());
        let (blocks, _) = tail[..total].as_chunks::<BLOCK>();
        compress256(&mut self.h, blocks);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.h.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// Go's `MarshalBinary`: magic, big-endian state words, the pending bytes padded
    /// with zeros to a block, the big-endian byte count.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MARSHALED_SIZE);
        out.extend_from_slice(MAGIC);
        for w in self.h {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.block[..self.pending]);
        out.resize(4 + 32 + BLOCK, 0);
        out.extend_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Go's `UnmarshalBinary`: `None` for a wrong magic or size. Bytes of the block buffer
    /// past `len % 64` are ignored (older Go versions left stale bytes there).
    pub fn unmarshal(b: &[u8]) -> Option<Self> {
        if b.len() != MARSHALED_SIZE || &b[..4] != MAGIC {
            return None;
        }
        let mut h = [0u32; 8];
        for (i, word) in h.iter_mut().enumerate() {
            let at = 4 + 4 * i;
            *word = u32::from_be_bytes(b[at..at + 4].try_into().ok()?);
        }
        let len = u64::from_be_bytes(b[100..108].try_into().ok()?);
        let pending = (len % BLOCK as u64) as usize;
        let mut block = [0u8; BLOCK];
        block[..pending].copy_from_slice(&b[36..36 + pending]);
        Some(ResumableSha256 {
            h,
            block,
            pending,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn matches_sha2_at_every_split_and_length() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200, 300] {
            let want = Sha256::digest(&data[..n]);
            for split in [0, 1.min(n), n / 2, n.saturating_sub(1), n] {
                let mut a = ResumableSha256::new();
                a.update(&data[..split]);
                // Through the saved form, as between two requests.
                let mut b = ResumableSha256::unmarshal(&a.marshal()).expect("round trip");
                b.update(&data[split..n]);
                assert_eq!(hex(&b.finalize()), hex(&want), "n={n} split={split}");
            }
        }
    }

    #[test]
    fn initial_state_is_gos_bytes() {
        // distribution writes this at POST (offset 0): magic, IV, 64 zero bytes, len 0.
        let m = ResumableSha256::new().marshal();
        assert_eq!(m.len(), 108);
        assert_eq!(&m[..4], b"sha\x03");
        assert_eq!(hex(&m[4..12]), "6a09e667bb67ae85");
        assert!(m[36..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_wrong_magic_or_size_and_ignores_stale_buffer_bytes() {
        let mut s = ResumableSha256::new();
        s.update(b"abc");
        let mut m = s.marshal();
        assert!(ResumableSha256::unmarshal(&m[..107]).is_none());
        let mut bad = m.clone();
        bad[3] = 2;
        assert!(ResumableSha256::unmarshal(&bad).is_none());
        m[50] = 0xff; // past the 3 pending bytes
        let r = ResumableSha256::unmarshal(&m).expect("valid");
        assert_eq!(hex(&r.finalize()), hex(&Sha256::digest(b"abc")));
    }
}
