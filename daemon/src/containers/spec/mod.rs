//! The OCI runtime spec (`config.json`) of a container, built from its
//! record the way dockerd builds it: default mounts, capabilities, seccomp,
//! masked paths, namespaces and cgroup resources.

pub mod caps;
mod cpuset;
mod devices;
pub mod resources;
pub mod seccomp;
pub mod user;

use serde_json::{json, Value};
use std::path::Path;

use super::error::ContainerError;
use super::record::ContainerRecord;

pub use resources::resources;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;
/// Where `--init`'s binary appears inside the container.
pub const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Pids of other containers whose namespaces a container joins
/// (`PidMode`/`IpcMode`/`UTSMode`/`NetworkMode` = `container:<id>`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JoinTargets {
    pub pid: Option<i32>,
    pub ipc: Option<i32>,
    pub uts: Option<i32>,
    pub net: Option<i32>,
}

pub struct SpecInput<'a> {
    pub rec: &'a ContainerRecord,
    /// The mounted root filesystem (bundle/rootfs).
    pub rootfs: &'a Path,
    /// `<data-root>/containers/<id>`: hostname, hosts, resolv.conf.
    pub container_dir: &'a Path,
    /// `/<cgroup-parent>/<id>`.
    pub cgroups_path: String,
    pub join: JoinTargets,
    /// The `--init` binary on the host, when the container asks for it.
    pub init_binary: Option<&'a Path>,
    /// The daemon's `default-ulimits`, for those the container does not set.
    pub default_ulimits: &'a [super::config::Ulimit],
}

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParameter(msg.into())
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    json!({ "destination": dest, "type": kind, "source": source, "options": options })
}

/// The hostname the container sees (`Config.Hostname`, or the short ID).
pub fn hostname(rec: &ContainerRecord) -> String {
    if rec.config.hostname.is_empty() {
        rec.short_id().to_string()
    } else {
        rec.config.hostname.clone()
    }
}

/// The process environment dockerd gives: PATH, HOSTNAME, TERM with a TTY,
/// then the container's Env (which overrides), then HOME if still unset.
pub fn environment(rec: &ContainerRecord, home: &str) -> Vec<String> {
    let mut env: Vec<String> = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={}", hostname(rec)),
    ];
    if rec.config.tty {
        env.push("TERM=xterm".into());
    }
    for var in rec.config.env.iter().flatten() {
        let key = var.split('=').next().unwrap_or(var);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(var.clone());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Build `config.json`.
pub fn build(input: &SpecInput<'_>) -> Result<Value, ContainerError> {
    let rec = input.rec;
    let hc = &rec.host_config;
    let privileged = hc.privileged;

    let passwd =
        user::read_in_root(input.rootfs, "etc/passwd").map_err(|e| invalid(e.to_string()))?;
    let group =
        user::read_in_root(input.rootfs, "etc/group").map_err(|e| invalid(e.to_string()))?;
    let group_add = hc.group_add.clone().unwrap_or_default();
    let user = user::resolve(&rec.config.user, &group_add, &passwd, &group)
        .map_err(|e| invalid(e.to_string()))?;

    let caps = caps::effective(
        privileged,
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
    )?;

    let mut args = Vec::with_capacity(rec.args.len() + 3);
    if input.init_binary.is_some() {
        args.push(INIT_IN_CONTAINER.to_string());
        args.push("--".to_string());
    }
    args.push(rec.path.clone());
    args.extend(rec.args.iter().cloned());

    let own = hc.ulimits.as_deref().unwrap_or_default();
    let defaults = input
        .default_ulimits
        .iter()
        .filter(|d| !own.iter().any(|u| u.name == d.name));
    let mut rlimits = Vec::new();
    for u in own.iter().chain(defaults) {
        rlimits.push(json!({
            "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
            "hard": rlimit_value(u.hard),
            "soft": rlimit_value(u.soft),
        }));
    }

    let SecurityOpts {
        no_new_privileges,
        seccomp: seccomp_opt,
    } = security_opts(hc)?;

    let cwd = if rec.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        rec.config.working_dir.clone()
    };

    let process = json!({
        "terminal": rec.config.tty,
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": user.additional_gids,
        },
        "args": args,
        "env": environment(rec, &user.home),
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "rlimits": rlimits,
        "noNewPrivileges": no_new_privileges,
        "oomScoreAdj": hc.oom_score_adj,
    });

    let (namespaces, hostname_value) = namespaces(input)?;
    let mounts = mounts(input, privileged)?;

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": input.cgroups_path,
        "resources": resources(hc, privileged)?,
        "sysctl": sysctls(hc)?,
    });
    let (mapped, rules) = mapped_devices(hc)?;
    if privileged {
        let mut all = devices::host_devices();
        all.retain(|d| !mapped.iter().any(|m| m["path"] == d["path"]));
        all.extend(mapped);
        linux["devices"] = json!(all);
    } else {
        linux["devices"] = json!(mapped);
        if let Some(list) = linux["resources"]["devices"].as_array_mut() {
            list.extend(rules);
        }
        linux["maskedPaths"] = json!(hc
            .masked_paths
            .clone()
            .unwrap_or_else(|| strs(MASKED_PATHS)));
        linux["readonlyPaths"] = json!(hc
            .readonly_paths
            .clone()
            .unwrap_or_else(|| strs(READONLY_PATHS)));
        match seccomp_opt {
            Some("unconfined") => {}
            Some(profile) if !profile.is_empty() => {
                linux["seccomp"] = seccomp::from_docker_profile(profile, &caps)?;
            }
            _ => linux["seccomp"] = seccomp::default_profile(&caps),
        }
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": input.rootfs, "readonly": hc.readonly_rootfs },
        "mounts": mounts,
        "linux": linux,
    });
    if let Some(h) = hostname_value {
        spec["hostname"] = json!(h);
        if !rec.config.domainname.is_empty() {
            spec["domainname"] = json!(rec.config.domainname);
        }
    }
    Ok(spec)
}

