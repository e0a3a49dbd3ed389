//! Daemon configuration: command-line flags merged with daemon.json, with
//! dockerd's rules (unknown keys and flag/file conflicts are startup errors).

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::containers::config::Ulimit;

pub const DEFAULT_SOCKET: &str = "/var/run/berth.sock";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
pub const DEFAULT_GROUP: &str = "berth";
/// Where --tls looks for ca.pem, cert.pem and key.pem without $DOCKER_CERT_PATH.
pub const DEFAULT_CERT_DIR: &str = "/etc/berth";
pub const DEFAULT_CGROUP_PARENT: &str = "berth";
/// The runtime shipped with berth, registered under this name.
pub const BERTH_RUNTIME: &str = "berth";
pub const SHIM_BINARY: &str = "berth-shim";
pub const RUNTIME_BINARY: &str = "berth-runtime";
/// dockerd's default for `shutdown-timeout`, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: i64 = 15;
const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error", "fatal"];

/// Command-line flags. Every value flag is an Option so that "given on the
/// command line" can be told apart from "defaulted" (for conflicts).
#[derive(Debug, Parser, Default)]
#[command(name = "berthd", version, about = "berth: a Docker Engine API daemon")]
pub struct Flags {
    /// Daemon socket(s) to listen on: unix://PATH, tcp://HOST:PORT, fd://[N]
    #[arg(short = 'H', long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Root directory of execution state (sockets, bundles)
    #[arg(long)]
    pub exec_root: Option<PathBuf>,
    /// Daemon configuration file
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Group owning the unix socket(s) (mode 0660); default "berth" if it exists, else root
    #[arg(short = 'G', long)]
    pub group: Option<String>,
    /// Logging level: debug, info, warn, error, fatal
    #[arg(short = 'l', long)]
    pub log_level: Option<String>,
    /// Enable debug logging
    #[arg(short = 'D', long)]
    pub debug: bool,
    /// Format of berthd's own log lines: text or json
    #[arg(long)]
    pub log_format: Option<String>,
    /// Path of the pid file (default EXEC_ROOT/berthd.pid)
    #[arg(short = 'p', long)]
    pub pidfile: Option<PathBuf>,
    /// Parent cgroup for all containers
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Default OCI runtime for containers
    #[arg(long)]
    pub default_runtime: Option<String>,
    /// Register an additional OCI runtime: NAME=PATH
    #[arg(long = "add-runtime", value_name = "NAME=PATH")]
    pub add_runtimes: Vec<String>,
    /// Default log driver for containers (json-file, none)
    #[arg(long)]
    pub log_driver: Option<String>,
    /// Default log driver options: KEY=VALUE
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Bridge IP (CIDR) for the default network
    #[arg(long)]
    pub bip: Option<String>,
    /// Interface of the default bridge network (default berth0)
    #[arg(short = 'b', long)]
    pub bridge: Option<String>,
    /// IPv4 subnet for fixed IPs on the default bridge
    #[arg(long)]
    pub fixed_cidr: Option<String>,
    /// Add iptables rules for NAT and published ports (default true)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub iptables: Option<bool>,
    /// Serve published ports on loopback from berthd (default true);
    /// false: the kernel forwards loopback too (route_localnet)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub userland_proxy: Option<bool>,
    /// MTU of container interfaces (0: the network's default)
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Labels of the daemon: KEY=VALUE
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Registry reached over plain HTTP or unverified TLS: HOST[:PORT] or CIDR
    #[arg(long = "insecure-registry", value_name = "REGISTRY")]
    pub insecure_registries: Vec<String>,
    /// Mirror tried before Docker Hub for its images: http(s)://HOST[:PORT]
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub registry_mirrors: Vec<String>,
    /// Layer downloads of one pull running at once (default 8; dockerd's is 3)
    #[arg(long)]
    pub max_concurrent_downloads: Option<u32>,
    /// Layer uploads of one push running at once (default 5)
    #[arg(long)]
    pub max_concurrent_uploads: Option<u32>,
    /// Attempts for each layer download (default 5)
    #[arg(long)]
    pub max_download_attempts: Option<u32>,
    /// Serve TCP listeners over TLS (implied by --tlsverify). --tls=false
    /// allows plain TCP on a non-loopback address (root for anyone reaching it)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// TLS, and only clients with a certificate signed by --tlscacert get in
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// CA certificate(s) client certificates must be signed by (default CERT_DIR/ca.pem)
    #[arg(long, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// The server's TLS certificate (default CERT_DIR/cert.pem)
    #[arg(long, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// Check the configuration (file and flags) and exit
    #[arg(long)]
    pub validate: bool,
    /// The server's TLS key (default CERT_DIR/key.pem). CERT_DIR is
    /// $DOCKER_CERT_PATH, else /etc/berth
    #[arg(long, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
    /// Keep containers running while berthd is stopped (SIGTERM); without
    /// it a graceful stop stops them and the next start restarts them by policy
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub live_restore: Option<bool>,
    /// Seconds a graceful stop waits for containers to stop, at least
    /// (default 15; -1: no limit)
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub shutdown_timeout: Option<i64>,
    /// Serve Prometheus metrics on HOST:PORT (/metrics; ":PORT" is loopback)
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// Ulimit for containers that do not set it: NAME=SOFT[:HARD]
    #[arg(long = "default-ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub default_ulimits: Vec<String>,
}

