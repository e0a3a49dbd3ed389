//! Daemon start: load every record and reconcile it with what is really
//! there — adopt live shims, collect exits that happened while berthd was
//! down, and finish or undo what a crash interrupted (the record's
//! [`Pending`] marker says what): an unfinished create is removed, an
//! unfinished start is torn down (shim, runtime state, mount, cgroup) so
//! the next start works, an unfinished removal is completed.

use std::sync::Arc;
use std::time::Duration;

use berth_common::shim::{ExitStatus, Request, Status as ShimStatus};

use super::core::{Container, Containers};
use super::lifecycle::{cgroup_path, SHIM_EXIT_GRACE};
use super::record::{Pending, Status};
use super::shim::Shim;
use super::steps::Steps;
use super::store::is_container_id;
use super::timefmt;

/// How long a shim found alive may take to answer (it may still be in
/// `runtime create`, which binds its socket only afterwards).
const SHIM_ANSWER_GRACE: Duration = Duration::from_secs(30);
/// When a container that was waiting for its restart policy starts after
/// a daemon restart (its back-off began again: the first step's delay).
const RESTART_AFTER_RESTORE: Duration = Duration::from_millis(100);

/// What restore does with one record.
enum Task {
    /// It was running: adopt its shim or collect its exit.
    Adopt,
    /// It was not running: make sure nothing of a run is left.
    Settle,
    /// Its removal was under way: finish it.
    FinishRemoval { volumes: bool },
    /// It was waiting for the restart policy's start: make sure nothing of
    /// the last run is left, and schedule that start again.
    Restart,
}