/// A ulimit value for the OCI spec: -1 (and any negative) is RLIM_INFINITY.
fn rlimit_value(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `HostConfig.Devices`: the device nodes and their cgroup rules.
pub fn mapped_devices(
    hc: &super::config::HostConfig,
) -> Result<(Vec<Value>, Vec<Value>), ContainerError> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    for raw in hc.devices.iter().flatten() {
        let (n, r) = devices::from_mapping(raw).map_err(invalid)?;
        nodes.extend(n);
        rules.extend(r);
    }
    Ok((nodes, rules))
}

pub struct SecurityOpts<'a> {
    pub no_new_privileges: bool,
    /// `seccomp=`: `unconfined` or a profile's JSON text.
    pub seccomp: Option<&'a str>,
}

/// `HostConfig.SecurityOpt`, checked.
pub fn security_opts(hc: &super::config::HostConfig) -> Result<SecurityOpts<'_>, ContainerError> {
    let mut out = SecurityOpts {
        no_new_privileges: false,
        seccomp: None,
    };
    for (key, value) in hc.security_opts() {
        match key {
            "no-new-privileges" => {
                out.no_new_privileges =
                    !matches!(value.to_ascii_lowercase().as_str(), "false" | "0" | "no");
            }
            "seccomp" => out.seccomp = Some(value),
            "label" | "apparmor" => {}
            other => return Err(invalid(format!("invalid --security-opt: {other:?}"))),
        }
    }
    Ok(out)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn ns_path(pid: i32, kind: &str) -> String {
    format!("/proc/{pid}/ns/{kind}")
}

