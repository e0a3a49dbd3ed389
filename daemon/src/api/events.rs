//! GET /events: past events (since/until) then live ones, one JSON object
//! per line, each flushed as it happens.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, ApiResult};
use super::extract::{Filters, QueryParams};
use super::stream::streaming_response;
use crate::daemon::AppState;
use crate::events::{now_nanos, Event, EventType};

const FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(State(state): State<AppState>, query: QueryParams) -> ApiResult<Response> {
    let filters = query.filters()?;
    filters.validate(FILTERS)?;
    let now = now_nanos();
    let since = parse_time(query.get("since").unwrap_or(""), now)?;
    let until = parse_time(query.get("until").unwrap_or(""), now)?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request(
                "`since` time cannot be after `until` time",
            ));
        }
    }
    let replay_from = match (since, until) {
        (None, None) => None,
        (s, _) => Some(s.unwrap_or(i64::MIN)),
    };
    let mut sub = state.events.subscribe(replay_from);
    let (tx, resp) = streaming_response("application/json");
    tokio::spawn(async move {
        let in_window = |e: &Event| until.is_none_or(|u| e.time_nano <= u);
        for event in sub
            .past
            .iter()
            .filter(|e| in_window(e) && matches(&filters, e))
        {
            if tx.send_json(&event.to_json()).await.is_err() {
                return;
            }
        }
        if until.is_some_and(|u| u <= now_nanos()) {
            return;
        }
        let deadline = until.map(|u| {
            let wait = u.saturating_sub(now_nanos()).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_nanos(wait)
        });
        loop {
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = expired => return,
                _ = tx.closed() => return,
                _ = sub.closing() => return,
                received = sub.live.recv() => match received {
                    Ok(event) => {
                        if !in_window(&event) {
                            return;
                        }
                        if matches(&filters, &event) && tx.send_json(&event.to_json()).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "events subscriber too slow; events dropped");
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    Ok(resp)
}

/// dockerd's event filter: every given filter must match.
pub fn matches(f: &Filters, e: &Event) -> bool {
    let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
    let fuzzy_name = |key: &str| {
        f.matches_any(key, |v| {
            e.actor_id.starts_with(v) || (!attr("name").is_empty() && attr("name").starts_with(v))
        })
    };
    let event_ok = f.matches_any("event", |v| {
        e.action == v
            || (matches!(v, "health_status" | "exec_create" | "exec_start")
                && e.action.starts_with(v))
    });
    let image_name = if e.kind == EventType::Image {
        attr("name")
    } else {
        attr("image")
    };
    let image_ok = f.matches_any("image", |v| {
        v == e.actor_id
            || (!image_name.is_empty() && v == image_name)
            || v == strip_tag(&e.actor_id)
            || (!image_name.is_empty() && v == strip_tag(image_name))
    });
    event_ok
        && f.matches_exact("type", e.kind.as_str())
        && f.matches_exact("scope", e.scope)
        && fuzzy_name("daemon")
        && fuzzy_name("container")
        && fuzzy_name("plugin")
        && fuzzy_name("volume")
        && fuzzy_name("network")
        && fuzzy_name("node")
        && fuzzy_name("service")
        && fuzzy_name("secret")
        && fuzzy_name("config")
        && image_ok
        && f.matches_labels("label", |k| e.attributes.get(k).map(String::as_str))
}

/// `busybox:latest` -> `busybox`; digests and untagged names unchanged.
fn strip_tag(reference: &str) -> &str {
    if reference.contains('@') {
        return reference;
    }
    let name_start = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[name_start..].rfind(':') {
        Some(i) => &reference[..name_start + i],
        None => reference,
    }
}

/// A `since`/`until` value: Unix seconds with an optional fraction
/// ("1700000000.5"), RFC 3339, or a duration before `now` ("10m", "1h30m").
/// Empty is None. Returns nanoseconds since the epoch.
pub fn parse_time(raw: &str, now_nano: i64) -> ApiResult<Option<i64>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || {
        ApiError::bad_request(format!(
            "invalid timestamp {raw:?}: expected Unix seconds, RFC 3339 or a duration"
        ))
    };
    if raw
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        let (sec, frac) = raw.split_once('.').unwrap_or((raw, ""));
        let sec: i64 = sec.parse().map_err(|_| bad())?;
        let mut nanos: i64 = 0;
        if !frac.is_empty() {
            if !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let digits = &frac[..frac.len().min(9)];
            nanos = digits.parse::<i64>().map_err(|_| bad())? * 10i64.pow(9 - digits.len() as u32);
        }
        let signed_nanos = if sec < 0 || raw.starts_with('-') {
            -nanos
        } else {
            nanos
        };
        return sec
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(signed_nanos))
            .map(Some)
            .ok_or_else(bad);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return t.timestamp_nanos_opt().map(Some).ok_or_else(bad);
    }
    parse_duration(raw)
        .map(|d| Some(now_nano.saturating_sub(d)))
        .ok_or_else(bad)
}

