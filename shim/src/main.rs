//! berth-shim: supervises one container. See `berth_common::shim` for the
//! protocol and the start-up contract with berthd.

mod args;
mod conn;
mod exec;
mod finish;
mod io;
mod jsonlog;
mod ops;
mod procio;
mod reaper;
mod runtime;
mod server;
mod slog;
mod timefmt;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use berth_common::shim::{Status, PID_FILE, SOCKET_NAME};
use nix::unistd::{fork, ForkResult};

use crate::args::Config;
use crate::io::ConsoleSocket;
use crate::jsonlog::JsonLog;
use crate::procio::{Plumbing, ProcIo};
use crate::reaper::{OomWatch, Reaper};
use crate::runtime::{read_pid_file, Runtime};
use crate::server::Shim;

/// What the shim tells the intermediate on success, followed by the pid.
const READY: &[u8] = b"ok ";

fn main() {
    let cfg = match Config::parse(std::env::args().skip(1)).and_then(absolute_paths) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-shim: {e:#}");
            std::process::exit(2);
        }
    };
    let (ready_r, ready_w) = match io::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("berth-shim: {e:#}");
            std::process::exit(1);
        }
    };
    // SAFETY: the process is single-threaded here, so the child may do
    // anything after fork.
    match unsafe { fork() } {
        Err(e) => {
            eprintln!("berth-shim: fork: {e}");
            std::process::exit(1);
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(ready_w);
            std::process::exit(wait_for_ready(ready_r));
        }
        Ok(ForkResult::Child) => {
            drop(ready_r);
            close_inherited_fds(ready_w.as_raw_fd());
            shim_main(cfg, ready_w);
        }
    }
}

