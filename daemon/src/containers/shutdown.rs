//! berthd's own stop and start, as dockerd's: without live-restore a
//! graceful stop ends the running containers (each with its own stop
//! signal and timeout, all at once) without counting that as the user's
//! stop, and the next start brings back those whose restart policy says
//! so. A crash (`kill -9`) stops nothing: the shims keep the containers,
//! and restore adopts them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::core::{Container, Containers};
use super::record::{ContainerRecord, Status};

/// What dockerd adds to the longest stop timeout for the daemon's own.
const SHUTDOWN_GRACE_SECS: i64 = 5;
/// A container's stop timeout when it sets none.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

impl Containers {
    /// From now on an exit does not trigger a restart policy, and a
    /// restart already scheduled waits for the next berthd.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// How long a graceful stop may take, as dockerd computes it: the
    /// configured `shutdown-timeout`, or the longest stop timeout of a
    /// container plus 5 s when that is longer. None: no limit (either is -1).
    pub fn shutdown_timeout(&self, configured: i64) -> Option<Duration> {
        if configured < 0 {
            return None;
        }
        let mut secs = configured;
        for c in self.all() {
            let stop = c
                .snapshot()
                .config
                .stop_timeout
                .unwrap_or(DEFAULT_STOP_TIMEOUT);
            if stop < 0 {
                return None;
            }
            secs = secs.max(stop.saturating_add(SHUTDOWN_GRACE_SECS));
        }
        Some(Duration::from_secs(secs as u64))
    }

    /// Stop every running or paused container with its stop signal and
    /// timeout, in parallel; returns how many were stopped. Containers
    /// waiting for a policy restart stay so (the next berthd restarts them).
    pub async fn stop_all_for_shutdown(self: &Arc<Self>) -> usize {
        let mut stops = tokio::task::JoinSet::new();
        for c in self.all() {
            if !matches!(c.status(), Status::Running | Status::Paused) {
                continue;
            }
            let this = Arc::clone(self);
            stops.spawn(async move {
                tracing::debug!(id = %c.id, "stopping the container for the daemon's shutdown");
                match this.stop_container(&c, None, None).await {
                    Ok(true) => {
                        this.publish(&c.snapshot(), "stop");
                        true
                    }
                    Ok(false) => false,
                    Err(e) => {
                        tracing::error!(id = %c.id, error = %e, "stopping the container at shutdown");
                        false
                    }
                }
            });
        }
        let mut stopped = 0;
        while let Some(done) = stops.join_next().await {
            stopped += usize::from(done.unwrap_or(false));
        }
        // The clean-ups that were still running behind their answers.
        self.background.close();
        self.background.wait().await;
        stopped
    }

    /// At start, once restore has reconciled each container (its operation
    /// lock is free again): start those that are not running and whose
    /// restart policy brings them back after a daemon restart.
    pub fn restart_by_policy(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("restart policies outside the async runtime: nothing restarted");
            return;
        };
        for c in self.all() {
            let this = Arc::clone(self);
            runtime.spawn(async move {
                let _op = c.op.lock().await;
                let rec = c.snapshot();
                if !restarts_with_daemon(&rec) || this.shutting_down.load(Ordering::SeqCst) {
                    return;
                }
                this.start_for_policy(&c).await;
            });
        }
    }

    async fn start_for_policy(self: &Arc<Self>, c: &Arc<Container>) {
        tracing::info!(id = %c.id, "starting the container its restart policy brings back");
        self.reset_restart_policy(c);
        match self.start_locked(c).await {
            Ok(()) => self.publish(&c.snapshot(), "start"),
            Err(e) => {
                tracing::error!(id = %c.id, error = %e, "restart policy: start after the daemon's restart failed")
            }
        }
    }
}

/// dockerd's rule at start for a container that ran before and is not
/// running now: `always`, `unless-stopped` unless its user stopped it, and
/// `on-failure` after a failure while retries remain.
fn restarts_with_daemon(rec: &ContainerRecord) -> bool {
    if !rec.has_been_started
        || rec.pending.is_some()
        || !matches!(rec.state.status, Status::Exited | Status::Created)
    {
        return false;
    }
    let p = &rec.host_config.restart_policy;
    match p.name.as_str() {
        "always" => true,
        "unless-stopped" => !rec.manually_stopped,
        "on-failure" => {
            rec.state.exit_code != 0
                && (p.maximum_retry_count <= 0
                    || (rec.restart_count as i64) < p.maximum_retry_count)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(policy: &str, max: i64, exit: i32, manual: bool) -> ContainerRecord {
        let mut r: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "c", "name": "/c", "created": "", "path": "", "args": [], "config": {},
            "host_config": {}, "networking_config": {}, "image_id": "", "layers": [],
            "state": {"status":"exited","pid":0,"exit_code":exit,"error":"","oom_killed":false,
                      "started_at":"","finished_at":""},
            "restart_count": 2, "has_been_started": true, "platform": "linux", "runtime": "berth"
        }))
        .unwrap();
        r.host_config.restart_policy.name = policy.into();
        r.host_config.restart_policy.maximum_retry_count = max;
        r.manually_stopped = manual;
        r
    }

    #[test]
    fn policies_at_daemon_start() {
        assert!(restarts_with_daemon(&rec("always", 0, 0, true)));
        assert!(restarts_with_daemon(&rec("unless-stopped", 0, 0, false)));
        assert!(!restarts_with_daemon(&rec("unless-stopped", 0, 0, true)));
        assert!(!restarts_with_daemon(&rec("no", 0, 1, false)));
        assert!(!restarts_with_daemon(&rec("", 0, 1, false)));
        assert!(restarts_with_daemon(&rec("on-failure", 0, 143, false)));
        assert!(restarts_with_daemon(&rec("on-failure", 3, 1, false)));
        assert!(!restarts_with_daemon(&rec("on-failure", 2, 1, false)));
        assert!(!restarts_with_daemon(&rec("on-failure", 0, 0, false)));
        let mut never_ran = rec("always", 0, 0, false);
        never_ran.has_been_started = false;
        assert!(!restarts_with_daemon(&never_ran));
        let mut running = rec("always", 0, 0, false);
        running.state.status = Status::Running;
        assert!(!restarts_with_daemon(&running));
    }
}