/// daemon.json keys berthd implements.
const SUPPORTED_KEYS: &[&str] = &[
    "hosts",
    "data-root",
    "exec-root",
    "group",
    "log-level",
    "log-format",
    "debug",
    "pidfile",
    "cgroup-parent",
    "default-runtime",
    "runtimes",
    "log-driver",
    "log-opts",
    "bip",
    "bridge",
    "fixed-cidr",
    "fixed-cidr-v6",
    "ipv6",
    "iptables",
    "userland-proxy",
    "mtu",
    "labels",
    "dns",
    "dns-opts",
    "dns-search",
    "insecure-registries",
    "registry-mirrors",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "max-download-attempts",
    "live-restore",
    "shutdown-timeout",
    "metrics-addr",
    "default-ulimits",
    "storage-driver",
    "tls",
    "tlscacert",
    "tlscert",
    "tlskey",
    "tlsverify",
];

/// Keys dockerd knows that berthd does not implement (yet): rejected with
/// an honest message instead of being silently ignored.
const DOCKERD_ONLY_KEYS: &[&str] = &[
    "allow-nondistributable-artifacts",
    "api-cors-header",
    "authorization-plugins",
    "builder",
    "cdi-spec-dirs",
    "containerd",
    "containerd-namespace",
    "containerd-plugin-namespace",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "default-address-pools",
    "default-cgroupns-mode",
    "default-gateway",
    "default-gateway-v6",
    "default-ipc-mode",
    "default-network-opts",
    "default-shm-size",
    "exec-opts",
    "experimental",
    "features",
    "host-gateway-ip",
    "icc",
    "init",
    "init-path",
    "ip",
    "ip-forward",
    "ip-masq",
    "ip6tables",
    "no-new-privileges",
    "node-generic-resources",
    "oom-score-adjust",
    "proxies",
    "raw-logs",
    "seccomp-profile",
    "selinux-enabled",
    "storage-opts",
    "swarm-default-advertise-addr",
    "userland-proxy-path",
    "userns-remap",
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileConfig {
    hosts: Option<Vec<String>>,
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    group: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    debug: Option<bool>,
    pidfile: Option<PathBuf>,
    cgroup_parent: Option<String>,
    default_runtime: Option<String>,
    runtimes: Option<BTreeMap<String, RuntimeConfig>>,
    log_driver: Option<String>,
    log_opts: Option<BTreeMap<String, String>>,
    bip: Option<String>,
    bridge: Option<String>,
    fixed_cidr: Option<String>,
    fixed_cidr_v6: Option<String>,
    ipv6: Option<bool>,
    iptables: Option<bool>,
    userland_proxy: Option<bool>,
    mtu: Option<u32>,
    labels: Option<Vec<String>>,
    dns: Option<Vec<String>>,
    dns_opts: Option<Vec<String>>,
    dns_search: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
    max_concurrent_downloads: Option<u32>,
    max_concurrent_uploads: Option<u32>,
    max_download_attempts: Option<u32>,
    live_restore: Option<bool>,
    shutdown_timeout: Option<i64>,
    metrics_addr: Option<String>,
    default_ulimits: Option<BTreeMap<String, FileUlimit>>,
    storage_driver: Option<String>,
    tls: Option<bool>,
    tlsverify: Option<bool>,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
}

/// dockerd's `default-ulimits` entry: `{"Name": …, "Soft": …, "Hard": …}`
/// under the ulimit's name.
#[derive(Debug, Deserialize)]
struct FileUlimit {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Soft")]
    soft: i64,
    #[serde(rename = "Hard")]
    hard: i64,
}

/// Where the server's TLS material is and whether clients must present a
/// certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Clients must present a certificate signed by `ca`.
    pub verify: bool,
    /// Without `verify`: client certificates are checked when given.
    pub ca: Option<PathBuf>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// An OCI runtime berth-shim can drive (runc-compatible command line).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RuntimeConfig {
    pub path: PathBuf,
    #[serde(default, rename = "runtimeArgs")]
    pub runtime_args: Vec<String>,
}

