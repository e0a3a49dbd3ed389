//! The container's log in docker's json-file format: one JSON object per
//! line, `{"log":"text\n","stream":"stdout","time":"..."}`.
//!
//! Output is split on `\n`; a line is written only once complete (or at
//! exit, without its `\n`, as dockerd writes partial messages). Lines longer
//! than dockerd's 16 KB buffer stay in one entry. Only a line longer than
//! `MAX_LINE` is cut, so one endless line cannot exhaust the shim's memory;
//! the cut pieces are entries without a trailing `\n`.
//!
//! Rotation (`max_size` > 0) happens between entries, so no entry is ever
//! split across files: `log` → `log.1` → … → `log.(max_files-1)`; with
//! `max_files` ≤ 1 the file is truncated instead, as dockerd does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_common::shim::{STREAM_STDERR, STREAM_STDOUT};

pub const MAX_LINE: usize = 1 << 20;

pub struct JsonLog {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: File,
    size: u64,
    /// Incomplete last line per stream (index 0 stdout, 1 stderr).
    partial: [Vec<u8>; 2],
    /// Entries formatted but not yet written.
    pending: Vec<u8>,
}

impl JsonLog {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<JsonLog> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_path_buf(),
            max_size,
            max_files,
            file,
            size,
            partial: [Vec::new(), Vec::new()],
            pending: Vec::new(),
        })
    }

    /// Logs `data` read from `stream` at `time`; complete lines are written
    /// now, the rest is kept for the next call.
    pub fn write(&mut self, stream: u8, data: &[u8], time: &str) -> io::Result<()> {
        let idx = stream_index(stream);
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(pos + 1);
            if self.partial[idx].is_empty() {
                self.entry(stream, line, time)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial[idx]);
                whole.extend_from_slice(line);
                self.entry(stream, &whole, time)?;
            }
            rest = tail;
        }
        self.partial[idx].extend_from_slice(rest);
        while self.partial[idx].len() >= MAX_LINE {
            let piece: Vec<u8> = self.partial[idx].drain(..MAX_LINE).collect();
            self.entry(stream, &piece, time)?;
        }
        self.flush_pending()
    }

    /// Writes the incomplete last lines (at exit).
    pub fn flush_partial(&mut self, time: &str) -> io::Result<()> {
        for stream in [STREAM_STDOUT, STREAM_STDERR] {
            let line = std::mem::take(&mut self.partial[stream_index(stream)]);
            if !line.is_empty() {
                self.entry(stream, &line, time)?;
            }
        }
        self.flush_pending()
    }

    fn entry(&mut self, stream: u8, line: &[u8], time: &str) -> io::Result<()> {
        let text = String::from_utf8_lossy(line);
        let mut e = Vec::with_capacity(line.len() + 64);
        e.extend_from_slice(b"{\"log\":");
        serde_json::to_writer(&mut e, text.as_ref()).map_err(io::Error::other)?;
        e.extend_from_slice(if stream == STREAM_STDERR {
            b",\"stream\":\"stderr\",\"time\":\""
        } else {
            b",\"stream\":\"stdout\",\"time\":\""
        });
        e.extend_from_slice(time.as_bytes());
        e.extend_from_slice(b"\"}\n");
        let written = self.size + self.pending.len() as u64;
        if self.max_size > 0 && written > 0 && written + e.len() as u64 > self.max_size {
            self.flush_pending()?;
            self.rotate()?;
        }
        self.pending.extend_from_slice(&e);
        Ok(())
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        self.size += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..self.max_files - 1).rev() {
            match fs::rename(numbered(&self.path, i), numbered(&self.path, i + 1)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn stream_index(stream: u8) -> usize {
    usize::from(stream == STREAM_STDERR)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Mode 0640, as dockerd creates its json-file logs.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect()
    }

    #[test]
    fn splits_lines_and_keeps_partials_until_complete() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        log.write(STREAM_STDOUT, b"one\ntw", "T1").unwrap();
        log.write(STREAM_STDERR, b"err\n", "T2").unwrap();
        log.write(STREAM_STDOUT, b"o\nthree", "T3").unwrap();
        log.flush_partial("T4").unwrap();
        let e = entries(&p);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0]["log"], "one\n");
        assert_eq!(e[0]["stream"], "stdout");
        assert_eq!(e[0]["time"], "T1");
        assert_eq!(e[1]["log"], "err\n");
        assert_eq!(e[1]["stream"], "stderr");
        assert_eq!(e[2]["log"], "two\n");
        assert_eq!(e[3]["log"], "three");
        let raw = fs::read_to_string(&p).unwrap();
        assert!(
            raw.starts_with(r#"{"log":"one\n","stream":"stdout","time":"T1"}"#),
            "{raw}"
        );
    }

    #[test]
    fn long_lines_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        let line = "x".repeat(40_000);
        for chunk in line.as_bytes().chunks(4096) {
            log.write(STREAM_STDOUT, chunk, "T").unwrap();
        }
        log.write(STREAM_STDOUT, b"\n", "T").unwrap();
        let e = entries(&p);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["log"].as_str().unwrap().len(), 40_001);
    }

    #[test]
    fn rotation_keeps_every_line_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut log = JsonLog::open(&p, 300, 5).unwrap();
        for i in 0..12 {
            log.write(
                STREAM_STDOUT,
                format!("line {i:02}\n").as_bytes(),
                "2026-11-22T00:00:00Z",
            )
            .unwrap();
        }
        let mut all = Vec::new();
        for f in [
            numbered(&p, 4),
            numbered(&p, 3),
            numbered(&p, 2),
            numbered(&p, 1),
            p.clone(),
        ] {
            assert!(fs::metadata(&f).map(|m| m.len() <= 300).unwrap_or(true));
            all.extend(entries(&f));
        }
        let lines: Vec<String> = all
            .iter()
            .map(|e| e["log"].as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..12).map(|i| format!("line {i:02}\n")).collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn rotation_with_one_file_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut log = JsonLog::open(&p, 200, 1).unwrap();
        for i in 0..10 {
            log.write(STREAM_STDOUT, format!("line {i}\n").as_bytes(), "T")
                .unwrap();
        }
        let e = entries(&p);
        assert!(!e.is_empty() && e.len() < 10);
        assert_eq!(e.last().unwrap()["log"], "line 9\n");
        assert!(!numbered(&p, 1).exists());
    }
}
