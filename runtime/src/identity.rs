//! Becoming the configured user: groups, gid, uid, capabilities, umask.

use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::Process;

use crate::error::{Context, Result};

/// Switch to process.user keeping exactly the configured capabilities.
pub fn switch(process: &Process) -> Result<()> {
    let user = process.user();
    if let Some(c) = process.capabilities() {
        crate::caps::drop_bounding(c)?;
    }
    // Keep the permitted set across the uid change; apply_sets trims it.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match setgroups(&gids) {
        // Denied in a user namespace with setgroups disabled: fine if none asked.
        Err(nix::Error::EPERM) if gids.is_empty() => {}
        r => r.ctx(|| "setgroups")?,
    }
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("setgid {}", user.gid()))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("setuid {}", user.uid()))?;
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    if let Some(c) = process.capabilities() {
        crate::caps::apply_sets(c)?;
    }
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask & 0o777));
    }
    Ok(())
}

/// HOME from the container's /etc/passwd when the config sets none.
pub fn home_dir(uid: u32) -> String {
    let Ok(passwd) = std::fs::read_to_string("/etc/passwd") else {
        return "/".into();
    };
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) {
            return f[5].to_string();
        }
    }
    "/".into()
}
