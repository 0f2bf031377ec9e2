//! CRC-64/XZ (a.k.a. CRC-64/ECMA-182 reflected, "crc64ecma" in KS3's
//! `x-kss-checksum-crc64ecma` header, sent as a decimal number).
//!
//! Natively the SIMD (carry-less multiply) implementation of the `crc64fast` crate. In
//! the wasm component, which has no carry-less multiply, slicing-by-8 tables over four
//! independent lanes at once (one table chain is bound by load latency; four keep the
//! CPU busy), the lanes joined with "shift by a lane of zeros" tables.

const POLY: u64 = 0xC96C_5795_D787_0F42; // reflected ECMA-182

#[cfg(any(target_arch = "wasm32", test))]
mod tables {
    use std::sync::OnceLock;

    const fn make_tables() -> [[u64; 256]; 8] {
        let mut t = [[0u64; 256]; 8];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u64;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 == 1 {
                    (c >> 1) ^ super::POLY
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[0][i] = c;
            i += 1;
        }
        let mut s = 1;
        while s < 8 {
            let mut i = 0;
            while i < 256 {
                let prev = t[s - 1][i];
                t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
                i += 1;
            }
            s += 1;
        }
        t
    }

    static TABLES: [[u64; 256]; 8] = make_tables();

    /// Bytes per lane of a four-lane block.
    const LANE: usize = 4096;

    /// `ZEROS[j][v]`: the register after `LANE` zero bytes from register `v << 8j`
    /// (the register's map over zeros is linear, so it goes byte by byte through tables).
    fn zeros() -> &'static [[u64; 256]; 8] {
        static ZEROS: OnceLock<Box<[[u64; 256]; 8]>> = OnceLock::new();
        ZEROS.get_or_init(|| {
            let mut basis = [0u64; 64];
            for (k, b) in basis.iter_mut().enumerate() {
                let mut crc = 1u64 << k;
                for _ in 0..LANE {
                    crc = TABLES[0][(crc & 0xff) as usize] ^ (crc >> 8);
                }
                *b = crc;
            }
            let mut z = Box::new([[0u64; 256]; 8]);
            for (j, row) in z.iter_mut().enumerate() {
                for (v, slot) in row.iter_mut().enumerate() {
                    *slot = (0..8)
                        .filter(|bit| (v >> bit) & 1 == 1)
                        .fold(0, |acc, bit| acc ^ basis[8 * j + bit]);
                }
            }
            z
        })
    }

    #[inline(always)]
    fn by_bytes(t: &[[u64; 256]; 8], v: u64) -> u64 {
        t[0][(v & 0xff) as usize]
            ^ t[1][((v >> 8) & 0xff) as usize]
            ^ t[2][((v >> 16) & 0xff) as usize]
            ^ t[3][((v >> 24) & 0xff) as usize]
            ^ t[4][((v >> 32) & 0xff) as usize]
            ^ t[5][((v >> 40) & 0xff) as usize]
            ^ t[6][((v >> 48) & 0xff) as usize]
            ^ t[7][(v >> 56) as usize]
    }

    /// Eight bytes of slicing-by-8.
    #[inline(always)]
    fn step(crc: u64, c: &[u8]) -> u64 {
        let t = &TABLES;
        let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        t[7][(v & 0xff) as usize]
            ^ t[6][((v >> 8) & 0xff) as usize]
            ^ t[5][((v >> 16) & 0xff) as usize]
            ^ t[4][((v >> 24) & 0xff) as usize]
            ^ t[3][((v >> 32) & 0xff) as usize]
            ^ t[2][((v >> 40) & 0xff) as usize]
            ^ t[1][((v >> 48) & 0xff) as usize]
            ^ t[0][(v >> 56) as usize]
    }

    /// Slicing-by-8, one lane: the register `crc` (not inverted) after `data`.
    pub(super) fn update_one_lane(mut crc: u64, data: &[u8]) -> u64 {
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            crc = step(crc, c);
        }
        for &b in chunks.remainder() {
            crc = TABLES[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
        }
        crc
    }

    /// The register `crc` (not inverted) after `data`: blocks of four lanes, each lane
    /// run from a zero register but the first, then joined:
    /// `R(s, ABCD) = Z(Z(Z(R(s, A)) ^ R(0, B)) ^ R(0, C)) ^ R(0, D)`.
    pub(super) fn update(mut crc: u64, data: &[u8]) -> u64 {
        if data.len() < 4 * LANE {
            return update_one_lane(crc, data);
        }
        let z = zeros();
        let mut blocks = data.chunks_exact(4 * LANE);
        for b in &mut blocks {
            let (l0, rest) = b.split_at(LANE);
            let (l1, rest) = rest.split_at(LANE);
            let (l2, l3) = rest.split_at(LANE);
            let (mut c0, mut c1, mut c2, mut c3) = (crc, 0u64, 0u64, 0u64);
            for (((a, b), c), d) in l0
                .chunks_exact(8)
                .zip(l1.chunks_exact(8))
                .zip(l2.chunks_exact(8))
                .zip(l3.chunks_exact(8))
            {
                c0 = step(c0, a);
                c1 = step(c1, b);
                c2 = step(c2, c);
                c3 = step(c3, d);
            }
            crc = by_bytes(z, by_bytes(z, by_bytes(z, c0) ^ c1) ^ c2) ^ c3;
        }
        update_one_lane(crc, blocks.remainder())
    }
}

