//! Talking to berth-shim: spawning it (see `berth_common::shim` for the
//! command line and protocol) and one-request connections to its socket.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_common::shim::{ExitStatus, Request, Response, EXIT_FILE, PID_FILE, SOCKET_NAME};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("starting berth-shim: {0}")]
    Spawn(String),
    #[error("connecting to the shim at {path}: {err}")]
    Connect { path: String, err: std::io::Error },
    #[error("talking to the shim: {0}")]
    Io(#[from] std::io::Error),
    #[error("shim protocol error: {0}")]
    Protocol(String),
    /// The shim answered `ok: false`.
    #[error("{0}")]
    Refused(String),
}

/// Everything the shim's command line carries.
pub struct SpawnArgs<'a> {
    pub shim: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub state_dir: &'a Path,
    pub runtime: &'a Path,
    pub runtime_root: &'a Path,
    pub log_path: Option<&'a Path>,
    pub log_driver: &'a str,
    pub log_max_size: Option<u64>,
    pub log_max_files: Option<u32>,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
}

impl SpawnArgs<'_> {
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--id".to_string(),
            self.id.to_string(),
            "--bundle".into(),
            self.bundle.display().to_string(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--runtime".into(),
            self.runtime.display().to_string(),
            "--runtime-root".into(),
            self.runtime_root.display().to_string(),
            "--log-driver".into(),
            self.log_driver.to_string(),
        ];
        if let Some(p) = self.log_path {
            a.push("--log-path".into());
            a.push(p.display().to_string());
        }
        if let Some(n) = self.log_max_size {
            a.push("--log-max-size".into());
            a.push(n.to_string());
        }
        if let Some(n) = self.log_max_files {
            a.push("--log-max-files".into());
            a.push(n.to_string());
        }
        for (flag, on) in [
            ("--tty", self.tty),
            ("--stdin", self.stdin),
            ("--stdin-once", self.stdin_once),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        a
    }
}

/// Run the shim; when this returns Ok the container is created and the
/// shim's socket accepts connections.
pub async fn spawn(args: &SpawnArgs<'_>) -> Result<Option<i32>, ShimError> {
    let out = tokio::process::Command::new(args.shim)
        .args(args.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .output()
        .await
        .map_err(|e| ShimError::Spawn(format!("{}: {e}", args.shim.display())))?;
    if out.status.success() {
        // The init's pid; None from a shim that does not print it.
        let pid = std::str::from_utf8(&out.stdout)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|p| *p > 0);
        return Ok(pid);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let msg = stderr.trim();
    Err(ShimError::Spawn(if msg.is_empty() {
        format!("berth-shim exited with {}", out.status)
    } else {
        msg.to_string()
    }))
}

/// A handle on one shim, by its state directory.
#[derive(Debug, Clone)]
pub struct Shim {
    pub state_dir: PathBuf,
}

/// A connection after its request line was answered; stdio frames (attach,
/// exec) or nothing more (wait) follow.
pub struct Connection {
    pub reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    pub writer: tokio::net::unix::OwnedWriteHalf,
}

impl Connection {
    /// Read the response line.
    pub async fn response(&mut self) -> Result<Response, ShimError> {
        let mut resp = String::new();
        let n = self.reader.read_line(&mut resp).await?;
        if n == 0 {
            return Err(ShimError::Protocol(
                "the shim closed the connection without answering".into(),
            ));
        }
        serde_json::from_str(resp.trim_end())
            .map_err(|e| ShimError::Protocol(format!("bad response {resp:?}: {e}")))
    }
}

impl Shim {
    pub fn new(state_dir: PathBuf) -> Self {
        Shim { state_dir }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.state_dir.join(SOCKET_NAME)
    }

    /// Connect even when the socket path is longer than `sun_path` allows,
    /// through `/proc/self/fd/<dir>/shim.sock`.
    async fn connect(&self) -> Result<UnixStream, ShimError> {
        let err = |e| ShimError::Connect {
            path: self.socket_path().display().to_string(),
            err: e,
        };
        let dir = std::fs::File::open(&self.state_dir).map_err(err)?;
        let via = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), SOCKET_NAME);
        let stream = UnixStream::connect(&via).await.map_err(err)?;
        drop(dir);
        Ok(stream)
    }

    /// Send `req` without waiting for the answer (for `wait`, whose answer
    /// comes when the container exits).
    pub async fn send(&self, req: &Request) -> Result<Connection, ShimError> {
        let stream = self.connect().await?;
        let (r, mut writer) = stream.into_split();
        let mut line = serde_json::to_vec(req).map_err(|e| ShimError::Protocol(e.to_string()))?;
        line.push(b'\n');
        writer.write_all(&line).await?;
        Ok(Connection {
            reader: BufReader::new(r),
            writer,
        })
    }

    /// Send `req`, read the one response line, keep the connection.
    pub async fn open(&self, req: &Request) -> Result<(Response, Connection), ShimError> {
        let mut conn = self.send(req).await?;
        let resp = conn.response().await?;
        Ok((resp, conn))
    }

    /// One request, one answer; `ok: false` becomes [`ShimError::Refused`].
    pub async fn call(&self, req: &Request) -> Result<Response, ShimError> {
        let (resp, _) = tokio::time::timeout(Duration::from_secs(60), self.open(req))
            .await
            .map_err(|_| ShimError::Protocol(format!("no answer to {req:?} within 60s")))??;
        check(resp)
    }

    /// What the shim recorded when the container exited, if it did.
    pub fn exit_file(&self) -> Option<ExitStatus> {
        let data = std::fs::read(self.state_dir.join(EXIT_FILE)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.state_dir.join(PID_FILE))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// True while the shim process is alive.
    pub fn is_alive(&self) -> bool {
        match self.pid() {
            Some(pid) if pid > 0 => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            }
            _ => false,
        }
    }

    /// Wait (bounded) for the shim process to exit after the container did.
    pub async fn wait_gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        if let Some(pid) = self.pid().filter(|p| *p > 0) {
            // A pidfd becomes readable when the process exits: no polling.
            if let Some(fd) = pidfd_open(pid) {
                // SAFETY: the AsyncFd owns the pidfd, so it stays open for
                // as long as it is registered.
                if let Ok(afd) = unsafe { tokio::io::unix::AsyncFd::register(fd) } {
                    return tokio::time::timeout_at(deadline, afd.readable())
                        .await
                        .is_ok()
                        || !self.is_alive();
                }
            }
        }
        while self.is_alive() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel gave us this descriptor; we own it now.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

pub fn check(resp: Response) -> Result<Response, ShimError> {
    if resp.ok {
        Ok(resp)
    } else {
        Err(ShimError::Refused(
            resp.error.unwrap_or_else(|| "unknown shim error".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_the_protocol() {
        let a = SpawnArgs {
            shim: Path::new("/bin/berth-shim"),
            id: "abc",
            bundle: Path::new("/b"),
            state_dir: Path::new("/s"),
            runtime: Path::new("/r"),
            runtime_root: Path::new("/rr"),
            log_path: Some(Path::new("/l.log")),
            log_driver: "json-file",
            log_max_size: Some(10),
            log_max_files: None,
            tty: true,
            stdin: false,
            stdin_once: true,
        };
        assert_eq!(
            a.to_args().join(" "),
            "--id abc --bundle /b --state-dir /s --runtime /r --runtime-root /rr --log-driver json-file --log-path /l.log --log-max-size 10 --tty --stdin-once"
        );
    }
}
