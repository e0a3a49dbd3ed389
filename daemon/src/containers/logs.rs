//! `GET /containers/{id}/logs`: reading the json-file log the shim writes
//! (`<data-root>/containers/<id>/<id>-json.log`, rotated to `.1`, `.2`, ...).
//!
//! Cost is proportional to what is returned: `tail` scans backwards from the
//! end, `since` bisects by time, `until` stops at the first later line, and
//! only shown lines are decoded. `follow` polls the newest file, moves to the
//! next file when the shim rotates (by inode, so no line is lost or repeated)
//! and ends once the container has stopped and the log is drained.
//!
//! The reader is synchronous (large positioned reads); the API handler runs
//! it on a blocking thread with a [`Sink`] that feeds the response body.

mod files;
mod jsonline;
mod reader;
mod timestamp;

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

pub use reader::{Selection, Sink};
pub use timestamp::parse_query_time;

use files::{LogFile, Position};
use reader::{Emitter, FileCursor, Flow};

/// How often `follow` looks for new lines when the log is idle.
const FOLLOW_POLL: Duration = Duration::from_millis(25);
/// After the container stopped, how long the log must stay quiet before
/// `follow` ends (the shim drains the pipes after the exit).
const DRAIN_GRACE: Duration = Duration::from_millis(150);

/// dockerd's message when the logging driver is `none` (or any driver
/// that cannot be read back).
pub const READ_NOT_SUPPORTED: &str = "configured logging driver does not support reading";

/// A parsed logs request.
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    pub selection: Selection,
    /// Only the last N lines; None for all.
    pub tail: Option<usize>,
    pub follow: bool,
}

/// The running state of the container, asked while following.
pub trait ContainerLiveness {
    fn is_running(&self) -> bool;
}

impl<F: Fn() -> bool> ContainerLiveness for F {
    fn is_running(&self) -> bool {
        self()
    }
}

/// Streams the log at `path` into `sink` per `req`. Returns when everything
/// was sent (and, with `follow`, the container stopped), when `until` is
/// passed, or when the client went away.
pub fn stream(
    path: &Path,
    req: &LogRequest,
    sink: &mut dyn Sink,
    container: &dyn ContainerLiveness,
) -> io::Result<()> {
    let mut out = Emitter::new(req.selection.clone(), sink);
    let result = stream_into(path, req, &mut out, container);
    if out.malformed() > 0 {
        tracing::warn!(path = %path.display(), lines = out.malformed(), "skipped malformed log lines");
    }
    out.flush();
    result
}

fn stream_into(
    path: &Path,
    req: &LogRequest,
    out: &mut Emitter<'_>,
    container: &dyn ContainerLiveness,
) -> io::Result<()> {
    let mut set = files::open_set(path)?;
    while set.is_empty() {
        // A container that never started has no log yet.
        if !req.follow || !container.is_running() || out.client_gone() {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
        set = files::open_set(path)?;
    }
    let start = start_position(&set, req)?;
    let last = set.len() - 1;
    let mut cursor = FileCursor::new(start.offset);
    for (idx, log) in set.iter().enumerate().skip(start.file) {
        if idx > start.file {
            cursor = FileCursor::new(0);
        }
        let (_, flow) = cursor.pump(&log.file, None, out)?;
        if flow == Flow::Done {
            return Ok(());
        }
    }
    if !req.follow || !container.is_running() {
        return Ok(());
    }
    let current = set.swap_remove(last);
    drop(set);
    follow(path, current, cursor, out, container, req.selection.until)
}

fn start_position(set: &[LogFile], req: &LogRequest) -> io::Result<Position> {
    let mut start = Position { file: 0, offset: 0 };
    if let Some(n) = req.tail {
        start = start.max(files::tail_start(set, n)?);
    }
    if let Some(since) = req.selection.since {
        start = start.max(files::since_start(set, since)?);
    }
    Ok(start)
}

/// Keeps reading `current` as it grows, switching to its successor when the
/// shim rotates it away.
fn follow(
    path: &Path,
    mut current: LogFile,
    mut cursor: FileCursor,
    out: &mut Emitter<'_>,
    container: &dyn ContainerLiveness,
    until: Option<i64>,
) -> io::Result<()> {
    let mut quiet_since_stop: Option<Instant> = None;
    loop {
        let (progressed, flow) = cursor.pump(&current.file, None, out)?;
        if flow == Flow::Done {
            return Ok(());
        }
        if progressed {
            quiet_since_stop = None;
            continue;
        }
        if !out.flush() {
            return Ok(());
        }
        // With max-file 1 the shim truncates in place.
        if current.len()? < cursor.offset {
            cursor = FileCursor::new(0);
            continue;
        }
        if files::file_id(path)? != Some(current.id) {
            // Rotated (or being rotated). Lines written just before the rename
            // are still in the old file: finish it first.
            let (_, flow) = cursor.pump(&current.file, None, out)?;
            if flow == Flow::Done {
                return Ok(());
            }
            if let Some(next) = successor(path, &current)? {
                current = next;
                cursor = FileCursor::new(0);
                quiet_since_stop = None;
                continue;
            }
        }
        // `until` in the future: follow up to that moment, like dockerd.
        if until.is_some_and(|u| now_nanos() > u) {
            return Ok(());
        }
        if !container.is_running() {
            let since = *quiet_since_stop.get_or_insert_with(Instant::now);
            if since.elapsed() >= DRAIN_GRACE {
                return Ok(());
            }
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The file written after `current`: the next newer one in the set. If
/// `current` was already deleted (the reader fell more than max-file files
/// behind), the oldest remaining one. None while the shim has renamed the
/// old file but not yet created the new one.
fn successor(path: &Path, current: &LogFile) -> io::Result<Option<LogFile>> {
    let mut set = files::open_set(path)?;
    let next = match set.iter().position(|f| f.id == current.id) {
        Some(i) if i + 1 < set.len() => i + 1,
        Some(_) => return Ok(None),
        None if set.is_empty() => return Ok(None),
        None => {
            tracing::warn!(path = %path.display(), "log follower fell behind rotation; lines were lost");
            0
        }
    };
    Ok(Some(set.swap_remove(next)))
}

/// Parses the `tail` query value: a count, or all lines for "all", empty,
/// negative or unparsable values (dockerd falls back to all as well).
pub fn parse_tail(value: Option<&str>) -> Option<usize> {
    value?
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|n| usize::try_from(n).ok())
}

#[cfg(test)]
mod tests;
