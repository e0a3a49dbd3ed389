//! Turning log lines into the response stream: stream selection, `since`/
//! `until`, the `timestamps` prefix and framing (8-byte multiplexed headers
//! without a TTY, raw bytes with one), batched into large chunks.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::jsonline::{self, Stream};
use super::timestamp;

/// Bytes read from the log per call.
const READ_SIZE: usize = 1 << 20;
/// A chunk is handed to the sink once it holds this much.
const CHUNK_SIZE: usize = 256 * 1024;

/// Where response chunks go. `send` returns false once the client is gone.
pub trait Sink {
    fn send(&mut self, chunk: Vec<u8>) -> bool;
    fn is_closed(&self) -> bool;
}

/// Which lines to show and how.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub stdout: bool,
    pub stderr: bool,
    /// Nanoseconds since the epoch.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub timestamps: bool,
    /// Raw output (the container has a TTY) instead of multiplexed frames.
    pub tty: bool,
    /// Put consecutive lines of one stream into one frame (up to
    /// `MAX_MERGED_FRAME`). Clients demultiplex frames of any size, and the
    /// docker CLI makes one write per frame, so this is what makes a bulk
    /// `docker logs` fast. dockerd sends one frame per line; followers
    /// (docker-py's `logs(stream=True)` iterates frames as lines) keep that.
    pub merge_frames: bool,
}

/// Largest payload of a merged frame.
const MAX_MERGED_FRAME: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `until` was passed or the client left: nothing more to send.
    Done,
}

pub struct Emitter<'s> {
    sel: Selection,
    sink: &'s mut dyn Sink,
    chunk: Vec<u8>,
    malformed: u64,
    /// The last frame in `chunk`: where its header is and its stream byte,
    /// while more lines may still be merged into it.
    open_frame: Option<(usize, u8)>,
}

impl<'s> Emitter<'s> {
    pub fn new(sel: Selection, sink: &'s mut dyn Sink) -> Self {
        Emitter {
            sel,
            sink,
            chunk: Vec::with_capacity(CHUNK_SIZE + 64 * 1024),
            malformed: 0,
            open_frame: None,
        }
    }

    /// Handles one line (without its `\n`).
    pub fn line(&mut self, line: &[u8]) -> Flow {
        let Ok(meta) = jsonline::meta(line) else {
            self.malformed += 1;
            return Flow::Continue;
        };
        let wanted = match meta.stream {
            Stream::Stdout => self.sel.stdout,
            Stream::Stderr => self.sel.stderr,
        };
        if self.sel.since.is_some() || self.sel.until.is_some() {
            let time = timestamp::parse_log_time(meta.time);
            if let (Some(until), Some(t)) = (self.sel.until, time) {
                if t > until {
                    return Flow::Done;
                }
            }
            if let (Some(since), Some(t)) = (self.sel.since, time) {
                if t < since {
                    return Flow::Continue;
                }
            }
        }
        if !wanted {
            return Flow::Continue;
        }
        let stream = match meta.stream {
            Stream::Stdout => berth_common::shim::STREAM_STDOUT,
            Stream::Stderr => berth_common::shim::STREAM_STDERR,
        };
        let mark = self.chunk.len();
        // Append to the open frame when allowed, else start a new one.
        let header_at = match self.open_frame {
            Some((at, s)) if !self.sel.tty && self.sel.merge_frames && s == stream => at,
            _ if self.sel.tty => mark,
            _ => {
                self.chunk.extend_from_slice(&[0; 8]);
                mark
            }
        };
        if self.sel.timestamps {
            timestamp::push_fixed(meta.time, &mut self.chunk);
            self.chunk.push(b' ');
        }
        if jsonline::decode_log(line, &mut self.chunk).is_err() {
            self.chunk.truncate(mark);
            self.malformed += 1;
            return Flow::Continue;
        }
        if !self.sel.tty {
            let len = self.chunk.len() - header_at - 8;
            let header = berth_common::shim::frame_header(stream, len);
            self.chunk[header_at..header_at + 8].copy_from_slice(&header);
            self.open_frame = (len < MAX_MERGED_FRAME).then_some((header_at, stream));
        }
        if self.chunk.len() >= CHUNK_SIZE && !self.flush() {
            return Flow::Done;
        }
        Flow::Continue
    }

    /// Sends what is batched; false when the client is gone.
    pub fn flush(&mut self) -> bool {
        if self.chunk.is_empty() {
            return !self.sink.is_closed();
        }
        self.open_frame = None;
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_SIZE + 64 * 1024));
        self.sink.send(chunk)
    }

    pub fn client_gone(&self) -> bool {
        self.sink.is_closed()
    }

    /// Lines that could not be decoded (skipped).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }
}

/// Reads one file forward from `offset`, handing every complete line to the
/// emitter. A trailing incomplete line is left for the next call (the
/// shim may be in the middle of writing it): `offset` ends at a line start.
pub struct FileCursor {
    pub offset: u64,
    buf: Vec<u8>,
}

impl FileCursor {
    pub fn new(offset: u64) -> Self {
        FileCursor {
            offset,
            buf: Vec::new(),
        }
    }