impl Containers {
    /// Load every record (synchronously, so the API sees all containers
    /// from the first request) and reconcile them in the background, each
    /// under its own operation lock, so a request on a container waits
    /// until that container is reconciled (and never for the others).
    /// Unreadable records are logged and skipped.
    pub fn restore(self: &Arc<Self>) -> std::io::Result<()> {
        let (records, incomplete) = self.records.load_all()?;
        for id in incomplete {
            tracing::info!(%id, "removing the directory of a container whose create was interrupted");
            self.undo_create(&id, &[]);
        }
        let mut work = Vec::new();
        for rec in records {
            let task = match rec.pending {
                Some(Pending::Creating) => {
                    tracing::info!(id = %rec.id, "removing a container whose create was interrupted");
                    self.undo_create(&rec.id, &rec.mounts);
                    continue;
                }
                Some(Pending::Removing { volumes }) => Task::FinishRemoval { volumes },
                Some(Pending::Starting) => Task::Settle,
                Some(Pending::Committing) if rec.state.status.is_live() => Task::Adopt,
                Some(Pending::Committing) => Task::Settle,
                None if rec.state.status == Status::Restarting => Task::Restart,
                None if rec.state.status.is_live() || rec.state.status == Status::Removing => {
                    Task::Adopt
                }
                None => Task::Settle,
            };
            // The hold is not forced to disk at create (see
            // `ImageSource::hold`); the record is. Held again here, before
            // the API serves anything that could collect the layers.
            if !matches!(task, Task::FinishRemoval { .. }) {
                if let Err(e) = self.images.hold(&rec.id, rec.top_layer.as_deref()) {
                    tracing::warn!(id = %rec.id, error = %e, "holding the container's image layers");
                }
            }
            let name = rec.name.clone();
            let c = Container::new(rec);
            let Ok(guard) = Arc::clone(&c.op).try_lock_owned() else {
                continue; // a new container's lock is free
            };
            // A container being removed stays out of the index (and so out
            // of the volume and image users restored from it).
            if !matches!(task, Task::FinishRemoval { .. }) {
                let mut index = self.index.write();
                if index.name_taken(&name) {
                    tracing::error!(id = %c.id, %name, "duplicate container name in records; skipping");
                    continue;
                }
                index.insert(Arc::clone(&c), &name);
            }
            work.push((c, guard, task));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(
                "container restore outside the async runtime: containers not reconciled"
            );
            return Ok(());
        };
        runtime.spawn(Arc::clone(self).sweep_exec_root());
        for (c, guard, task) in work {
            let this = Arc::clone(self);
            runtime.spawn(async move {
                let _op = guard;
                match task {
                    Task::Adopt => this.reconcile(c).await,
                    Task::Settle => this.settle(&c).await,
                    Task::FinishRemoval { volumes } => this.finish_removal(&c, volumes).await,
                    Task::Restart => {
                        let rec = c.snapshot();
                        this.force_delete_runtime_state(&rec).await;
                        this.cleanup_runtime(&c).await;
                        remove_cgroups(&cgroup_path(&this.settings.cgroup_parent, &rec));
                        this.schedule_restart(c, RESTART_AFTER_RESTORE);
                    }
                }
            });
        }
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
                        self.resume_interrupted_commit(&c).await;
                        tracing::info!(id = %c.id, "adopted running container");
                        crate::health::watch(self, &c);
                        self.spawn_monitor(c, conn);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(id = %c.id, error = %e, "shim answered state but not wait")
                    }
                }
            }
            Ok(Ok(resp)) if resp.status == Some(ShimStatus::Created) => {
                tracing::info!(id = %c.id, "ending a container whose start was interrupted");
                end_shim(&shim).await;
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
        // The exit handling leaves no runtime state, mount or bundle; a
        // shim that died without `runtime delete` may leave runtime state.
        self.force_delete_runtime_state(&c.snapshot()).await;
        {
            let mut r = c.lock();
            if r.pending == Some(Pending::Committing) {
                r.pending = None;
            }
        }
        self.handle_exit(&c, exit, error).await;
    }

    /// What a removal that a crash cut off after its answer left in the
    /// exec root (see `destroy`): for a container without a record, its
    /// shim is ended if it still runs, then the runtime's state and the
    /// bundle go. A directory with an unreadable record is left alone.
    async fn sweep_exec_root(self: Arc<Self>) {
        let mut orphans = std::collections::BTreeSet::new();
        for dir in [
            self.settings.exec_root.join("shims"),
            self.settings.runtime_root(),
        ] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let Ok(id) = entry.file_name().into_string() else {
                    continue;
                };
                if is_container_id(&id) && !self.container_dir(&id).exists() {
                    orphans.insert(id);
                }
            }
        }
        for id in orphans {
            tracing::info!(%id, "removing what a removed container left in the exec root");
            let shim = self.shim(&id);
            if shim.is_alive() {
                end_shim(&shim).await;
            }
            self.force_delete_runtime_state_of(&id, "").await;
            let mut steps = Steps::new("sweep", &id);
            if let Some(released) = self.release_run(&id, &mut steps) {
                self.drop_bundle(&id, released, &mut steps).await;
            }
        }
    }

    /// A commit that paused the container was interrupted: resume it.
    async fn resume_interrupted_commit(&self, c: &Container) {
        if c.snapshot().pending != Some(Pending::Committing) {
            return;
        }
        let resumed =
            c.status() != Status::Paused || self.shim(&c.id).call(&Request::Resume).await.is_ok();
        let mut r = c.lock();
        if resumed {
            tracing::info!(id = %c.id, "resumed a container an interrupted commit had paused");
            if r.state.status == Status::Paused {
                r.state.status = Status::Running;
            }
        }
        r.pending = None;
        if let Err(e) = self.save(&r) {
            tracing::warn!(id = %r.id, error = %e, "clearing the commit marker");
        }
    }

    /// A container that is not running. A start a crash interrupted may
    /// have left a shim (with a created or even running container), the
    /// runtime's state, the rootfs mount and the cgroup: end and remove
    /// them all, so the next start begins from a clean slate. The
    /// container keeps the status it had before that start.
    async fn settle(self: &Arc<Self>, c: &Arc<Container>) {
        let rec = c.snapshot();
        let shim = self.shim(&rec.id);
        // Without the marker too: records of an older berthd do not have it.
        let interrupted = rec.pending == Some(Pending::Starting)
            || shim.is_alive()
            || self.settings.runtime_root().join(&rec.id).exists();
        if shim.is_alive() {
            tracing::info!(id = %rec.id, "ending the shim of a start that was interrupted");
            end_shim(&shim).await;
        }
        self.force_delete_runtime_state(&rec).await;
        self.cleanup_runtime(c).await;
        remove_cgroups(&cgroup_path(&self.settings.cgroup_parent, &rec));
        if rec.pending == Some(Pending::Committing) {
            let mut r = c.lock();
            r.pending = None;
            let _ = self.save(&r);
        }
        if interrupted || rec.state.status.is_live() {
            tracing::info!(id = %rec.id, "undid a start that was interrupted");
            let mut r = c.lock();
            r.pending = None;
            if r.state.status.is_live() {
                r.state.status = Status::Exited;
                r.state.pid = 0;
                r.state.finished_at = timefmt::now();
            }
            r.state.error = "the start was interrupted: berthd stopped before it completed".into();
            if let Err(e) = self.save(&r) {
                tracing::error!(id = %r.id, error = %e, "recording the undone start");
            }
        }
    }

    /// Complete a removal that a crash interrupted (the container had
    /// already exited: removal kills first).
    async fn finish_removal(self: &Arc<Self>, c: &Arc<Container>, volumes: bool) {
        let rec = c.snapshot();
        let shim = self.shim(&rec.id);
        if shim.is_alive() {
            end_shim(&shim).await;
        }
        match self.destroy(c, volumes, false).await {
            Ok(()) => {
                tracing::info!(id = %rec.id, "finished a removal that was interrupted");
                self.publish(&rec, "destroy");
                c.progress.send_modify(|p| p.removed = true);
            }
            Err(e) => {
                // As dockerd after a failed removal: a dead container the
                // user can remove again.
                tracing::error!(id = %rec.id, error = %e, "finishing an interrupted removal");
                {
                    let mut r = c.lock();
                    r.state.status = Status::Dead;
                    r.state.error = e.to_string();
                    r.pending = None;
                    let _ = self.save(&r);
                }
                let mut index = self.index.write();
                if !index.name_taken(&rec.name) {
                    index.insert(Arc::clone(c), &rec.name);
                }
            }
        }
    }
}

