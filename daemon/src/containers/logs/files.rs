//! The set of json-file log files of one container (`X-json.log` and its
//! rotated `X-json.log.1`, `.2`, ... where higher numbers are older), and
//! finding where to start reading: the last N lines, or the first line at or
//! after a time. Both touch only the end of the log or O(log size) probes,
//! never the whole file.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::jsonline;
use super::timestamp;

/// Block size for backward scans and probes.
const BLOCK: usize = 64 * 1024;

/// One open log file. Renames by the rotating shim do not affect an open
/// file, so a set opened once stays consistent while being read.
#[derive(Debug)]
pub struct LogFile {
    pub file: File,
    /// (device, inode): identifies the file across renames.
    pub id: (u64, u64),
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = File::open(path)?;
        let md = file.metadata()?;
        Ok(LogFile {
            file,
            id: (md.dev(), md.ino()),
        })
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Length up to and including the last `\n`: the complete entries.
    pub fn complete_len(&self) -> io::Result<u64> {
        let len = self.len()?;
        let mut end = len;
        let mut buf = vec![0u8; BLOCK];
        while end > 0 {
            let start = end.saturating_sub(BLOCK as u64);
            let block = &mut buf[..(end - start) as usize];
            self.file.read_exact_at(block, start)?;
            if let Some(pos) = memchr::memrchr(b'\n', block) {
                return Ok(start + pos as u64 + 1);
            }
            end = start;
        }
        Ok(0)
    }
}

