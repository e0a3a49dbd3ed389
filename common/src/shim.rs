//! The berthd <-> berth-shim protocol (version 1).
//!
//! berthd starts one shim per container:
//!
//! ```text
//! berth-shim --id ID --bundle DIR --state-dir DIR --runtime PATH --runtime-root DIR
//!            [--log-path FILE] [--log-driver json-file|none]
//!            [--log-max-size BYTES] [--log-max-files N]
//!            [--tty] [--stdin] [--stdin-once]
//! ```
//!
//! The process berthd spawns forks: the grandchild detaches (setsid, becomes
//! child subreaper, stdio to /dev/null, its own log in `STATE_DIR/shim.log`),
//! runs `runtime create`, listens on `STATE_DIR/shim.sock`, and only then tells
//! the intermediate process, which prints the container init's pid (decimal,
//! one line) on its stdout and exits 0. A non-zero exit means the container
//! could not be created; the reason is on the intermediate's stderr. So when the
//! spawned command returns success, the container is `created` and the socket
//! accepts connections.
//!
//! On the socket every connection starts with one request line (JSON, `\n`
//! terminated) and gets one response line. Streaming operations (`attach`,
//! `exec`) then carry stdio on the same connection:
//! shim -> client: frames of an 8-byte header (stream byte 1 stdout / 2 stderr,
//! three zero bytes, big-endian u32 length) then the payload; with a TTY all
//! output is stream 1. client -> shim: raw stdin bytes; the client shutting
//! down its write side closes the process's stdin when it was started with
//! `stdin_once` (attach) or always (exec) — for pipes; a terminal stays open
//! (see below). When the process has exited and all
//! its output was sent, the shim closes the connection.
//!
//! After the container's init exits the shim writes `STATE_DIR/exit.json`
//! (atomically), answers pending `wait`s, runs `runtime delete`, drains
//! attached streams and exits. A daemon restarting later finds either a live
//! socket or `exit.json`.
//!
//! Details (as implemented by berth-shim; all of them keep the wire format
//! above):
//!
//! - Command line: `--log-driver` defaults to `json-file` when `--log-path` is
//!   given and to `none` otherwise. `--log-max-size 0` (the default) means
//!   no rotation; `--log-max-files` defaults to 1, which truncates the file
//!   when it reaches the size (dockerd's behaviour). Paths may be relative
//!   (resolved before the shim changes to `/`). Bad arguments: exit status 2.
//! - Files in STATE_DIR (created if missing): `shim.sock`, `shim.pid` (both
//!   removed when the shim exits), `shim.log`, `exit.json`, and transient
//!   `console.sock`, `init.pid`, `exec-N.{json,pid,sock}`. Sockets are mode
//!   0600, a created STATE_DIR 0700. Paths longer than `sun_path` (108
//!   bytes) work: the shim binds through `/proc/self/fd/<dir>/`, and clients
//!   should connect the same way. `shim.log` ends with the shim's CPU time
//!   and peak RSS.
//! - The shim closes every descriptor it inherited except stdio (which
//!   becomes /dev/null), so a spawner's pipes do not stay open. It stays in
//!   the spawner's cgroup: under systemd, berthd's unit needs
//!   `KillMode=process` (as containerd's) or a restart kills the shims.
//! - End of a container: after init exits the shim reads its output until
//!   end of file (at most 2 s, in case an escaped process holds the pipe),
//!   writes the last partial log line, writes `exit.json`, answers `wait`s,
//!   runs `runtime delete --force`, and closes attach streams once flushed.
//!   It keeps serving requests (`state` then says `stopped` with `exit`;
//!   `wait` answers at once; `attach` answers ok and closes) until no client
//!   is connected, then unlinks `shim.sock`, serves connections already
//!   queued, and exits (clients get at most 5 s). So a client either gets an
//!   answer, or cannot connect (ENOENT / ECONNREFUSED) or sees the
//!   connection close without a response line — then `exit.json` is the
//!   truth. `shutdown` after the exit skips the waiting.
//! - `exit_code` is the exit status, or 128 + signal number. `oom_killed` is
//!   true when the container's memory cgroup counted an OOM kill (v1
//!   `memory.oom_control`, v2 `memory.events`), cgroup-wide as in dockerd.
//! - `state` answers `version`, `status`, `pid` (the init's host pid) and,
//!   once stopped, `exit`. `start` needs `created`; `pause` needs `running`;
//!   `resume` needs `paused`; `kill` (signal 1..=64, `all` → `kill --all`)
//!   fails once the container has stopped; `shutdown` fails before.
//! - Attach: with a TTY, output is always stream 1 and a client's
//!   half-close (or a vanished client) only stops its input: the terminal
//!   stays open for other and later clients (`stdin_once` applies to pipes,
//!   as dockerd closes stdin only without a TTY). Input is dropped when the
//!   container has no stdin. A client with more than 1 MiB of unsent output pauses reading of the
//!   container's output (the log waits too), as dockerd's attach does, so
//!   clients must keep reading.
//! - Exec: `process` is an OCI process object; its `terminal` selects a pty.
//!   Not detached, the exec always has a stdin; a daemon whose client did not
//!   attach stdin half-closes at once so the process sees EOF (with pipes; a
//!   terminal is never closed by a half-close, as in dockerd). Detached, the
//!   output is read and discarded. A failed `runtime exec` (for example a
//!   missing executable) answers `ok: false` with the runtime's message.
//!   `exec_state` answers `status` (`running`/`stopped`), `pid` and, once
//!   stopped, `exit`; `exec_wait` and the end of the exec's stream come only
//!   after its output was drained. Exec output is not logged. The shim
//!   remembers the last 128 finished execs; older ones answer "no such exec"
//!   (keep an `exec_wait` open, or ask soon after the stream ends).
//!   `exec_kill` signals the exec's process while it has not been reaped
//!   (so the pid cannot have been reused).
//! - Runtime operations taking over 120 s are killed and answered as errors.

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
pub const SOCKET_NAME: &str = "shim.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const PID_FILE: &str = "shim.pid";
pub const LOG_FILE: &str = "shim.log";

