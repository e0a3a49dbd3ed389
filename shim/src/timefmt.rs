//! RFC 3339 timestamps in UTC with nanoseconds, formatted the way Go's
//! `time.RFC3339Nano` does (trailing zeros of the fraction dropped), which is
//! what dockerd writes into json-file logs and `FinishedAt`.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> String {
    format_system_time(SystemTime::now())
}

pub fn format_system_time(t: SystemTime) -> String {
    // Times before 1970 do not occur for log lines; clamp instead of failing.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format_unix(d.as_secs() as i64, d.subsec_nanos())
}

pub fn format_unix(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_unix(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
        assert_eq!(
            format_unix(1_700_000_000, 120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
        // A leap day.
        assert_eq!(format_unix(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_unix(1_798_761_599, 999_999_999),
            "2026-12-31T23:59:59.999999999Z"
        );
    }
}
