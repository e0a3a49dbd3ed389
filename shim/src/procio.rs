//! The stdio of one supervised process (the container's init or an exec):
//! the write side of its stdin and the read sides of its output, all
//! non-blocking and served by the event loop.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use berth_common::shim::{STREAM_STDERR, STREAM_STDOUT};

use crate::io::{self, ConsoleSocket};
use crate::runtime::CommandStdio;

/// Stop reading clients' input while this much is waiting for the process.
pub const STDIN_HIGH_WATER: usize = 256 * 1024;

pub struct Output {
    /// `None` once it reached end of file.
    pub fd: Option<OwnedFd>,
    pub stream: u8,
}

#[derive(Default)]
pub struct ProcIo {
    pub stdin: Option<OwnedFd>,
    pub stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written (a client half-closed).
    pub close_stdin: bool,
    pub outputs: Vec<Output>,
    /// The pty master when the process has a terminal (for resizes).
    pub pty: Option<OwnedFd>,
}

/// The runtime's side of a process's stdio, handed over as its stdin, stdout
/// and stderr, plus what we keep. `errors` is where the runtime's own error
/// message can be read if the command fails.
pub struct Plumbing {
    pub child: CommandStdio,
    pub ours: ProcIo,
    pub errors: OwnedFd,
}

impl Plumbing {
    /// Pipes: stdout and stderr always, stdin when `stdin` (else /dev/null).
    pub fn pipes(stdin: bool) -> Result<Plumbing> {
        let (out_r, out_w) = io::pipe()?;
        let (err_r, err_w) = io::pipe()?;
        let (child_in, our_in) = if stdin {
            let (r, w) = io::pipe()?;
            io::set_nonblocking(&w)?;
            (r, Some(w))
        } else {
            (io::dev_null()?, None)
        };
        io::set_nonblocking(&out_r)?;
        io::set_nonblocking(&err_r)?;
        let errors = err_r.try_clone().context("dup stderr pipe")?;
        Ok(Plumbing {
            child: CommandStdio {
                stdin: child_in,
                stdout: out_w,
                stderr: err_w,
            },
            ours: ProcIo {
                stdin: our_in,
                outputs: vec![
                    Output {
                        fd: Some(out_r),
                        stream: STREAM_STDOUT,
                    },
                    Output {
                        fd: Some(err_r),
                        stream: STREAM_STDERR,
                    },
                ],
                ..Default::default()
            },
            errors,
        })
    }

    /// Terminal: the runtime's stdio is /dev/null except a stderr pipe for
    /// its error messages; the process's stdio is the pty whose master the
    /// runtime sends to the console socket (see `with_pty`).
    pub fn for_terminal() -> Result<Plumbing> {
        let (err_r, err_w) = io::pipe()?;
        io::set_nonblocking(&err_r)?;
        Ok(Plumbing {
            child: CommandStdio {
                stdin: io::dev_null()?,
                stdout: io::dev_null()?,
                stderr: err_w,
            },
            ours: ProcIo::default(),
            errors: err_r,
        })
    }
}

impl ProcIo {
    /// The process's stdio from the pty master received on `console`.
    pub fn from_console(console: &ConsoleSocket, stdin: bool) -> Result<ProcIo> {
        let master = console.receive()?;
        io::set_nonblocking(&master)?;
        let stdin = if stdin {
            Some(master.try_clone().context("dup pty master")?)
        } else {
            None
        };
        let pty = master.try_clone().context("dup pty master")?;
        Ok(ProcIo {
            stdin,
            outputs: vec![Output {
                fd: Some(master),
                stream: STREAM_STDOUT,
            }],
            pty: Some(pty),
            ..Default::default()
        })
    }

    pub fn outputs_done(&self) -> bool {
        self.outputs.iter().all(|o| o.fd.is_none())
    }

    pub fn drop_finished_outputs(&mut self) {
        self.outputs.retain(|o| o.fd.is_some());
    }

    /// Writes what it can of the pending stdin; closes stdin when asked to
    /// and everything was written, or when the process closed its end.
    pub fn flush_stdin(&mut self) {
        if let Some(fd) = &self.stdin {
            while !self.stdin_buf.is_empty() {
                match io::write_fd(fd.as_raw_fd(), &self.stdin_buf) {
                    Ok(n) => {
                        self.stdin_buf.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        // EPIPE: the process closed stdin; input is dropped.
                        self.stdin = None;
                        self.stdin_buf.clear();
                        return;
                    }
                }
            }
        } else {
            self.stdin_buf.clear();
        }
        if self.close_stdin && self.stdin_buf.is_empty() {
            self.stdin = None;
        }
    }

    /// A client's input ended. With pipes the process gets end of file once
    /// the pending input is written. A terminal stays open (as with
    /// dockerd): other clients can still type, and a tty has no end of file.
    pub fn end_of_input(&mut self) {
        if self.pty.is_none() {
            self.close_stdin = true;
            self.flush_stdin();
        }
    }

    /// Accepts input from a client (dropped when the process has no stdin).
    pub fn push_stdin(&mut self, data: &[u8]) {
        if self.stdin.is_some() {
            self.stdin_buf.extend_from_slice(data);
        }
    }

    pub fn wants_input(&self) -> bool {
        self.stdin.is_some() && self.stdin_buf.len() < STDIN_HIGH_WATER
    }

    pub fn close(&mut self) {
        *self = ProcIo::default();
    }
}
