//! Docker-style list filters: `{"key": ["v1", "v2"]}` after the API layer
//! decoded the `filters` query parameter.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::reference::Reference;

pub type Filters = HashMap<String, Vec<String>>;

pub fn validate(f: &Filters, accepted: &[&str]) -> Result<()> {
    for k in f.keys() {
        if !accepted.contains(&k.as_str()) {
            return Err(Error::invalid(format!("invalid filter '{k}'")));
        }
    }
    Ok(())
}

/// A boolean filter such as `dangling=true`; several values must agree.
pub fn bool_filter(f: &Filters, key: &str) -> Result<Option<bool>> {
    let Some(values) = f.get(key) else {
        return Ok(None);
    };
    let mut out = None;
    for v in values {
        let b = match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(Error::invalid(format!("Invalid filter '{key}={v}'"))),
        };
        if out.is_some_and(|o| o != b) {
            return Err(Error::invalid(format!("Invalid filter '{key}={v}'")));
        }
        out = Some(b);
    }
    Ok(out)
}

/// `label=key` or `label=key=value`; all must match.
pub fn labels_match(wanted: &[String], labels: &serde_json::Map<String, Value>) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
        None => labels.contains_key(w.as_str()),
    })
}

/// dockerd's `until`: a Unix timestamp (with optional fraction), an RFC 3339
/// time, or a duration before now such as `10m`, `24h`.
pub fn parse_until(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(secs) = s.parse::<f64>() {
        let whole = secs.trunc() as i64;
        let nanos = ((secs - secs.trunc()) * 1e9) as u32;
        return DateTime::from_timestamp(whole, nanos)
            .ok_or_else(|| Error::invalid(format!("invalid until value {s:?}")));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(d) = parse_duration(s) {
        return Ok(Utc::now() - d);
    }
    Err(Error::invalid(format!(
        "failed to parse value {s:?} as a timestamp, RFC 3339 time or duration"
    )))
}

fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::zero();
    let mut num = String::new();
    let mut any = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            unit = "ms".into();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        let ms = match unit.as_str() {
            "h" => n * 3_600_000.0,
            "m" => n * 60_000.0,
            "s" => n * 1000.0,
            "ms" => n,
            _ => return None,
        };
        total += Duration::milliseconds(ms as i64);
        any = true;
    }
    (any && num.is_empty()).then_some(total)
}

/// `reference=pattern`: the familiar `name:tag` or the familiar name alone
/// must match the glob (`*`, `?`, `[...]`; `*` does not cross `/`).
pub fn reference_matches(pattern: &str, r: &Reference) -> bool {
    glob_match(pattern.as_bytes(), r.familiar().as_bytes())
        || glob_match(pattern.as_bytes(), r.familiar_name().as_bytes())
}

/// Go's `path.Match` semantics, iteratively: on a mismatch only the most
/// recent `*` is extended, so the cost is O(pattern × name) whatever the
/// pattern.
pub fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    // (pattern index after the last `*`, name index that star matched up to)
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if p.get(pi) == Some(&b'*') {
            pi += 1;
            star = Some((pi, si));
            continue;
        }
        if let Some(next) = match_one(p, pi, s[si]) {
            pi = next;
            si += 1;
            continue;
        }
        match star {
            Some((after, upto)) if s[upto] != b'/' => {
                star = Some((after, upto + 1));
                pi = after;
                si = upto + 1;
            }
            _ => return false,
        }
    }
    while p.get(pi) == Some(&b'*') {
        pi += 1;
    }
    pi == p.len()
}

/// If the pattern token at `pi` matches the byte `c`, the index after it.
fn match_one(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    match *p.get(pi)? {
        b'?' => (c != b'/').then_some(pi + 1),
        b'\\' => {
            let lit = *p.get(pi + 1)?;
            (lit == c).then_some(pi + 2)
        }
        b'[' => {
            let end = pi + 1 + p[pi + 1..].iter().position(|&x| x == b']')?;
            if c == b'/' {
                return None;
            }
            let mut class = &p[pi + 1..end];
            let negate = class.first() == Some(&b'^');
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            (hit != negate).then_some(end + 1)
        }
        lit => (lit == c).then_some(pi + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"busy*", b"busybox:latest"));
        assert!(glob_match(b"*:latest", b"busybox:latest"));
        assert!(!glob_match(b"*", b"a/b"));
        assert!(glob_match(b"a/*", b"a/b"));
        assert!(glob_match(b"b?sybox", b"busybox"));
        assert!(glob_match(b"[a-c]usybox", b"busybox"));
        assert!(!glob_match(b"[^b]usybox", b"busybox"));
        assert!(glob_match(b"*a*b", b"xaxxb"));
        assert!(!glob_match(b"*a*b", b"xaxx/b"));
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a", b""));
        assert!(glob_match(b"a\\*", b"a*"));
        assert!(!glob_match(b"a\\*", b"ab"));
        // Pathological patterns stay fast.
        let long = vec![b'a'; 300];
        let mut pat = b"*a".repeat(20);
        pat.push(b'b');
        let t = std::time::Instant::now();
        assert!(!glob_match(&pat, &long));
        assert!(t.elapsed() < std::time::Duration::from_millis(200));
    }

    #[test]
    fn reference_filter_uses_familiar_names() {
        let r = Reference::parse_normalized("busybox:1.36").unwrap();
        assert!(reference_matches("busybox", &r));
        assert!(reference_matches("busybox:1.*", &r));
        assert!(!reference_matches("alpine", &r));
    }

    #[test]
    fn until_forms() {
        assert_eq!(parse_until("1700000000").unwrap().timestamp(), 1700000000);
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z").unwrap().timestamp(),
            1700000000
        );
        let d = parse_until("1h30m").unwrap();
        assert!((Utc::now() - d).num_minutes() >= 89);
        assert!(parse_until("yesterday").is_err());
    }

    #[test]
    fn bools() {
        let mut f = Filters::new();
        f.insert("dangling".into(), vec!["true".into()]);
        assert_eq!(bool_filter(&f, "dangling").unwrap(), Some(true));
        f.insert("dangling".into(), vec!["maybe".into()]);
        assert!(bool_filter(&f, "dangling").is_err());
        assert!(validate(&f, &["label"]).is_err());
    }
}
