//! CRC-64/XZ (a.k.a. CRC-64/ECMA-182 reflected, "crc64ecma" in KS3's
//! `x-kss-checksum-crc64ecma` header, sent as a decimal number).
//!
//! Slicing-by-8 so that checking a multi-GiB stream costs little next to the network.

const POLY: u64 = 0xC96C_5795_D787_0F42; // reflected ECMA-182

const fn make_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
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

/// Incremental CRC-64/XZ.
#[derive(Clone, Copy, Debug)]
pub struct Crc64 {
    state: u64,
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc64 {
    pub const fn new() -> Self {
        Crc64 { state: !0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        let t = &TABLES;
        let mut crc = self.state;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let v = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            crc = t[7][(v & 0xff) as usize]
                ^ t[6][((v >> 8) & 0xff) as usize]
                ^ t[5][((v >> 16) & 0xff) as usize]
                ^ t[4][((v >> 24) & 0xff) as usize]
                ^ t[3][((v >> 32) & 0xff) as usize]
                ^ t[2][((v >> 40) & 0xff) as usize]
                ^ t[1][((v >> 48) & 0xff) as usize]
                ^ t[0][(v >> 56) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    pub fn value(&self) -> u64 {
        !self.state
    }

    /// CRC of `data` in one go.
    pub fn checksum(data: &[u8]) -> u64 {
        let mut c = Crc64::new();
        c.update(data);
        c.value()
    }

    /// The CRC of `A ++ B` from `crc(A)`, `crc(B)` and `len(B)` — how KS3 derives the
    /// checksum of a multipart object from its parts' checksums.
    pub fn combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        // Appending len_b zero bytes to A is a linear operator on the CRC register; apply it
        // by repeated squaring of the "one zero bit" matrix (zlib's crc32_combine, 64-bit).
        if len_b == 0 {
            return crc_a;
        }
        let mut odd = [0u64; 64];
        odd[0] = POLY;
        let mut row = 1u64;
        for slot in odd.iter_mut().skip(1) {
            *slot = row;
            row <<= 1;
        }
        let mut even = [0u64; 64];
        gf2_square(&mut even, &odd); // two zero bits
        gf2_square(&mut odd, &even); // four zero bits
        let mut a = crc_a;
        let mut len = len_b;
        loop {
            gf2_square(&mut even, &odd);
            if len & 1 == 1 {
                a = gf2_times(&even, a);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
            gf2_square(&mut odd, &even);
            if len & 1 == 1 {
                a = gf2_times(&odd, a);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
        }
        a ^ crc_b
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
