//! One client connection on the control socket: a request line in, a
//! response line out, then (for attach/exec) framed output out and raw stdin
//! in. Everything non-blocking with its own output buffer.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use berth_common::shim::{frame_header, Response};

/// A request line longer than this is refused (an exec's process spec with a
/// large environment stays well below it).
pub const MAX_REQUEST: usize = 1 << 20;
/// Stop reading a process's output while a client has this much unsent.
pub const OUTPUT_HIGH_WATER: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Reading the request line.
    Request,
    /// Sent (or sending) a one-off response.
    Reply,
    /// Waiting for the container to exit.
    Wait,
    ExecWait(String),
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Carries an exec's stdio.
    ExecIo(String),
}

pub struct Conn {
    pub stream: UnixStream,
    pub inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    pub role: Role,
    /// The client shut down its write side (or we stopped reading).
    pub read_closed: bool,
    pub close_when_flushed: bool,
    /// A write failed: the client is gone.
    pub dead: bool,
}

pub enum ReadResult {
    Data,
    Eof,
    WouldBlock,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            role: Role::Request,
            read_closed: false,
            close_when_flushed: false,
            dead: false,
        }
    }

    pub fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    pub fn respond(&mut self, resp: &Response) {
        // Serializing our own plain struct cannot fail; fall back to a fixed
        // line rather than panic.
        let mut line = serde_json::to_vec(resp)
            .unwrap_or_else(|_| br#"{"ok":false,"error":"response encoding failed"}"#.to_vec());
        line.push(b'\n');
        self.out.extend_from_slice(&line);
    }

    pub fn frame(&mut self, stream: u8, data: &[u8]) {
        self.out
            .extend_from_slice(&frame_header(stream, data.len()));
        self.out.extend_from_slice(data);
    }

    /// Reads what is available into `inbuf` (appending).
    pub fn read_some(&mut self) -> ReadResult {
        let mut buf = [0u8; 16384];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return ReadResult::Eof,
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    return ReadResult::Data;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadResult::WouldBlock,
                // ECONNRESET and the like: treat as the client going away.
                Err(_) => return ReadResult::Eof,
            }
        }
    }

    /// Sends what it can; marks the connection dead when the peer is gone.
    pub fn flush(&mut self) {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Done: nothing left to send and asked to close, or the peer vanished.
    pub fn finished(&self) -> bool {
        self.dead || (self.close_when_flushed && self.pending_out() == 0)
    }
}