/// Go-style durations: "300ms", "10s", "1.5h", "1h30m".
fn parse_duration(raw: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_700_000_000_000_000_000;
        assert_eq!(parse_time("", now).unwrap(), None);
        assert_eq!(parse_time("1700000000", now).unwrap(), Some(now));
        assert_eq!(
            parse_time("1700000000.5", now).unwrap(),
            Some(now + 500_000_000)
        );
        assert_eq!(
            parse_time("1700000000.000000001", now).unwrap(),
            Some(now + 1)
        );
        assert_eq!(parse_time("2023-11-14T22:13:20Z", now).unwrap(), Some(now));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.25+01:00", now).unwrap(),
            Some(now + 250_000_000)
        );
        assert_eq!(parse_time("1m", now).unwrap(), Some(now - 60_000_000_000));
        assert_eq!(
            parse_time("1h30m", now).unwrap(),
            Some(now - 5_400_000_000_000)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("99999999999999999h", now).unwrap().unwrap() < 0);
        assert!(parse_time("99999999999999999999", now).is_err());
        assert!(parse_time("1.x", now).is_err());
    }

    #[test]
    fn filtering() {
        let start = Event::new(EventType::Container, "start", "abcdef")
            .attr("name", "web")
            .attr("image", "busybox:latest")
            .attr("com.example", "1");
        let tag = Event::new(EventType::Image, "tag", "sha256:123").attr("name", "busybox:latest");
        let exec = Event::new(EventType::Container, "exec_start: sh -c true", "abcdef");
        let f = |s: &str| Filters::parse(s).unwrap();
        assert!(matches(&f(""), &start));
        assert!(matches(&f(r#"{"type":["container"]}"#), &start));
        assert!(!matches(&f(r#"{"type":["container"]}"#), &tag));
        assert!(matches(&f(r#"{"container":["web"]}"#), &start));
        assert!(matches(&f(r#"{"container":["abc"]}"#), &start));
        assert!(!matches(&f(r#"{"container":["xyz"]}"#), &start));
        assert!(!matches(&f(r#"{"container":["web"]}"#), &tag));
        assert!(matches(&f(r#"{"event":["start","stop"]}"#), &start));
        assert!(!matches(&f(r#"{"event":["stop"]}"#), &start));
        assert!(matches(&f(r#"{"event":["exec_start"]}"#), &exec));
        assert!(matches(&f(r#"{"image":["busybox"]}"#), &start));
        assert!(matches(&f(r#"{"image":["busybox"]}"#), &tag));
        assert!(matches(&f(r#"{"image":["sha256:123"]}"#), &tag));
        assert!(!matches(&f(r#"{"image":["alpine"]}"#), &tag));
        assert!(matches(&f(r#"{"label":["com.example=1"]}"#), &start));
        assert!(!matches(&f(r#"{"label":["com.example=2"]}"#), &start));
        assert!(matches(&f(r#"{"scope":["local"]}"#), &start));
    }

    #[test]
    fn tags_stripped() {
        assert_eq!(strip_tag("busybox:latest"), "busybox");
        assert_eq!(strip_tag("localhost:5000/a/b:1"), "localhost:5000/a/b");
        assert_eq!(strip_tag("localhost:5000/a/b"), "localhost:5000/a/b");
        assert_eq!(strip_tag("busybox@sha256:00"), "busybox@sha256:00");
    }
}
