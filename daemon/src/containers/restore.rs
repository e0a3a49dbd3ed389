//! Daemon start: load every record and reconcile it with what is really
//! running — adopt live shims, collect exits that happened while berthd
//! was down, and mark containers whose shim vanished.

use std::sync::Arc;
use std::time::Duration;

use berth_common::shim::{ExitStatus, Request, Status as ShimStatus};

use super::core::{Container, Containers};
use super::record::Status;
use super::timefmt;

impl Containers {
    /// Load every record (synchronously, so the API sees all containers
    /// from the first request) and reconcile the ones that were running in
    /// the background. Unreadable records are logged and skipped.
    pub fn restore(self: &Arc<Self>) -> std::io::Result<()> {
        let records = self.records.load_all()?;
        let mut live = Vec::new();
        let mut stopped = Vec::new();
        for rec in records {
            let was_live = rec.state.status.is_live() || rec.state.status == Status::Removing;
            let name = rec.name.clone();
            let c = Container::new(rec);
            {
                let mut index = self.index.write();
                if index.name_taken(&name) {
                    tracing::error!(id = %c.id, %name, "duplicate container name in records; skipping");
                    continue;
                }
                index.insert(Arc::clone(&c), &name);
            }
            if was_live {
                live.push(c);
            } else {
                stopped.push(c);
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                "container restore outside the async runtime: live containers not reconciled"
            );
            return Ok(());
        };
        let this = Arc::clone(self);
        runtime.spawn(async move {
            for c in live {
                let this = Arc::clone(&this);
                tokio::spawn(async move { this.reconcile(c).await });
            }
            // A crash may have left bundles of stopped containers behind.
            for c in stopped {
                this.cleanup_runtime(&c.id).await;
            }
        });
        Ok(())
    }

    async fn reconcile(self: &Arc<Self>, c: Arc<Container>) {
        let shim = self.shim(&c.id);
        let state = tokio::time::timeout(Duration::from_secs(5), shim.call(&Request::State)).await;
        match state {
            Ok(Ok(resp))
                if matches!(resp.status, Some(ShimStatus::Running | ShimStatus::Paused)) =>
            {
                match shim.send(&Request::Wait).await {
                    Ok(conn) => {
                        {
                            let mut r = c.lock();
                            if r.state.status == Status::Removing {
                                r.state.status = Status::Running;
                            }
                            if let Some(pid) = resp.pid {
                                r.state.pid = pid;
                            }
                            r.state.status = if resp.status == Some(ShimStatus::Paused) {
                                Status::Paused
                            } else {
                                Status::Running
                            };
                            let _ = self.save(&r);
                        }
                        tracing::info!(id = %c.id, "adopted running container");
                        self.spawn_monitor(c, conn);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(id = %c.id, error = %e, "shim answered state but not wait")
                    }
                }
            }
            Ok(Ok(resp)) if resp.status == Some(ShimStatus::Created) => {
                // berthd died between the shim's create and start: the start
                // never happened, so end the half-started container and let
                // its shim record the exit like any other.
                tracing::info!(id = %c.id, "ending a container whose start was interrupted");
                if let Err(e) = shim
                    .call(&Request::Kill {
                        signal: libc::SIGKILL,
                        all: true,
                    })
                    .await
                {
                    tracing::warn!(id = %c.id, error = %e, "kill of an unstarted container failed");
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::info!(id = %c.id, error = %e, "shim not reachable"),
            Err(_) => tracing::warn!(id = %c.id, "shim did not answer state within 5s"),
        }
        // Not running any more: the shim's exit record says how it ended.
        shim.wait_gone(Duration::from_secs(5)).await;
        let (exit, error) = match shim.exit_file() {
            Some(exit) => (exit, String::new()),
            None => (
                ExitStatus {
                    exit_code: 255,
                    exited_at: timefmt::now(),
                    oom_killed: false,
                },
                "container's shim exited while berthd was down and left no exit status".to_string(),
            ),
        };
        tracing::info!(id = %c.id, code = exit.exit_code, "container exited while berthd was down");
        self.handle_exit(&c, exit, error).await;
    }
}
