//! A RUN step: a berth container from the current image, through the same
//! create/attach/start/wait path as `docker run`, its output relayed as
//! it happens. The container is removed whatever happens; a client that
//! goes away kills it.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use super::{BuildError, Output};
use crate::containers::{AttachRequest, Containers};

pub struct RunSpec {
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    pub resources: Map<String, Value>,
}

/// A step's container; removed on drop (in the background) unless
/// [`StepContainer::remove`] was awaited.
pub struct StepContainer {
    pub id: String,
    containers: Arc<Containers>,
    removed: bool,
}

impl StepContainer {
    pub fn short(&self) -> &str {
        &self.id[..12]
    }

    pub fn upper_dir(&self) -> PathBuf {
        crate::containers::rootfs::layer_dir(&self.containers.settings.data_root, &self.id)
            .join("upper")
    }

    pub async fn remove(mut self) {
        self.removed = true;
        remove(&self.containers, &self.id).await;
    }
}

async fn remove(containers: &Arc<Containers>, id: &str) {
    // Right after a kill the container may still be on its way out;
    // a forced removal then fails once, so try again for a while.
    let mut last = None;
    for _ in 0..40 {
        match containers.remove(id, true, true).await {
            Ok(()) => return,
            Err(crate::containers::ContainerError::NotFound(_)) => return,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    if let Some(e) = last {
        tracing::warn!(container = %id, error = %e, "removing a build container");
    }
}

impl Drop for StepContainer {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let containers = self.containers.clone();
        let id = self.id.clone();
        tokio::spawn(async move { remove(&containers, &id).await });
    }
}

/// Creates, runs and waits for the step's container. On success the
/// container (exited, not removed) is returned for the commit.
pub async fn run(
    containers: &Arc<Containers>,
    spec: RunSpec,
    out: &Output,
) -> Result<StepContainer, BuildError> {
    let mut host = json!({
        "NetworkMode": if spec.network_mode.is_empty() { "bridge" } else { spec.network_mode.as_str() },
        "ExtraHosts": spec.extra_hosts,
    });
    if let Value::Object(h) = &mut host {
        for (k, v) in &spec.resources {
            h.insert(k.clone(), v.clone());
        }
    }
    let body = json!({
        "Image": spec.image,
        "Cmd": spec.cmd,
        "Entrypoint": [""],
        "Env": spec.env,
        "WorkingDir": spec.working_dir,
        "User": spec.user,
        "AttachStdout": true,
        "AttachStderr": true,
        "HostConfig": host,
    });
    let body = serde_json::from_value(body)
        .map_err(|e| BuildError::Internal(format!("build container config: {e}")))?;
    let (id, _) = containers
        .create(None, body)
        .map_err(|e| BuildError::Step(e.to_string()))?;
    let step = StepContainer {
        id,
        containers: containers.clone(),
        removed: false,
    };
    // The container is gone before an error reaches the client.
    match execute(containers, &step, out).await {
        Ok(0) => Ok(step),
        Ok(code) => {
            step.remove().await;
            Err(BuildError::Command {
                command: spec.cmd.join(" "),
                code: code as i64,
            })
        }
        Err(e) => {
            step.remove().await;
            Err(e)
        }
    }
}

/// Attach, start, relay the output and wait: the exit code.
async fn execute(
    containers: &Arc<Containers>,
    step: &StepContainer,
    out: &Output,
) -> Result<i32, BuildError> {
    out.stream(format!(" ---> Running in {}\n", step.short()))
        .await?;
    let req = AttachRequest {
        stdout: true,
        stderr: true,
        stream: true,
        ..Default::default()
    };
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let ticket = containers
        .attach_ticket(&step.id, &req)
        .await
        .map_err(|e| BuildError::Step(e.to_string()))?;
    containers
        .attach(&step.id, req, ticket, Box::new(theirs))
        .await;
    let wait = containers
        .wait(&step.id, "next-exit")
        .map_err(|e| BuildError::Step(e.to_string()))?;
    containers
        .start(&step.id)
        .await
        .map_err(|e| BuildError::Step(e.to_string()))?;
    let relay = relay_output(ours, out);
    let exited = async {
        let r = relay.await;
        let (code, _) = wait.await;
        r.map(|_| code)
    };
    let code = tokio::select! {
        r = exited => r?,
        _ = out.closed() => {
            let _ = containers.kill(&step.id, Some("KILL")).await;
            return Err(BuildError::Cancelled);
        }
    };
    Ok(code)
}

/// Demultiplexes the attach stream into `stream` messages; stderr in red,
/// as dockerd's classic builder prints it.
async fn relay_output(mut io: tokio::io::DuplexStream, out: &Output) -> Result<(), BuildError> {
    let mut frames = berth_common::mux::FrameParser::default();
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = io.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return Ok(());
        }
        frames.push(&chunk[..n]);
        while let Some((stream, payload)) = frames.next_frame() {
            let text = String::from_utf8_lossy(&payload).into_owned();
            let msg = if stream == 2 {
                format!("\u{1b}[91m{text}\u{1b}[0m")
            } else {
                text
            };
            out.stream(msg).await?;
        }
    }
}
