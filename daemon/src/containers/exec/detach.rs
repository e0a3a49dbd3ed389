//! Detach key sequences (`--detach-keys`, default ctrl-p ctrl-q): scanning
//! a client's stdin for them, holding back a partial match until it is
//! known whether it completes.

/// dockerd's default: ctrl-p, ctrl-q.
pub const DEFAULT: &[u8] = &[0x10, 0x11];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Invalid detach keys ({0}) provided")]
pub struct InvalidDetachKeys(pub String);

/// Parse `ctrl-p,ctrl-q` / `a,ctrl-@`: comma-separated single characters
/// or `ctrl-X` for X in `a-z @ [ \ ] ^ _`. Empty means the default.
pub fn parse(spec: &str) -> Result<Vec<u8>, InvalidDetachKeys> {
    if spec.is_empty() {
        return Ok(DEFAULT.to_vec());
    }
    let bad = || InvalidDetachKeys(spec.to_string());
    spec.split(',')
        .map(|key| {
            let key = key.trim();
            if let Some(rest) = key.strip_prefix("ctrl-") {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c @ 'a'..='z'), None) => Ok(c as u8 - b'a' + 1),
                    (Some(c @ ('@' | '[' | '\\' | ']' | '^' | '_')), None) => Ok(c as u8 - b'@'),
                    _ => Err(bad()),
                }
            } else {
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii() => Ok(c as u8),
                    _ => Err(bad()),
                }
            }
        })
        .collect()
}

/// What to do with a chunk of client input.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Forward these bytes (possibly empty while a match is pending).
    Forward(Vec<u8>),
    /// The sequence was typed: forward these bytes first, then detach.
    Detach(Vec<u8>),
}

/// Scanner state across reads.
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachScanner { keys, matched: 0 }
    }

    pub fn feed(&mut self, input: &[u8]) -> Scan {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scan::Detach(out);
                }
                continue;
            }
            // The held-back prefix was ordinary input after all.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return Scan::Detach(out);
                }
            } else {
                out.push(b);
            }
        }
        Scan::Forward(out)
    }

    /// Bytes held back when the input ends.
    pub fn pending(&self) -> &[u8] {
        &self.keys[..self.matched]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_dockerd() {
        assert_eq!(parse("").unwrap(), vec![16, 17]);
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse("a,ctrl-@,ctrl-_").unwrap(), vec![b'a', 0, 31]);
        assert_eq!(
            parse("ctrl-1").unwrap_err().to_string(),
            "Invalid detach keys (ctrl-1) provided"
        );
        assert!(parse("ab").is_err());
    }

    #[test]
    fn detects_across_reads_and_releases_false_starts() {
        let mut s = DetachScanner::new(DEFAULT.to_vec());
        assert_eq!(s.feed(b"ls\x10"), Scan::Forward(b"ls".to_vec()));
        assert_eq!(s.pending(), &[0x10]);
        assert_eq!(s.feed(b"x"), Scan::Forward(b"\x10x".to_vec()));
        assert_eq!(s.feed(b"a\x10\x10"), Scan::Forward(b"a\x10".to_vec()));
        assert_eq!(s.feed(b"\x11rest"), Scan::Detach(Vec::new()));
        let mut s = DetachScanner::new(b"q".to_vec());
        assert_eq!(s.feed(b"abqz"), Scan::Detach(b"ab".to_vec()));
    }
}
