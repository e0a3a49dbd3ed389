//! `State.Health`: the status, the failing streak and the last results,
//! in dockerd's JSON shape (persisted with the container record as is).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Results kept in `Log`, as dockerd.
pub const MAX_LOG_ENTRIES: usize = 5;
/// Output kept per result; more is cut and marked with `...`.
pub const MAX_OUTPUT: usize = 4096;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }

    /// How `docker ps` shows it after `Up …`.
    pub fn ps_text(self) -> &'static str {
        match self {
            Status::Starting => "health: starting",
            other => other.as_str(),
        }
    }
}

/// One probe run (`HealthcheckResult`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ProbeResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: Status,
    pub failing_streak: u64,
    #[serde(default)]
    pub log: Vec<ProbeResult>,
}

impl Health {
    /// A (re)started container: starting again, the log kept.
    pub fn restart(previous: Option<Health>) -> Health {
        Health {
            status: Status::Starting,
            failing_streak: 0,
            log: previous.map(|h| h.log).unwrap_or_default(),
        }
    }

    /// Add a probe's result, `since_start` after the container started
    /// (at the probe's start). Failures in the start period do not count
    /// while the container has not been healthy yet. Returns the new status
    /// when it changed.
    pub fn record(
        &mut self,
        result: ProbeResult,
        retries: u32,
        start_period: Duration,
        since_start: Duration,
    ) -> Option<Status> {
        let before = self.status;
        let ok = result.exit_code == 0;
        if self.log.len() >= MAX_LOG_ENTRIES {
            self.log.drain(..=self.log.len() - MAX_LOG_ENTRIES);
        }
        self.log.push(result);
        if ok {
            self.failing_streak = 0;
            self.status = Status::Healthy;
        } else if !(self.status == Status::Starting && since_start < start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= u64::from(retries) {
                self.status = Status::Unhealthy;
            }
        }
        (self.status != before).then_some(self.status)
    }
}

/// Probe output capped at [`MAX_OUTPUT`] bytes, as dockerd's buffer.
#[derive(Debug, Default)]
pub struct Output {
    buf: Vec<u8>,
    truncated: bool,
}

impl Output {
    pub fn push(&mut self, data: &[u8]) {
        let room = MAX_OUTPUT - self.buf.len();
        let keep = room.min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> ProbeResult {
        ProbeResult {
            start: "s".into(),
            end: "e".into(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn streaks_and_status() {
        let mut h = Health::restart(None);
        let z = Duration::ZERO;
        assert_eq!(h.record(result(1), 2, z, z), None);
        assert_eq!(h.failing_streak, 1);
        assert_eq!(h.record(result(1), 2, z, z), Some(Status::Unhealthy));
        assert_eq!(h.record(result(0), 2, z, z), Some(Status::Healthy));
        assert_eq!(h.failing_streak, 0);
        assert_eq!(h.record(result(-1), 1, z, z), Some(Status::Unhealthy));
        for _ in 0..10 {
            h.record(result(3), 1, z, z);
        }
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
        assert_eq!(h.failing_streak, 11);
        let h = Health::restart(Some(h));
        assert_eq!(
            (h.status, h.failing_streak, h.log.len()),
            (Status::Starting, 0, 5)
        );
    }

    #[test]
    fn start_period_failures_do_not_count_until_healthy() {
        let mut h = Health::restart(None);
        let p = Duration::from_secs(60);
        let early = Duration::from_secs(1);
        assert_eq!(h.record(result(1), 1, p, early), None);
        assert_eq!((h.status, h.failing_streak), (Status::Starting, 0));
        assert_eq!(h.record(result(1), 1, p, p), Some(Status::Unhealthy));
        let mut h = Health::restart(None);
        h.record(result(0), 1, p, early);
        assert_eq!(h.record(result(1), 1, p, early), Some(Status::Unhealthy));
    }

    #[test]
    fn output_is_capped() {
        let mut o = Output::default();
        o.push(b"abc");
        assert_eq!(o.text(), "abc");
        o.push(&vec![b'x'; MAX_OUTPUT]);
        let t = o.text();
        assert_eq!(t.len(), MAX_OUTPUT + 3);
        assert!(t.ends_with("x..."));
    }

    #[test]
    fn json_shape_is_dockerds() {
        let mut h = Health::restart(None);
        h.record(result(0), 3, Duration::ZERO, Duration::ZERO);
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["Status"], "healthy");
        assert_eq!(v["FailingStreak"], 0);
        assert_eq!(v["Log"][0]["ExitCode"], 0);
        assert!(v["Log"][0].get("Start").is_some());
    }
}
