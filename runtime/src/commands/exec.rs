//! `exec`: run another process in a running container.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, User};

use crate::error::{Error, Result};
use crate::process::spawn::{become_subreaper, fork_child_into};
use crate::process::tenant::{self, TenantConfig};
use crate::process::{console_proxy, wait};
use crate::state::{Root, Status};
use crate::sync::{self, Msg};

#[derive(Default)]
pub struct ExecOptions {
    pub process_file: Option<PathBuf>,
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
}

/// Returns the exit code to exit with (0 when detached).
pub fn exec(root: &Root, id: &str, opts: &ExecOptions) -> Result<i32> {
    let c = root.load(id)?;
    match c.status(root) {
        Status::Stopped => return Err(Error::invalid("cannot exec in a stopped container")),
        Status::Paused => return Err(Error::invalid("cannot exec in a paused container")),
        Status::Creating => {
            return Err(Error::invalid(
                "cannot exec in a container that is being created",
            ))
        }
        Status::Created | Status::Running => {}
    }
    let process = build_process(&c.spec, opts)?;
    crate::spec::validate_process(&process)?;
    let terminal = process.terminal().unwrap_or(false);
    let mut ours = None;
    let console = match (&opts.console_socket, terminal) {
        (Some(p), true) => Some(crate::tty::connect_console_socket(p)?),
        (None, true) if !opts.detach => {
            let (mine, theirs) = crate::tty::console_pair()?;
            ours = Some(mine);
            Some(theirs)
        }
        (None, true) => {
            return Err(Error::invalid(
                "a terminal was requested but no --console-socket was given",
            ))
        }
        (Some(_), false) => {
            return Err(Error::invalid("--console-socket given without a terminal"))
        }
        (None, false) => None,
    };
    let linux = c.spec.linux().clone().unwrap_or_default();
    let cfg = TenantConfig {
        init_pid: c.pid,
        namespaces: linux
            .namespaces()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|n| n.typ())
            .collect(),
        process,
        seccomp: match linux.seccomp() {
            Some(profile) => Some(crate::seccomp::cache::filter(
                &root.container_dir(&c.id),
                profile,
            )?),
            None => None,
        },
        console,
        preserve_fds: opts.preserve_fds,
    };
    let cgroup = super::lifecycle::cgroup(&c)?;
    let join = cgroup
        .self_join()
        .map_err(|e| Error::Cgroup(e.to_string()))?;
    let unified = match join.open_unified() {
        // SAFETY: a fresh fd that nothing else owns.
        Some(Ok(fd)) => Some(unsafe { <OwnedFd as FromRawFd>::from_raw_fd(fd) }),
        _ => None,
    };
    become_subreaper()?;
    if !opts.detach {
        wait::block()?;
    }
    let (parent, child) = sync::pair()?;
    let stage1 = fork_child_into(&child, Some(&parent), unified.as_ref(), |born_in| {
        tenant::stage1(&child, &cfg, &join, born_in)
    })?;
    drop(unified);
    drop(child);
    drop(cfg);
    let mut target: Option<Pid> = None;
    let started = (|| {
        let pid = loop {
            match parent.expect("process pid", |m| {
                matches!(m, Msg::Pid(_) | Msg::WantCgroup)
            })? {
                Msg::WantCgroup => {
                    cgroup
                        .add_process(stage1.as_raw())
                        .map_err(|e| Error::Cgroup(e.to_string()))?;
                    parent.send(&Msg::Go)?;
                }
                Msg::Pid(p) => break Pid::from_raw(p),
                _ => unreachable!("filtered by expect"),
            }
        };
        target = Some(pid);
        let _ = waitpid(stage1, None);
        parent.send(&Msg::Pid(pid.as_raw()))?;
        // The socket is close-on-exec: EOF means the execve happened.
        match parent.recv_or_eof()? {
            None => Ok(pid),
            Some(Msg::Failed(e)) => Err(Error::Invalid(e)),
            Some(m) => Err(Error::invalid(format!("unexpected message {m:?}"))),
        }
    })();
    let pid = match started {
        Ok(p) => p,
        Err(e) => {
            for p in [Some(stage1), target].into_iter().flatten() {
                let _ = kill(p, Signal::SIGKILL);
                let _ = waitpid(p, None);
            }
            return Err(e);
        }
    };
    if let Some(f) = &opts.pid_file {
        super::create::write_pid_file(f, pid.as_raw())?;
    }
    if opts.detach {
        return Ok(0);
    }
    match ours {
        Some(sock) => {
            let master = crate::tty::recv_fd(&sock)?;
            console_proxy::proxy_until_exit(pid, master)
        }
        None => wait::forward_until_exit(pid),
    }
}

/// The process to run: --process JSON, or the container's process with
/// args and the flags applied (as runc does).
fn build_process(spec: &oci_spec::runtime::Spec, opts: &ExecOptions) -> Result<Process> {
    let mut p: Process = match &opts.process_file {
        Some(path) => {
            let data = std::fs::read(path)
                .map_err(|e| Error::invalid(format!("read {}: {e}", path.display())))?;
            serde_json::from_slice(&data)
                .map_err(|e| Error::invalid(format!("parse {}: {e}", path.display())))?
        }
        None => {
            if opts.args.is_empty() {
                return Err(Error::invalid("exec needs a command or --process"));
            }
            let mut p = spec.process().clone().unwrap_or_default();
            p.set_args(Some(opts.args.clone()));
            p.set_terminal(Some(false));
            p
        }
    };
    if opts.tty {
        p.set_terminal(Some(true));
    }
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    if !opts.env.is_empty() {
        let mut env = p.env().clone().unwrap_or_default();
        env.extend(opts.env.iter().cloned());
        p.set_env(Some(env));
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = parse_user(u)?;
        let mut user = User::default();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_umask(p.user().umask());
        p.set_user(user);
    }
    if !opts.additional_gids.is_empty() {
        p.user_mut()
            .set_additional_gids(Some(opts.additional_gids.clone()));
    }
    if !opts.caps.is_empty() {
        let add = crate::caps::parse_names(&opts.caps)?;
        let mut c = p.capabilities().clone().unwrap_or_default();
        let merge = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.extend(add.iter().copied());
            Some(s)
        };
        c.set_bounding(merge(c.bounding()));
        c.set_effective(merge(c.effective()));
        c.set_permitted(merge(c.permitted()));
        c.set_inheritable(merge(c.inheritable()));
        c.set_ambient(merge(c.ambient()));
        p.set_capabilities(Some(c));
    }
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// "uid[:gid]", numeric as runc accepts it.
fn parse_user(s: &str) -> Result<(u32, u32)> {
    let bad = || Error::invalid(format!("invalid --user {s:?}: want uid[:gid]"));
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid: u32 = u.parse().map_err(|_| bad())?;
    let gid: u32 = match g {
        Some(g) => g.parse().map_err(|_| bad())?,
        None => 0,
    };
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, 100));
        assert!(parse_user("bob").is_err());
    }
}
