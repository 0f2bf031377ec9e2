//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`): parsing, and hashing a
//! stream with the algorithm a client asked for.
use std::fmt;

use sha2::{Digest as _, Sha256, Sha512};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A parsed digest; only the registered algorithms, with lowercase hex of the right length
/// (the OCI image spec's rule for them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    alg: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        let (alg, hex) = s.split_once(':')?;
        let alg = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return None,
        };
        let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
        if hex.len() != alg.hex_len() || !hex.bytes().all(lower_hex) {
            return None;
        }
        Some(Digest {
            alg,
            hex: hex.to_string(),
        })
    }

    pub fn from_bytes(alg: Algorithm, hash: &[u8]) -> Digest {
        Digest {
            alg,
            hex: hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The digest of `data` with `alg`.
    pub fn of(alg: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(alg);
        h.update(data);
        h.finish()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg.name(), self.hex)
    }
}

/// A running hash of one of the supported algorithms.
pub enum Hasher {
    Sha256(Box<Sha256>),
    Sha512(Box<Sha512>),
}

impl Hasher {
    pub fn new(alg: Algorithm) -> Hasher {
        match alg {
            Algorithm::Sha256 => Hasher::Sha256(Box::default()),
            Algorithm::Sha512 => Hasher::Sha512(Box::default()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_bytes(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_bytes(Algorithm::Sha512, &h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_digests() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            Digest::parse(empty).map(|d| d.to_string()).as_deref(),
            Some(empty)
        );
        assert_eq!(Digest::of(Algorithm::Sha256, b"").to_string(), empty);
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Digest::parse(bad).is_none(), "{bad}");
        }
        let d512 = Digest::of(Algorithm::Sha512, b"abc");
        assert_eq!(Digest::parse(&d512.to_string()), Some(d512));
    }
}
