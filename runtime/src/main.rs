//! berth-runtime: an OCI runtime with runc's command line.

use clap::Parser;

use berth_runtime::{cli, logging};

/// See Cargo.toml: musl's allocator unmaps freed memory at once, which a
/// short-lived process pays for in system calls.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// `--log FILE` and `--log-format F` from raw arguments, for reporting a
/// command line clap could not parse (callers like containerd read the log).
fn log_flags(args: &[String]) -> (Option<std::path::PathBuf>, logging::Format) {
    let mut file = None;
    let mut format = logging::Format::Text;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let value =
            |it: &mut std::slice::Iter<String>| inline.clone().or_else(|| it.next().cloned());
        match key {
            "--log" => file = value(&mut it).map(Into::into),
            "--log-format" if value(&mut it).as_deref() == Some("json") => {
                format = logging::Format::Json;
            }
            _ => {}
        }
    }
    (file, format)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match cli::Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let (file, format) = log_flags(&args);
            logging::init(file, format, false);
            let msg = e.to_string();
            // clap's text without the usage part, as one line.
            let summary: Vec<&str> = msg
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("tip:"))
                .filter(|l| !l.is_empty())
                .collect();
            logging::error_to_log(&summary.join(" "));
            e.exit()
        }
    };
    let code = match cli::execute(parsed) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&e.to_string());
            1
        }
    };
    std::process::exit(code);
}
