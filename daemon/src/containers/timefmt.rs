//! Timestamps as dockerd prints them (Go's RFC3339Nano: trailing zeros of
//! the fraction trimmed) and human durations as `docker ps` shows them.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now() -> String {
    format_time(Utc::now())
}

pub fn format_time(t: DateTime<Utc>) -> String {
    let s = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // "…:05.120000000Z" → "…:05.12Z"; "…:05.000000000Z" → "…:05Z".
    match s.rfind('.') {
        Some(dot) => {
            let frac = s[dot + 1..s.len() - 1].trim_end_matches('0');
            if frac.is_empty() {
                format!("{}Z", &s[..dot])
            } else {
                format!("{}.{}Z", &s[..dot], frac)
            }
        }
        None => s,
    }
}

pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Seconds since the epoch of an RFC 3339 time (0 when unparsable).
pub fn unix(s: &str) -> i64 {
    parse(s).map(|t| t.timestamp()).unwrap_or(0)
}

/// go-units' HumanDuration.
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = ((d.num_milliseconds() as f64) / 3_600_000.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.num_hours() / 24 / 365)
}

/// Time since `s` as a human duration.
pub fn since(s: &str) -> String {
    let t = parse(s).unwrap_or_else(Utc::now);
    human_duration(Utc::now() - t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_like_go() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T06:30:31.120000000Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(t), "2026-11-22T06:30:31.12Z");
        let t = DateTime::parse_from_rfc3339("2026-11-22T06:30:31Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(t), "2026-11-22T06:30:31Z");
    }

    #[test]
    fn human() {
        use chrono::Duration as D;
        assert_eq!(human_duration(D::milliseconds(300)), "Less than a second");
        assert_eq!(human_duration(D::seconds(3)), "3 seconds");
        assert_eq!(human_duration(D::seconds(65)), "About a minute");
        assert_eq!(human_duration(D::minutes(5)), "5 minutes");
        assert_eq!(human_duration(D::minutes(61)), "About an hour");
        assert_eq!(human_duration(D::hours(5)), "5 hours");
        assert_eq!(human_duration(D::days(3)), "3 days");
    }
}
