//! Content digests KS3 uses: `Content-MD5` (base64) and ETags (quoted hex MD5).
use base64::Engine as _;
use md5::{Digest, Md5};

/// Raw MD5 of `data`.
pub fn md5(data: &[u8]) -> [u8; 16] {
    Md5::digest(data).into()
}

/// The `Content-MD5` header value for `data`.
pub fn content_md5(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5(data))
}

/// Standard base64 (with padding), as checksum headers carry digests.
pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes a `Content-MD5` header; `None` if it is not base64 of 16 bytes.
pub fn decode_content_md5(value: &str) -> Option<[u8; 16]> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    raw.try_into().ok()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// The ETag KS3 returns for a single-part object: the quoted hex MD5.
pub fn etag(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex(md5))
}

/// Streaming MD5 for data that arrives in pieces.
#[derive(Default, Clone)]
pub struct Md5Stream(Md5);

impl Md5Stream {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> [u8; 16] {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_md5_of_hello_world() {
        assert_eq!(content_md5(b"hello world"), "XrY7u+Ae7tCTyyK7j1rNww==");
        assert_eq!(
            decode_content_md5("XrY7u+Ae7tCTyyK7j1rNww=="),
            Some(md5(b"hello world"))
        );
        assert_eq!(decode_content_md5("nope"), None);
        assert_eq!(etag(&md5(b"")), "\"d41d8cd98f00b204e9800998ecf8427e\"");
    }
}
