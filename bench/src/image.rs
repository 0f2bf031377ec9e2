//! A generated image for the demo and the benchmark: pseudo-random layers of the given
//! sizes (deterministic per `salt`, different across salts and layers) and an OCI config
//! naming their digests. Layers are `Bytes`, so handing them to a client copies nothing.
use bytes::Bytes;
use sha2::{Digest, Sha256};

pub struct Image {
    pub layers: Vec<Bytes>,
    pub config: Bytes,
}

impl Image {
    pub fn generate(sizes: &[u64], salt: u64) -> Image {
        let base = 0x6b73_3364_656d_6f00_u64 ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let layers: Vec<Bytes> = sizes
            .iter()
            .enumerate()
            // Seeds a layer length apart, so no two layers share a word stream.
            .map(|(i, &len)| Bytes::from(generate(base.wrapping_add((i as u64) << 40), len)))
            .collect();
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("sha256:{}", sha256_hex(l)))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/demo"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string()
        .into();
        Image { layers, config }
    }

    pub fn layer_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.len() as u64).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.layer_bytes() + self.config.len() as u64
    }
}

/// The SHA-256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` pseudo-random bytes: word `i` is splitmix64(seed + i).
fn generate(seed: u64, len: u64) -> Vec<u8> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(len.saturating_add(8));
    let mut i = 0u64;
    while out.len() < len {
        let mut z = seed.wrapping_add(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_have_their_sizes_and_differ() {
        let img = Image::generate(&[0, 5, 4096 + 3], 0);
        assert_eq!(
            img.layers.iter().map(Bytes::len).collect::<Vec<_>>(),
            [0, 5, 4099]
        );
        assert_ne!(img.layers[1][..], img.layers[2][..5]);
        assert_eq!(img.total_bytes(), 4104 + img.config.len() as u64);
        let again = Image::generate(&[0, 5, 4096 + 3], 0);
        assert_eq!(again.layers, img.layers);
        let other = Image::generate(&[0, 5, 4096 + 3], 1);
        assert_ne!(other.layers[2], img.layers[2]);
    }
}
