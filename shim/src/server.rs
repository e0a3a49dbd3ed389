//! The shim's event loop: one poll(2) over the control socket, the SIGCHLD
//! signalfd, the processes' stdio and the client connections.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_common::shim::{ExitStatus, Request, Response, Status, STREAM_STDOUT};

use crate::args::Config;
use crate::conn::{Conn, ReadResult, Role, MAX_REQUEST, OUTPUT_HIGH_WATER};
use crate::exec::Exec;
use crate::io;
use crate::jsonlog::JsonLog;
use crate::procio::ProcIo;
use crate::reaper::{OomWatch, Reaper};
use crate::runtime::Runtime;
use crate::{slog, timefmt};

/// After a process exits, how long its output may still arrive (a child that
/// escaped the container could hold the pipe open forever).
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// After the container is finished, how long clients get to take their data.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to stop accepting after accept(2) failed (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct Shim {
    pub cfg: Config,
    pub rt: Runtime,
    pub listener: UnixListener,
    pub reaper: Reaper,
    pub init_pid: i32,
    pub init_io: ProcIo,
    pub log: Option<JsonLog>,
    pub oom: OomWatch,
    pub status: Status,
    pub init_exit: Option<(ExitStatus, Instant)>,
    pub finalized_at: Option<Instant>,
    pub shutdown: bool,
    pub socket_unlinked: bool,
    pub accept_paused_until: Option<Instant>,
    pub accept_failures: u64,
    pub execs: BTreeMap<String, Exec>,
    pub exec_seq: u64,
    pub conns: BTreeMap<u64, Conn>,
    pub next_conn: u64,
}

#[derive(Clone)]
enum Tag {
    Listener,
    Signal,
    InitOut(usize),
    InitIn,
    ExecOut(String, usize),
    ExecIn(String),
    Conn(u64),
}

