//! Percent-encoding as KS3 (and the official SDKs) apply it.

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn encode_with(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Encodes an object key for a request path and for the canonical resource:
/// every byte but `A-Z a-z 0-9 - _ . ~ /` becomes `%XX` (uppercase hex).
pub fn encode_key(key: &str) -> String {
    encode_with(key, true)
}

/// Encodes a query-string value (or any component): `/` is encoded too.
pub fn encode_component(s: &str) -> String {
    encode_with(s, false)
}

/// Decodes `%XX` escapes; with `plus_as_space`, `+` means a space (form encoding, as the
/// Python SDK's `quote_plus` produces for `x-kss-copy-source`). Returns `None` for a bad
/// escape or a result that is not UTF-8.
pub fn decode(s: &str, plus_as_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits a raw query string into `(name, value)` pairs, both still percent-encoded.
/// A parameter without `=` has value `None` (`?uploads`), `a=` has `Some("")`.
pub fn split_query(query: &str) -> Vec<(&str, Option<&str>)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_matches_sdk() {
        assert_eq!(
            encode_key("a dir/ü+file=1&x.txt"),
            "a%20dir/%C3%BC%2Bfile%3D1%26x.txt"
        );
        assert_eq!(encode_key("a~b_c-d.e/f"), "a~b_c-d.e/f");
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn decode_round_trips_and_rejects_garbage() {
        assert_eq!(decode("a+dir%2F%C3%BC", true).unwrap(), "a dir/ü");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert_eq!(decode("%zz", false), None);
        assert_eq!(decode("%4", false), None);
        assert_eq!(decode("%FF", false), None);
    }

    #[test]
    fn query_split() {
        assert_eq!(
            split_query("uploads&prefix=&max-keys=5"),
            vec![
                ("uploads", None),
                ("prefix", Some("")),
                ("max-keys", Some("5"))
            ]
        );
    }
}
