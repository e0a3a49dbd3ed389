//! The shim's command line (see `berth_common::shim` for the contract).

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    /// Where the json-file log goes; `None` when logging is off.
    pub log_path: Option<PathBuf>,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
}

pub const USAGE: &str = "usage: berth-shim --id ID --bundle DIR --state-dir DIR --runtime PATH \
--runtime-root DIR [--log-path FILE] [--log-driver json-file|none] [--log-max-size BYTES] \
[--log-max-files N] [--tty] [--stdin] [--stdin-once]";

impl Config {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Config> {
        let mut id = None;
        let mut bundle = None;
        let mut state_dir = None;
        let mut runtime = None;
        let mut runtime_root = None;
        let mut log_path = None;
        let mut log_driver = None;
        let mut log_max_size = 0u64;
        let mut log_max_files = 1u32;
        let (mut tty, mut stdin, mut stdin_once) = (false, false, false);

        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            match name.as_str() {
                "--tty" | "--stdin" | "--stdin-once" => {
                    if inline.is_some() {
                        bail!("{name} takes no value");
                    }
                    match name.as_str() {
                        "--tty" => tty = true,
                        "--stdin" => stdin = true,
                        _ => stdin_once = true,
                    }
                    continue;
                }
                _ => {}
            }
            let mut value = || -> Result<String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it.next().ok_or_else(|| anyhow!("{name} needs a value")),
                }
            };
            match name.as_str() {
                "--id" => id = Some(value()?),
                "--bundle" => bundle = Some(PathBuf::from(value()?)),
                "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
                "--runtime" => runtime = Some(PathBuf::from(value()?)),
                "--runtime-root" => runtime_root = Some(PathBuf::from(value()?)),
                "--log-path" => log_path = Some(PathBuf::from(value()?)),
                "--log-driver" => log_driver = Some(value()?),
                "--log-max-size" => {
                    let v = value()?;
                    log_max_size = v
                        .parse()
                        .with_context(|| format!("--log-max-size {v:?} is not a byte count"))?;
                }
                "--log-max-files" => {
                    let v = value()?;
                    log_max_files = v
                        .parse()
                        .with_context(|| format!("--log-max-files {v:?} is not a number"))?;
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }

        let id: String = id.ok_or_else(|| anyhow!("--id is required\n{USAGE}"))?;
        if id.is_empty() || id.starts_with('-') || id.contains('/') {
            bail!("invalid container id {id:?}");
        }
        let log_path = match log_driver.as_deref() {
            Some("none") => None,
            Some("json-file") => {
                Some(log_path.ok_or_else(|| anyhow!("--log-driver json-file needs --log-path"))?)
            }
            None => log_path,
            Some(other) => bail!("unsupported log driver {other:?} (json-file or none)"),
        };
        Ok(Config {
            id,
            bundle: bundle.ok_or_else(|| anyhow!("--bundle is required\n{USAGE}"))?,
            state_dir: state_dir.ok_or_else(|| anyhow!("--state-dir is required\n{USAGE}"))?,
            runtime: runtime.ok_or_else(|| anyhow!("--runtime is required\n{USAGE}"))?,
            runtime_root: runtime_root
                .ok_or_else(|| anyhow!("--runtime-root is required\n{USAGE}"))?,
            log_path,
            log_max_size,
            log_max_files,
            tty,
            stdin,
            stdin_once,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        Config::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn parses_the_documented_command_line() {
        let c = parse(
            "--id abc --bundle /b --state-dir /s --runtime /r --runtime-root /rr \
             --log-path /l --log-driver json-file --log-max-size=1000 --log-max-files 3 --tty --stdin --stdin-once",
        )
        .unwrap();
        assert_eq!(c.id, "abc");
        assert_eq!(c.log_path, Some(PathBuf::from("/l")));
        assert_eq!((c.log_max_size, c.log_max_files), (1000, 3));
        assert!(c.tty && c.stdin && c.stdin_once);
    }

    #[test]
    fn none_driver_disables_the_log_and_bad_input_is_an_error() {
        let base = "--id a --bundle /b --state-dir /s --runtime /r --runtime-root /rr";
        let c = parse(&format!("{base} --log-path /l --log-driver none")).unwrap();
        assert_eq!(c.log_path, None);
        assert!(parse(&format!("{base} --log-driver syslog")).is_err());
        assert!(parse(&format!("{base} --log-max-size big")).is_err());
        assert!(parse(&format!("{base} --bogus")).is_err());
        assert!(parse("--bundle /b").is_err());
        assert!(parse(&format!("{base} --tty=1")).is_err());
    }
}
