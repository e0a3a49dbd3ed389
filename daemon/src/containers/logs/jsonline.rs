//! Decoding one json-file log line, `{"log":"...","stream":"stdout","time":"..."}`.
//!
//! The shim writes exactly that key order, so the fast path decodes it by
//! hand: the stream and time are found from the end of the line without
//! touching the (possibly huge) `log` string, and the string is unescaped
//! straight into the output buffer. Anything else (other key order, extra
//! keys such as `attrs` from a log written by dockerd) goes through serde.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The cheap part of a line: which stream, and the raw time string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta<'a> {
    pub stream: Stream,
    pub time: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed json-file log line")]
pub struct Malformed;

const FAST_PREFIX: &[u8] = b"{\"log\":\"";
const STREAM_KEY: &[u8] = b"\"stream\":\"";
const TIME_KEY: &[u8] = b"\"time\":\"";

/// The stream and time of `line` (without its `\n`).
///
/// Inside the escaped `log` string every `"` is preceded by a backslash, so
/// the byte patterns `"stream":"` and `"time":"` can only be the real keys.
pub fn meta(line: &[u8]) -> Result<Meta<'_>, Malformed> {
    let stream = field_after(line, STREAM_KEY).ok_or(Malformed)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(Malformed),
    };
    let time = field_after(line, TIME_KEY).ok_or(Malformed)?;
    Ok(Meta { stream, time })
}

/// The raw (unescaped-free) string value following the last `key` in `line`.
fn field_after<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::rfind(line, key)? + key.len();
    let len = memchr::memchr(b'"', &line[start..])?;
    Some(&line[start..start + len])
}

/// Appends the decoded `log` text of `line` to `out`.
pub fn decode_log(line: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    if let Some(rest) = line.strip_prefix(FAST_PREFIX) {
        let mark = out.len();
        if unescape_string(rest, out).is_ok() {
            return Ok(());
        }
        out.truncate(mark);
    }
    decode_slow(line, out)
}

fn decode_slow(line: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        log: String,
    }
    let entry: Entry = serde_json::from_slice(line).map_err(|_| Malformed)?;
    out.extend_from_slice(entry.log.as_bytes());
    Ok(())
}

/// Unescapes a JSON string body (after its opening quote) up to the closing
/// quote into `out`.
fn unescape_string(s: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let mut i = 0;
    loop {
        let run = memchr::memchr2(b'"', b'\\', &s[i..]).ok_or(Malformed)?;
        out.extend_from_slice(&s[i..i + run]);
        i += run;
        if s[i] == b'"' {
            return Ok(());
        }
        let esc = *s.get(i + 1).ok_or(Malformed)?;
        i += 2;
        match esc {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hi = hex4(s, i)?;
                i += 4;
                let c = if (0xD800..0xDC00).contains(&hi) {
                    match (s.get(i), s.get(i + 1)) {
                        (Some(b'\\'), Some(b'u')) => {
                            let lo = hex4(s, i + 2)?;
                            if (0xDC00..0xE000).contains(&lo) {
                                i += 6;
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            } else {
                                None
                            }
                        }
                        _ => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(Malformed),
        }
    }
}

fn hex4(s: &[u8], at: usize) -> Result<u32, Malformed> {
    let digits = s.get(at..at + 4).ok_or(Malformed)?;
    let mut v = 0u32;
    for &d in digits {
        let n = (d as char).to_digit(16).ok_or(Malformed)?;
        v = v * 16 + n;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> String {
        let mut out = Vec::new();
        decode_log(line.as_bytes(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fast_path_meta_and_text() {
        let line = br#"{"log":"hello \"stream\":\"stderr\" world\n","stream":"stdout","time":"2026-11-22T06:00:00.5Z"}"#;
        let m = meta(line).unwrap();
        assert_eq!(m.stream, Stream::Stdout);
        assert_eq!(m.time, b"2026-11-22T06:00:00.5Z");
        assert_eq!(
            decode(std::str::from_utf8(line).unwrap()),
            "hello \"stream\":\"stderr\" world\n"
        );
    }

    #[test]
    fn every_escape_round_trips_through_serde_json() {
        let text = "tab\t cr\r bs\\ q\" nul\u{0} bell\u{7} é 😀 \u{1f} /\n";
        let line = format!(
            r#"{{"log":{},"stream":"stderr","time":"T"}}"#,
            serde_json::to_string(text).unwrap()
        );
        assert_eq!(decode(&line), text);
        assert_eq!(meta(line.as_bytes()).unwrap().stream, Stream::Stderr);
        // Escapes serde_json does not produce but JSON allows.
        assert_eq!(
            decode(r#"{"log":"\/\b\f\u00e9\ud83d\ude00","stream":"stdout","time":"T"}"#),
            "/\u{8}\u{c}é😀"
        );
        // A lone surrogate becomes U+FFFD instead of failing.
        assert_eq!(
            decode(r#"{"log":"a\ud800b","stream":"stdout","time":"T"}"#),
            "a\u{fffd}b"
        );
    }

    #[test]
    fn other_key_orders_use_the_slow_path() {
        let line =
            r#"{"stream":"stdout","attrs":{"a":"b"},"time":"2026-01-01T00:00:00Z","log":"x\n"}"#;
        assert_eq!(decode(line), "x\n");
        assert_eq!(meta(line.as_bytes()).unwrap().time, b"2026-01-01T00:00:00Z");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"log\":\"abc",
            b"{\"log\":\"\\u12\"}",
            b"not json",
            b"{\"log\":\"\\",
        ] {
            let mut out = Vec::new();
            assert_eq!(
                decode_log(bad, &mut out),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
            assert!(meta(bad).is_err());
        }
        assert!(meta(br#"{"log":"","stream":"stdin","time":"T"}"#).is_err());
    }
}
