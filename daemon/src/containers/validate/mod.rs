//! Create-time checks of `Config` and `HostConfig`, so that a request that
//! cannot work is refused with a 400 before anything exists, instead of
//! failing at start (or being silently ignored). Messages are dockerd's (or
//! the docker CLI's) where it has one. Resource limits are checked in
//! `spec::resources::validate`, shared with `update`; mounts and tmpfs
//! options in the volumes module.

mod ports;

use serde_json::Value;

use super::config::{ContainerConfig, HostConfig, RestartPolicy, Ulimit};
use super::error::{ContainerError, Result};
use super::signals;

/// The kernel's HOST_NAME_MAX (also the limit of `setdomainname`).
const MAX_HOSTNAME: usize = 64;
/// A healthcheck duration below this (but not 0) is refused, as dockerd does.
const MIN_HEALTH_DURATION_NS: i64 = 1_000_000;
/// NAME_MAX: a longer cgroup path component cannot be created.
const MAX_NAME: usize = 255;

/// Ulimit names dockerd knows (go-units; `as` is left out there too).
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParameter(msg.into())
}

/// Everything in a create request berth can check up front.
pub fn create_request(config: &ContainerConfig, hc: &HostConfig) -> Result<()> {
    container_config(config)?;
    host_config(hc)?;
    ports::check(config, hc)
}

/// At create and at update.
pub fn restart_policy(p: &RestartPolicy) -> Result<()> {
    match p.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )))
        }
    }
    if p.maximum_retry_count < 0 {
        return Err(invalid(
            "invalid restart policy: maximum retry count can't be negative",
        ));
    }
    if p.maximum_retry_count > 0 && p.name != "on-failure" {
        return Err(invalid(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ));
    }
    Ok(())
}

fn container_config(c: &ContainerConfig) -> Result<()> {
    no_nul("Cmd", c.cmd.iter().flatten())?;
    no_nul("Entrypoint", c.entrypoint.iter().flatten())?;
    no_nul("Env", c.env.iter().flatten())?;
    no_nul(
        "Config",
        [&c.working_dir, &c.user, &c.hostname, &c.domainname],
    )?;
    if !c.working_dir.is_empty() && !c.working_dir.starts_with('/') {
        return Err(invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            c.working_dir
        )));
    }
    for var in c.env.iter().flatten() {
        if var.split('=').next().unwrap_or_default().is_empty() {
            return Err(invalid(format!("invalid environment variable: {var}")));
        }
    }
    if let Some(sig) = c.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        signals::parse(sig).map_err(invalid)?;
    }
    // -1 waits for ever (as in dockerd); anything lower is a mistake.
    if let Some(t) = c.stop_timeout.filter(|t| *t < -1) {
        return Err(invalid(format!(
            "invalid StopTimeout ({t}): use a number of seconds, or -1 to wait without a limit"
        )));
    }
    for (what, name) in [("hostname", &c.hostname), ("domainname", &c.domainname)] {
        if name.len() > MAX_HOSTNAME {
            return Err(invalid(format!(
                "{what} {name:?} is too long (maximum {MAX_HOSTNAME} bytes)"
            )));
        }
    }
    if let Some(mac) = c.mac_address.as_deref().filter(|m| !m.is_empty()) {
        if !valid_mac(mac) {
            return Err(invalid(format!("invalid MAC address: {mac}")));
        }
    }
    if let Some(h) = &c.healthcheck {
        healthcheck(h)?;
    }
    Ok(())
}

/// A NUL byte cannot reach the kernel (exec, chdir, sethostname).
fn no_nul<'a>(field: &str, values: impl IntoIterator<Item = &'a String>) -> Result<()> {
    if values.into_iter().any(|v| v.contains('\0')) {
        return Err(invalid(format!(
            "invalid {field}: a value contains a NUL byte"
        )));
    }
    Ok(())
}

