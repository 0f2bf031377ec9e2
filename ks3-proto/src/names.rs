//! Names and header values KS3 accepts, shared by the driver's configuration check and the
//! local server's request check.

/// `x-kss-storage-class` values.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "DEEP_IA",
    "ARCHIVE",
    "COLD_ARCHIVE",
    "DEEP_COLD_ARCHIVE",
    "EXTREME_PL1",
    "EXTREME_PL2",
    "EXTREME_PL3",
];

/// `x-kss-acl` canned ACLs.
pub const CANNED_ACLS: &[&str] = &["private", "public-read", "public-read-write"];

/// Checks a bucket name against KS3's rule: `[a-z0-9.-]`, 3 to 63 characters, starting and
/// ending with a letter or digit, no `..`, not like an IP address, not starting with `kss`.
/// The error says which part of the rule the name breaks.
pub fn check_bucket_name(b: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&b.len()) {
        return Err("it must be 3 to 63 characters long");
    }
    if !b
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return Err("only lower-case letters, digits, `.` and `-` are allowed");
    }
    let letter_or_digit = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !letter_or_digit(b.as_bytes()[0]) {
        return Err("it must start with a letter or a digit");
    }
    if !letter_or_digit(b.as_bytes()[b.len() - 1]) || b.contains("..") {
        return Err("it must not end with `-` or `.` nor contain `..`");
    }
    if b.starts_with("kss") {
        return Err("names starting with `kss` are reserved");
    }
    // Four dot-separated numbers up to 255 (leading zeros included: `010.0.0.1` is still
    // read as an address by some clients).
    if b.split('.').count() == 4 && b.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("it must not look like an IP address");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_bucket_name;

    #[test]
    fn bucket_names() {
        for ok in [
            "registry-bucket",
            "a.b-c1",
            "abc",
            "1bucket",
            &"a".repeat(63),
        ] {
            assert_eq!(check_bucket_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Upper",
            "-abc",
            "abc-",
            "abc.",
            "a..b",
            "kss-bucket",
            "192.168.1.1",
            "010.0.0.1",
            "_ks3local",
            "a_b",
        ] {
            assert!(check_bucket_name(bad).is_err(), "{bad}");
        }
    }
}