/// How berthd writes its own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Where the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
    /// Socket activation: all passed sockets, or the one with this fd number.
    Fd(Option<i32>),
}

impl Host {
    pub fn parse(raw: &str) -> Result<Host> {
        let raw = raw.trim();
        if let Some(path) = raw.strip_prefix("unix://") {
            let path = if path.is_empty() {
                DEFAULT_SOCKET
            } else {
                path
            };
            if !path.starts_with('/') {
                bail!("invalid host {raw:?}: unix socket path must be absolute");
            }
            return Ok(Host::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = raw.strip_prefix("tcp://") {
            let addr = addr.trim_end_matches('/');
            if addr.is_empty() {
                bail!("invalid host {raw:?}: missing address");
            }
            let with_port = if addr.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
                addr.to_string()
            } else {
                format!("{addr}:2375")
            };
            let with_port = match with_port.strip_prefix(':') {
                Some(port) => format!("127.0.0.1:{port}"),
                None => with_port,
            };
            return Ok(Host::Tcp(with_port));
        }
        if let Some(fd) = raw.strip_prefix("fd://") {
            if fd.is_empty() || fd == "*" {
                return Ok(Host::Fd(None));
            }
            let n = fd
                .parse::<i32>()
                .map_err(|_| anyhow!("invalid host {raw:?}: fd must be a number"))?;
            return Ok(Host::Fd(Some(n)));
        }
        bail!("invalid host {raw:?}: expected unix://PATH, tcp://HOST:PORT or fd://")
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
            Host::Fd(None) => write!(f, "fd://"),
            Host::Fd(Some(n)) => write!(f, "fd://{n}"),
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<Host>,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    /// The file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Group name given (flag or file); resolved when the socket is made.
    pub group: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub debug: bool,
    pub cgroup_parent: String,
    pub default_runtime: String,
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    pub shim_path: PathBuf,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub bip: Option<String>,
    pub bridge: Option<String>,
    pub fixed_cidr: Option<String>,
    /// `ipv6` and `fixed-cidr-v6`: IPv6 on the default bridge.
    pub ipv6: bool,
    pub fixed_cidr_v6: Option<String>,
    pub iptables: bool,
    pub userland_proxy: bool,
    pub mtu: u32,
    pub labels: Vec<String>,
    pub dns: Vec<String>,
    pub dns_opts: Vec<String>,
    pub dns_search: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub max_concurrent_downloads: u32,
    pub max_concurrent_uploads: u32,
    pub max_download_attempts: u32,
    pub live_restore: bool,
    /// Seconds a graceful stop gives the containers at least (-1: no limit).
    pub shutdown_timeout: i64,
    /// Where the Prometheus endpoint listens (HOST:PORT); None: nowhere.
    pub metrics_addr: Option<String>,
    /// `default-ulimits`: for containers that do not set that ulimit.
    pub default_ulimits: Vec<Ulimit>,
    /// TLS on TCP listeners; None: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// `tls: false` was given explicitly: plain TCP is allowed on
    /// non-loopback addresses (with a warning at every start).
    pub tls_disabled_explicitly: bool,
    /// `--validate`: check and exit.
    pub validate: bool,
}

impl Config {
    /// The runtime named `name`, or the default one.
    pub fn runtime(&self, name: Option<&str>) -> Option<(&str, &RuntimeConfig)> {
        let name = name
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.default_runtime);
        self.runtimes
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Build from flags, reading `flags.config_file` (a missing default
    /// file is fine; a missing explicitly given one is not).
    pub fn load(flags: Flags, config_file_explicit: bool) -> Result<Config> {
        let path = flags.config_file.clone();
        let raw = match std::fs::read(&path) {
            Ok(raw) => Some(raw),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !config_file_explicit => None,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "unable to configure the daemon with file {}",
                        path.display()
                    )
                })
            }
        };
        let file = match &raw {
            Some(raw) => parse_file(raw, &flags).with_context(|| {
                format!(
                    "unable to configure the daemon with file {}",
                    path.display()
                )
            })?,
            None => FileConfig::default(),
        };
        let exe_dir = std::env::current_exe()
            .context("locating berthd's own executable")?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin"));
        merge(flags, file, raw.is_some().then_some(path), &exe_dir)
    }
}

