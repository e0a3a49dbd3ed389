//! tmpfs mount options (`--tmpfs /run:size=64m,mode=1777`): the flags and
//! data keys dockerd accepts (moby/sys/mount's MergeTmpfsOptions), with the
//! values checked the way the kernel parses them, so that a bad option is
//! refused at create instead of failing the mount at start.

/// Mount flags a tmpfs may carry.
const FLAGS: &[&str] = &[
    "defaults",
    "ro",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "sync",
    "async",
    "dirsync",
    "remount",
    "mand",
    "nomand",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "bind",
    "rbind",
    "unbindable",
    "runbindable",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
];

/// The kernel's `memparse`: digits with an optional k/m/g/t/p/e suffix.
fn memparse(v: &str) -> bool {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 't', 'T', 'p', 'P', 'e', 'E']);
    v.len() - digits.len() <= 1 && !digits.is_empty() && digits.parse::<u64>().is_ok()
}

/// A node list such as `0-2,4`.
fn nodelist(v: &str) -> bool {
    !v.is_empty()
        && v.split(',').all(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
        })
}

/// `mpol=default|prefer:N|bind:LIST|interleave:LIST|local`, with an
/// optional `=static`/`=relative` flag on the mode.
fn mpol(v: &str) -> bool {
    let (mode, nodes) = v.split_once(':').unwrap_or((v, ""));
    let mode = match mode.split_once('=') {
        Some((m, "static" | "relative")) => m,
        Some(_) => return false,
        None => mode,
    };
    match mode {
        "default" | "local" => nodes.is_empty(),
        "prefer" => nodes.is_empty() || nodelist(nodes),
        "bind" | "interleave" => nodelist(nodes),
        _ => false,
    }
}

fn valid_value(key: &str, value: &str) -> bool {
    match key {
        // `size` may also be a percentage of RAM.
        "size" => value
            .strip_suffix('%')
            .map_or_else(|| memparse(value), |p| p.parse::<u64>().is_ok()),
        "nr_inodes" | "nr_blocks" => memparse(value),
        "mode" => !value.is_empty() && u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777),
        "uid" | "gid" => value.parse::<u32>().is_ok(),
        "mpol" => mpol(value),
        _ => false,
    }
}

/// Check `--tmpfs` options (already split on `,`).
pub fn check<'a>(options: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    for opt in options {
        if FLAGS.contains(&opt) {
            continue;
        }
        let Some((key, value)) = opt.split_once('=') else {
            return Err(format!("invalid tmpfs option {opt:?}"));
        };
        if !matches!(
            key,
            "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks" | "mpol"
        ) {
            return Err(format!("invalid tmpfs option {key:?}"));
        }
        if !valid_value(key, value) {
            return Err(format!("invalid tmpfs option {opt:?}: bad value for {key}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_like_dockerd_and_the_kernel() {
        assert!(check([
            "size=64m",
            "mode=1777",
            "ro",
            "noexec",
            "uid=1000",
            "gid=0",
            "nr_inodes=1k",
            "size=50%",
            "mpol=bind:0-1",
            "mpol=local",
            "exec",
            "defaults"
        ])
        .is_ok());
        assert_eq!(
            check(["bogus=1"]).unwrap_err(),
            "invalid tmpfs option \"bogus\""
        );
        assert_eq!(
            check(["bogus"]).unwrap_err(),
            "invalid tmpfs option \"bogus\""
        );
        for bad in [
            "size=abc",
            "size=",
            "size=1x",
            "size=10mm",
            "mode=999",
            "mode=",
            "uid=-1",
            "gid=root",
            "nr_inodes=k",
            "mpol=fast",
            "mpol=bind",
            "mpol=bind:2-1",
        ] {
            assert!(check([bad]).is_err(), "{bad}");
        }
    }
}
