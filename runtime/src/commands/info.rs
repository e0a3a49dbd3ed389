//! Read-only commands: `state`, `list`, `ps`, `events`, `features`, `spec`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::error::{Context, Error, Result};
use crate::state::{Root, Status};

fn print_json(v: &serde_json::Value) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::invalid(e.to_string()))?;
    super::out(s);
    Ok(())
}

pub fn state(root: &Root, id: &str) -> Result<()> {
    let c = root.load(id)?;
    print_json(&c.oci_state(root))
}

pub fn list(root: &Root, format: &str, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    for id in root.ids()? {
        // A container being removed concurrently is simply skipped.
        if let Ok(c) = root.load(&id) {
            rows.push(c.oci_state(root));
        }
    }
    if quiet {
        for r in &rows {
            super::out(r["id"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    match format {
        "json" => {
            let s = serde_json::to_string(&rows).map_err(|e| Error::invalid(e.to_string()))?;
            super::out(s);
            Ok(())
        }
        "table" => {
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
            let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
            for r in &rows {
                let text = |k: &str| match &r[k] {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                table.push(vec![
                    text("id"),
                    text("pid"),
                    text("status"),
                    text("bundle"),
                    text("created"),
                    text("owner"),
                ]);
            }
            print_table(&table);
            Ok(())
        }
        other => Err(Error::invalid(format!("invalid format option {other:?}"))),
    }
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map(|r| r.len()).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == cols {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i] + 3)
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join(""));
    }
}

pub fn ps(root: &Root, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let c = root.load(id)?;
    if c.status(root) == Status::Stopped {
        return Err(Error::invalid("container is not running"));
    }
    let cg = super::lifecycle::cgroup(&c)?;
    let pids = cg.pids().map_err(|e| Error::Cgroup(e.to_string()))?;
    match format {
        "json" => {
            super::out(serde_json::to_string(&pids).map_err(|e| Error::invalid(e.to_string()))?);
            Ok(())
        }
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .ctx(|| "run ps")?;
            if !out.status.success() {
                return Err(Error::invalid(format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let pid_col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| Error::invalid("ps output has no PID column"))?;
            super::out(header);
            for line in lines {
                let pid: Option<i32> = line
                    .split_whitespace()
                    .nth(pid_col)
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    super::out(line);
                }
            }
            Ok(())
        }
        other => Err(Error::invalid(format!("invalid format option {other:?}"))),
    }
}

/// Stats events every `interval` (one with `--stats`), plus an "oom" event
/// whenever the cgroup's OOM-kill count grew since the last look.
pub fn events(root: &Root, id: &str, stats: bool, interval: Duration) -> Result<()> {
    let mut ooms: Option<u64> = None;
    loop {
        let c = root.load(id)?;
        if c.status(root) == Status::Stopped {
            return Err(Error::invalid("container is not running"));
        }
        let cg = super::lifecycle::cgroup(&c)?;
        if !stats {
            if let Ok(n) = cg.oom_kill_count() {
                if ooms.is_some_and(|before| n > before) {
                    super::out(serde_json::json!({"type": "oom", "id": id}));
                }
                ooms = Some(n);
            }
        }
        let data = cg.stats().map_err(|e| Error::Cgroup(e.to_string()))?;
        let ev = serde_json::json!({"type": "stats", "id": id, "data": data});
        super::out(ev);
        let _ = std::io::stdout().flush();
        if stats {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

pub fn features() -> Result<()> {
    let v = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
            "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "nomand",
            "norelatime", "nostrictatime", "nosuid", "private", "rbind", "relatime",
            "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw",
            "shared", "silent", "slave", "strictatime", "suid", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": all_capability_names(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features": "berth-runtime"
        }
    });
    print_json(&v)
}

fn all_capability_names() -> Vec<String> {
    let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

pub fn spec(bundle: &Path) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::invalid(format!(
            "File {} exists. Remove it first",
            path.display()
        )));
    }
    let data = serde_json::to_vec_pretty(&crate::spec::template())
        .map_err(|e| Error::invalid(e.to_string()))?;
    berth_common::atomic::write_file_mode(&path, &data, 0o644)
        .ctx(|| format!("write {}", path.display()))
}
