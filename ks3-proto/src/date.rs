//! HTTP dates (RFC 1123, `Date`/`Last-Modified`), ISO 8601 (`LastModified` in XML) and
//! RFC 3339 as Go writes and reads it (distribution's `startedat`), without a calendar
//! crate: the civil-from-days algorithm is a dozen lines. The workspace's one calendar.

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Years a parsed date may name: four digits, as every format here writes them. Keeps
/// the arithmetic below far from overflow whatever a peer sends.
const YEARS: std::ops::RangeInclusive<i64> = 0..=9999;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a parsed civil date and time; `None` for a year outside [`YEARS`]
/// (checked arithmetic all the same).
fn unix_secs(y: i64, m: u32, d: u32, hh: i64, mm: i64, ss: i64) -> Option<i64> {
    if !YEARS.contains(&y) {
        return None;
    }
    days_from_civil(y, m, d)
        .checked_mul(86_400)?
        .checked_add(hh * 3600 + mm * 60 + ss)
}

fn split(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `Wed, 25 Nov 2026 08:00:00 GMT`
pub fn http_date(unix_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = split(unix_secs);
    let wd = DAYS[unix_secs.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {d:02} {} {y:04} {hh:02}:{mm:02}:{ss:02} GMT",
        MONTHS[(m - 1) as usize]
    )
}

/// Parses an RFC 1123 date (`Wed, 25 Nov 2026 08:00:00 GMT`) into Unix seconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let (_, rest) = s.split_once(", ")?;
    let mut it = rest.split(' ');
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let m = MONTHS.iter().position(|x| *x == mon)? as u32 + 1;
    let y: i64 = it.next()?.parse().ok()?;
    let time = it.next()?;
    if it.next()? != "GMT" || it.next().is_some() {
        return None;
    }
    let (hh, mm, ss) = parse_hms(time)?;
    if !(1..=31).contains(&d) {
        return None;
    }
    unix_secs(y, m, d, hh, mm, ss)
}

fn parse_hms(t: &str) -> Option<(i64, i64, i64)> {
    let mut p = t.split(':');
    let hh: i64 = p.next()?.parse().ok()?;
    let mm: i64 = p.next()?.parse().ok()?;
    let ss: i64 = p.next()?.parse().ok()?;
    if p.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some((hh, mm, ss))
}

/// `2026-11-25T08:00:00.123Z` from Unix nanoseconds.
pub fn iso8601(unix_nanos: i128) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000) as i64;
    let millis = (unix_nanos.rem_euclid(1_000_000_000) / 1_000_000) as u32;
    let (y, m, d, hh, mm, ss) = split(secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (or `+00:00`) into Unix nanoseconds.
pub fn parse_iso8601(s: &str) -> Option<i128> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let time = time
        .strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))?;
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let (hh, mm, ss) = parse_hms(hms)?;
    let mut nanos: i128 = 0;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = &frac[..frac.len().min(9)];
        nanos = digits.parse::<i128>().ok()? * 10i128.pow(9 - digits.len() as u32);
    }
    let secs = unix_secs(y, m, d, hh, mm, ss)?;
    (secs as i128)
        .checked_mul(1_000_000_000)?
        .checked_add(nanos)
}

/// `20261125T080000Z`: the ISO 8601 basic form of Signature V4's `x-kss-date` / `x-amz-date`.
pub fn amz_date(unix_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = split(unix_secs);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// Parses `YYYYMMDDTHHMMSSZ` (exactly 16 characters) into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // m and d are in range, so the casts are exact.
    unix_secs(y, m as u32, d as u32, hh, mm, ss)
}

