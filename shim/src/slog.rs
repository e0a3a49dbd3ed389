//! The shim's own diagnostic log (`STATE_DIR/shim.log`): the shim's stdio is
//! /dev/null once it has detached, so this file is where it says what it did
//! and what went wrong.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static LOG: Mutex<Option<File>> = Mutex::new(None);

pub fn open(path: &Path) -> std::io::Result<()> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    if let Ok(mut g) = LOG.lock() {
        *g = Some(f);
    }
    Ok(())
}

pub fn write(msg: std::fmt::Arguments<'_>) {
    let line = format!(
        "{} [{}] {}\n",
        crate::timefmt::now(),
        std::process::id(),
        msg
    );
    if let Ok(mut g) = LOG.lock() {
        if let Some(f) = g.as_mut() {
            // Nowhere left to report a failure to write the log itself.
            let _ = f.write_all(line.as_bytes());
        }
    }
}

#[macro_export]
macro_rules! slog {
    ($($arg:tt)*) => { $crate::slog::write(format_args!($($arg)*)) };
}
