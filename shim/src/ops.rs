//! The control operations: one request in, one response (or a role for the
//! connection, for the streaming and waiting ones) out.

use berth_common::shim::{Request, Response, Status, PROTOCOL_VERSION};

use crate::conn::Role;
use crate::exec::Exec;
use crate::io;
use crate::procio::ProcIo;
use crate::server::Shim;

impl Shim {
    /// (role, response now or `None` when answered later, keep open).
    pub(crate) fn answer(&mut self, conn: u64, req: Request) -> (Role, Option<Response>, bool) {
        let reply = |r: Response| (Role::Reply, Some(r), false);
        let result = |r: anyhow::Result<()>| match r {
            Ok(()) => reply(Response::ok()),
            Err(e) => reply(Response::error(format!("{e:#}"))),
        };
        match req {
            Request::State => reply(Response {
                ok: true,
                version: Some(PROTOCOL_VERSION),
                status: Some(self.status),
                pid: Some(self.init_pid),
                exit: self.init_exit.as_ref().map(|(e, _)| e.clone()),
                ..Default::default()
            }),
            Request::Start => result(self.start()),
            Request::Kill { signal, all } => result(self.kill(signal, all)),
            Request::Pause => result(self.pause()),
            Request::Resume => result(self.resume()),
            Request::Wait => match (&self.init_exit, self.finalized_at) {
                (Some((e, _)), Some(_)) => reply(Response {
                    ok: true,
                    exit: Some(e.clone()),
                    ..Default::default()
                }),
                _ => (Role::Wait, None, true),
            },
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                if self.finalized_at.is_some() {
                    reply(Response::ok())
                } else {
                    (
                        Role::Attach {
                            stdin,
                            stdout,
                            stderr,
                        },
                        Some(Response::ok()),
                        true,
                    )
                }
            }
            Request::Resize { width, height } => result(match &self.init_io.pty {
                Some(pty) => io::set_window_size(pty, width, height)
                    .map_err(|e| anyhow::anyhow!("resizing the terminal: {e}")),
                None if self.finalized_at.is_some() => {
                    Err(anyhow::anyhow!("container has stopped"))
                }
                None => Err(anyhow::anyhow!("container has no terminal")),
            }),
            Request::Exec {
                exec_id,
                process,
                detach,
            } => match self.start_exec(&exec_id, &process, detach, conn) {
                Ok(pid) => {
                    let resp = Response {
                        ok: true,
                        pid: Some(pid),
                        ..Default::default()
                    };
                    if detach {
                        reply(resp)
                    } else {
                        (Role::ExecIo(exec_id), Some(resp), true)
                    }
                }
                Err(e) => reply(Response::error(format!("{e:#}"))),
            },
            Request::ExecState { exec_id } => match self.execs.get(&exec_id) {
                Some(e) => reply(Response {
                    ok: true,
                    status: Some(if e.done {
                        Status::Stopped
                    } else {
                        Status::Running
                    }),
                    pid: Some(e.pid),
                    exit: if e.done {
                        e.exit.as_ref().map(|(x, _)| x.clone())
                    } else {
                        None
                    },
                    ..Default::default()
                }),
                None => reply(Response::error(format!("no such exec: {exec_id}"))),
            },
            Request::ExecWait { exec_id } => match self.execs.get(&exec_id) {
                Some(e) if e.done => reply(Response {
                    ok: true,
                    exit: e.exit.as_ref().map(|(x, _)| x.clone()),
                    ..Default::default()
                }),
                Some(_) => (Role::ExecWait(exec_id), None, true),
                None => reply(Response::error(format!("no such exec: {exec_id}"))),
            },
            Request::ExecResize {
                exec_id,
                width,
                height,
            } => result(match self.execs.get(&exec_id) {
                Some(Exec {
                    io: ProcIo { pty: Some(pty), .. },
                    ..
                }) => io::set_window_size(pty, width, height)
                    .map_err(|e| anyhow::anyhow!("resizing the exec terminal: {e}")),
                Some(e) if e.done => Err(anyhow::anyhow!("exec {exec_id} has exited")),
                Some(_) => Err(anyhow::anyhow!("exec {exec_id} has no terminal")),
                None => Err(anyhow::anyhow!("no such exec: {exec_id}")),
            }),
            Request::ExecKill { exec_id, signal } => result(self.kill_exec(&exec_id, signal)),
            Request::Shutdown => {
                if self.init_exit.is_none() {
                    return reply(Response::error(format!(
                        "container is {}: stop it before shutting the shim down",
                        status_name(self.status)
                    )));
                }
                if self.finalized_at.is_none() {
                    self.finalize();
                }
                self.shutdown = true;
                reply(Response::ok())
            }
        }
    }

    fn start(&mut self) -> anyhow::Result<()> {
        if self.status != Status::Created {
            anyhow::bail!("container is {}, not created", status_name(self.status));
        }
        self.rt.run(&["start"], &[])?;
        if self.status == Status::Created {
            self.status = Status::Running;
        }
        Ok(())
    }

    fn kill(&mut self, signal: i32, all: bool) -> anyhow::Result<()> {
        if self.init_exit.is_some() {
            anyhow::bail!("container has stopped");
        }
        if !(1..=64).contains(&signal) {
            anyhow::bail!("invalid signal {signal}");
        }
        let sig = signal.to_string();
        let args: &[&str] = if all { &["kill", "--all"] } else { &["kill"] };
        self.rt.run(args, &[&sig])
    }

    /// The exec's process is our child until we reap it and record its
    /// exit, so while `exit` is unset its pid is still its own.
    fn kill_exec(&mut self, exec_id: &str, signal: i32) -> anyhow::Result<()> {
        if !(1..=64).contains(&signal) {
            anyhow::bail!("invalid signal {signal}");
        }
        let Some(e) = self.execs.get(exec_id) else {
            anyhow::bail!("no such exec: {exec_id}");
        };
        if e.exit.is_some() {
            anyhow::bail!("exec {exec_id} has exited");
        }
        // SAFETY: kill(2) on a child we have not reaped yet.
        if unsafe { libc::kill(e.pid, signal) } != 0 {
            let err = std::io::Error::last_os_error();
            anyhow::bail!("signalling exec {exec_id}: {err}");
        }
        Ok(())
    }

    fn pause(&mut self) -> anyhow::Result<()> {
        if self.status != Status::Running {
            anyhow::bail!("container is {}, not running", status_name(self.status));
        }
        self.rt.run(&["pause"], &[])?;
        self.status = Status::Paused;
        Ok(())
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        if self.status != Status::Paused {
            anyhow::bail!("container is {}, not paused", status_name(self.status));
        }
        self.rt.run(&["resume"], &[])?;
        self.status = Status::Running;
        Ok(())
    }
}

pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Stopped => "stopped",
    }
}