/// Incremental CRC-64/XZ.
#[derive(Clone)]
pub struct Crc64 {
    #[cfg(target_arch = "wasm32")]
    state: u64,
    #[cfg(not(target_arch = "wasm32"))]
    digest: crc64fast::Digest,
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crc64")
            .field("value", &self.value())
            .finish()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub fn new() -> Self {
        Crc64 {
            #[cfg(target_arch = "wasm32")]
            state: !0,
            #[cfg(not(target_arch = "wasm32"))]
            digest: crc64fast::Digest::new(),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        #[cfg(target_arch = "wasm32")]
        {
            self.state = tables::update(self.state, data);
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.digest.write(data);
    }

    pub fn value(&self) -> u64 {
        #[cfg(target_arch = "wasm32")]
        {
            !self.state
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.digest.sum64()
    }

    /// CRC of `data` in one go.
    pub fn checksum(data: &[u8]) -> u64 {
        let mut c = Crc64::new();
        c.update(data);
        c.value()
    }

    /// The CRC of `A ++ B` from `crc(A)`, `crc(B)` and `len(B)` — how KS3 derives the
    /// checksum of a multipart object from its parts' checksums, and how a reader or
    /// writer joins pieces hashed in different places ([`Crc64Pieces`]).
    pub fn combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        // Appending len_b zero bytes to A is a linear map on the CRC register: the
        // product of the precomputed "2^k zero bytes" maps for the bits set in len_b.
        let powers = zero_byte_powers();
        let mut a = crc_a;
        let mut len = len_b;
        let mut k = 0;
        while len != 0 {
            if len & 1 == 1 {
                a = gf2_times(&powers[k], a);
            }
            len >>= 1;
            k += 1;
        }
        a ^ crc_b
    }
}

/// `[k]`: the map "append 2^k zero bytes" on the CRC register, as the images of its 64
/// basis vectors. Built once by squaring (zlib's crc32_combine idea, for 64 bits and
/// kept), so that a combine costs one 64-step product per bit set in the length.
fn zero_byte_powers() -> &'static [[u64; 64]; 64] {
    static POWERS: std::sync::OnceLock<Box<[[u64; 64]; 64]>> = std::sync::OnceLock::new();
    POWERS.get_or_init(|| {
        // One zero bit: shift right, folding in the polynomial for the bit shifted out.
        let mut bit = [0u64; 64];
        bit[0] = POLY;
        for (i, slot) in bit.iter_mut().enumerate().skip(1) {
            *slot = 1u64 << (i - 1);
        }
        let mut two = [0u64; 64];
        gf2_square(&mut two, &bit);
        let mut four = [0u64; 64];
        gf2_square(&mut four, &two);
        let mut powers = Box::new([[0u64; 64]; 64]);
        gf2_square(&mut powers[0], &four);
        for k in 1..64 {
            let (done, rest) = powers.split_at_mut(k);
            gf2_square(&mut rest[0], &done[k - 1]);
        }
        powers
    })
}

/// The CRC-64 of bytes that arrive in pieces, some hashed here (`update`) and some
/// hashed elsewhere and known by value (`append`): a reader's bodies read by its host, a
/// writer's chunks whose host sent their CRC along.
#[derive(Clone, Debug, Default)]
pub struct Crc64Pieces {
    /// The CRC of everything before `running`.
    done: u64,
    running: Crc64,
    running_len: u64,
}

impl Crc64Pieces {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes hashed here.
    pub fn update(&mut self, data: &[u8]) {
        self.running.update(data);
        self.running_len = self.running_len.saturating_add(data.len() as u64);
    }

