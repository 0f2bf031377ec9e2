//! The registry's ids and dates in distribution's forms: random version-4 UUIDs (upload
//! ids, which its purger recognises only in this form; event and instance ids) and the
//! current time as Go's `time.RFC3339` writes it (`startedat`, sweep records).
use std::time::SystemTime;

/// A random version-4 UUID, lower-case hex in 8-4-4-4-12 groups.
pub fn uuid4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Seconds since the Unix epoch (0 before it, `i64::MAX` far after).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now in RFC 3339 UTC without fractions.
pub fn rfc3339_now() -> String {
    ks3_proto::date::rfc3339(unix_now())
}