/// `2026-11-25T08:00:00Z`: RFC 3339 in UTC without fractions, as Go's `time.RFC3339`
/// writes a UTC time (distribution's upload `startedat`).
pub fn rfc3339(unix_secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = split(unix_secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Unix seconds of an RFC 3339 time (`2023-05-11T10:00:00Z`, with optional fractions and
/// a numeric offset), as Go's `time.Parse(time.RFC3339, …)` reads it.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r| num_in(s, r);
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return None;
            }
            let oh: i64 = num_in(rest, 1..3)?;
            let om: i64 = num_in(rest, 4..6)?;
            let o = oh * 3600 + om * 60;
            if rb[0] == b'-' {
                -o
            } else {
                o
            }
        }
    };
    // mo and d are in range, so the casts are exact.
    unix_secs(y, mo as u32, d as u32, h, mi, se)?.checked_sub(offset)
}

/// The digits of `s[r]` as a number; `None` for anything else (a sign included).
fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<i64> {
    let t = s.get(r)?;
    if t.bytes().all(|c| c.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_years_are_rejected_not_overflowed() {
        for y in [
            "10000",
            "99999999999999",
            "9223372036854775807",
            "-9223372036854775808",
            "-1",
        ] {
            assert_eq!(
                parse_http_date(&format!("Wed, 25 Nov {y} 08:00:00 GMT")),
                None,
                "{y}"
            );
            assert_eq!(
                parse_iso8601(&format!("{y}-11-25T08:00:00.5Z")),
                None,
                "{y}"
            );
        }
        assert_eq!(
            parse_iso8601("9999-12-31T23:59:59.999999999Z"),
            Some(253_402_300_799_999_999_999)
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799)
        );
        assert_eq!(
            parse_http_date("Thu, 01 Jan 0000 00:00:00 GMT"),
            Some(-62_167_219_200)
        );
        // Formatting the extremes does not panic either.
        for s in [i64::MIN, i64::MIN / 2, -1, 0, i64::MAX / 2, i64::MAX] {
            let _ = http_date(s);
            let _ = amz_date(s);
        }
        let _ = iso8601(i128::MAX);
        let _ = iso8601(i128::MIN);
    }

    #[test]
    fn http_date_round_trip() {
        let t = 1_795_593_600; // 2026-11-25T08:00:00Z
        assert_eq!(http_date(t), "Wed, 25 Nov 2026 08:00:00 GMT");
        assert_eq!(parse_http_date("Wed, 25 Nov 2026 08:00:00 GMT"), Some(t));
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_http_date("Wed, 25 Nov 2026 25:00:00 GMT"), None);
    }

    #[test]
    fn iso_round_trip() {
        let n = 1_795_593_600_123_000_000i128;
        assert_eq!(iso8601(n), "2026-11-25T08:00:00.123Z");
        assert_eq!(parse_iso8601("2026-11-25T08:00:00.123Z"), Some(n));
        assert_eq!(parse_iso8601("2026-11-25T08:00:00Z"), Some(n - 123_000_000));
        assert_eq!(parse_iso8601("2026-13-25T08:00:00Z"), None);
    }

    #[test]
    fn amz_date_round_trip() {
        let t = 1_795_593_600;
        assert_eq!(amz_date(t), "20261125T080000Z");
        assert_eq!(parse_amz_date("20261125T080000Z"), Some(t));
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        for bad in [
            "20261125T080000",
            "2026112T5080000Z",
            "20261325T080000Z",
            "2026-1125T08000Z",
            "20261125T240000Z",
            "+0261125T080000Z",
            "",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_as_go_reads_it() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-05-11T10:00:00Z"), Some(1_683_799_200));
        assert_eq!(
            parse_rfc3339("2023-05-11T12:00:00.123+02:00"),
            Some(1_683_799_200)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T00:00:00-01:30"),
            Some(951_787_800)
        );
        for bad in [
            "",
            "2023-05-11",
            "2023-05-11 10:00:00Z",
            "2023-13-11T10:00:00Z",
            "2023-05-11T10:00:00",
            "2023-05-11T10:00:00.Z",
            "2023-05-11T10:00:00+0200",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_as_go_writes_it() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_683_799_200), "2023-05-11T10:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