    /// `len` more bytes whose CRC-64 is `crc`.
    pub fn append(&mut self, crc: u64, len: u64) {
        self.done = Crc64::combine(self.value(), crc, len);
        self.running = Crc64::new();
        self.running_len = 0;
    }

    pub fn value(&self) -> u64 {
        Crc64::combine(self.done, self.running.value(), self.running_len)
    }
}

fn gf2_times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 == 1 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn gf2_square(square: &mut [u64; 64], mat: &[u64; 64]) {
    for n in 0..64 {
        square[n] = gf2_times(mat, mat[n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogue check value of CRC-64/XZ.
        assert_eq!(Crc64::checksum(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(Crc64::checksum(b""), 0);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut c = Crc64::new();
        for piece in data.chunks(333) {
            c.update(piece);
        }
        assert_eq!(c.value(), Crc64::checksum(&data));
    }

    /// Bit by bit, straight from the definition.
    fn reference(data: &[u8]) -> u64 {
        let mut crc = !0u64;
        for &b in data {
            crc ^= u64::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn implementations_agree_with_the_definition() {
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // Every length around the 16-byte stride and unaligned starts.
        for start in 0..17 {
            for len in (0..200).chain([1000, 4096, 16_383, 16_384, 16_385, 40_000, 69_983 - start])
            {
                let piece = &data[start..start + len];
                let want = reference(piece);
                assert_eq!(!tables::update(!0, piece), want, "tables {start}+{len}");
                assert_eq!(
                    !tables::update_one_lane(!0, piece),
                    want,
                    "one lane {start}+{len}"
                );
                assert_eq!(Crc64::checksum(piece), want, "Crc64 {start}+{len}");
            }
        }
    }

    #[test]
    fn pieces_hashed_here_and_elsewhere_make_the_whole() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut p = Crc64Pieces::new();
        assert_eq!(p.value(), 0);
        // Alternate: hashed here, appended by value (equal sizes reuse the operator).
        let mut at = 0;
        for (i, len) in [1000usize, 4096, 4096, 7, 4096, 0, 50_000, 4096, 1]
            .iter()
            .enumerate()
        {
            let piece = &data[at..at + len];
            if i % 2 == 0 {
                p.update(piece);
            } else {
                p.append(Crc64::checksum(piece), *len as u64);
            }
            at += len;
            assert_eq!(p.value(), Crc64::checksum(&data[..at]), "after piece {i}");
        }
    }

    #[test]
    fn combine_matches_concatenation_for_every_length_shape() {
        let data: Vec<u8> = (0..(1u32 << 20) + 8192)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for split in [0usize, 1, 7, 4096] {
            for len_b in [0usize, 1, 2, 3, 8, 255, 256, 4097, 65_536, 1 << 20] {
                let (a, b) = data[..split + len_b].split_at(split);
                assert_eq!(
                    Crc64::combine(Crc64::checksum(a), Crc64::checksum(b), len_b as u64),
                    Crc64::checksum(&data[..split + len_b]),
                    "split {split}, len_b {len_b}"
                );
            }
        }
    }

    #[test]
    fn combine_matches_concatenation() {
        let a: Vec<u8> = (0..5000u32).map(|i| (i * 13) as u8).collect();
        let b: Vec<u8> = (0..777u32).map(|i| (i * 31 + 1) as u8).collect();
        let whole = [a.clone(), b.clone()].concat();
        assert_eq!(
            Crc64::combine(Crc64::checksum(&a), Crc64::checksum(&b), b.len() as u64),
            Crc64::checksum(&whole)
        );
        assert_eq!(
            Crc64::combine(Crc64::checksum(&a), 0, 0),
            Crc64::checksum(&a)
        );
    }
}
