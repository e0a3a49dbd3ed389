//! The compiled filter of a container, kept in its state directory: every
//! exec installs the same filter, and compiling the profile (a few hundred
//! rules) was a tenth of an exec's work. The state directory belongs to
//! root, as the state that holds the profile itself does.

use std::path::Path;

use oci_spec::runtime::LinuxSeccomp;

use super::Filter;
use crate::error::Result;

const FILE: &str = "seccomp.bpf";
const MAGIC: &[u8; 4] = b"BPF1";
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// The filter for `profile`: the kept one, else compiled (and kept).
pub fn filter(state_dir: &Path, profile: &LinuxSeccomp) -> Result<Filter> {
    let path = state_dir.join(FILE);
    if let Some(f) = std::fs::read(&path).ok().and_then(|b| decode(&b)) {
        return Ok(f);
    }
    let f = super::compile(profile)?;
    // Best effort: without it the next exec compiles again.
    let tmp = state_dir.join(format!(".{FILE}.{}", std::process::id()));
    if write_private(&tmp, &encode(&f)).is_err() || std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(f)
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

fn encode(f: &Filter) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 8 * f.program.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&f.flags.to_le_bytes());
    out.extend_from_slice(&(f.program.len() as u32).to_le_bytes());
    for i in &f.program {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

/// None for anything but a whole, well-formed file.
fn decode(b: &[u8]) -> Option<Filter> {
    let rest = b.strip_prefix(MAGIC)?;
    let flags = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?);
    let n = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?) as usize;
    let body = &rest[8..];
    if n == 0 || n > MAX_INSNS || body.len() != n * 8 {
        return None;
    }
    let program = body
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Some(Filter { program, flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap()
    }

    #[test]
    fn kept_filter_is_the_compiled_one() {
        let dir = tempfile::tempdir().unwrap();
        let compiled = super::super::compile(&profile()).unwrap();
        let first = filter(dir.path(), &profile()).unwrap();
        assert!(dir.path().join(FILE).exists());
        let kept = filter(dir.path(), &profile()).unwrap();
        for f in [&first, &kept] {
            assert_eq!(f.flags, compiled.flags);
            assert_eq!(encode(f), encode(&compiled));
        }
    }

    #[test]
    fn a_damaged_file_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let good = encode(&super::super::compile(&profile()).unwrap());
        for bad in [
            &good[..good.len() - 1],
            &good[..4],
            b"nonsense".as_slice(),
            &[],
        ] {
            assert!(decode(bad).is_none());
            std::fs::write(dir.path().join(FILE), bad).unwrap();
            let f = filter(dir.path(), &profile()).unwrap();
            assert_eq!(encode(&f), good);
        }
    }
}
