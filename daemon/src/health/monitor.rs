//! The probe loop of one container.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::state::{Health, ProbeResult, Status};
use super::{check_of, probe};
use crate::containers::core::{Container, Containers};
use crate::containers::record::Status as ContainerStatus;
use crate::containers::timefmt;

/// Time since `started_at` (RFC 3339), zero when unknown or in the future.
fn since(started_at: &str) -> Duration {
    timefmt::parse(started_at)
        .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
        .unwrap_or(Duration::ZERO)
}

/// Drops the monitor's registry entry however its loop ends.
struct Registered {
    containers: Arc<Containers>,
    id: String,
    generation: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.containers.health.forget(&self.id, self.generation);
    }
}

/// Probe until `stop` fires (its sender dropped) or the container is gone.
pub(super) async fn run(
    containers: Arc<Containers>,
    c: Arc<Container>,
    generation: u64,
    mut stop: oneshot::Receiver<()>,
) {
    let _registered = Registered {
        containers: Arc::clone(&containers),
        id: c.id.clone(),
        generation,
    };
    loop {
        let (check, started_at, starting) = {
            let r = c.lock();
            let starting = r
                .state
                .health
                .as_ref()
                .is_some_and(|h| h.status == Status::Starting);
            (check_of(&r), r.state.started_at.clone(), starting)
        };
        let Some(check) = check else { return };
        let wait = check.next_interval(since(&started_at), starting);
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let rec = c.snapshot();
        match rec.state.status {
            ContainerStatus::Running => {}
            // Probes wait while the container is paused.
            ContainerStatus::Paused => continue,
            _ => return,
        }
        let start = timefmt::now();
        let since_start = since(&rec.state.started_at);
        let outcome = tokio::select! {
            _ = &mut stop => return,
            o = probe::run(&containers, &rec, &check) => o,
        };
        crate::metrics::health_probe(outcome.exit_code == 0);
        let result = ProbeResult {
            start,
            end: timefmt::now(),
            exit_code: outcome.exit_code,
            output: outcome.output,
        };
        let (changed, rec) = {
            let mut r = c.lock();
            if !containers.health.is_current(&c.id, generation) {
                return;
            }
            if r.state.status != ContainerStatus::Running {
                continue;
            }
            let h = r.state.health.get_or_insert_with(|| Health::restart(None));
            let changed = h.record(result, check.retries, check.start_period, since_start);
            // A new status is saved at once; other results stay in memory
            // until the record's next save, so failing probes do not mean a
            // synced write each (dockerd writes no health results to disk).
            if changed.is_some() {
                if let Err(e) = containers.save(&r) {
                    tracing::warn!(id = %r.id, error = %e, "saving the health status");
                }
            }
            (changed, changed.map(|_| r.clone()))
        };
        if let (Some(status), Some(rec)) = (changed, rec) {
            containers.publish(&rec, &format!("health_status: {}", status.as_str()));
        }
    }
}