/// `Config.Healthcheck`: durations in nanoseconds, 0 meaning the default.
fn healthcheck(h: &Value) -> Result<()> {
    let Some(obj) = h.as_object() else {
        if h.is_null() {
            return Ok(());
        }
        return Err(invalid("invalid Healthcheck: must be an object"));
    };
    let int = |key: &str| -> Result<i64> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_i64().ok_or_else(|| {
                invalid(format!(
                    "invalid Healthcheck: {key} must be an integer (nanoseconds for durations)"
                ))
            }),
        }
    };
    for key in ["Interval", "Timeout", "StartPeriod", "StartInterval"] {
        let v = int(key)?;
        if v != 0 && v < MIN_HEALTH_DURATION_NS {
            return Err(invalid(format!(
                "{key} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if int("Retries")? < 0 {
        return Err(invalid("Retries in Healthcheck cannot be negative"));
    }
    match obj.get("Test") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(invalid(
                "invalid Healthcheck: Test must be a list of strings",
            ))
        }
    }
    Ok(())
}

fn host_config(hc: &HostConfig) -> Result<()> {
    if hc.shm_size < 0 {
        return Err(invalid("SHM size can not be less than 0"));
    }
    cgroup_parent(&hc.cgroup_parent)?;
    for u in hc.ulimits.iter().flatten() {
        ulimit(u)?;
    }
    super::spec::mapped_devices(hc)?;
    super::spec::sysctls(hc)?;
    let security = super::spec::security_opts(hc)?;
    if let Some(profile) = security
        .seccomp
        .filter(|p| !p.is_empty() && *p != "unconfined")
    {
        let caps = super::spec::caps::effective(
            hc.privileged,
            hc.cap_add.as_deref().unwrap_or_default(),
            hc.cap_drop.as_deref().unwrap_or_default(),
        )?;
        super::spec::seccomp::from_docker_profile(profile, &caps)?;
    }
    log_config(&hc.log_config)
}

/// The log drivers berth has and their options, with dockerd's messages.
fn log_config(lc: &super::config::LogConfig) -> Result<()> {
    let (driver, opts) = (lc.kind.as_str(), &lc.config);
    if driver == "none" {
        return Ok(());
    }
    let mode = opts.get("mode").map(String::as_str).unwrap_or("");
    if !matches!(mode, "" | "blocking" | "non-blocking") {
        return Err(invalid(format!(
            "logger: logging mode not supported: {mode}"
        )));
    }
    if opts.contains_key("max-buffer-size") && mode != "non-blocking" {
        return Err(invalid(
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
        ));
    }
    let known: &[&str] = match driver {
        // Empty: the daemon's default, checked at start-up.
        "" => return Ok(()),
        "json-file" => &[
            "max-file",
            "max-size",
            "compress",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "tag",
        ],
        "local" => &["max-file", "max-size", "compress"],
        other => {
            return Err(invalid(format!(
                "logger: no log driver named '{other}' is registered"
            )))
        }
    };
    let builtin = ["mode", "max-buffer-size"];
    if let Some(key) = opts
        .keys()
        .find(|k| !known.contains(&k.as_str()) && !builtin.contains(&k.as_str()))
    {
        return Err(invalid(if driver == "json-file" {
            format!("unknown log opt '{key}' for json-file log driver")
        } else {
            format!("unknown log opt '{key}' for log driver {driver}")
        }));
    }
    if let Some(s) = opts.get("max-size") {
        if super::lifecycle::parse_size(s).is_none() {
            return Err(invalid(format!("invalid max-size {s:?}")));
        }
    }
    if let Some(s) = opts.get("max-file") {
        if s.parse::<u32>().is_err() {
            return Err(invalid(format!("invalid max-file {s:?}")));
        }
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff`, and unicast: it becomes an interface's address.
fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

fn cgroup_parent(parent: &str) -> Result<()> {
    let bad = |why: &str| invalid(format!("invalid CgroupParent {parent:?}: {why}"));
    if parent.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    for part in parent.split('/') {
        if part == ".." {
            return Err(bad("\"..\" is not allowed"));
        }
        if part.len() > MAX_NAME {
            return Err(bad("a path component is longer than 255 bytes"));
        }
    }
    Ok(())
}

/// The ceiling of RLIMIT_NOFILE: setrlimit fails above it even for root.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(crate) fn ulimit(u: &Ulimit) -> Result<()> {
    if !ULIMITS.contains(&u.name.as_str()) {
        return Err(invalid(format!("invalid ulimit type: {}", u.name)));
    }
    if u.soft < -1 || u.hard < -1 {
        return Err(invalid(format!(
            "invalid ulimit {}: limits must be -1 (unlimited) or positive, got {}:{}",
            u.name, u.soft, u.hard
        )));
    }
    if u.hard != -1 {
        if u.soft == -1 {
            return Err(invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {}",
                u.hard
            )));
        }
        if u.soft > u.hard {
            return Err(invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
    }
    if u.name == "nofile" {
        let hard = u64::try_from(u.hard).unwrap_or(u64::MAX);
        if let Some(max) = nr_open().filter(|max| hard > *max) {
            return Err(invalid(format!(
                "ulimit nofile: hard limit {} is above the host's maximum (fs.nr_open = {max})",
                u.hard
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
