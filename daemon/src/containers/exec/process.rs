//! The OCI `process` an exec runs: the container's own process settings
//! (environment, user, working directory, capabilities, no-new-privileges,
//! AppArmor/SELinux labels, rlimits) with the exec's overrides on top.

use serde_json::{json, Value};

use super::ExecConfig;

/// A uid/gid set for `-u`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// `NAME=value` entries of `base` with those of `overrides` replacing the
/// same names, new ones appended (dockerd's ReplaceOrAppendEnvValues).
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let key = |e: &str| {
        e.split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| e.to_string())
    };
    let mut out: Vec<String> = base.to_vec();
    for o in overrides {
        let k = key(o);
        if !o.contains('=') {
            // A bare name removes the variable, as dockerd does.
            out.retain(|e| key(e) != k);
            continue;
        }
        match out.iter_mut().find(|e| key(e) == k) {
            Some(slot) => *slot = o.clone(),
            None => out.push(o.clone()),
        }
    }
    out
}

/// The exec's process from the container's `base` process object.
pub fn build(
    base: &Value,
    cfg: &ExecConfig,
    user: Option<&ExecUser>,
    all_caps: &[String],
) -> Value {
    let mut p = if base.is_object() {
        base.clone()
    } else {
        json!({})
    };
    p["args"] = json!(cfg.cmd);
    let base_env: Vec<String> = base
        .get("env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    p["env"] = json!(merge_env(&base_env, &cfg.env));
    if !cfg.working_dir.is_empty() {
        p["cwd"] = json!(cfg.working_dir);
    }
    if p.get("cwd")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        p["cwd"] = json!("/");
    }
    if let Some(u) = user {
        let mut user = json!({ "uid": u.uid, "gid": u.gid });
        if !u.additional_gids.is_empty() {
            user["additionalGids"] = json!(u.additional_gids);
        }
        p["user"] = user;
    }
    p["terminal"] = json!(cfg.tty);
    match (cfg.tty, cfg.console_size) {
        (true, Some((height, width))) if height > 0 && width > 0 => {
            p["consoleSize"] = json!({ "height": height, "width": width });
        }
        _ => {
            if let Some(obj) = p.as_object_mut() {
                obj.remove("consoleSize");
            }
        }
    }
    if cfg.privileged {
        let caps = all_caps;
        p["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
        });
    }
    p
}

/// The capabilities a privileged exec gets: every one in `all` (indexed
/// by capability number) that the daemon itself still holds in its
/// bounding set — asking for more makes capset(2) fail.
pub fn privileged_caps(all: &[&str]) -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    filter_caps(all, bounding)
}

fn filter_caps(all: &[&str], bounding: u64) -> Vec<String> {
    all.iter()
        .enumerate()
        .filter(|(n, _)| *n < 64 && bounding & (1u64 << n) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ExecConfig {
        ExecConfig {
            cmd: vec!["sh".into(), "-c".into(), "id".into()],
            ..Default::default()
        }
    }

    #[test]
    fn env_replaces_appends_and_removes() {
        let base = vec!["PATH=/bin".to_string(), "A=1".into(), "B=2".into()];
        let got = merge_env(&base, &["A=9".into(), "C=3".into(), "B".into()]);
        assert_eq!(got, vec!["PATH=/bin", "A=9", "C=3"]);
    }

    #[test]
    fn inherits_the_container_process_and_overrides() {
        let base = json!({
            "args": ["sleep", "100"], "env": ["PATH=/bin", "HOME=/root"], "cwd": "/srv",
            "user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": true,
            "capabilities": {"bounding": ["CAP_CHOWN"]}, "consoleSize": {"height": 1, "width": 1},
        });
        let all = vec!["CAP_CHOWN".to_string(), "CAP_SYS_ADMIN".to_string()];
        let p = build(&base, &cfg(), None, &all);
        assert_eq!(p["args"], json!(["sh", "-c", "id"]));
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_CHOWN"]));
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none());

        let mut c = cfg();
        c.working_dir = "/tmp".into();
        c.env = vec!["HOME=/x".into()];
        c.tty = true;
        c.console_size = Some((40, 100));
        c.privileged = true;
        let u = ExecUser {
            uid: 0,
            gid: 0,
            additional_gids: vec![10],
        };
        let p = build(&base, &c, Some(&u), &all);
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["env"], json!(["PATH=/bin", "HOME=/x"]));
        assert_eq!(
            p["user"],
            json!({"uid": 0, "gid": 0, "additionalGids": [10]})
        );
        assert_eq!(p["consoleSize"], json!({"height": 40, "width": 100}));
        assert_eq!(
            p["capabilities"]["effective"],
            json!(["CAP_CHOWN", "CAP_SYS_ADMIN"])
        );
    }

    #[test]
    fn privileged_caps_are_limited_to_our_bounding_set() {
        assert_eq!(
            filter_caps(&["CAP_A", "CAP_B", "CAP_C"], 0b101),
            vec!["CAP_A", "CAP_C"]
        );
        assert!(!privileged_caps(&["CAP_CHOWN"]).is_empty());
    }
}