/// `path.n`
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The (device, inode) of `path`, None when it does not exist.
pub fn file_id(path: &Path) -> io::Result<Option<(u64, u64)>> {
    match std::fs::metadata(path) {
        Ok(md) => Ok(Some((md.dev(), md.ino()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens every file of the log, oldest first. Opened newest first and
/// de-duplicated by inode, so a rotation while opening neither drops nor
/// repeats a file.
pub fn open_set(path: &Path) -> io::Result<Vec<LogFile>> {
    let mut files: Vec<LogFile> = Vec::new();
    let mut push = |f: LogFile| {
        if !files.iter().any(|g| g.id == f.id) {
            files.push(f);
        }
    };
    match LogFile::open(path) {
        Ok(f) => push(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // A gap in the numbering ends the set; a rename in flight can make one
    // number briefly missing, so look one further.
    let mut n = 1;
    let mut misses = 0;
    while misses < 2 {
        match LogFile::open(&numbered(path, n)) {
            Ok(f) => {
                misses = 0;
                push(f);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => misses += 1,
            Err(e) => return Err(e),
        }
        n += 1;
    }
    files.reverse();
    Ok(files)
}

/// A place in the set: file index and byte offset (always a line start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub file: usize,
    pub offset: u64,
}

/// The start of the last `n` complete lines (all streams, as dockerd counts).
pub fn tail_start(files: &[LogFile], n: usize) -> io::Result<Position> {
    let Some(last) = files.len().checked_sub(1) else {
        return Ok(Position { file: 0, offset: 0 });
    };
    if n == 0 {
        return Ok(Position {
            file: last,
            offset: files[last].complete_len()?,
        });
    }
    let mut need = n;
    let mut buf = vec![0u8; BLOCK];
    for idx in (0..files.len()).rev() {
        let f = &files[idx];
        let complete = f.complete_len()?;
        if complete == 0 {
            continue;
        }
        // The newline ending the last line is not a line boundary to count.
        let mut end = complete - 1;
        while end > 0 {
            let start = end.saturating_sub(BLOCK as u64);
            let block = &mut buf[..(end - start) as usize];
            f.file.read_exact_at(block, start)?;
            for pos in memchr::memrchr_iter(b'\n', block) {
                need -= 1;
                if need == 0 {
                    return Ok(Position {
                        file: idx,
                        offset: start + pos as u64 + 1,
                    });
                }
            }
            end = start;
        }
        // The file's first line.
        need -= 1;
        if need == 0 {
            return Ok(Position {
                file: idx,
                offset: 0,
            });
        }
    }
    Ok(Position { file: 0, offset: 0 })
}

/// The first line whose time is at or after `since` (nanoseconds), assuming
/// times never decrease through the log (the shim stamps lines as it reads
/// them). Files ending before `since` are skipped, the one holding it is
/// bisected.
pub fn since_start(files: &[LogFile], since: i64) -> io::Result<Position> {
    for (idx, f) in files.iter().enumerate() {
        let complete = f.complete_len()?;
        if complete == 0 {
            continue;
        }
        let last_start = tail_start(std::slice::from_ref(f), 1)?.offset;
        let last_time = line_time(&read_line(&f.file, last_start)?);
        if last_time.is_some_and(|t| t < since) {
            continue;
        }
        return Ok(Position {
            file: idx,
            offset: bisect(&f.file, complete, since)?,
        });
    }
    let last = files.len().saturating_sub(1);
    Ok(Position {
        file: last,
        offset: match files.last() {
            Some(f) => f.complete_len()?,
            None => 0,
        },
    })
}

/// Narrows to a small window in which the first line at or after `since`
/// starts; the caller's per-line `since` check does the rest.
fn bisect(file: &File, end: u64, since: i64) -> io::Result<u64> {
    let (mut lo, mut hi) = (0u64, end);
    while hi - lo > BLOCK as u64 {
        let mid = lo + (hi - lo) / 2;
        let Some(start) = next_line_start(file, mid, end)? else {
            hi = mid;
            continue;
        };
        if start >= hi {
            hi = mid;
            continue;
        }
        match line_time(&read_line(file, start)?) {
            Some(t) if t < since => lo = start,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The first line start at or after `offset` (a line starts at 0 or after a
/// `\n`), None when there is none before `end`.
fn next_line_start(file: &File, offset: u64, end: u64) -> io::Result<Option<u64>> {
    if offset == 0 {
        return Ok(Some(0));
    }
    let mut pos = offset - 1;
    let mut buf = vec![0u8; BLOCK];
    while pos < end {
        let n = ((end - pos) as usize).min(BLOCK);
        let block = &mut buf[..n];
        file.read_exact_at(block, pos)?;
        if let Some(i) = memchr::memchr(b'\n', block) {
            let start = pos + i as u64 + 1;
            return Ok((start < end).then_some(start));
        }
        pos += n as u64;
    }
    Ok(None)
}

/// The line starting at `start`, without its `\n`.
fn read_line(file: &File, start: u64) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut buf = vec![0u8; BLOCK];
    let mut pos = start;
    loop {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(line);
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            line.extend_from_slice(&buf[..i]);
            return Ok(line);
        }
        line.extend_from_slice(&buf[..n]);
        pos += n as u64;
    }
}

fn line_time(line: &[u8]) -> Option<i64> {
    timestamp::parse_log_time(jsonline::meta(line).ok()?.time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_log(path: &Path, lines: std::ops::Range<u32>) {
        let mut f = std::fs::File::create(path).unwrap();
        for i in lines {
            writeln!(
                f,
                r#"{{"log":"line {i}\n","stream":"stdout","time":"2026-01-01T00:00:{:02}.{:09}Z"}}"#,
                i / 1000,
                (i % 1000) * 1_000_000
            )
            .unwrap();
        }
    }

    fn time_of(i: u32) -> i64 {
        timestamp::parse_log_time(
            format!(
                "2026-01-01T00:00:{:02}.{:09}Z",
                i / 1000,
                (i % 1000) * 1_000_000
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn first_line_at(files: &[LogFile], p: Position) -> String {
        String::from_utf8(read_line(&files[p.file].file, p.offset).unwrap()).unwrap()
    }

    #[test]
    fn tail_and_since_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        write_log(&numbered(&p, 2), 0..5000);
        write_log(&numbered(&p, 1), 5000..5003);
        write_log(&p, 5003..6000);
        let files = open_set(&p).unwrap();
        assert_eq!(files.len(), 3);

        let pos = tail_start(&files, 1).unwrap();
        assert!(first_line_at(&files, pos).contains("line 5999\\n"));
        let pos = tail_start(&files, 997).unwrap();
        assert_eq!(pos, Position { file: 2, offset: 0 });
        let pos = tail_start(&files, 999).unwrap();
        assert_eq!(pos.file, 1);
        assert!(first_line_at(&files, pos).contains("line 5001\\n"));
        let pos = tail_start(&files, 1001).unwrap();
        assert!(first_line_at(&files, pos).contains("line 4999\\n"));
        assert_eq!(
            tail_start(&files, 100_000).unwrap(),
            Position { file: 0, offset: 0 }
        );
        let end = tail_start(&files, 0).unwrap();
        assert_eq!(end.file, 2);
        assert_eq!(end.offset, files[2].len().unwrap());

        // since lands at or shortly before the wanted line, in the right file.
        for want in [0u32, 1, 2500, 4999, 5000, 5002, 5003, 5500, 5999] {
            let pos = since_start(&files, time_of(want)).unwrap();
            let mut p = pos;
            // Walk forward to the first line at/after since, as the reader does.
            loop {
                let line = read_line(&files[p.file].file, p.offset).unwrap();
                if line_time(&line).unwrap() >= time_of(want) {
                    assert!(String::from_utf8_lossy(&line).contains(&format!("line {want}\\n")));
                    break;
                }
                p.offset += line.len() as u64 + 1;
                assert!(
                    p.offset - pos.offset <= 2 * BLOCK as u64,
                    "bisect left too much to scan"
                );
            }
        }
        let past = since_start(&files, time_of(7000)).unwrap();
        assert_eq!(past.file, 2);
        assert_eq!(past.offset, files[2].len().unwrap());
    }

    #[test]
    fn partial_last_line_and_missing_log() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        assert!(open_set(&p).unwrap().is_empty());
        write_log(&p, 0..3);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(br#"{"log":"half"#)
            .unwrap();
        let files = open_set(&p).unwrap();
        let pos = tail_start(&files, 1).unwrap();
        assert!(first_line_at(&files, pos).contains("line 2"));
        assert!(files[0].complete_len().unwrap() < files[0].len().unwrap());
    }
}
