//! The command line, shaped like runc's so containerd-shim-runc-v2, dockerd
//! and podman can drive us in its place.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::{self, create::CreateOptions, exec::ExecOptions, update::UpdateOptions};
use crate::error::{Error, Result};
use crate::logging;
use crate::state::Root;

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    about = "An OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state (tmpfs recommended)
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    pub root: PathBuf,
    /// Also write errors (and debug output) to this file
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported by berth-runtime)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Path to criu; accepted for compatibility, berth-runtime has no checkpointing
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master of a terminal container
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container init's pid to
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for ramdisk roots)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            console_fd: None,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container; its process waits for `start`
    Create(CreateArgs),
    /// Start the process of a created container
    Start { id: String },
    /// Create and start a container
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Detach from the container's process
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container
    State { id: String },
    /// Send a signal to the container's init (or all its processes)
    Kill {
        /// Signal every process in the container
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and what it holds
    Delete {
        /// Kill a running container first
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Run a new process inside a container
    Exec(ExecArgs),
    /// List the processes of a container
    Ps {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers
    List {
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Freeze all processes of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change resource limits of a container
    Update(UpdateArgs),
    /// Print container statistics
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats events
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Print the features this runtime supports
    Features,
    /// Write a template config.json
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// Rootless template (not supported)
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Path to a process.json
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Environment variables to add
    #[arg(short = 'e', long)]
    pub env: Vec<String>,
    /// uid[:gid]
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Capabilities to add
    #[arg(short = 'c', long = "cap")]
    pub caps: Vec<String>,
    /// Set no_new_privs
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Detach from the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// JSON resources file, "-" for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    pub id: String,
}

/// Runs the parsed command; the value is the process exit code.
pub fn execute(cli: Cli) -> Result<i32> {
    let format = match cli.log_format.as_str() {
        "text" => logging::Format::Text,
        "json" => logging::Format::Json,
        other => {
            return Err(Error::invalid(format!(
                "unknown log-format {other:?} (want text or json)"
            )))
        }
    };
    logging::init(cli.log.clone(), format, cli.debug);
    if cli.version {
        commands::out(format!(
            "berth-runtime version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            crate::state::OCI_VERSION
        ));
        return Ok(0);
    }
    if cli.systemd_cgroup {
        return Err(Error::invalid(
            "--systemd-cgroup is not supported: berth-runtime manages cgroupfs directly",
        ));
    }
    let Some(command) = cli.command else {
        return Err(Error::invalid("no command given (see --help)"));
    };
    let root = Root::new(&cli.root);
    logging::debug(&format!("command: {command:?}"));
    match command {
        Command::Create(a) => {
            crate::seal::ensure_sealed()?;
            commands::create::create(&root, &a.id, &a.options())?;
            Ok(0)
        }
        Command::Start { id } => commands::lifecycle::start(&root, &id).map(|_| 0),
        Command::Run {
            create,
            detach,
            keep,
        } => {
            crate::seal::ensure_sealed()?;
            commands::run::run(&root, &create.id, create.options(), detach, keep)
        }
        Command::State { id } => commands::info::state(&root, &id).map(|_| 0),
        Command::Kill { all, id, signal } => {
            let sig = crate::signals::parse(&signal)?;
            commands::lifecycle::kill(&root, &id, sig, all).map(|_| 0)
        }
        Command::Delete { force, id } => commands::lifecycle::delete(&root, &id, force).map(|_| 0),
        Command::Exec(a) => {
            crate::seal::ensure_sealed()?;
            let opts = ExecOptions {
                process_file: a.process,
                args: a.args,
                tty: a.tty,
                console_socket: a.console_socket,
                cwd: a.cwd,
                env: a.env,
                user: a.user,
                additional_gids: a.additional_gids,
                caps: a.caps,
                no_new_privs: a.no_new_privs,
                detach: a.detach,
                pid_file: a.pid_file,
                preserve_fds: a.preserve_fds,
            };
            commands::exec::exec(&root, &a.id, &opts)
        }
        Command::Ps {
            format,
            id,
            ps_args,
        } => commands::info::ps(&root, &id, &format, &ps_args).map(|_| 0),
        Command::List { format, quiet } => commands::info::list(&root, &format, quiet).map(|_| 0),
        Command::Pause { id } => commands::lifecycle::pause(&root, &id).map(|_| 0),
        Command::Resume { id } => commands::lifecycle::resume(&root, &id).map(|_| 0),
        Command::Update(a) => {
            let opts = UpdateOptions {
                resources: a.resources,
                memory: a.memory,
                memory_reservation: a.memory_reservation,
                memory_swap: a.memory_swap,
                cpu_shares: a.cpu_shares,
                cpu_quota: a.cpu_quota,
                cpu_period: a.cpu_period,
                cpuset_cpus: a.cpuset_cpus,
                cpuset_mems: a.cpuset_mems,
                pids_limit: a.pids_limit,
                blkio_weight: a.blkio_weight,
            };
            commands::update::update(&root, &a.id, &opts).map(|_| 0)
        }
        Command::Events {
            stats,
            interval,
            id,
        } => {
            let interval = parse_duration(&interval)?;
            commands::info::events(&root, &id, stats, interval).map(|_| 0)
        }
        Command::Features => commands::info::features().map(|_| 0),
        Command::Spec { bundle, rootless } => {
            if rootless {
                return Err(Error::invalid("rootless specs are not supported"));
            }
            commands::info::spec(&bundle).map(|_| 0)
        }
    }
}

/// Go-style durations as runc takes them: "5s", "250ms", "1m".
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::invalid(format!("invalid duration {s:?}"));
    let split = s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_style_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "berth-runtime",
            "--root",
            "/r",
            "--log",
            "/l.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "ctr",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Create(ref a)) if a.id == "ctr"));
        let cli = Cli::try_parse_from(["berth-runtime", "exec", "ctr", "ls", "-la"]).unwrap();
        match cli.command {
            Some(Command::Exec(a)) => assert_eq!(a.args, vec!["ls", "-la"]),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["berth-runtime", "kill", "--all", "ctr", "9"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Kill { all: true, ref signal, .. }) if signal == "9")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
    }
}
