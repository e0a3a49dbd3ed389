//! `Config.Healthcheck`: parsing it into a probe with dockerd's defaults,
//! and merging a container's settings over its image's.

use std::time::Duration;

use serde_json::{Map, Value};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: u32 = 3;

/// The fields that, when zero or absent, are taken from the image.
const DURATIONS: [&str; 4] = ["Interval", "Timeout", "StartPeriod", "StartInterval"];

/// A configured probe, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What the exec runs: `CMD` args as given, `CMD-SHELL` through the
    /// container's shell.
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

fn duration(obj: &Map<String, Value>, key: &str, default: Duration) -> Duration {
    match obj.get(key).and_then(Value::as_i64) {
        Some(ns) if ns > 0 => Duration::from_nanos(ns as u64),
        _ => default,
    }
}

impl Check {
    /// The probe of a container's healthcheck; `None` when there is none
    /// to run (absent, empty, `NONE`, or a type dockerd does not know).
    /// `shell` is the container's `Config.Shell`.
    pub fn parse(healthcheck: Option<&Value>, shell: Option<&[String]>) -> Option<Check> {
        let obj = healthcheck?.as_object()?;
        let test: Vec<&str> = obj
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let (kind, rest) = test.split_first()?;
        let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        let cmd = match *kind {
            "CMD" => rest,
            "CMD-SHELL" => {
                let mut cmd: Vec<String> = match shell {
                    Some(s) if !s.is_empty() => s.to_vec(),
                    _ => vec!["/bin/sh".into(), "-c".into()],
                };
                cmd.extend(rest);
                cmd
            }
            _ => return None,
        };
        let retries = match obj.get("Retries").and_then(Value::as_i64) {
            Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => DEFAULT_RETRIES,
        };
        Some(Check {
            cmd,
            interval: duration(obj, "Interval", DEFAULT_INTERVAL),
            timeout: duration(obj, "Timeout", DEFAULT_TIMEOUT),
            start_period: duration(obj, "StartPeriod", DEFAULT_START_PERIOD),
            start_interval: duration(obj, "StartInterval", DEFAULT_START_INTERVAL),
            retries,
        })
    }

    /// The wait before the next probe, `elapsed` after the container
    /// started: dockerd probes right when the start period ends, and every
    /// `start_interval` during it while the container has not been healthy.
    pub fn next_interval(&self, elapsed: Duration, starting: bool) -> Duration {
        if elapsed >= self.start_period {
            return self.interval;
        }
        let remaining = self.start_period - elapsed;
        if remaining < self.interval {
            remaining
        } else if starting {
            self.start_interval
        } else {
            self.interval
        }
    }
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// The container's healthcheck over the image's, field by field as
/// dockerd merges them: what the container leaves empty or zero comes from
/// the image (so `--health-interval` alone keeps the image's test).
pub fn merge(user: &mut Option<Value>, image: Option<&Value>) {
    let Some(Value::Object(image)) = image else {
        return;
    };
    let Some(Value::Object(own)) = user else {
        *user = Some(Value::Object(image.clone()));
        return;
    };
    for key in ["Test", "Retries"].into_iter().chain(DURATIONS) {
        if is_unset(own.get(key)) {
            if let Some(v) = image.get(key).filter(|v| !is_unset(Some(v))) {
                own.insert(key.to_string(), v.clone());
            }
        }
    }
}

/// API 1.44 added `StartInterval`; dockerd ignores one an older client
/// sends.
pub fn strip_start_interval(healthcheck: &mut Option<Value>) {
    if let Some(Value::Object(h)) = healthcheck {
        h.remove("StartInterval");
    }
}

/// A duration as Go prints it (`30s`, `1.5s`, `500ms`, `1m30s`), for
/// dockerd's timeout message.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    let frac = |value: u128, unit: u128| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.to_string().len() - 1;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let secs_ns = ns % 60_000_000_000;
    let mins = ns / 60_000_000_000;
    let s = format!("{}s", frac(secs_ns, 1_000_000_000));
    if mins == 0 {
        return s;
    }
    if mins < 60 {
        return format!("{mins}m{s}");
    }
    format!("{}h{}m{s}", mins / 60, mins % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_with_defaults_and_shell() {
        let c = Check::parse(Some(&json!({"Test": ["CMD-SHELL", "exit 1"]})), None).unwrap();
        assert_eq!(c.cmd, vec!["/bin/sh", "-c", "exit 1"]);
        assert_eq!(
            (
                c.interval,
                c.timeout,
                c.start_period,
                c.start_interval,
                c.retries
            ),
            (
                DEFAULT_INTERVAL,
                DEFAULT_TIMEOUT,
                Duration::ZERO,
                DEFAULT_START_INTERVAL,
                3
            )
        );
        let shell = vec!["/bin/ash".to_string(), "-e".into(), "-c".into()];
        let c = Check::parse(
            Some(
                &json!({"Test": ["CMD-SHELL", "true"], "Interval": 1_000_000_000i64, "Retries": 2}),
            ),
            Some(&shell),
        )
        .unwrap();
        assert_eq!(c.cmd, vec!["/bin/ash", "-e", "-c", "true"]);
        assert_eq!((c.interval, c.retries), (Duration::from_secs(1), 2));
        let c = Check::parse(Some(&json!({"Test": ["CMD", "cat", "/x"]})), None).unwrap();
        assert_eq!(c.cmd, vec!["cat", "/x"]);
        for none in [
            json!({"Test": ["NONE"]}),
            json!({"Test": []}),
            json!({}),
            json!({"Test": ["X", "y"]}),
        ] {
            assert_eq!(Check::parse(Some(&none), None), None, "{none}");
        }
        assert_eq!(Check::parse(None, None), None);
    }

    #[test]
    fn merges_field_by_field() {
        let image = json!({"Test": ["CMD", "img"], "Interval": 5, "Retries": 7});
        let mut user = None;
        merge(&mut user, Some(&image));
        assert_eq!(user, Some(image.clone()));
        let mut user = Some(json!({"Interval": 9, "Timeout": 0}));
        merge(&mut user, Some(&image));
        assert_eq!(
            user,
            Some(json!({"Test": ["CMD", "img"], "Interval": 9, "Timeout": 0, "Retries": 7}))
        );
        let mut user = Some(json!({"Test": ["NONE"]}));
        merge(&mut user, Some(&image));
        assert_eq!(user.unwrap()["Test"], json!(["NONE"]));
        let mut user = Some(json!({"Test": ["CMD", "own"]}));
        merge(&mut user, None);
        assert_eq!(user, Some(json!({"Test": ["CMD", "own"]})));
    }

    #[test]
    fn intervals_follow_the_start_period() {
        let c = Check {
            cmd: vec![],
            interval: Duration::from_secs(30),
            timeout: DEFAULT_TIMEOUT,
            start_period: Duration::from_secs(60),
            start_interval: Duration::from_secs(5),
            retries: 3,
        };
        let s = Duration::from_secs;
        assert_eq!(c.next_interval(s(0), true), s(5));
        assert_eq!(c.next_interval(s(0), false), s(30));
        assert_eq!(c.next_interval(s(50), true), s(10));
        assert_eq!(c.next_interval(s(60), true), s(30));
        let no_period = Check {
            start_period: Duration::ZERO,
            ..c
        };
        assert_eq!(no_period.next_interval(s(0), true), s(30));
    }

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (Duration::from_secs(30), "30s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_micros(2), "2µs"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1_000_001), "1.000001ms"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want);
        }
    }
}