/// Make a live shim end its container and go: wait (bounded) until it
/// answers, as it may still be creating the container, ask it to SIGKILL
/// everything, and SIGKILL the shim itself if it does not exit.
async fn end_shim(shim: &Shim) {
    let deadline = tokio::time::Instant::now() + SHIM_ANSWER_GRACE;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), shim.call(&Request::State)).await {
            Ok(Ok(_)) => break,
            _ if !shim.is_alive() => return,
            _ if tokio::time::Instant::now() >= deadline => break,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let kill = Request::Kill {
        signal: libc::SIGKILL,
        all: true,
    };
    if let Err(e) = shim.call(&kill).await {
        tracing::info!(dir = %shim.state_dir.display(), error = %e, "asking the shim to kill its container");
    }
    if shim.wait_gone(SHIM_EXIT_GRACE).await {
        return;
    }
    if let Some(pid) = shim.pid().filter(|p| *p > 0) {
        tracing::warn!(
            pid,
            "the shim did not exit after its container was killed; killing it"
        );
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        shim.wait_gone(Duration::from_secs(5)).await;
    }
}

/// Remove the container's (empty) cgroup from every hierarchy, in case the
/// runtime died before it could: `rmdir` only, which fails harmlessly on a
/// cgroup that still has processes or does not exist.
fn remove_cgroups(path: &str) {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let root = std::path::Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join(rel)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path().join(rel));
            }
        }
    }
    for d in dirs {
        match std::fs::remove_dir(&d) {
            Ok(()) => tracing::info!(path = %d.display(), "removed a leftover cgroup"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %d.display(), error = %e, "removing a leftover cgroup"),
        }
    }
}