fn parse_file(raw: &[u8], flags: &Flags) -> Result<FileConfig> {
    let value: serde_json::Value = serde_json::from_slice(raw).context("invalid JSON")?;
    let obj = value
        .as_object()
        .ok_or_else(|| anyhow!("the configuration must be a JSON object"))?;

    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !SUPPORTED_KEYS.contains(k) && !DOCKERD_ONLY_KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "the following directives don't match any configuration option: {}",
            unknown.join(", ")
        );
    }
    let unsupported: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| DOCKERD_ONLY_KEYS.contains(k))
        .collect();
    if !unsupported.is_empty() {
        bail!(
            "the following directives are not supported by berthd: {}",
            unsupported.join(", ")
        );
    }

    let conflicts = conflicts(flags, obj);
    if !conflicts.is_empty() {
        bail!(
            "the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        );
    }
    serde_json::from_value(value).context("invalid configuration")
}

/// `name: (from flag: X, from file: Y)` for every key given both ways.
fn conflicts(flags: &Flags, file: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let list = |v: &[String]| format!("[{}]", v.join(" "));
    let given: Vec<(&str, Option<String>)> = vec![
        (
            "hosts",
            (!flags.hosts.is_empty()).then(|| list(&flags.hosts)),
        ),
        (
            "data-root",
            flags.data_root.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "exec-root",
            flags.exec_root.as_ref().map(|p| p.display().to_string()),
        ),
        ("group", flags.group.clone()),
        ("log-level", flags.log_level.clone()),
        ("log-format", flags.log_format.clone()),
        ("debug", flags.debug.then(|| "true".to_string())),
        (
            "pidfile",
            flags.pidfile.as_ref().map(|p| p.display().to_string()),
        ),
        ("cgroup-parent", flags.cgroup_parent.clone()),
        ("default-runtime", flags.default_runtime.clone()),
        ("log-driver", flags.log_driver.clone()),
        (
            "log-opts",
            (!flags.log_opts.is_empty()).then(|| list(&flags.log_opts)),
        ),
        ("bip", flags.bip.clone()),
        ("bridge", flags.bridge.clone()),
        ("fixed-cidr", flags.fixed_cidr.clone()),
        ("iptables", flags.iptables.map(|b| b.to_string())),
        (
            "userland-proxy",
            flags.userland_proxy.map(|b| b.to_string()),
        ),
        ("mtu", flags.mtu.map(|m| m.to_string())),
        (
            "labels",
            (!flags.labels.is_empty()).then(|| list(&flags.labels)),
        ),
        (
            "insecure-registries",
            (!flags.insecure_registries.is_empty()).then(|| list(&flags.insecure_registries)),
        ),
        (
            "registry-mirrors",
            (!flags.registry_mirrors.is_empty()).then(|| list(&flags.registry_mirrors)),
        ),
        (
            "max-concurrent-downloads",
            flags.max_concurrent_downloads.map(|n| n.to_string()),
        ),
        (
            "max-concurrent-uploads",
            flags.max_concurrent_uploads.map(|n| n.to_string()),
        ),
        (
            "max-download-attempts",
            flags.max_download_attempts.map(|n| n.to_string()),
        ),
        ("live-restore", flags.live_restore.map(|b| b.to_string())),
        (
            "shutdown-timeout",
            flags.shutdown_timeout.map(|n| n.to_string()),
        ),
        ("metrics-addr", flags.metrics_addr.clone()),
        (
            "default-ulimits",
            (!flags.default_ulimits.is_empty()).then(|| list(&flags.default_ulimits)),
        ),
        ("tls", flags.tls.map(|b| b.to_string())),
        ("tlsverify", flags.tlsverify.map(|b| b.to_string())),
        (
            "tlscacert",
            flags.tlscacert.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "tlscert",
            flags.tlscert.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "tlskey",
            flags.tlskey.as_ref().map(|p| p.display().to_string()),
        ),
    ];
    given
        .into_iter()
        .filter_map(|(key, flag)| {
            let flag = flag?;
            let file_value = file.get(key)?;
            let shown = match file_value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{key}: (from flag: {flag}, from file: {shown})"))
        })
        .collect()
}