    /// Reads up to `limit` (or the end of the file) and emits complete lines.
    /// Returns whether any line was consumed, and the flow.
    pub fn pump(
        &mut self,
        file: &File,
        limit: Option<u64>,
        out: &mut Emitter<'_>,
    ) -> io::Result<(bool, Flow)> {
        if self.buf.len() < READ_SIZE {
            self.buf.resize(READ_SIZE, 0);
        }
        let mut progressed = false;
        // Bytes at the front of buf that belong to an incomplete line.
        let mut carry = 0usize;
        let mut read_pos = self.offset;
        loop {
            let want = match limit {
                Some(l) if l <= read_pos => break,
                Some(l) => ((l - read_pos) as usize).min(self.buf.len() - carry),
                None => self.buf.len() - carry,
            };
            let n = file.read_at(&mut self.buf[carry..carry + want], read_pos)?;
            if n == 0 {
                break;
            }
            read_pos += n as u64;
            let filled = carry + n;
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &self.buf[..filled]) {
                let flow = out.line(&self.buf[start..nl]);
                start = nl + 1;
                progressed = true;
                if flow == Flow::Done {
                    self.offset = read_pos - (filled - start) as u64;
                    return Ok((progressed, Flow::Done));
                }
            }
            self.offset = read_pos - (filled - start) as u64;
            self.buf.copy_within(start..filled, 0);
            carry = filled - start;
            if carry == self.buf.len() {
                // One line longer than the buffer: grow and keep reading it.
                let len = self.buf.len();
                self.buf.resize(len * 2, 0);
            }
        }
        Ok((progressed, Flow::Continue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Default)]
    pub struct VecSink(pub Vec<u8>, pub usize);
    impl Sink for VecSink {
        fn send(&mut self, chunk: Vec<u8>) -> bool {
            self.1 += 1;
            self.0.extend_from_slice(&chunk);
            true
        }
        fn is_closed(&self) -> bool {
            false
        }
    }

    fn demux(mut b: &[u8]) -> Vec<(u8, String)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            assert_eq!(&b[1..4], &[0, 0, 0]);
            out.push((b[0], String::from_utf8(b[8..8 + len].to_vec()).unwrap()));
            b = &b[8 + len..];
        }
        out
    }

    const LOG: &str = concat!(
        r#"{"log":"out 1\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}"#,
        "\n",
        r#"{"log":"err 2\n","stream":"stderr","time":"2026-01-01T00:00:02.5Z"}"#,
        "\n",
        "garbage\n",
        r#"{"log":"out 3\n","stream":"stdout","time":"2026-01-01T00:00:03Z"}"#,
        "\n",
        r#"{"log":"incompl"#
    );

    fn run(sel: Selection) -> (Vec<u8>, u64, u64) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(LOG.as_bytes()).unwrap();
        let mut sink = VecSink::default();
        let mut em = Emitter::new(sel, &mut sink);
        let mut cur = FileCursor::new(0);
        cur.pump(&f, None, &mut em).unwrap();
        em.flush();
        let bad = em.malformed();
        (sink.0, cur.offset, bad)
    }

    #[test]
    fn multiplexed_with_stream_selection() {
        let all = Selection {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let (out, offset, bad) = run(all.clone());
        assert_eq!(
            demux(&out),
            vec![
                (1, "out 1\n".into()),
                (2, "err 2\n".into()),
                (1, "out 3\n".into())
            ]
        );
        assert_eq!(bad, 1);
        // Stops before the incomplete line.
        assert_eq!(offset as usize, LOG.rfind('\n').unwrap() + 1);
        let (out, _, _) = run(Selection {
            stdout: false,
            ..all
        });
        assert_eq!(demux(&out), vec![(2, "err 2\n".into())]);
    }

    #[test]
    fn merged_frames_carry_the_same_bytes_per_stream() {
        let all = Selection {
            stdout: true,
            stderr: true,
            merge_frames: true,
            ..Default::default()
        };
        let (out, _, _) = run(all);
        // out 1 | err 2 | out 3: no two neighbours share a stream.
        assert_eq!(
            demux(&out),
            vec![
                (1, "out 1\n".into()),
                (2, "err 2\n".into()),
                (1, "out 3\n".into())
            ]
        );
        let only_out = Selection {
            stdout: true,
            merge_frames: true,
            ..Default::default()
        };
        let (out, _, _) = run(only_out);
        assert_eq!(demux(&out), vec![(1, "out 1\nout 3\n".into())]);
    }

    #[test]
    fn since_until_timestamps_and_tty() {
        let t = |s: &str| timestamp::parse_log_time(s.as_bytes());
        let sel = Selection {
            stdout: true,
            stderr: true,
            since: t("2026-01-01T00:00:02Z"),
            until: t("2026-01-01T00:00:02.9Z"),
            timestamps: true,
            tty: true,
            merge_frames: true,
        };
        let (out, _, _) = run(sel);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-01-01T00:00:02.500000000Z err 2\n"
        );
    }

    #[test]
    fn lines_longer_than_the_read_buffer() {
        let text = "y".repeat(READ_SIZE * 2 + 17);
        let mut f = tempfile::tempfile().unwrap();
        writeln!(
            f,
            r#"{{"log":"{text}\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}}"#
        )
        .unwrap();
        writeln!(
            f,
            r#"{{"log":"after\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}}"#
        )
        .unwrap();
        let mut sink = VecSink::default();
        let mut em = Emitter::new(
            Selection {
                stdout: true,
                tty: true,
                ..Default::default()
            },
            &mut sink,
        );
        let mut cur = FileCursor::new(0);
        cur.pump(&f, None, &mut em).unwrap();
        em.flush();
        assert_eq!(sink.0.len(), text.len() + 1 + "after\n".len());
        assert!(sink.0.ends_with(b"y\nafter\n"));
        assert_eq!(cur.offset, f.metadata().unwrap().len());
    }
}