pub const STREAM_STDIN: u8 = 0;
pub const STREAM_STDOUT: u8 = 1;
pub const STREAM_STDERR: u8 = 2;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Protocol version and container state.
    State,
    /// `runtime start`.
    Start,
    Kill {
        signal: i32,
        #[serde(default)]
        all: bool,
    },
    Pause,
    Resume,
    /// Answered when the container's init has exited.
    Wait,
    /// Then the connection carries the container's stdio (see module docs).
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    Resize {
        width: u16,
        height: u16,
    },
    /// `runtime exec` of an OCI `process` object. The response carries the
    /// pid; unless `detach`, the connection then carries the exec's stdio.
    Exec {
        exec_id: String,
        process: serde_json::Value,
        #[serde(default)]
        detach: bool,
    },
    ExecState {
        exec_id: String,
    },
    /// Answered when the exec process has exited.
    ExecWait {
        exec_id: String,
    },
    ExecResize {
        exec_id: String,
        width: u16,
        height: u16,
    },
    /// Signal a running exec's process (a health probe past its timeout);
    /// refused once it has exited.
    ExecKill {
        exec_id: String,
        signal: i32,
    },
    /// Stop serving and exit; only valid once the container has stopped.
    Shutdown,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

/// How a process ended, as recorded in `exit.json` and sent to `wait`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitStatus {
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds, UTC.
    pub exited_at: String,
    #[serde(default)]
    pub oom_killed: bool,
}

/// One response line. `ok: false` carries `error`; the other fields are set
/// as the operation needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
}

impl Response {
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Default::default()
        }
    }

    pub fn error(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            ..Default::default()
        }
    }
}

/// The 8-byte header of an output frame.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":9}"#).unwrap();
        assert_eq!(
            r,
            Request::Kill {
                signal: 9,
                all: false
            }
        );
        let s = serde_json::to_string(&Request::Attach {
            stdin: true,
            stdout: true,
            stderr: false,
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"op":"attach","stdin":true,"stdout":true,"stderr":false}"#
        );
    }

    #[test]
    fn header_is_big_endian() {
        assert_eq!(frame_header(2, 258), [2, 0, 0, 0, 0, 0, 1, 2]);
    }
}
