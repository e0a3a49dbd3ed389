//! Log times: parsing the RFC 3339 strings in the log file, formatting the
//! `timestamps` prefix as dockerd does (Go's RFC3339NanoFixed: always nine
//! fraction digits), and parsing the `since`/`until` query values.

use chrono::{DateTime, SecondsFormat, Utc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid timestamp {0:?}: expected unix seconds (with an optional fraction) or RFC 3339")]
pub struct BadTimestamp(pub String);

/// Nanoseconds since the epoch of an RFC 3339 time from a log line.
pub fn parse_log_time(raw: &[u8]) -> Option<i64> {
    parse_utc_fast(raw).or_else(|| {
        let s = std::str::from_utf8(raw).ok()?;
        DateTime::parse_from_rfc3339(s).ok()?.timestamp_nanos_opt()
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the only form the shim writes.
fn parse_utc_fast(raw: &[u8]) -> Option<i64> {
    if raw.len() < 20 || raw[raw.len() - 1] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &b in raw.get(range)? {
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(b - b'0');
        }
        Some(v)
    };
    if raw[4] != b'-' || raw[7] != b'-' || raw[10] != b'T' || raw[13] != b':' || raw[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut nanos = 0i64;
    let frac = &raw[19..raw.len() - 1];
    if !frac.is_empty() {
        if frac[0] != b'.' || frac.len() < 2 || frac.len() > 10 {
            return None;
        }
        let digits = num(20..raw.len() - 1)?;
        nanos = digits * 10i64.pow(10 - frac.len() as u32);
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 24 + h) * 60 + mi) * 60 * 1_000_000_000 + s * 1_000_000_000 + nanos)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Appends `time` as `2006-01-02T15:04:05.000000000Z` (UTC, nine digits).
pub fn push_fixed(raw: &[u8], out: &mut Vec<u8>) {
    if parse_utc_fast(raw).is_some() {
        // Already UTC: copy and pad the fraction.
        let digits = raw.get(20..raw.len() - 1).unwrap_or(&[]);
        out.extend_from_slice(&raw[..19]);
        out.push(b'.');
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', 9 - digits.len()));
        out.push(b'Z');
        return;
    }
    match parse_log_time(raw) {
        Some(n) => out.extend_from_slice(
            DateTime::<Utc>::from_timestamp_nanos(n)
                .to_rfc3339_opts(SecondsFormat::Nanos, true)
                .as_bytes(),
        ),
        None => out.extend_from_slice(raw),
    }
}

/// A `since`/`until` query value: unix seconds with an optional fraction
/// (what the docker CLI sends) or an RFC 3339 time. Returns nanoseconds.
pub fn parse_query_time(value: &str) -> Result<i64, BadTimestamp> {
    let bad = || BadTimestamp(value.to_string());
    let v = value.trim();
    if v.contains(['T', 't']) || v.matches('-').count() >= 2 {
        return DateTime::parse_from_rfc3339(v)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or_else(bad);
    }
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|_| bad())? * 10i64.pow(9 - frac.len() as u32)
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(if secs < 0 { -nanos } else { nanos }))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(raw: &str) -> String {
        let mut out = Vec::new();
        push_fixed(raw.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_like_chrono() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-22T06:31:00.123456789Z",
            "2026-11-22T06:31:00.12Z",
            "2000-02-29T23:59:59.5Z",
            "2026-03-01T00:00:00.000000001Z",
        ] {
            let want = DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_nanos_opt();
            assert_eq!(parse_utc_fast(s.as_bytes()), want, "{s}");
        }
        assert_eq!(
            parse_log_time(b"2026-11-22T08:31:00+02:00"),
            parse_log_time(b"2026-11-22T06:31:00Z")
        );
        assert_eq!(parse_log_time(b"yesterday"), None);
        assert_eq!(parse_log_time(b"2026-13-22T06:31:00Z"), None);
    }

    #[test]
    fn fixed_format_always_has_nine_digits() {
        assert_eq!(
            fixed("2026-11-22T06:31:00.12Z"),
            "2026-11-22T06:31:00.120000000Z"
        );
        assert_eq!(
            fixed("2026-11-22T06:31:00Z"),
            "2026-11-22T06:31:00.000000000Z"
        );
        assert_eq!(
            fixed("2026-11-22T06:31:00.123456789Z"),
            "2026-11-22T06:31:00.123456789Z"
        );
        assert_eq!(
            fixed("2026-11-22T08:31:00.5+02:00"),
            "2026-11-22T06:31:00.500000000Z"
        );
    }

    #[test]
    fn query_times() {
        assert_eq!(
            parse_query_time("1700000000"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_query_time("1700000000.5"),
            Ok(1_700_000_000_500_000_000)
        );
        assert_eq!(
            parse_query_time("1700000000.000000001"),
            Ok(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_query_time("2023-11-14T22:13:20Z"),
            Ok(1_700_000_000_000_000_000)
        );
        assert!(parse_query_time("10m").is_err());
        assert!(parse_query_time("1.1234567891").is_err());
        assert!(parse_query_time("").is_err());
    }
}
