//! The last steps before the container's program runs, shared by the init
//! and by exec'd processes: find the executable, set cwd, limits and
//! no_new_privs, then (after the identity switch) close fds and execve.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use oci_spec::runtime::Process;

use crate::error::{Context, Error, Result};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything execve needs, worked out while we can still report errors.
pub struct ExecPlan {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
    seccomp: Option<crate::seccomp::Filter>,
    no_new_privs: bool,
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::invalid(format!("{s:?} contains a NUL byte")))
}

pub fn plan(process: &Process, seccomp: Option<crate::seccomp::Filter>) -> Result<ExecPlan> {
    let args = process.args().as_deref().unwrap_or_default();
    let first = args
        .first()
        .ok_or_else(|| Error::invalid("process.args must not be empty"))?;
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            crate::identity::home_dir(process.user().uid())
        ));
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let path = lookup(first, path_var)?;
    Ok(ExecPlan {
        path: cstring(&path.to_string_lossy())?,
        argv: args.iter().map(|a| cstring(a)).collect::<Result<_>>()?,
        env: env.iter().map(|e| cstring(e)).collect::<Result<_>>()?,
        seccomp,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
    })
}

/// Resolve a command like execvp would, inside the container.
fn lookup(cmd: &str, path_var: &str) -> Result<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return match std::fs::metadata(&p) {
            Err(e) => Err(Error::invalid(format!("exec: {cmd:?}: {e}"))),
            Ok(_) if !executable(&p) => {
                Err(Error::invalid(format!("exec: {cmd:?}: permission denied")))
            }
            Ok(_) => Ok(p),
        };
    }
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(cmd))
        .find(|p| executable(p))
        .ok_or_else(|| Error::invalid(format!("exec: {cmd:?}: executable file not found in $PATH")))
}

/// Set while still host root, before any namespace is joined: inside a user
/// namespace /proc/self/oom_score_adj is not ours to write. Inherited by
/// the forked stages.
pub fn set_oom_score_adj(process: &Process) -> Result<()> {
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .ctx(|| format!("set oom_score_adj {adj}"))?;
    }
    Ok(())
}

/// As root inside the container: cwd (verified), rlimits, no_new_privs.
/// `create_cwd`: for the init only; an exec into a missing cwd fails, as
/// with runc.
pub fn prepare_process(process: &Process, create_cwd: bool) -> Result<()> {
    let cwd = process.cwd();
    if create_cwd && nix::unistd::chdir(cwd) == Err(nix::errno::Errno::ENOENT) {
        // As runc: a missing cwd is created (we are inside the new root, so
        // the path cannot leave it).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(cwd)
            .ctx(|| format!("create cwd {}", cwd.display()))?;
    }
    nix::unistd::chdir(cwd).ctx(|| format!("chdir to cwd {}", cwd.display()))?;
    // A cwd reached through a leaked host fd or a moved mount resolves
    // outside our root; getcwd then fails or does not name an absolute path.
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        _ => {
            return Err(Error::invalid(format!(
                "cwd {} is outside the container root",
                cwd.display()
            )))
        }
    }
    crate::rlimits::apply(process.rlimits().as_deref().unwrap_or_default())?;
    if process.no_new_privileges() == Some(true) {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Error::invalid(format!(
                "set no_new_privs: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

impl ExecPlan {
    /// Without no_new_privs the filter needs CAP_SYS_ADMIN: install it
    /// before the identity switch drops that.
    pub fn apply_seccomp_early(&mut self) -> Result<()> {
        if !self.no_new_privs {
            self.apply_seccomp()?;
        }
        Ok(())
    }

    fn apply_seccomp(&mut self) -> Result<()> {
        if let Some(f) = self.seccomp.take() {
            f.apply()?;
        }
        Ok(())
    }

    /// Reset signals, hide every fd above the preserved ones, install a
    /// pending seccomp filter, execve.
    pub fn exec(mut self, preserve_fds: u32) -> Result<Infallible> {
        reset_signals();
        crate::fds::cloexec_from(3 + preserve_fds)?;
        self.apply_seccomp()?;
        let err = nix::unistd::execve(&self.path, &self.argv, &self.env).unwrap_err();
        Err(Error::Sys {
            context: format!("exec {}", self.path.to_string_lossy()),
            err,
        })
    }
}

/// Dispositions and mask as a freshly started program expects them (Rust
/// ignores SIGPIPE and foreground runs block signals; neither may leak).
fn reset_signals() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL is always sound.
            let _ = unsafe { sigaction(sig, &dfl) };
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_uses_path_and_reports_missing() {
        assert_eq!(
            lookup("sh", "/nonexistent:/bin").unwrap(),
            PathBuf::from("/bin/sh")
        );
        let err = lookup("no-such-cmd-xyz", "/bin").unwrap_err().to_string();
        assert!(err.contains("executable file not found"), "{err}");
        assert!(lookup("/bin/sh", "").is_ok());
        assert!(lookup("/etc/passwd", "").is_err());
    }
}