fn merge(
    flags: Flags,
    file: FileConfig,
    config_file: Option<PathBuf>,
    exe_dir: &Path,
) -> Result<Config> {
    let host_strings = if !flags.hosts.is_empty() {
        flags.hosts
    } else {
        file.hosts
            .unwrap_or_else(|| vec![format!("unix://{DEFAULT_SOCKET}")])
    };
    let hosts = host_strings
        .iter()
        .map(|h| Host::parse(h))
        .collect::<Result<Vec<_>>>()?;
    if hosts.is_empty() {
        bail!("no hosts to listen on");
    }

    let data_root = flags
        .data_root
        .or(file.data_root)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT));
    let exec_root = flags
        .exec_root
        .or(file.exec_root)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_EXEC_ROOT));
    for (name, p) in [("data-root", &data_root), ("exec-root", &exec_root)] {
        if !p.is_absolute() {
            bail!("{name} must be an absolute path, got {}", p.display());
        }
    }
    let pidfile = flags
        .pidfile
        .or(file.pidfile)
        .unwrap_or_else(|| exec_root.join("berthd.pid"));

    let debug = flags.debug || file.debug.unwrap_or(false);
    let log_level = flags
        .log_level
        .or(file.log_level)
        .unwrap_or_else(|| if debug { "debug" } else { "info" }.to_string())
        .to_ascii_lowercase();
    if !LOG_LEVELS.contains(&log_level.as_str()) {
        bail!(
            "unable to parse logging level: {log_level} (expected one of {})",
            LOG_LEVELS.join(", ")
        );
    }

    let log_format = match flags.log_format.or(file.log_format).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => bail!("invalid log format {other:?}: expected text or json"),
    };

    if let Some(driver) = &file.storage_driver {
        if driver != "overlay2" {
            bail!("storage driver {driver:?} is not supported; berthd uses overlay2");
        }
    }

    let mut runtimes = BTreeMap::new();
    runtimes.insert(
        BERTH_RUNTIME.to_string(),
        RuntimeConfig {
            path: exe_dir.join(RUNTIME_BINARY),
            runtime_args: Vec::new(),
        },
    );
    for (name, rt) in file.runtimes.unwrap_or_default() {
        add_runtime(&mut runtimes, name, rt)?;
    }
    for spec in &flags.add_runtimes {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --add-runtime {spec:?}: expected NAME=PATH"))?;
        add_runtime(
            &mut runtimes,
            name.to_string(),
            RuntimeConfig {
                path: PathBuf::from(path),
                runtime_args: Vec::new(),
            },
        )?;
    }
    let default_runtime = flags
        .default_runtime
        .or(file.default_runtime)
        .unwrap_or_else(|| BERTH_RUNTIME.to_string());
    if !runtimes.contains_key(&default_runtime) {
        bail!("default runtime {default_runtime:?} is not a configured runtime");
    }

    let log_driver = flags
        .log_driver
        .or(file.log_driver)
        .unwrap_or_else(|| "json-file".to_string());
    let mut log_opts = file.log_opts.unwrap_or_default();
    for opt in &flags.log_opts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --log-opt {opt:?}: expected KEY=VALUE"))?;
        log_opts.insert(k.to_string(), v.to_string());
    }

    let max_download_attempts = flags
        .max_download_attempts
        .or(file.max_download_attempts)
        .unwrap_or(5);
    if max_download_attempts == 0 {
        bail!("invalid max download attempts: 0");
    }

    let shutdown_timeout = flags
        .shutdown_timeout
        .or(file.shutdown_timeout)
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    if shutdown_timeout < -1 {
        bail!("invalid shutdown timeout: {shutdown_timeout} (expected -1 or more)");
    }

    let metrics_addr = flags
        .metrics_addr
        .or(file.metrics_addr)
        .filter(|a| !a.is_empty())
        .map(|a| metrics_addr(&a))
        .transpose()?;

    let default_ulimits = default_ulimits(&flags.default_ulimits, file.default_ulimits)?;

    let tls_flag = flags.tls.or(file.tls);
    let verify = flags.tlsverify.or(file.tlsverify).unwrap_or(false);
    let tls = tls_settings(
        verify || tls_flag == Some(true),
        verify,
        flags.tlscacert.or(file.tlscacert),
        flags.tlscert.or(file.tlscert),
        flags.tlskey.or(file.tlskey),
    );

    let labels = if flags.labels.is_empty() {
        file.labels.unwrap_or_default()
    } else {
        flags.labels
    };

    Ok(Config {
        hosts,
        data_root,
        exec_root,
        pidfile,
        config_file,
        group: flags.group.or(file.group),
        log_level,
        log_format,
        debug,
        cgroup_parent: flags
            .cgroup_parent
            .or(file.cgroup_parent)
            .unwrap_or_else(|| DEFAULT_CGROUP_PARENT.to_string()),
        default_runtime,
        runtimes,
        shim_path: exe_dir.join(SHIM_BINARY),
        log_driver,
        log_opts,
        bip: flags.bip.or(file.bip),
        bridge: flags.bridge.or(file.bridge),
        fixed_cidr: flags.fixed_cidr.or(file.fixed_cidr),
        ipv6: file.ipv6.unwrap_or(false),
        fixed_cidr_v6: file.fixed_cidr_v6,
        iptables: flags.iptables.or(file.iptables).unwrap_or(true),
        userland_proxy: flags.userland_proxy.or(file.userland_proxy).unwrap_or(true),
        mtu: flags.mtu.or(file.mtu).unwrap_or(0),
        labels,
        dns: file.dns.unwrap_or_default(),
        dns_opts: file.dns_opts.unwrap_or_default(),
        dns_search: file.dns_search.unwrap_or_default(),
        insecure_registries: list_or(flags.insecure_registries, file.insecure_registries),
        registry_mirrors: list_or(flags.registry_mirrors, file.registry_mirrors),
        max_concurrent_downloads: flags
            .max_concurrent_downloads
            .or(file.max_concurrent_downloads)
            .unwrap_or(8),
        max_concurrent_uploads: flags
            .max_concurrent_uploads
            .or(file.max_concurrent_uploads)
            .unwrap_or(5),
        max_download_attempts,
        live_restore: flags.live_restore.or(file.live_restore).unwrap_or(false),
        shutdown_timeout,
        metrics_addr,
        default_ulimits,
        tls_disabled_explicitly: tls.is_none() && tls_flag == Some(false),
        validate: flags.validate,
        tls,
    })
}