/// The namespace list and the hostname to set (none when sharing the
/// host's or another container's UTS namespace).
fn namespaces(input: &SpecInput<'_>) -> Result<(Vec<Value>, Option<String>), ContainerError> {
    let hc = &input.rec.host_config;
    let mut out = vec![json!({ "type": "mount" })];
    let mut push = |kind: &str,
                    mode: &str,
                    joined: Option<i32>,
                    proc_name: &str|
     -> Result<bool, ContainerError> {
        if mode == "host" {
            return Ok(false);
        }
        if mode.starts_with("container:") {
            let pid = joined.ok_or_else(|| {
                invalid(format!(
                    "cannot join {kind} namespace of {mode}: container is not running"
                ))
            })?;
            out.push(json!({ "type": kind, "path": ns_path(pid, proc_name) }));
            return Ok(false);
        }
        out.push(json!({ "type": kind }));
        Ok(true)
    };
    push("pid", &hc.pid_mode, input.join.pid, "pid")?;
    let ipc_mode = match hc.ipc_mode.as_str() {
        "" | "private" | "shareable" | "none" => "",
        other => other,
    };
    push("ipc", ipc_mode, input.join.ipc, "ipc")?;
    let own_uts = push("uts", &hc.uts_mode, input.join.uts, "uts")?;
    let net_mode = hc.network_mode();
    // bridge/default: a private namespace with loopback only until berth
    // has bridge networking; none: the same, as dockerd gives.
    let net = match net_mode {
        "host" => "host",
        m if m.starts_with("container:") => m,
        _ => "",
    };
    let own_net = push("network", net, input.join.net, "net")?;
    if hc.cgroupns_mode == "private" {
        out.push(json!({ "type": "cgroup" }));
    }
    let hostname = if own_uts && (own_net || !input.rec.config.hostname.is_empty()) {
        Some(hostname(input.rec))
    } else if own_uts {
        nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok((out, hostname))
}

fn mounts(input: &SpecInput<'_>, privileged: bool) -> Result<Vec<Value>, ContainerError> {
    let rec = input.rec;
    let hc = &rec.host_config;
    let ro_sys = if privileged { "rw" } else { "ro" };
    let shm_size = if hc.shm_size > 0 {
        hc.shm_size
    } else {
        DEFAULT_SHM_SIZE
    };
    let mut m = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro_sys],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro_sys],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
    ];
    match hc.ipc_mode.as_str() {
        "host" => m.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "rprivate"],
        )),
        mode if mode.starts_with("container:") => {
            let pid = input.join.ipc.ok_or_else(|| {
                invalid(format!(
                    "cannot join IPC of {mode}: container is not running"
                ))
            })?;
            let src = format!("/proc/{pid}/root/dev/shm");
            m.push(mount("/dev/shm", "bind", &src, &["rbind", "rprivate"]));
        }
        "none" => {}
        _ => {
            let size = format!("size={shm_size}");
            m.push(mount(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", &size],
            ));
        }
    }
    for (file, dest) in [
        ("resolv.conf", "/etc/resolv.conf"),
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
    ] {
        let src = input.container_dir.join(file);
        let mut opts = vec!["rbind", "rprivate"];
        if hc.readonly_rootfs {
            opts.push("ro");
        }
        m.push(mount(dest, "bind", &src.to_string_lossy(), &opts));
    }
    if let Some(init) = input.init_binary {
        m.push(mount(
            INIT_IN_CONTAINER,
            "bind",
            &init.to_string_lossy(),
            &["bind", "ro"],
        ));
    }
    for (dest, opts) in hc.tmpfs.iter().flatten() {
        if !dest.starts_with('/') {
            return Err(invalid(format!(
                "invalid tmpfs mount: {dest}: mount path must be absolute"
            )));
        }
        let mut options: Vec<&str> = vec!["nosuid", "nodev", "noexec"];
        options.extend(opts.split(',').filter(|o| !o.is_empty()));
        m.push(mount(dest, "tmpfs", "tmpfs", &options));
    }
    for mp in &rec.mounts {
        let mut options: Vec<&str> = mp.options.iter().map(String::as_str).collect();
        if options.is_empty() {
            options = vec!["rbind", if mp.rw { "rw" } else { "ro" }];
        }
        let kind = if mp.kind == "tmpfs" { "tmpfs" } else { "bind" };
        m.push(mount(&mp.destination, kind, &mp.source, &options));
    }
    // Later mounts shadow earlier ones at the same destination: drop the
    // defaults a user mount replaces, as dockerd does.
    let mut seen = std::collections::HashSet::new();
    let mut deduped: Vec<Value> = m
        .into_iter()
        .rev()
        .filter(|v| seen.insert(v["destination"].as_str().unwrap_or("").to_string()))
        .collect();
    deduped.reverse();
    Ok(deduped)
}

