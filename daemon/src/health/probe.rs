//! One probe run: an exec in the container through its shim, as dockerd
//! runs it (stdout and stderr captured, no stdin, the container's user,
//! environment and working directory), killed at the timeout.

use std::time::Duration;

use berth_common::shim::{Request, STREAM_STDERR, STREAM_STDOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::config::{go_duration, Check};
use super::state::Output;
use crate::containers::core::Containers;
use crate::containers::exec::{self, ExecConfig};
use crate::containers::record::ContainerRecord;

/// Starting the exec is not part of the probe's timeout, but a wedged
/// start is given up after this long (dockerd's limit too).
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long the exit of a probe killed at its timeout is waited for, to
/// report its `exec_die`.
const KILLED_EXIT_LIMIT: Duration = Duration::from_secs(60);

/// What a probe run gives: its exit code (-1 when it could not run or
/// timed out) and its output or the reason it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: i64,
    pub output: String,
}

fn failed(output: impl Into<String>) -> Outcome {
    Outcome {
        exit_code: -1,
        output: output.into(),
    }
}

fn publish(
    containers: &Containers,
    rec: &ContainerRecord,
    action: String,
    exec_id: &str,
    exit: Option<i32>,
) {
    let mut ev = containers
        .event(rec, &action)
        .attr("execID", exec_id.to_string());
    if let Some(code) = exit {
        ev = ev.attr("exitCode", code.to_string());
    }
    containers.events.publish(ev);
}

/// Run `check` once in the running container `rec`.
pub async fn run(containers: &Containers, rec: &ContainerRecord, check: &Check) -> Outcome {
    let Some((entrypoint, args)) = check.cmd.split_first() else {
        return failed("no healthcheck command specified");
    };
    let exec_id = hex::encode(rand::random::<[u8; 32]>());
    let cfg = ExecConfig {
        cmd: check.cmd.clone(),
        attach_stdout: true,
        attach_stderr: true,
        ..Default::default()
    };
    // dockerd's action text: entrypoint, a space, the arguments.
    let described = format!("{entrypoint} {}", args.join(" "));
    publish(
        containers,
        rec,
        format!("exec_create: {described}"),
        &exec_id,
        None,
    );
    let process = match exec::bundle::process_for(containers, rec, &cfg).await {
        Ok(p) => p,
        Err(msg) => return failed(msg),
    };
    let shim = containers.shim(&rec.id);
    let req = Request::Exec {
        exec_id: exec_id.clone(),
        process,
        detach: false,
    };
    let mut conn = match tokio::time::timeout(START_LIMIT, shim.open(&req)).await {
        Ok(Ok((resp, conn))) if resp.ok => conn,
        Ok(Ok((resp, _))) => {
            let (msg, code) = exec::start_failure(resp.error.as_deref().unwrap_or("unknown error"));
            publish(containers, rec, "exec_die".into(), &exec_id, Some(code));
            return failed(msg);
        }
        Ok(Err(e)) => return failed(format!("starting the health check: {e}")),
        Err(_) => {
            return failed(format!(
                "timed out starting health check for container {}",
                rec.id
            ))
        }
    };
    publish(
        containers,
        rec,
        format!("exec_start: {described}"),
        &exec_id,
        None,
    );
    // No stdin: the probe sees end of file at once.
    let _ = conn.writer.shutdown().await;
    let mut output = Output::default();
    let finished = tokio::time::timeout(check.timeout, async {
        read_frames(&mut conn.reader, &mut output).await?;
        let resp = shim
            .call(&Request::ExecWait {
                exec_id: exec_id.clone(),
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok::<i32, String>(resp.exit.map(|x| x.exit_code).unwrap_or(-1))
    })
    .await;
    match finished {
        Ok(Ok(code)) => {
            publish(containers, rec, "exec_die".into(), &exec_id, Some(code));
            Outcome {
                exit_code: i64::from(code),
                output: output.text(),
            }
        }
        Ok(Err(msg)) => failed(format!("health check for container {}: {msg}", rec.id)),
        Err(_) => {
            drop(conn);
            if let Err(e) = shim
                .call(&Request::ExecKill {
                    exec_id: exec_id.clone(),
                    signal: libc::SIGKILL,
                })
                .await
            {
                tracing::debug!(id = %rec.id, error = %e, "killing a health probe past its timeout");
            }
            // Its `exec_die` once the shim has reaped it.
            let event = containers
                .event(rec, "exec_die")
                .attr("execID", exec_id.clone());
            let events = containers.events.clone();
            tokio::spawn(async move {
                let req = Request::ExecWait { exec_id };
                let wait = shim.call(&req);
                if let Ok(Ok(resp)) = tokio::time::timeout(KILLED_EXIT_LIMIT, wait).await {
                    let code = resp.exit.map(|x| x.exit_code).unwrap_or(-1);
                    events.publish(event.attr("exitCode", code.to_string()));
                }
            });
            let limit = go_duration(check.timeout);
            let out = output.text();
            failed(if out.is_empty() {
                format!("Health check exceeded timeout ({limit})")
            } else {
                format!("Health check exceeded timeout ({limit}): {out}")
            })
        }
    }
}

/// Collect the exec's stdout and stderr frames until the shim ends the
/// stream; everything is read, only the first bytes kept.
async fn read_frames<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    output: &mut Output,
) -> Result<(), String> {
    let mut header = [0u8; 8];
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match reader.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("reading the probe's output: {e}")),
        }
        let mut left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let keep = matches!(header[0], STREAM_STDOUT | STREAM_STDERR);
        while left > 0 {
            let want = left.min(chunk.len());
            let n = reader
                .read(&mut chunk[..want])
                .await
                .map_err(|e| format!("reading the probe's output: {e}"))?;
            if n == 0 {
                return Err("the probe's output ended inside a frame".into());
            }
            if keep {
                output.push(&chunk[..n]);
            }
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_collected_from_both_streams() {
        let mut data = Vec::new();
        for (stream, text) in [(1u8, &b"out "[..]), (2, b"err")] {
            data.extend_from_slice(&berth_common::shim::frame_header(stream, text.len()));
            data.extend_from_slice(text);
        }
        let mut out = Output::default();
        read_frames(&mut &data[..], &mut out).await.unwrap();
        assert_eq!(out.text(), "out err");
        let mut cut = data.clone();
        cut.truncate(10);
        assert!(read_frames(&mut &cut[..], &mut Output::default())
            .await
            .is_err());
    }
}