impl Shim {
    pub fn run(mut self) {
        slog!(
            "serving container {} (init pid {})",
            self.cfg.id,
            self.init_pid
        );
        // Start-up (runtime create) left freed heap behind; a shim lives as
        // long as its container, so hand it back.
        // SAFETY: malloc_trim only releases free memory.
        #[cfg(target_env = "gnu")]
        unsafe {
            libc::malloc_trim(0)
        };
        // Allocated on the first output, so a silent container costs nothing.
        let mut buf = Vec::new();
        loop {
            if self.should_exit() {
                break;
            }
            if self
                .accept_paused_until
                .is_some_and(|t| Instant::now() >= t)
            {
                self.accept_paused_until = None;
            }
            let (mut pfds, tags) = self.poll_set();
            let timeout = if self.init_exit.is_some()
                || self.accept_paused_until.is_some()
                || self.execs.values().any(|e| e.exit.is_some() && !e.done)
            {
                100
            } else {
                -1
            };
            // SAFETY: pfds is a valid array of pollfd of the given length.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    slog!("poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            for (pfd, tag) in pfds.iter().zip(tags) {
                if pfd.revents != 0 {
                    self.handle(tag, pfd.revents, &mut buf);
                }
            }
            self.progress();
        }
        self.cleanup_files();
        slog!("exiting ({})", own_usage());
    }

    /// After the container finished: once every client was served, unlink
    /// the socket (new clients get ENOENT and read exit.json), serve whoever
    /// was already queued, then exit.
    fn should_exit(&mut self) -> bool {
        let Some(at) = self.finalized_at else {
            return false;
        };
        if self.shutdown || at.elapsed() > FLUSH_TIMEOUT {
            return true;
        }
        if !self.conns.is_empty() {
            return false;
        }
        if !self.socket_unlinked {
            let _ = std::fs::remove_file(self.cfg.state_dir.join(berth_common::shim::SOCKET_NAME));
            self.socket_unlinked = true;
        }
        self.accept();
        self.conns.is_empty()
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Tag>) {
        let mut pfds = Vec::new();
        let mut tags = Vec::new();
        let mut add = |fd: RawFd, events: i16, tag: Tag| {
            pfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tags.push(tag);
        };
        if self.accept_paused_until.is_none() {
            add(self.listener.as_raw_fd(), libc::POLLIN, Tag::Listener);
        }
        add(self.reaper.fd().as_raw_fd(), libc::POLLIN, Tag::Signal);

        let init_blocked = self
            .conns
            .values()
            .any(|c| matches!(c.role, Role::Attach { .. }) && c.pending_out() > OUTPUT_HIGH_WATER);
        if !init_blocked {
            for (i, o) in self.init_io.outputs.iter().enumerate() {
                if let Some(fd) = &o.fd {
                    add(fd.as_raw_fd(), libc::POLLIN, Tag::InitOut(i));
                }
            }
        }
        if let Some(fd) = &self.init_io.stdin {
            if !self.init_io.stdin_buf.is_empty() {
                add(fd.as_raw_fd(), libc::POLLOUT, Tag::InitIn);
            }
        }
        for (id, e) in &self.execs {
            let blocked = e
                .conn
                .and_then(|c| self.conns.get(&c))
                .is_some_and(|c| c.pending_out() > OUTPUT_HIGH_WATER);
            if !blocked {
                for (i, o) in e.io.outputs.iter().enumerate() {
                    if let Some(fd) = &o.fd {
                        add(fd.as_raw_fd(), libc::POLLIN, Tag::ExecOut(id.clone(), i));
                    }
                }
            }
            if let Some(fd) = &e.io.stdin {
                if !e.io.stdin_buf.is_empty() {
                    add(fd.as_raw_fd(), libc::POLLOUT, Tag::ExecIn(id.clone()));
                }
            }
        }
        for (id, c) in &self.conns {
            let mut events = 0;
            if !c.read_closed && self.conn_wants_input(c) {
                events |= libc::POLLIN;
            }
            if c.pending_out() > 0 {
                events |= libc::POLLOUT;
            }
            // Even with no events, POLLHUP/POLLERR tell us the client left.
            add(c.stream.as_raw_fd(), events, Tag::Conn(*id));
        }
        (pfds, tags)
    }

    fn conn_wants_input(&self, c: &Conn) -> bool {
        match &c.role {
            Role::Attach { stdin: true, .. } => {
                self.init_io.stdin.is_none() || self.init_io.wants_input()
            }
            Role::ExecIo(id) => self
                .execs
                .get(id)
                .is_none_or(|e| e.io.stdin.is_none() || e.io.wants_input()),
            _ => true,
        }
    }

    fn handle(&mut self, tag: Tag, revents: i16, buf: &mut Vec<u8>) {
        if matches!(tag, Tag::InitOut(_) | Tag::ExecOut(..)) && buf.is_empty() {
            buf.resize(64 * 1024, 0);
        }
        match tag {
            Tag::Listener => self.accept(),
            Tag::Signal => {
                for (pid, code) in self.reaper.reap() {
                    self.on_child_exit(pid, code);
                }
            }
            Tag::InitOut(i) => {
                if let Some((stream, n)) = read_output(&mut self.init_io, i, buf) {
                    self.deliver_init(stream, &buf[..n]);
                }
            }
            Tag::InitIn => self.init_io.flush_stdin(),
            Tag::ExecOut(id, i) => {
                let Some(e) = self.execs.get_mut(&id) else {
                    return;
                };
                if let Some((stream, n)) = read_output(&mut e.io, i, buf) {
                    if let Some(c) = e.conn.and_then(|c| self.conns.get_mut(&c)) {
                        c.frame(stream, &buf[..n]);
                        c.flush();
                    }
                }
            }
            Tag::ExecIn(id) => {
                if let Some(e) = self.execs.get_mut(&id) {
                    e.io.flush_stdin();
                }
            }
            Tag::Conn(id) => {
                if revents & libc::POLLOUT != 0 {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.flush();
                    }
                }
                if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    self.on_conn_readable(id, revents);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        slog!("client socket: {e}");
                        continue;
                    }
                    let id = self.next_conn;
                    self.next_conn += 1;
                    self.conns.insert(id, Conn::new(stream));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: the
                    // listener stays readable, so stop polling it for a
                    // moment instead of spinning.
                    self.accept_failures += 1;
                    if self.accept_failures.is_power_of_two() {
                        slog!(
                            "accept: {e} ({} times); pausing new connections for {ACCEPT_BACKOFF:?}",
                            self.accept_failures
                        );
                    }
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn deliver_init(&mut self, stream: u8, data: &[u8]) {
        if let Some(log) = &mut self.log {
            if let Err(e) = log.write(stream, data, &timefmt::now()) {
                slog!("writing the container log: {e}");
            }
        }
        let tty = self.cfg.tty;
        for c in self.conns.values_mut() {
            if let Role::Attach { stdout, stderr, .. } = c.role {
                let wanted = if tty {
                    stdout || stderr
                } else if stream == STREAM_STDOUT {
                    stdout
                } else {
                    stderr
                };
                if wanted {
                    c.frame(stream, data);
                    c.flush();
                }
            }
        }
    }

    fn on_conn_readable(&mut self, id: u64, revents: i16) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.read_closed {
            // Only POLLHUP/POLLERR can get here: the client is gone.
            if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                c.dead = true;
            }
            return;
        }
        let result = c.read_some();
        match c.role.clone() {
            Role::Request => match result {
                ReadResult::Eof => c.dead = true,
                ReadResult::WouldBlock => {}
                ReadResult::Data => {
                    if let Some(pos) = c.inbuf.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = c.inbuf.drain(..=pos).collect();
                        let parsed = serde_json::from_slice::<Request>(&line);
                        match parsed {
                            Ok(req) => self.dispatch(id, req),
                            Err(e) => {
                                c.role = Role::Reply;
                                c.respond(&Response::error(format!("bad request: {e}")));
                                c.close_when_flushed = true;
                                c.flush();
                            }
                        }
                    } else if c.inbuf.len() > MAX_REQUEST {
                        c.role = Role::Reply;
                        c.respond(&Response::error("request line too long"));
                        c.close_when_flushed = true;
                        c.flush();
                    }
                }
            },
            Role::Attach { stdin, .. } => {
                let data = std::mem::take(&mut c.inbuf);
                let eof = matches!(result, ReadResult::Eof);
                if eof {
                    c.read_closed = true;
                }
                if stdin {
                    self.init_io.push_stdin(&data);
                    self.init_io.flush_stdin();
                    if eof && self.cfg.stdin_once {
                        self.init_io.end_of_input();
                    }
                }
            }
            Role::ExecIo(exec_id) => {
                let data = std::mem::take(&mut c.inbuf);
                let eof = matches!(result, ReadResult::Eof);
                if eof {
                    c.read_closed = true;
                }
                if let Some(e) = self.execs.get_mut(&exec_id) {
                    e.io.push_stdin(&data);
                    e.io.flush_stdin();
                    if eof {
                        e.io.end_of_input();
                    }
                }
            }
            Role::Wait | Role::ExecWait(_) => {
                c.inbuf.clear();
                if let ReadResult::Eof = result {
                    c.dead = true;
                }
            }
            Role::Reply => {
                c.inbuf.clear();
                if let ReadResult::Eof = result {
                    c.read_closed = true;
                }
            }
        }
    }

    /// Handles one request; the connection's role and response are set here.
    fn dispatch(&mut self, id: u64, req: Request) {
        let (role, resp, keep_open) = self.answer(id, req);
        if let Some(c) = self.conns.get_mut(&id) {
            c.role = role;
            if let Some(r) = resp {
                c.respond(&r);
            }
            c.close_when_flushed = !keep_open;
            // Bytes that followed the request line are early stdin.
            let early = std::mem::take(&mut c.inbuf);
            c.flush();
            if !early.is_empty() {
                match c.role.clone() {
                    Role::Attach { stdin: true, .. } => self.init_io.push_stdin(&early),
                    Role::ExecIo(exec_id) => {
                        if let Some(e) = self.execs.get_mut(&exec_id) {
                            e.io.push_stdin(&early);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn cleanup_files(&self) {
        let dir = &self.cfg.state_dir;
        for name in [
            berth_common::shim::SOCKET_NAME,
            berth_common::shim::PID_FILE,
        ] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }

    pub fn state_file(&self, name: &str) -> PathBuf {
        self.cfg.state_dir.join(name)
    }
}

/// This process's CPU time and peak RSS, for the log.
fn own_usage() -> String {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return "usage unknown".into();
    }
    let ms = |t: libc::timeval| t.tv_sec * 1000 + t.tv_usec / 1000;
    format!(
        "cpu user {} ms, system {} ms, max RSS {} kB",
        ms(ru.ru_utime),
        ms(ru.ru_stime),
        ru.ru_maxrss
    )
}

/// Reads from output `i` of `io`: the stream and byte count of what was read,
/// or `None` (nothing now, or end of file, which retires the output).
fn read_output(io: &mut ProcIo, i: usize, buf: &mut [u8]) -> Option<(u8, usize)> {
    let o = io.outputs.get_mut(i)?;
    let fd = o.fd.as_ref()?;
    loop {
        match io::read_fd(fd.as_raw_fd(), buf) {
            Ok(0) => {
                o.fd = None;
                return None;
            }
            Ok(n) => return Some((o.stream, n)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(_) => {
                o.fd = None;
                return None;
            }
        }
    }
}