/// A long-lived process must not keep its spawner's descriptors (say, the
/// write end of a pipe someone waits on); keep only stdio and `keep`.
fn close_inherited_fds(keep: i32) {
    let ranges = [(3, keep - 1), (keep + 1, i32::MAX)];
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        // SAFETY: close_range closes descriptors only; nothing in this
        // process refers to the ones in these ranges.
        let rc = unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
        if rc != 0 {
            // Kernels before 5.9: close them one by one.
            let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(1024, 65536) as i32;
            for fd in first..=last.min(max) {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// The intermediate process: relays the shim's verdict as exit status,
/// and the init's pid on stdout.
fn wait_for_ready(ready: OwnedFd) -> i32 {
    let mut msg = Vec::new();
    let _ = File::from(ready).read_to_end(&mut msg);
    if let Some(pid) = msg.strip_prefix(READY) {
        println!("{}", String::from_utf8_lossy(pid));
        return 0;
    }
    if msg.is_empty() {
        eprintln!("berth-shim: the shim exited before the container was created");
    } else {
        eprintln!("berth-shim: {}", String::from_utf8_lossy(&msg));
    }
    1
}

fn shim_main(cfg: Config, ready: OwnedFd) -> ! {
    let mut ready = File::from(ready);
    match setup(&cfg) {
        Ok(shim) => {
            let _ = ready.write_all(&[READY, shim.init_pid.to_string().as_bytes()].concat());
            drop(ready);
            shim.run();
            std::process::exit(0);
        }
        Err(e) => {
            slog!("start-up failed: {e:#}");
            let _ = std::fs::remove_file(cfg.state_dir.join(PID_FILE));
            let _ = ready.write_all(format!("{e:#}").as_bytes());
            std::process::exit(1);
        }
    }
}

fn absolute_paths(mut cfg: Config) -> Result<Config> {
    let abs =
        |p: &Path| std::path::absolute(p).with_context(|| format!("resolving {}", p.display()));
    cfg.bundle = abs(&cfg.bundle)?;
    cfg.state_dir = abs(&cfg.state_dir)?;
    cfg.runtime_root = abs(&cfg.runtime_root)?;
    if cfg.runtime.components().count() > 1 {
        cfg.runtime = abs(&cfg.runtime)?;
    }
    if let Some(p) = &cfg.log_path {
        cfg.log_path = Some(abs(p)?);
    }
    Ok(cfg)
}

/// Detaches, creates the container and binds the control socket.
fn setup(cfg: &Config) -> Result<Shim> {
    detach()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.state_dir)
        .with_context(|| format!("creating state dir {}", cfg.state_dir.display()))?;
    slog::open(&cfg.state_dir.join(berth_common::shim::LOG_FILE)).context("opening shim.log")?;
    slog!(
        "starting for container {} (bundle {})",
        cfg.id,
        cfg.bundle.display()
    );
    // The state dir is in the volatile exec root: atomic for a daemon or
    // shim crash, no fsync (a host crash takes the directory with it).
    berth_common::atomic::write_file_volatile(
        &cfg.state_dir.join(PID_FILE),
        std::process::id().to_string().as_bytes(),
        0o600,
    )
    .context("writing shim.pid")?;

    let socket_path = io::SocketPath::new(&cfg.state_dir.join(SOCKET_NAME))?;
    if UnixStream::connect(&socket_path.short).is_ok() {
        bail!(
            "another shim is already serving {}",
            socket_path.path.display()
        );
    }

    let reaper = Reaper::new()?;
    let rt = Runtime::new(
        cfg.runtime.clone(),
        cfg.runtime_root.clone(),
        cfg.id.clone(),
    );
    let log = match &cfg.log_path {
        Some(p) => Some(
            JsonLog::open(p, cfg.log_max_size, cfg.log_max_files)
                .with_context(|| format!("opening log {}", p.display()))?,
        ),
        None => None,
    };
    let (init_pid, init_io) = create(cfg, &rt)?;
    let oom = OomWatch::for_pid(init_pid);
    slog!(
        "created: init pid {init_pid}, oom counter {}",
        oom.describe()
    );

    let listener = match socket_path.bind() {
        Ok(l) => l,
        Err(e) => {
            if let Err(de) = rt.run(&["delete", "--force"], &[]) {
                slog!("{de:#}");
            }
            return Err(e);
        }
    };
    Ok(Shim {
        cfg: cfg.clone(),
        rt,
        listener,
        reaper,
        init_pid,
        init_io,
        log,
        oom,
        status: Status::Created,
        init_exit: None,
        finalized_at: None,
        shutdown: false,
        socket_unlinked: false,
        accept_paused_until: None,
        accept_failures: 0,
        execs: BTreeMap::new(),
        exec_seq: 0,
        conns: BTreeMap::new(),
        next_conn: 0,
    })
}

/// New session, subreaper of everything the container leaves behind, no tie
/// to the daemon's terminal, cwd or stdio.
fn detach() -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        bail!(
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
    }
    std::env::set_current_dir("/").context("chdir /")?;
    let null = io::dev_null()?;
    for target in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which we own.
        if unsafe { libc::dup2(null.as_raw_fd(), target) } < 0 {
            bail!("redirecting stdio: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `runtime create`; returns the init pid and its stdio.
fn create(cfg: &Config, rt: &Runtime) -> Result<(i32, ProcIo)> {
    let pid_file = cfg.state_dir.join("init.pid");
    let _ = std::fs::remove_file(&pid_file);
    let console = if cfg.tty {
        Some(ConsoleSocket::bind(&cfg.state_dir.join("console.sock"))?)
    } else {
        None
    };
    let Plumbing {
        child,
        ours,
        errors,
    } = if cfg.tty {
        Plumbing::for_terminal()?
    } else {
        Plumbing::pipes(cfg.stdin)?
    };
    let mut extra: Vec<&Path> = vec![
        Path::new("--bundle"),
        &cfg.bundle,
        Path::new("--pid-file"),
        &pid_file,
    ];
    if let Some(c) = &console {
        extra.push(Path::new("--console-socket"));
        extra.push(c.connect_path());
    }
    let created = rt.run_with_stdio(&["create"], &extra, child, Some(&errors));
    drop(errors);
    let result = created.and_then(|()| {
        let pid = read_pid_file(&pid_file)?;
        let io = match &console {
            Some(c) => ProcIo::from_console(c, cfg.stdin)?,
            None => ours,
        };
        Ok((pid, io))
    });
    let _ = std::fs::remove_file(&pid_file);
    if result.is_err() {
        // Leave no runtime state behind (the runtime may have got far).
        if let Err(e) = rt.run(&["delete", "--force"], &[]) {
            slog!("clean-up after failed create: {e:#}");
        }
    }
    result
}
