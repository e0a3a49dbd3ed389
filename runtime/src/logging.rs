//! runc-style logging: `--log FILE --log-format text|json`. Errors go to the
//! log file (as JSON lines when asked, which containerd parses) and to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
}

fn line(level: &str, msg: &str, format: Format) -> String {
    let time = crate::state::now_rfc3339();
    match format {
        Format::Json => {
            serde_json::json!({"level": level, "msg": msg, "time": time}).to_string() + "\n"
        }
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

fn write_log(level: &str, msg: &str) {
    let Some(cfg) = CONFIG.get() else { return };
    let Some(path) = &cfg.file else { return };
    let entry = line(level, msg, cfg.format);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(entry.as_bytes());
    }
}

/// An error: to the log file and to stderr.
pub fn error(msg: &str) {
    write_log("error", msg);
    let _ = writeln!(std::io::stderr(), "berth-runtime: {msg}");
}

/// An error for the log file only (clap already printed it to stderr).
pub fn error_to_log(msg: &str) {
    write_log("error", msg);
}

pub fn warn(msg: &str) {
    write_log("warning", msg);
}

pub fn debug(msg: &str) {
    if CONFIG.get().is_some_and(|c| c.debug) {
        write_log("debug", msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runc_fields() {
        let l = line("error", "boom \"x\"", Format::Json);
        let v: serde_json::Value = serde_json::from_str(l.trim()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
