//! Healthchecks: a monitor per running container with a configured probe
//! runs it as an exec through the container's shim and keeps
//! `State.Health` in the container record, as dockerd does.
//!
//! The container code calls four things: [`started`] when a start
//! succeeded (record lock held, before the record is saved), [`watch`]
//! after it (and after adopting a running container on restore),
//! [`Monitors::stop`] when the container exited (lock held), [`paused`]
//! when it was paused (lock held). Everything else stays in here.

pub mod config;
mod monitor;
mod probe;
pub mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

pub use config::Check;
pub use state::{Health, Status};

use crate::containers::core::{Container, Containers};
use crate::containers::record::ContainerRecord;

/// The values of the `health` filter of `GET /containers/json`.
pub const FILTER_VALUES: &[&str] = &["starting", "healthy", "unhealthy", "none"];

/// The probe of a container, if it has one to run.
pub fn check_of(rec: &ContainerRecord) -> Option<Check> {
    Check::parse(rec.config.healthcheck.as_ref(), rec.config.shell.as_deref())
}

/// The container's health as the `health` filter sees it.
pub fn filter_value(rec: &ContainerRecord) -> &'static str {
    rec.state
        .health
        .as_ref()
        .map(|h| h.status.as_str())
        .unwrap_or("none")
}

/// A start succeeded: the health starts over (the log is kept).
pub fn started(rec: &mut ContainerRecord) {
    if check_of(rec).is_some() {
        rec.state.health = Some(Health::restart(rec.state.health.take()));
    }
}

/// Paused: no probes run, and the health reads unhealthy (as dockerd).
pub fn paused(rec: &mut ContainerRecord) {
    if let Some(h) = rec.state.health.as_mut() {
        h.status = Status::Unhealthy;
    }
}

/// The running monitors, by container ID. Dropping an entry's sender ends
/// its monitor; the generation tells a replaced monitor's late result
/// from the current one's.
#[derive(Default)]
pub struct Monitors {
    running: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
    generation: AtomicU64,
}

impl Monitors {
    fn map(&self) -> MutexGuard<'_, HashMap<String, (u64, oneshot::Sender<()>)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The container has stopped: end its monitor; its health reads
    /// unhealthy from now on, as dockerd's does.
    pub fn stop(&self, rec: &mut ContainerRecord) {
        self.map().remove(&rec.id);
        if let Some(h) = rec.state.health.as_mut() {
            h.status = Status::Unhealthy;
        }
    }

    fn is_current(&self, id: &str, generation: u64) -> bool {
        self.map().get(id).is_some_and(|(g, _)| *g == generation)
    }

    /// A monitor that ended by itself drops its entry (not a newer one's).
    fn forget(&self, id: &str, generation: u64) {
        let mut map = self.map();
        if map.get(id).is_some_and(|(g, _)| *g == generation) {
            map.remove(id);
        }
    }
}

/// Run the container's probe from now on, replacing any monitor it had;
/// nothing when it has no probe.
pub fn watch(containers: &Arc<Containers>, c: &Arc<Container>) {
    {
        let mut r = c.lock();
        if check_of(&r).is_none() {
            return;
        }
        if r.state.health.is_none() {
            r.state.health = Some(Health::restart(None));
        }
    }
    let generation = containers.health.generation.fetch_add(1, Ordering::Relaxed) + 1;
    let (stop_tx, stop_rx) = oneshot::channel();
    containers
        .health
        .map()
        .insert(c.id.clone(), (generation, stop_tx));
    tokio::spawn(monitor::run(
        Arc::clone(containers),
        Arc::clone(c),
        generation,
        stop_rx,
    ));
}
