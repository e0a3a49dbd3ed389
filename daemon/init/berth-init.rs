//! berth-init: a minimal PID 1 for `docker run --init`.
//!
//! `berth-init [--] COMMAND [ARG...]` starts COMMAND in its own process
//! group, forwards the signals it receives to that group, reaps every
//! process re-parented to it, and exits with COMMAND's exit code (128 + the
//! signal number when COMMAND was killed by a signal).
//!
//! It is built as a single static, std-only binary (see daemon/build.rs) so
//! it runs in any image, including ones without a libc. The few libc calls
//! std does not wrap are declared here.

use std::ffi::OsString;
use std::os::raw::{c_int, c_long, c_ulong};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// glibc's `sigset_t` (1024 bits).
#[repr(C)]
struct SigSet([c_ulong; 16]);

/// Room for a `siginfo_t` (128 bytes); `si_signo` is the first int.
#[repr(C)]
struct SigInfo([u64; 16]);

#[repr(C)]
struct Timespec {
    tv_sec: c_long,
    tv_nsec: c_long,
}

extern "C" {
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong, arg4: c_ulong, arg5: c_ulong) -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn getpid() -> c_int;
    fn isatty(fd: c_int) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
}

const SIG_BLOCK: c_int = 0;
const SIG_SETMASK: c_int = 2;
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;
const WNOHANG: c_int = 1;
const PR_SET_CHILD_SUBREAPER: c_int = 36;

const SIGILL: c_int = 4;
const SIGTRAP: c_int = 5;
const SIGABRT: c_int = 6;
const SIGBUS: c_int = 7;
const SIGFPE: c_int = 8;
const SIGSEGV: c_int = 11;
const SIGCHLD: c_int = 17;
const SIGTSTP: c_int = 20;
const SIGTTIN: c_int = 21;
const SIGTTOU: c_int = 22;
const SIGSYS: c_int = 31;

/// Signals that report a fault in this process (or are tty job control
/// meant for it); they are never blocked or forwarded.
const NOT_FORWARDED: [c_int; 10] = [
    SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS, SIGTSTP, SIGTTIN, SIGTTOU,
];

const USAGE: &str = "usage: berth-init [--] COMMAND [ARG...]";

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = match args.first().and_then(|a| a.to_str()) {
        None => fail(USAGE),
        Some("--version") => {
            let version = option_env!("CARGO_PKG_VERSION").unwrap_or("dev");
            println!("berth-init version {version}");
            return;
        }
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            return;
        }
        Some("--") => &args[1..],
        Some(_) => &args[..],
    };
    if command.is_empty() {
        fail(USAGE);
    }
    std::process::exit(run(command));
}

fn fail(msg: &str) -> ! {
    eprintln!("berth-init: {msg}");
    std::process::exit(127);
}

fn run(command: &[OsString]) -> i32 {
    // The set of signals handled synchronously through sigtimedwait.
    let mut handled = SigSet([0; 16]);
    let mut original = SigSet([0; 16]);
    // SAFETY: plain libc calls on valid, owned sigset storage.
    unsafe {
        sigfillset(&mut handled);
        for sig in NOT_FORWARDED {
            sigdelset(&mut handled, sig);
        }
        sigemptyset(&mut original);
        if sigprocmask(SIG_BLOCK, &handled, &mut original) != 0 {
            fail(&format!("sigprocmask: {}", std::io::Error::last_os_error()));
        }
        // When not PID 1 (e.g. a pid namespace shared with the host), orphans
        // of the command must still come to us.
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }

    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    let original_mask = SigSet(original.0);
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls.
    unsafe {
        cmd.pre_exec(move || {
            setpgid(0, 0);
            if isatty(0) == 1 {
                // Taking the terminal from a background group raises SIGTTOU.
                signal(SIGTTOU, SIG_IGN);
                tcsetpgrp(0, getpid());
                signal(SIGTTOU, SIG_DFL);
            }
            if sigprocmask(SIG_SETMASK, &original_mask, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child.id() as c_int,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            eprintln!("berth-init: exec {:?}: {e}", command[0]);
            return code;
        }
    };

    loop {
        let mut info = SigInfo([0; 16]);
        let timeout = Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: valid pointers to owned storage.
        let sig = unsafe { sigtimedwait(&handled, &mut info, &timeout) };
        if sig > 0 && sig != SIGCHLD {
            forward(child, sig);
        }
        // Reap on every wake-up: SIGCHLD coalesces, and the timeout covers a
        // missed one.
        if let Some(code) = reap(child) {
            return code;
        }
    }
}

/// Sends `sig` to the command's process group, or to the command alone if
/// it left the group.
fn forward(child: c_int, sig: c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        if kill(-child, sig) != 0 {
            kill(child, sig);
        }
    }
}

/// Reaps every exited child; returns the exit code once `child` is gone.
fn reap(child: c_int) -> Option<i32> {
    let mut result = None;
    loop {
        let mut status: c_int = 0;
        // SAFETY: valid pointer to a local.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == child {
            result = Some(exit_code(status));
        }
    }
}

/// The shell convention: the exit status, or 128 + signal number.
fn exit_code(status: c_int) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}
