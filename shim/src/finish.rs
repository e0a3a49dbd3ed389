//! Ends of processes: reaped exits, draining their output, answering
//! waiters, and the container's final bookkeeping.

use std::time::Instant;

use berth_common::shim::{ExitStatus, Response, Status};

use crate::conn::Role;
use crate::server::{Shim, DRAIN_TIMEOUT};
use crate::{slog, timefmt};

impl Shim {
    pub(crate) fn on_child_exit(&mut self, pid: i32, code: i32) {
        if pid == self.init_pid && self.init_exit.is_none() {
            let exit = ExitStatus {
                exit_code: code,
                exited_at: timefmt::now(),
                oom_killed: self.oom.oom_killed(),
            };
            slog!(
                "init {pid} exited with {code} (oom_killed {})",
                exit.oom_killed
            );
            self.status = Status::Stopped;
            self.init_exit = Some((exit, Instant::now()));
            return;
        }
        if let Some(e) = self
            .execs
            .values_mut()
            .find(|e| e.pid == pid && e.exit.is_none())
        {
            slog!("exec {} (pid {pid}) exited with {code}", e.id);
            e.exit = Some((
                ExitStatus {
                    exit_code: code,
                    exited_at: timefmt::now(),
                    oom_killed: false,
                },
                Instant::now(),
            ));
        }
    }

    /// Moves finished things along: end of output after an exit, the
    /// container's final bookkeeping, finished connections.
    pub(crate) fn progress(&mut self) {
        self.init_io.drop_finished_outputs();
        if let Some((_, at)) = &self.init_exit {
            if self.finalized_at.is_none()
                && (self.init_io.outputs_done() || at.elapsed() > DRAIN_TIMEOUT)
            {
                self.finalize();
            }
        }
        let finished: Vec<String> = self
            .execs
            .values_mut()
            .filter_map(|e| {
                e.io.drop_finished_outputs();
                let (_, at) = e.exit.as_ref()?;
                (!e.done && (e.io.outputs_done() || at.elapsed() > DRAIN_TIMEOUT))
                    .then(|| e.id.clone())
            })
            .collect();
        let any_finished = !finished.is_empty();
        for id in finished {
            self.complete_exec(&id);
        }
        if any_finished {
            self.prune_execs();
        }
        self.drop_finished_conns();
    }

    /// Removes finished connections. A client that vanished without
    /// half-closing ends the stdin it was feeding, as a half-close would.
    fn drop_finished_conns(&mut self) {
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.finished())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let Some(c) = self.conns.remove(&id) else {
                continue;
            };
            if c.read_closed {
                continue;
            }
            match c.role {
                Role::Attach { stdin: true, .. } if self.cfg.stdin_once => {
                    self.init_io.end_of_input();
                }
                Role::ExecIo(exec_id) => {
                    if let Some(e) = self.execs.get_mut(&exec_id) {
                        e.io.end_of_input();
                    }
                }
                _ => {}
            }
        }
    }

    fn complete_exec(&mut self, id: &str) {
        let Some(e) = self.execs.get_mut(id) else {
            return;
        };
        e.done = true;
        e.io.close();
        let exit = e.exit.as_ref().map(|(x, _)| x.clone());
        if let Some(c) = e.conn.take().and_then(|c| self.conns.get_mut(&c)) {
            c.close_when_flushed = true;
        }
        for c in self.conns.values_mut() {
            if c.role == Role::ExecWait(id.to_string()) {
                c.respond(&Response {
                    ok: true,
                    exit: exit.clone(),
                    ..Default::default()
                });
                c.close_when_flushed = true;
                c.flush();
            }
        }
    }

    /// The container has exited and its output is drained: flush the log,
    /// record the exit, answer waiters, delete the runtime state.
    pub(crate) fn finalize(&mut self) {
        let Some((exit, _)) = self.init_exit.clone() else {
            return;
        };
        if let Some(mut log) = self.log.take() {
            if let Err(e) = log.flush_partial(&timefmt::now()) {
                slog!("flushing the container log: {e}");
            }
        }
        self.init_io.close();
        let exit_file = self.cfg.state_dir.join(berth_common::shim::EXIT_FILE);
        // Volatile state dir (see main): renamed into place, not fsynced,
        // before the waiters are answered.
        let written = serde_json::to_vec(&exit)
            .map_err(std::io::Error::other)
            .and_then(|data| berth_common::atomic::write_file_volatile(&exit_file, &data, 0o600));
        if let Err(e) = written {
            slog!("writing {}: {e}", exit_file.display());
        }
        let ids: Vec<String> = self.execs.keys().cloned().collect();
        for id in ids {
            if let Some(e) = self.execs.get_mut(&id) {
                if e.exit.is_none() {
                    // The exec died with the container but was not reaped as
                    // ours (for example a shared pid namespace); report it as
                    // killed.
                    e.exit = Some((
                        ExitStatus {
                            exit_code: 137,
                            exited_at: exit.exited_at.clone(),
                            oom_killed: false,
                        },
                        Instant::now(),
                    ));
                }
            }
            if !self.execs.get(&id).is_some_and(|e| e.done) {
                self.complete_exec(&id);
            }
        }
        for c in self.conns.values_mut() {
            match c.role {
                Role::Wait => {
                    c.respond(&Response {
                        ok: true,
                        exit: Some(exit.clone()),
                        ..Default::default()
                    });
                    c.role = Role::Reply;
                    c.close_when_flushed = true;
                    c.flush();
                }
                Role::Attach { .. } => c.close_when_flushed = true,
                _ => {}
            }
        }
        if let Err(e) = self.rt.run(&["delete", "--force"], &[]) {
            slog!("{e:#}");
        }
        self.finalized_at = Some(Instant::now());
        slog!("container finished: exit code {}", exit.exit_code);
    }
}
