//! `CpusetCpus` / `CpusetMems`: the kernel's list syntax (`0-2,4`) and the
//! check that every requested CPU or memory node exists on the host, with
//! dockerd's messages.

use std::ops::RangeInclusive;

/// dockerd's bound on list values (unless the host has more), so that a
/// request like `1-9223372036854775807` costs nothing (CVE-2018-20699).
const DEFAULT_MAX: u32 = 8192;

/// Parse `0-2,4` into ranges. Values above `max` are an error of their
/// own (dockerd's wording).
fn parse(list: &str, max: u32) -> Result<Vec<RangeInclusive<u32>>, String> {
    let invalid = || format!("invalid format: {list}");
    let num = |s: &str| -> Result<u32, String> {
        // Digits only: Go's Atoi takes a sign, the kernel does not.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let n: u64 = s.parse().map_err(|_| invalid())?;
        if n > u64::from(max) {
            return Err(format!("value of out range, maximum is {max}"));
        }
        Ok(n as u32)
    };
    let mut out = Vec::new();
    for part in list.split(',') {
        let range = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(invalid());
                }
                a..=b
            }
            None => {
                let n = num(part)?;
                n..=n
            }
        };
        out.push(range);
    }
    Ok(out)
}

/// The host's set, as the kernel prints it (`0-1`).
fn available(kind: Kind) -> (String, Vec<RangeInclusive<u32>>) {
    let files: &[&str] = match kind {
        Kind::Cpus => &[
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
            "/sys/fs/cgroup/cpuset.cpus.effective",
            "/sys/devices/system/cpu/online",
        ],
        Kind::Mems => &[
            "/sys/fs/cgroup/cpuset/cpuset.mems",
            "/sys/fs/cgroup/cpuset.mems.effective",
            "/sys/devices/system/node/online",
        ],
    };
    for f in files {
        if let Ok(s) = std::fs::read_to_string(f) {
            let s = s.trim().to_string();
            if let Ok(r) = parse(&s, u32::MAX) {
                return (s, r);
            }
        }
    }
    // No cpuset information at all: a single node/CPU 0.
    ("0".into(), vec![0..=0])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cpus,
    Mems,
}

/// Check a `CpusetCpus`/`CpusetMems` value against the host.
pub fn check(kind: Kind, requested: &str) -> Result<(), String> {
    if requested.is_empty() {
        return Ok(());
    }
    let (shown, avail) = available(kind);
    check_against(kind, requested, &shown, &avail)
}

fn check_against(
    kind: Kind,
    requested: &str,
    shown: &str,
    avail: &[RangeInclusive<u32>],
) -> Result<(), String> {
    let (what, noun) = match kind {
        Kind::Cpus => ("cpus", "CPUs"),
        Kind::Mems => ("mems", "memory nodes"),
    };
    let max = avail
        .iter()
        .map(|r| *r.end())
        .max()
        .unwrap_or(0)
        .max(DEFAULT_MAX);
    let wanted = parse(requested, max)
        .map_err(|e| format!("Invalid value {requested} for cpuset {what}: {e}"))?;
    // Each requested value must lie in some available range; walk values
    // range by range without expanding them (both sides are bounded).
    for r in wanted {
        let mut n = *r.start();
        loop {
            match avail.iter().find(|a| a.contains(&n)) {
                Some(a) if *a.end() >= *r.end() => break,
                Some(a) => n = *a.end() + 1,
                None => {
                    return Err(format!(
                        "Requested {noun} are not available - requested {requested}, available: {shown}"
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_and_availability() {
        let avail = vec![0..=1, 4..=5];
        let ok = |s: &str| check_against(Kind::Cpus, s, "0-1,4-5", &avail);
        assert!(ok("0").is_ok());
        assert!(ok("0-1,4").is_ok());
        assert!(ok("1,0,5-5").is_ok());
        assert_eq!(
            ok("abc").unwrap_err(),
            "Invalid value abc for cpuset cpus: invalid format: abc"
        );
        for bad in ["1-", "-1", "3-1", "1,,2", "+1", " 1"] {
            assert!(ok(bad).unwrap_err().contains("invalid format"), "{bad}");
        }
        assert_eq!(
            ok("0-4").unwrap_err(),
            "Requested CPUs are not available - requested 0-4, available: 0-1,4-5"
        );
        assert!(ok("2").is_err());
        assert_eq!(
            ok("1-9223372036854775807").unwrap_err(),
            "Invalid value 1-9223372036854775807 for cpuset cpus: value of out range, maximum is 8192"
        );
        let mems = check_against(Kind::Mems, "1", "0", &[0..=0]).unwrap_err();
        assert_eq!(
            mems,
            "Requested memory nodes are not available - requested 1, available: 0"
        );
    }

    #[test]
    fn adjacent_ranges_cover() {
        let avail = vec![0..=1, 2..=3];
        assert!(check_against(Kind::Cpus, "0-3", "0-3", &avail).is_ok());
    }
}