/// dockerd's rules: --tlsverify implies --tls; the files default to
/// ca.pem, cert.pem and key.pem in $DOCKER_CERT_PATH (else /etc/berth).
fn tls_settings(
    enabled: bool,
    verify: bool,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Option<TlsSettings> {
    if !enabled {
        return None;
    }
    let dir = std::env::var_os("DOCKER_CERT_PATH")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CERT_DIR));
    let ca = match ca {
        Some(ca) => Some(ca),
        None if verify => Some(dir.join("ca.pem")),
        None => None,
    };
    Some(TlsSettings {
        verify,
        ca,
        cert: cert.unwrap_or_else(|| dir.join("cert.pem")),
        key: key.unwrap_or_else(|| dir.join("key.pem")),
    })
}

/// `--default-ulimit NAME=SOFT[:HARD]` flags, else the file's map; each
/// checked as a container's ulimit is.
fn default_ulimits(
    flags: &[String],
    file: Option<BTreeMap<String, FileUlimit>>,
) -> Result<Vec<Ulimit>> {
    let mut out: Vec<Ulimit> = Vec::new();
    if flags.is_empty() {
        for (key, u) in file.unwrap_or_default() {
            if !u.name.is_empty() && u.name != key {
                bail!(
                    "invalid default-ulimits entry {key:?}: its Name is {:?}",
                    u.name
                );
            }
            out.push(Ulimit {
                name: key,
                soft: u.soft,
                hard: u.hard,
            });
        }
    }
    for raw in flags {
        let bad = || anyhow!("invalid --default-ulimit {raw:?}: expected NAME=SOFT[:HARD]");
        let (name, limits) = raw.split_once('=').ok_or_else(bad)?;
        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
        let u = Ulimit {
            name: name.to_string(),
            soft: soft.parse().map_err(|_| bad())?,
            hard: hard.parse().map_err(|_| bad())?,
        };
        out.retain(|o| o.name != u.name);
        out.push(u);
    }
    for u in &out {
        crate::containers::check_ulimit(u).map_err(|e| anyhow!("default-ulimits: {e}"))?;
    }
    Ok(out)
}

/// `HOST:PORT` as given, or `127.0.0.1:PORT` for `:PORT`.
fn metrics_addr(raw: &str) -> Result<String> {
    let bad = || anyhow!("invalid metrics-addr {raw:?}: expected HOST:PORT");
    let (host, port) = raw.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Ok(format!("127.0.0.1:{port}"));
    }
    Ok(raw.to_string())
}

/// A list flag given on the command line wins over the file's list.
fn list_or(flag: Vec<String>, file: Option<Vec<String>>) -> Vec<String> {
    if flag.is_empty() {
        file.unwrap_or_default()
    } else {
        flag
    }
}