pub fn sysctls(hc: &super::config::HostConfig) -> Result<Value, ContainerError> {
    let mut out = serde_json::Map::new();
    for (key, value) in hc.sysctls.iter().flatten() {
        let namespaced = key.starts_with("kernel.msg")
            || key.starts_with("kernel.shm")
            || key == "kernel.sem"
            || key.starts_with("fs.mqueue.")
            || key.starts_with("net.");
        if !namespaced {
            return Err(invalid(format!("sysctl '{key}' is not whitelisted")));
        }
        if key.starts_with("net.") && hc.network_mode() == "host" {
            return Err(invalid(format!(
                "sysctl '{key}' not allowed in host network namespace"
            )));
        }
        out.insert(key.clone(), json!(value));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::config::{ContainerConfig, HostConfig};
    use crate::containers::record::State;

    fn record(config: ContainerConfig, host_config: HostConfig) -> ContainerRecord {
        ContainerRecord {
            id: "0123456789abcdef".repeat(4),
            name: "/t".into(),
            created: String::new(),
            path: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            config,
            host_config,
            networking_config: serde_json::json!({}),
            image_id: String::new(),
            layers: Vec::new(),
            top_layer: None,
            state: State::default(),
            restart_count: 0,
            has_been_started: false,
            manually_stopped: false,
            mounts: Vec::new(),
            platform: "linux".into(),
            runtime: "berth".into(),
            pending: None,
        }
    }

    fn build_for(rec: &ContainerRecord, join: JoinTargets) -> Result<Value, ContainerError> {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        build(&SpecInput {
            rec,
            rootfs: root.path(),
            container_dir: Path::new("/data/containers/x"),
            cgroups_path: "/berth/x".into(),
            join,
            init_binary: Some(Path::new("/usr/libexec/berth-init")),
            default_ulimits: &[],
        })
    }

    #[test]
    fn defaults_match_dockerd() {
        let rec = record(
            ContainerConfig {
                user: "user".into(),
                tty: true,
                env: Some(vec!["A=1".into()]),
                ..Default::default()
            },
            HostConfig {
                shm_size: 0,
                ..Default::default()
            },
        );
        let s = build_for(&rec, JoinTargets::default()).unwrap();
        assert_eq!(s["process"]["user"]["uid"], 1000);
        assert_eq!(
            s["process"]["args"],
            serde_json::json!(["/sbin/docker-init", "--", "sh", "-c", "true"])
        );
        let env: Vec<String> = serde_json::from_value(s["process"]["env"].clone()).unwrap();
        assert!(env.contains(&"TERM=xterm".to_string()) && env.contains(&"A=1".to_string()));
        assert!(env.contains(&"HOME=/home/user".to_string()));
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            caps::DEFAULT.len()
        );
        assert_eq!(s["hostname"], "0123456789ab");
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(s["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("/proc/kcore")));
        let kinds: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["mount", "pid", "ipc", "uts", "network"]);
        let shm = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .unwrap();
        assert!(shm["options"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("size=67108864")));
        assert!(s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["destination"] == "/etc/resolv.conf"
                && m["source"] == "/data/containers/x/resolv.conf"));
    }

    #[test]
    fn host_and_joined_namespaces() {
        let rec = record(
            ContainerConfig::default(),
            HostConfig {
                network_mode: "host".into(),
                pid_mode: "container:abc".into(),
                uts_mode: "host".into(),
                privileged: true,
                readonly_rootfs: true,
                security_opt: Some(vec!["no-new-privileges".into()]),
                ..Default::default()
            },
        );
        let s = build_for(
            &rec,
            JoinTargets {
                pid: Some(42),
                ..Default::default()
            },
        )
        .unwrap();
        let ns = s["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&serde_json::json!({"type": "pid", "path": "/proc/42/ns/pid"})));
        assert!(!ns
            .iter()
            .any(|n| n["type"] == "network" || n["type"] == "uts"));
        assert!(s.get("hostname").is_none());
        assert!(s["linux"].get("seccomp").is_none() && s["linux"].get("maskedPaths").is_none());
        assert_eq!(s["root"]["readonly"], true);
        assert_eq!(s["process"]["noNewPrivileges"], true);
        // Joining a container that is not running is refused.
        assert!(build_for(&rec, JoinTargets::default()).is_err());
    }
}