fn add_runtime(
    runtimes: &mut BTreeMap<String, RuntimeConfig>,
    name: String,
    rt: RuntimeConfig,
) -> Result<()> {
    if name.is_empty() || rt.path.as_os_str().is_empty() {
        bail!("invalid runtime {name:?}: name and path are required");
    }
    if runtimes.contains_key(&name) {
        bail!("runtime name '{name}' is reserved or already registered");
    }
    runtimes.insert(name, rt);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["berthd"];
        all.extend_from_slice(args);
        Flags::parse_from(all)
    }

    fn load(args: &[&str], json: &str) -> Result<Config> {
        let f = flags(args);
        let file = parse_file(json.as_bytes(), &f)?;
        merge(f, file, None, Path::new("/opt/berth/bin"))
    }

    #[test]
    fn defaults() {
        let c = load(&[], "{}").unwrap();
        assert_eq!(c.hosts, vec![Host::Unix(PathBuf::from(DEFAULT_SOCKET))]);
        assert_eq!(c.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
        assert_eq!(c.pidfile, PathBuf::from("/run/berth/berthd.pid"));
        assert_eq!(c.default_runtime, "berth");
        assert_eq!(
            c.runtime(None).unwrap().1.path,
            PathBuf::from("/opt/berth/bin/berth-runtime")
        );
        assert_eq!(c.shim_path, PathBuf::from("/opt/berth/bin/berth-shim"));
        assert_eq!(c.log_driver, "json-file");
    }

    #[test]
    fn file_values_apply() {
        let c = load(
            &["--add-runtime", "runc=/usr/sbin/runc"],
            r#"{"data-root":"/d","hosts":["tcp://127.0.0.1:2399","unix:///tmp/x.sock"],
                "runtimes":{"crun":{"path":"/usr/bin/crun","runtimeArgs":["--debug"]}},
                "default-runtime":"runc","log-opts":{"max-size":"1m"}}"#,
        )
        .unwrap();
        assert_eq!(c.data_root, PathBuf::from("/d"));
        assert_eq!(c.hosts[0], Host::Tcp("127.0.0.1:2399".into()));
        assert_eq!(c.runtimes["crun"].runtime_args, vec!["--debug"]);
        assert_eq!(c.runtime(None).unwrap().0, "runc");
        assert_eq!(c.log_opts["max-size"], "1m");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = load(&[], r#"{"data-root":"/d","bogus":1,"other":2}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the following directives don't match any configuration option: bogus, other"
        );
        let e = load(&[], r#"{"userns-remap":"default"}"#).unwrap_err();
        assert!(e
            .to_string()
            .contains("not supported by berthd: userns-remap"));
    }

    #[test]
    fn flag_and_file_conflict() {
        let e = load(&["--data-root", "/a"], r#"{"data-root":"/b"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the following directives are specified both as a flag and in the configuration file: data-root: (from flag: /a, from file: /b)"
        );
        assert!(load(&["-H", "unix:///x"], r#"{"hosts":["unix:///y"]}"#).is_err());
    }

    #[test]
    fn network_flags_and_keys() {
        let c = load(&[], "{}").unwrap();
        assert_eq!((c.iptables, c.mtu), (true, 0));
        let c = load(&["--iptables=false", "--mtu", "1400"], "{}").unwrap();
        assert_eq!((c.iptables, c.mtu), (false, 1400));
        assert!(load(&["--iptables"], "{}").unwrap().iptables);
        let c = load(&[], r#"{"iptables":false,"mtu":9000}"#).unwrap();
        assert_eq!((c.iptables, c.mtu), (false, 9000));
        assert!(c.userland_proxy);
        assert!(
            !load(&[], r#"{"userland-proxy":false}"#)
                .unwrap()
                .userland_proxy
        );
        assert!(
            !load(&["--userland-proxy=false"], "{}")
                .unwrap()
                .userland_proxy
        );
        assert!(load(&["--mtu", "1400"], r#"{"mtu":1500}"#).is_err());
    }

    #[test]
    fn tls_keys() {
        let c = load(&[], "{}").unwrap();
        assert_eq!((c.tls.clone(), c.tls_disabled_explicitly), (None, false));
        let c = load(&["--tls=false"], "{}").unwrap();
        assert_eq!((c.tls.clone(), c.tls_disabled_explicitly), (None, true));
        let c = load(
            &["--tlsverify", "--tlscacert", "/c/ca.pem"],
            r#"{"tlscert":"/c/s.pem","tlskey":"/c/s-key.pem"}"#,
        )
        .unwrap();
        assert_eq!(
            c.tls,
            Some(TlsSettings {
                verify: true,
                ca: Some("/c/ca.pem".into()),
                cert: "/c/s.pem".into(),
                key: "/c/s-key.pem".into(),
            })
        );
        // tlsverify implies tls, even with tls: false.
        let c = load(&[], r#"{"tls":false,"tlsverify":true}"#).unwrap();
        assert!(c.tls.is_some_and(|t| t.verify));
        let c = load(&["--tls"], "{}").unwrap();
        assert!(c.tls.is_some_and(|t| !t.verify && t.ca.is_none()));
        assert!(load(&["--tlsverify"], r#"{"tlsverify":true}"#).is_err());
    }

    #[test]
    fn shutdown_keys() {
        let c = load(&[], "{}").unwrap();
        assert_eq!((c.live_restore, c.shutdown_timeout), (false, 15));
        let c = load(&["--live-restore", "--shutdown-timeout", "-1"], "{}").unwrap();
        assert_eq!((c.live_restore, c.shutdown_timeout), (true, -1));
        let c = load(&[], r#"{"live-restore":true,"shutdown-timeout":3}"#).unwrap();
        assert_eq!((c.live_restore, c.shutdown_timeout), (true, 3));
        assert!(load(&["--shutdown-timeout", "-2"], "{}").is_err());
        assert!(load(&["--shutdown-timeout", "1"], r#"{"shutdown-timeout":2}"#).is_err());
        assert!(load(&["--live-restore"], r#"{"live-restore":false}"#).is_err());
    }

    #[test]
    fn metrics_addr_key() {
        assert_eq!(load(&[], "{}").unwrap().metrics_addr, None);
        let c = load(&["--metrics-addr", ":9323"], "{}").unwrap();
        assert_eq!(c.metrics_addr.as_deref(), Some("127.0.0.1:9323"));
        let c = load(&[], r#"{"metrics-addr":"[::1]:9323"}"#).unwrap();
        assert_eq!(c.metrics_addr.as_deref(), Some("[::1]:9323"));
        assert!(load(&["--metrics-addr", "localhost"], "{}").is_err());
        assert!(load(&["--metrics-addr", "x:99999"], "{}").is_err());
    }

    #[test]
    fn log_format_key() {
        assert_eq!(load(&[], "{}").unwrap().log_format, LogFormat::Text);
        let c = load(&["--log-format", "json"], "{}").unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let c = load(&[], r#"{"log-format":"text"}"#).unwrap();
        assert_eq!(c.log_format, LogFormat::Text);
        let e = load(&["--log-format", "xml"], "{}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid log format \"xml\": expected text or json"
        );
    }

    #[test]
    fn default_ulimits_key_and_flag() {
        assert!(load(&[], "{}").unwrap().default_ulimits.is_empty());
        let c = load(
            &[],
            r#"{"default-ulimits":{"nofile":{"Name":"nofile","Soft":1024,"Hard":2048}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.default_ulimits,
            vec![Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }]
        );
        let c = load(
            &[
                "--default-ulimit",
                "nproc=64",
                "--default-ulimit",
                "core=0:-1",
            ],
            "{}",
        )
        .unwrap();
        let got: Vec<(&str, i64, i64)> = c
            .default_ulimits
            .iter()
            .map(|u| (u.name.as_str(), u.soft, u.hard))
            .collect();
        assert_eq!(got, vec![("nproc", 64, 64), ("core", 0, -1)]);
        assert!(load(&["--default-ulimit", "bogus=1"], "{}").is_err());
        assert!(load(&["--default-ulimit", "nofile=10:2"], "{}").is_err());
        assert!(load(&["--default-ulimit", "nofile"], "{}").is_err());
        assert!(load(
            &[],
            r#"{"default-ulimits":{"nofile":{"Name":"nproc","Soft":1,"Hard":1}}}"#
        )
        .is_err());
        assert!(load(
            &["--default-ulimit", "nproc=1"],
            r#"{"default-ulimits":{}}"#
        )
        .is_err());
    }

    #[test]
    fn bad_values() {
        assert!(load(&["--log-level", "chatty"], "{}").is_err());
        assert!(load(&["--default-runtime", "nope"], "{}").is_err());
        assert!(load(&["--add-runtime", "berth=/x"], "{}").is_err());
        assert!(load(&["--data-root", "rel"], "{}").is_err());
        assert!(load(&[], r#"{"storage-driver":"vfs"}"#).is_err());
        assert!(load(&[], r#"{"debug":"yes"}"#).is_err());
    }

    #[test]
    fn missing_default_file_is_fine_missing_explicit_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("daemon.json");
        let mut f = flags(&["--data-root", "/d"]);
        f.config_file = missing.clone();
        let c = Config::load(f, false).unwrap();
        assert_eq!(c.config_file, None);
        let mut f = flags(&[]);
        f.config_file = missing;
        let e = Config::load(f, true).unwrap_err();
        assert!(format!("{e:#}").contains("No such file"), "{e:#}");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("unix://").unwrap(),
            Host::Unix(DEFAULT_SOCKET.into())
        );
        assert_eq!(
            Host::parse("tcp://0.0.0.0").unwrap(),
            Host::Tcp("0.0.0.0:2375".into())
        );
        assert_eq!(
            Host::parse("tcp://:2376").unwrap(),
            Host::Tcp("127.0.0.1:2376".into())
        );
        assert_eq!(Host::parse("fd://").unwrap(), Host::Fd(None));
        assert_eq!(Host::parse("fd://3").unwrap(), Host::Fd(Some(3)));
        assert!(Host::parse("/var/run/x.sock").is_err());
        assert!(Host::parse("unix://relative").is_err());
        assert!(Host::parse("fd://x").is_err());
    }
}
