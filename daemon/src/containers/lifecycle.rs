//! start, stop, kill, restart, pause, remove, and what happens when a
//! container's process exits (driven by the shim's answer to `wait`).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use berth_common::shim::{ExitStatus, Request};

use super::core::{Container, Containers};
use super::error::{ContainerError, Result};
use super::record::{ContainerRecord, Pending, Status};
use super::shim::{self as shimc, Connection, ShimError, SpawnArgs};
use super::spec::{self, JoinTargets, SpecInput};
use super::steps::Steps;
use super::{crashpoint, rootfs, signals, subpath, timefmt};

/// How long `stop` waits after SIGKILL before giving up.
const KILL_GRACE: Duration = Duration::from_secs(30);
/// How long `kill` with SIGKILL waits for the exit, as dockerd.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long exit handling waits for the shim to finish and go.
pub(super) const SHIM_EXIT_GRACE: Duration = Duration::from_secs(10);

fn shim_err(context: &str, e: ShimError) -> ContainerError {
    ContainerError::internal(context, e)
}

fn network_err(e: crate::network::NetError) -> ContainerError {
    match e.status() {
        400 => ContainerError::InvalidParameter(e.to_string()),
        404 => ContainerError::NotFoundOther(e.to_string()),
        _ => ContainerError::Internal(e.to_string()),
    }
}

fn not_running(id: &str) -> ContainerError {
    ContainerError::Conflict(format!("Container {id} is not running"))
}

/// The cgroup of a container, relative to each hierarchy's root.
pub fn cgroup_path(settings_parent: &str, rec: &ContainerRecord) -> String {
    let parent = if rec.host_config.cgroup_parent.is_empty() {
        settings_parent
    } else {
        rec.host_config.cgroup_parent.as_str()
    };
    format!("/{}/{}", parent.trim_matches('/'), rec.id)
}

impl Containers {
    // ---- start -------------------------------------------------------

    pub async fn start(self: &Arc<Self>, reference: &str) -> Result<()> {
        let c = self.get(reference)?;
        let _op = c.op.lock().await;
        match c.status() {
            Status::Running | Status::Paused | Status::Restarting => {
                return Err(ContainerError::NotModified)
            }
            Status::Removing | Status::Dead => {
                return Err(ContainerError::Conflict(format!(
                    "cannot start container {}: container is marked for removal",
                    c.id
                )))
            }
            Status::Created | Status::Exited => {}
        }
        self.reset_restart_policy(&c);
        if let Err(e) = self.start_locked(&c).await {
            // As dockerd: a `--rm` container that cannot start is removed
            // (`docker run --rm` waits for that).
            if c.snapshot().host_config.auto_remove {
                let this = Arc::clone(self);
                let id = c.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = this.remove(&id, true, true).await {
                        tracing::warn!(%id, error = %e, "removing a --rm container that failed to start");
                    }
                });
            }
            return Err(e);
        }
        self.publish(&c.snapshot(), "start");
        Ok(())
    }

    /// Start with `c.op` held by the caller.
    pub(super) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        // The last run's shim and bundle must be gone before this one's.
        self.exit_cleanup_done(c).await;
        let mut steps = Steps::new("start", &c.id);
        let rec = {
            // Before the first side effect: restore undoes whatever part of
            // the start a crash interrupts (mount, shim, runtime state).
            let mut r = c.lock();
            r.pending = Some(Pending::Starting);
            if let Err(e) = self.save_run_state(&r) {
                r.pending = None;
                return Err(e);
            }
            r.clone()
        };
        crashpoint::reached("start:after-marker");
        steps.done("starting marker saved");
        let bundle = self.settings.bundle_dir(&rec.id);
        let rootfs_dir = bundle.join("rootfs");
        // Leftovers of an earlier run that could not be cleaned.
        subpath::unstage(&bundle);
        remove_bundle(&bundle);
        if let Err(e) = self.write_host_files(&rec) {
            self.clear_pending(c);
            return Err(e);
        }
        std::fs::create_dir_all(&bundle)
            .map_err(|e| ContainerError::internal(format!("creating {}", bundle.display()), e))?;
        steps.done("host files, bundle directory");
        if let Err(e) = rootfs::mount_rootfs(
            &self.settings.data_root,
            &rec.id,
            &rec.layers,
            &rootfs_dir,
            if rec.host_config.auto_remove {
                rootfs::Durability::Throwaway
            } else {
                rootfs::Durability::Kept
            },
        ) {
            remove_bundle(&bundle);
            self.clear_pending(c);
            return Err(ContainerError::internal(
                "mounting the container's root filesystem",
                e,
            ));
        }
        crashpoint::reached("start:after-mount");
        steps.done("rootfs mounted");
        let mut wait_conn = None;
        let result = self
            .launch(c, &rec, &bundle, &rootfs_dir, &mut wait_conn)
            .await;
        steps = Steps::new("start", &c.id);
        match result {
            Ok(pid) => {
                let rec = {
                    let mut r = c.lock();
                    r.state.status = Status::Running;
                    r.state.pid = pid;
                    r.state.started_at = timefmt::now();
                    r.state.exit_code = 0;
                    r.state.error.clear();
                    r.state.oom_killed = false;
                    r.has_been_started = true;
                    r.pending = None;
                    crate::health::started(&mut r);
                    self.save_run_state(&r)?;
                    r.clone()
                };
                let _ = rec;
                steps.done("running state saved");
                // Before the exit watch, whose exit handling ends it.
                crate::health::watch(self, c);
                if let Some(conn) = wait_conn {
                    self.spawn_monitor(Arc::clone(c), conn);
                }
                Ok(())
            }
            Err(e) => {
                // The shim may be up with a created container: make it go.
                let shim = self.shim(&rec.id);
                if shim.is_alive() {
                    let _ = shim
                        .call(&Request::Kill {
                            signal: libc::SIGKILL,
                            all: true,
                        })
                        .await;
                    if let Some(mut conn) = wait_conn {
                        let _ = tokio::time::timeout(SHIM_EXIT_GRACE, conn.response()).await;
                    }
                    shim.wait_gone(SHIM_EXIT_GRACE).await;
                }
                self.cleanup_runtime(c).await;
                let (code, message) = classify_start_error(&e);
                {
                    let mut r = c.lock();
                    r.pending = None;
                    r.state.error = message.clone();
                    r.state.exit_code = code;
                    if r.state.status != Status::Created {
                        r.state.status = Status::Exited;
                        r.state.finished_at = timefmt::now();
                    }
                    let _ = self.save(&r);
                }
                Err(e)
            }
        }
    }

    /// Spec, shim, attach pending clients, start; returns the init's pid.
    async fn launch(
        self: &Arc<Self>,
        c: &Arc<Container>,
        rec: &ContainerRecord,
        bundle: &Path,
        rootfs_dir: &Path,
        wait_conn: &mut Option<Connection>,
    ) -> Result<i32> {
        let mut steps = Steps::new("start", &rec.id);
        let join = self.join_targets(rec)?;
        let init = if rec.host_config.init == Some(true) {
            Some(self.settings.init_binary.clone().ok_or_else(|| {
                ContainerError::InvalidParameter(
                    "--init: no init binary is installed in this daemon".into(),
                )
            })?)
        } else {
            None
        };
        let container_dir = self.container_dir(&rec.id);
        if let Some(n) = self.networks.get() {
            n.prepare(rec, &container_dir).map_err(network_err)?;
        }
        // Legacy links: their variables come before the container's own.
        let link_env = self.setup_links(rec, &container_dir)?;
        let linked;
        let rec = if link_env.is_empty() {
            rec
        } else {
            let mut r = rec.clone();
            let own = r.config.env.take().unwrap_or_default();
            r.config.env = Some(link_env.into_iter().chain(own).collect());
            linked = r;
            &linked
        };
        // Subpath mounts go through staging points (see `subpath`).
        let staged = subpath::stage(bundle, &rec.mounts)?.map(|mounts| ContainerRecord {
            mounts,
            ..rec.clone()
        });
        let spec = spec::build(&SpecInput {
            rec: staged.as_ref().unwrap_or(rec),
            rootfs: rootfs_dir,
            container_dir: &container_dir,
            cgroups_path: cgroup_path(&self.settings.cgroup_parent, rec),
            join,
            init_binary: init.as_deref(),
            default_ulimits: &self.live().default_ulimits,
        })?;
        let data = serde_json::to_vec(&spec)
            .map_err(|e| ContainerError::internal("encoding config.json", e))?;
        // The bundle lives in the volatile exec root: no fsync needed.
        std::fs::write(bundle.join("config.json"), &data)
            .map_err(|e| ContainerError::internal("writing config.json", e))?;
        *c.exec_base.lock().unwrap_or_else(|p| p.into_inner()) =
            spec.get("process").cloned().map(Arc::new);
        steps.done("network prepared, links, config.json");

        let runtime = self.runtime_path(&rec.host_config.runtime)?;
        let runtime_root = self.settings.runtime_root();
        std::fs::create_dir_all(&runtime_root)
            .map_err(|e| ContainerError::internal("creating the runtime root", e))?;
        let log_driver = match rec.host_config.log_config.kind.as_str() {
            "none" => "none",
            _ => "json-file",
        };
        let log_path = self.settings.log_path(&rec.id);
        let opts = &rec.host_config.log_config.config;
        let log_max_size = match opts.get("max-size") {
            Some(s) => Some(parse_size(s).ok_or_else(|| {
                ContainerError::InvalidParameter(format!("invalid max-size {s:?}"))
            })?),
            None => None,
        };
        let log_max_files = match opts.get("max-file") {
            Some(s) => Some(s.parse::<u32>().map_err(|_| {
                ContainerError::InvalidParameter(format!("invalid max-file {s:?}"))
            })?),
            None => None,
        };
        let spawned_pid = shimc::spawn(&SpawnArgs {
            shim: &self.settings.shim_path,
            id: &rec.id,
            bundle,
            state_dir: bundle,
            runtime: &runtime,
            runtime_root: &runtime_root,
            log_path: (log_driver != "none").then_some(log_path.as_path()),
            log_driver,
            log_max_size,
            log_max_files,
            tty: rec.config.tty,
            stdin: rec.config.open_stdin,
            stdin_once: rec.config.stdin_once,
        })
        .await
        .map_err(|e| match e {
            ShimError::Spawn(msg) => start_error(msg),
            other => shim_err("starting the shim", other),
        })?;
        crashpoint::reached("start:after-runtime-create");
        steps.done("shim spawned, runtime create");

        let shim = self.shim(&rec.id);
        if let Some(n) = self.networks.get() {
            let pid = match spawned_pid {
                Some(pid) => pid,
                None => shim
                    .call(&Request::State)
                    .await
                    .map_err(|e| shim_err("reading the created container's pid", e))?
                    .pid
                    .unwrap_or(0),
            };
            n.attach(rec, pid).map_err(network_err)?;
        }
        steps.done("network attached");
        let pending: Vec<_> =
            std::mem::take(&mut *c.pending_attach.lock().unwrap_or_else(|p| p.into_inner()));
        for p in pending {
            // The client has its 101 already; its connection is moments away.
            match tokio::time::timeout(Duration::from_secs(5), p.io).await {
                Ok(Ok(io)) => self.connect_attach(rec, p.request, io).await,
                _ => tracing::warn!(id = %rec.id, "an attached client never completed its upgrade"),
            }
        }
        *wait_conn = Some(
            shim.send(&Request::Wait)
                .await
                .map_err(|e| shim_err("waiting on the container", e))?,
        );
        steps.done("attach clients, wait connection");
        let resp = shim.call(&Request::Start).await.map_err(|e| match e {
            ShimError::Refused(msg) => start_error(msg),
            other => shim_err("starting the container", other),
        })?;
        crashpoint::reached("start:after-runtime-start");
        steps.done("runtime start");
        match resp.pid {
            Some(pid) => Ok(pid),
            // The shim tells the init's pid in `state`.
            None => Ok(shim
                .call(&Request::State)
                .await
                .ok()
                .and_then(|s| s.pid)
                .unwrap_or(0)),
        }
    }

    /// Pids whose namespaces `container:<x>` modes join.
    fn join_targets(&self, rec: &ContainerRecord) -> Result<JoinTargets> {
        let hc = &rec.host_config;
        let pid_of = |mode: &str| -> Result<Option<i32>> {
            let Some(other) = mode.strip_prefix("container:") else {
                return Ok(None);
            };
            let c = self.get(other)?;
            let r = c.snapshot();
            if r.id == rec.id {
                return Err(ContainerError::InvalidParameter(
                    "cannot join own namespaces".into(),
                ));
            }
            if !r.state.status.is_live() || r.state.pid <= 0 {
                return Err(ContainerError::Conflict(format!(
                    "cannot join namespace of a non running container: container {} is {}",
                    r.id,
                    r.state.status.as_str()
                )));
            }
            Ok(Some(r.state.pid))
        };
        Ok(JoinTargets {
            pid: pid_of(&hc.pid_mode)?,
            ipc: pid_of(&hc.ipc_mode)?,
            uts: None,
            net: pid_of(hc.network_mode())?,
        })
    }

    // ---- exit ------------------------------------------------------

    /// Wait on the shim's answer to `wait` and act on the exit.
    pub(super) fn spawn_monitor(self: &Arc<Self>, c: Arc<Container>, mut conn: Connection) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let answer = conn.response().await;
            drop(conn);
            let shim = this.shim(&c.id);
            let (status, error) = match answer {
                Ok(resp) if resp.ok && resp.exit.is_some() => (resp.exit, String::new()),
                Ok(resp) => {
                    tracing::warn!(id = %c.id, error = ?resp.error, "shim answered wait without an exit status");
                    (None, resp.error.unwrap_or_default())
                }
                Err(e) => {
                    tracing::warn!(id = %c.id, error = %e, "lost the wait connection to the shim");
                    (None, e.to_string())
                }
            };
            let status = match status {
                Some(s) => Some(s),
                None => {
                    shim.wait_gone(SHIM_EXIT_GRACE).await;
                    shim.exit_file()
                }
            };
            let (status, error) = match status {
                Some(s) => (s, String::new()),
                None => (
                    ExitStatus {
                        exit_code: 255,
                        exited_at: timefmt::now(),
                        oom_killed: false,
                    },
                    format!("berth-shim went away without recording an exit status ({error})"),
                ),
            };
            this.handle_exit(&c, status, error).await;
        });
    }

    pub(super) async fn handle_exit(
        self: &Arc<Self>,
        c: &Arc<Container>,
        exit: ExitStatus,
        error: String,
    ) {
        let (rec, delay) = {
            let mut r = c.lock();
            r.state.pid = 0;
            r.state.exit_code = exit.exit_code;
            r.state.oom_killed = exit.oom_killed;
            r.state.error = error;
            r.state.finished_at = if exit.exited_at.is_empty() {
                timefmt::now()
            } else {
                exit.exited_at.clone()
            };
            let ran = timefmt::unix(&r.state.finished_at) - timefmt::unix(&r.state.started_at);
            let delay = self.restart_after(c, &r, ran);
            r.manually_stopped = c.manually_stopped.load(Ordering::SeqCst);
            // As dockerd: a container waiting for its restart counts as
            // live (`restarting`) until the restart or a stop.
            r.state.status = if delay.is_some() {
                r.restart_count += 1;
                Status::Restarting
            } else {
                Status::Exited
            };
            self.health.stop(&mut r);
            if let Err(e) = self.save_run_state(&r) {
                tracing::error!(id = %r.id, error = %e, "recording the exit");
            }
            (r.clone(), delay)
        };
        if rec.state.oom_killed {
            self.publish(&rec, "oom");
        }
        let ran = timefmt::unix(&rec.state.finished_at) - timefmt::unix(&rec.state.started_at);
        self.events.publish(
            self.event(&rec, "die")
                .attr("exitCode", rec.state.exit_code.to_string())
                .attr("execDuration", ran.max(0).to_string()),
        );
        // Waiters are answered once the rootfs is off; the shim's own
        // teardown (`runtime delete`, about 2 ms) and the bundle's removal
        // go on behind, and whatever reuses the bundle waits for them.
        let mut steps = Steps::new("exit clean-up", &rec.id);
        if let Some(released) = self.release_run(&rec.id, &mut steps) {
            let this = Arc::clone(self);
            let id = rec.id.clone();
            let rest = self.background.spawn(async move {
                let mut steps = Steps::new("exit clean-up", &id);
                this.drop_bundle(&id, released, &mut steps).await
            });
            *c.exit_cleanup.lock().unwrap_or_else(|p| p.into_inner()) = Some(rest);
        }
        c.progress.send_modify(|p| {
            p.exits += 1;
            p.exit_code = rec.state.exit_code;
            p.error = rec.state.error.clone();
        });
        if let Some(delay) = delay {
            self.schedule_restart(Arc::clone(c), delay);
        } else if rec.host_config.auto_remove {
            let this = Arc::clone(self);
            let id = rec.id.clone();
            tokio::spawn(async move {
                if let Err(e) = this.remove(&id, true, true).await {
                    tracing::warn!(%id, error = %e, "auto-removing the container");
                }
            });
        }
    }

    /// The restart policy's start of a `restarting` container after
    /// `delay`, unless a stop, kill or removal called it off meanwhile.
    pub(super) fn schedule_restart(self: &Arc<Self>, c: Arc<Container>, delay: Duration) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _op = c.op.lock().await;
            // At shutdown it stays `restarting`: the next berthd starts it.
            if c.status() != Status::Restarting || this.shutting_down.load(Ordering::SeqCst) {
                return;
            }
            if c.manually_stopped.load(Ordering::SeqCst) {
                this.settle_restarting(&c);
                return;
            }
            match this.start_locked(&c).await {
                Ok(()) => this.publish(&c.snapshot(), "start"),
                Err(e) => tracing::warn!(id = %c.id, error = %e, "restart policy: start failed"),
            }
        });
    }

    /// The restart policy's verdict on an exit (with the record lock held):
    /// the delay before the restart, or None. Advances the back-off as
    /// dockerd's restart manager does, restart or not.
    fn restart_after(
        &self,
        c: &Container,
        rec: &ContainerRecord,
        ran_secs: i64,
    ) -> Option<Duration> {
        let delay = {
            let mut backoff = c.restart_backoff.lock().unwrap_or_else(|p| p.into_inner());
            *backoff = next_backoff(*backoff, ran_secs);
            *backoff
        };
        if c.manually_stopped.load(Ordering::SeqCst)
            || rec.host_config.auto_remove
            || self.shutting_down.load(Ordering::SeqCst)
        {
            return None;
        }
        let p = &rec.host_config.restart_policy;
        let restart = match p.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                rec.state.exit_code != 0
                    && (p.maximum_retry_count == 0
                        || (rec.restart_count as i64) < p.maximum_retry_count)
            }
            _ => false,
        };
        restart.then_some(delay)
    }

    /// A restart the policy had scheduled is called off (stop, kill,
    /// removal): the container is exited again (with `c.op` held).
    fn settle_restarting(&self, c: &Container) -> bool {
        let mut r = c.lock();
        if r.state.status != Status::Restarting {
            return false;
        }
        r.state.status = Status::Exited;
        r.manually_stopped = c.manually_stopped.load(Ordering::SeqCst);
        if let Err(e) = self.save(&r) {
            tracing::warn!(id = %r.id, error = %e, "recording the called-off restart");
        }
        true
    }

    /// What a manual start resets: the restart policy applies again, with
    /// a fresh count and back-off.
    pub(super) fn reset_restart_policy(&self, c: &Container) {
        c.manually_stopped.store(false, Ordering::SeqCst);
        *c.restart_backoff.lock().unwrap_or_else(|p| p.into_inner()) = Duration::ZERO;
        let mut r = c.lock();
        r.restart_count = 0;
        r.manually_stopped = false;
    }

    /// After the container's process is gone: unmount its rootfs and drop
    /// the bundle (once the shim has finished with it).
    pub(super) async fn cleanup_runtime(&self, c: &Container) {
        self.exit_cleanup_done(c).await;
        let mut steps = Steps::new("exit clean-up", &c.id);
        if let Some(released) = self.release_run(&c.id, &mut steps) {
            self.drop_bundle(&c.id, released, &mut steps).await;
        }
    }

    /// Waits for what the last exit's clean-up left running (see
    /// `handle_exit`): before the rootfs is mounted again or the bundle
    /// reused. Callers hold `c.op`, as every taker does.
    pub async fn exit_cleanup_done(&self, c: &Container) {
        let rest = c
            .exit_cleanup
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rest) = rest {
            if let Err(e) = rest.await {
                tracing::warn!(id = %c.id, error = %e, "the exit's clean-up task failed");
            }
        }
    }

    /// What an exit's waiters may count on: the network released and the
    /// rootfs unmounted. None when there is no bundle left to drop, or when
    /// the rootfs could not be unmounted (the bundle then stays).
    pub(super) fn release_run(&self, id: &str, steps: &mut Steps<'_>) -> Option<Released> {
        if let Some(n) = self.networks.get() {
            n.release(id);
        }
        let bundle = self.settings.bundle_dir(id);
        // Removed last, after the rootfs was unmounted and the shim (whose
        // socket is in it) was gone: already cleaned after the exit.
        if !bundle.exists() {
            return None;
        }
        // Unmounted while the shim runs `runtime delete`, which touches only
        // the runtime's state and the cgroups (berthd's specs carry no
        // poststop hooks that could look at the rootfs).
        subpath::unstage(&bundle);
        match rootfs::detach_rootfs(&bundle.join("rootfs")) {
            Ok(overlay) => {
                steps.done("rootfs unmounted");
                Some(Released { overlay })
            }
            Err(e) => {
                tracing::error!(%id, error = %e, "unmounting the container's rootfs");
                None
            }
        }
    }

    /// The rest of a run's clean-up: the overlay let go (its sync), and
    /// once the shim is gone (its socket is in the bundle) the bundle.
    pub(super) async fn drop_bundle(&self, id: &str, released: Released, steps: &mut Steps<'_>) {
        if let Some(overlay) = released.overlay {
            if let Err(e) = tokio::task::spawn_blocking(move || drop(overlay)).await {
                tracing::warn!(%id, error = %e, "letting go of the unmounted overlay");
            }
            steps.done("overlay synced");
        }
        if !self.shim(id).wait_gone(SHIM_EXIT_GRACE).await {
            tracing::warn!(%id, "shim still running after the container exited");
        }
        steps.done("shim gone");
        remove_bundle(&self.settings.bundle_dir(id));
        steps.done("bundle removed");
    }

    // ---- signals ---------------------------------------------------

    async fn signal(&self, rec: &ContainerRecord, signal: i32, all: bool) -> Result<()> {
        self.shim(&rec.id)
            .call(&Request::Kill { signal, all })
            .await
            .map_err(|e| shim_err(&format!("sending signal {signal} to {}", rec.id), e))?;
        self.events
            .publish(self.event(rec, "kill").attr("signal", signal.to_string()));
        Ok(())
    }

    /// `docker kill`: not serialised with other operations, so it works
    /// while a `stop` is waiting. As dockerd, SIGKILL (the default) answers
    /// once the container has exited, and a kill with SIGKILL or the stop
    /// signal suspends the restart policy until the next start.
    pub async fn kill(&self, reference: &str, signal: Option<&str>) -> Result<()> {
        let c = self.get(reference)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => signals::parse(s).map_err(ContainerError::InvalidParameter)?,
            None => libc::SIGKILL,
        };
        let mut rx = c.progress.subscribe();
        let before = rx.borrow().exits;
        let rec = c.snapshot();
        if !rec.state.status.is_live() {
            return Err(ContainerError::Conflict(format!(
                "Cannot kill container: {reference}: Container {} is not running",
                rec.id
            )));
        }
        let stop_signal = rec
            .config
            .stop_signal
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| signals::parse(s).ok());
        if sig == libc::SIGKILL || stop_signal.is_none_or(|s| s == sig) {
            c.manually_stopped.store(true, Ordering::SeqCst);
        }
        if rec.state.status == Status::Restarting {
            // No process to signal: calling off the restart is the kill.
            let _op = c.op.lock().await;
            if c.manually_stopped.load(Ordering::SeqCst) {
                self.settle_restarting(&c);
            }
            return Ok(());
        }
        let sent = self.signal(&rec, sig, sig == libc::SIGKILL).await;
        if rec.state.status == Status::Paused && sig == libc::SIGKILL {
            let _ = self.shim(&rec.id).call(&Request::Resume).await;
        }
        if sig != libc::SIGKILL {
            return sent;
        }
        let exited = tokio::time::timeout(KILL_WAIT, rx.wait_for(|p| p.exits > before))
            .await
            .is_ok_and(|r| r.is_ok());
        match (exited, sent) {
            (true, _) => Ok(()),
            // The process was gone before the signal reached it.
            (_, Err(_)) if !c.status().is_live() => Ok(()),
            (_, Err(e)) => Err(e),
            (_, Ok(())) => Err(ContainerError::Internal(
                "tried to kill container, but did not receive an exit event".into(),
            )),
        }
    }

    pub async fn stop(
        self: &Arc<Self>,
        reference: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.get(reference)?;
        // Set first: a restart-policy start pending after an exit must not
        // bring back a container the user stopped.
        c.manually_stopped.store(true, Ordering::SeqCst);
        if !self.stop_container(&c, timeout, signal).await? {
            return Err(ContainerError::NotModified);
        }
        self.publish(&c.snapshot(), "stop");
        Ok(())
    }

    /// Stop signal, then SIGKILL after `timeout` seconds (-1: wait forever);
    /// false when the container was not running. `c.op` is held only to
    /// signal, never across the grace period: as in dockerd, a force
    /// removal, a shorter stop, a kill or a pause meanwhile go ahead at
    /// once, and this returns as soon as the container has exited,
    /// whoever ended it.
    pub(super) async fn stop_container(
        &self,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<bool> {
        let rec = c.snapshot();
        let sig_name = signal
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| rec.config.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into());
        let sig = signals::parse(&sig_name).map_err(ContainerError::InvalidParameter)?;
        let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let mut rx = c.progress.subscribe();
        let before = {
            let _op = c.op.lock().await;
            let rec = c.snapshot();
            if !rec.state.status.is_live() {
                return Ok(false);
            }
            if self.settle_restarting(c) {
                return Ok(true);
            }
            let before = rx.borrow().exits;
            if let Err(e) = self.signal(&rec, sig, false).await {
                tracing::warn!(id = %rec.id, error = %e, "stop signal failed; killing");
            }
            crashpoint::reached("stop:after-signal");
            if rec.state.status == Status::Paused {
                let _ = self.shim(&rec.id).call(&Request::Resume).await;
            }
            before
        };
        let exited = move |p: &super::core::Progress| p.exits > before;
        let graceful = if timeout < 0 {
            rx.wait_for(exited).await.is_ok()
        } else {
            tokio::time::timeout(Duration::from_secs(timeout as u64), rx.wait_for(exited))
                .await
                .map(|r| r.is_ok())
                .unwrap_or(false)
        };
        if graceful {
            return Ok(true);
        }
        let mut kill = Ok(());
        {
            // Someone else (`rm -f`, a shorter stop) may hold the lock while
            // ending the container: its exit is our answer then.
            let mut exits = c.progress.subscribe();
            let _op = tokio::select! {
                _ = exits.wait_for(exited) => return Ok(true),
                op = c.op.lock() => op,
            };
            // Under the lock, so a run started after the exit is not killed.
            if !exited(&c.progress.borrow()) && c.status().is_live() {
                kill = self.kill_now(c).await;
            }
        }
        // A kill that failed because the container was already on its way
        // out is no failure: its exit is what counts.
        let limit = if kill.is_ok() {
            KILL_GRACE
        } else {
            SHIM_EXIT_GRACE
        };
        let killed = tokio::time::timeout(limit, rx.wait_for(exited))
            .await
            .is_ok();
        if killed {
            Ok(true)
        } else {
            kill?;
            Err(ContainerError::Internal(format!(
                "container {} did not exit within {}s of SIGKILL",
                rec.id,
                KILL_GRACE.as_secs()
            )))
        }
    }

    /// SIGKILL to every process of the container (with `c.op` held); a
    /// paused one is resumed so the signal lands, as dockerd does.
    async fn kill_now(&self, c: &Container) -> Result<()> {
        let rec = c.snapshot();
        self.signal(&rec, libc::SIGKILL, true).await?;
        if rec.state.status == Status::Paused {
            let _ = self.shim(&rec.id).call(&Request::Resume).await;
        }
        Ok(())
    }

    pub async fn restart(
        self: &Arc<Self>,
        reference: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.get(reference)?;
        if c.status().is_live() {
            c.manually_stopped.store(true, Ordering::SeqCst);
            if self.stop_container(&c, timeout, signal).await? {
                self.publish(&c.snapshot(), "stop");
            }
        }
        // The stop left the lock free: the container may have been removed
        // or started by someone else meanwhile.
        let _op = c.op.lock().await;
        if c.progress.borrow().removed {
            return Err(ContainerError::NotFound(reference.to_string()));
        }
        match c.status() {
            Status::Removing | Status::Dead => {
                return Err(ContainerError::Conflict(format!(
                    "cannot restart container {}: container is marked for removal",
                    c.id
                )))
            }
            Status::Running | Status::Paused | Status::Restarting => {}
            Status::Created | Status::Exited => {
                self.reset_restart_policy(&c);
                self.start_locked(&c).await?;
                self.publish(&c.snapshot(), "start");
            }
        }
        self.publish(&c.snapshot(), "restart");
        Ok(())
    }

    /// Drop the `pending` marker of a start that failed before the shim.
    fn clear_pending(&self, c: &Container) {
        let mut r = c.lock();
        r.pending = None;
        if let Err(e) = self.save(&r) {
            tracing::warn!(id = %r.id, error = %e, "clearing the start marker");
        }
    }

    // ---- pause -----------------------------------------------------

    pub async fn pause(&self, reference: &str) -> Result<()> {
        let c = self.get(reference)?;
        let _op = c.op.lock().await;
        match c.status() {
            Status::Running => {}
            Status::Paused => {
                return Err(ContainerError::Conflict(format!(
                    "Container {} is already paused",
                    c.id
                )))
            }
            _ => return Err(not_running(&c.id)),
        }
        self.shim(&c.id)
            .call(&Request::Pause)
            .await
            .map_err(|e| shim_err("pausing the container", e))?;
        let rec = {
            let mut r = c.lock();
            r.state.status = Status::Paused;
            crate::health::paused(&mut r);
            self.save(&r)?;
            r.clone()
        };
        self.publish(&rec, "pause");
        Ok(())
    }

    pub async fn unpause(&self, reference: &str) -> Result<()> {
        let c = self.get(reference)?;
        let _op = c.op.lock().await;
        if c.status() != Status::Paused {
            return Err(ContainerError::Conflict(format!(
                "Container {} is not paused",
                c.id
            )));
        }
        self.shim(&c.id)
            .call(&Request::Resume)
            .await
            .map_err(|e| shim_err("resuming the container", e))?;
        let rec = {
            let mut r = c.lock();
            if r.state.status == Status::Paused {
                r.state.status = Status::Running;
            }
            self.save(&r)?;
            r.clone()
        };
        self.publish(&rec, "unpause");
        Ok(())
    }

    // ---- remove & rename -----------------------------------------

    pub async fn remove(
        self: &Arc<Self>,
        reference: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let c = self.get(reference)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if rec.state.status == Status::Removing {
            return Err(ContainerError::Conflict(format!(
                "removal of container {} is already in progress",
                rec.id
            )));
        }
        if rec.state.status.is_live() {
            if !force {
                let why = if rec.state.status == Status::Paused {
                    "container is paused and must be unpaused first".to_string()
                } else {
                    format!(
                        "container is {}: stop the container before removing or force remove",
                        rec.state.status.as_str()
                    )
                };
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container \"{reference}\": {why}"
                )));
            }
            c.manually_stopped.store(true, Ordering::SeqCst);
        }
        if rec.state.status.is_live() && !self.settle_restarting(&c) {
            let mut rx = c.progress.subscribe();
            let before = rx.borrow().exits;
            let kill = self.kill_now(&c).await;
            let limit = if kill.is_ok() {
                KILL_GRACE
            } else {
                SHIM_EXIT_GRACE
            };
            let exited = tokio::time::timeout(limit, rx.wait_for(|p| p.exits > before)).await;
            if !matches!(exited, Ok(Ok(_))) {
                kill?;
                return Err(ContainerError::Internal(format!(
                    "container {} did not exit after SIGKILL",
                    rec.id
                )));
            }
        }
        {
            // Persisted, so restore finishes a removal a crash interrupts.
            let mut r = c.lock();
            let previous = r.state.status;
            r.state.status = Status::Removing;
            r.pending = Some(Pending::Removing { volumes });
            if let Err(e) = self.save(&r) {
                r.state.status = previous;
                r.pending = None;
                return Err(e);
            }
        }
        crashpoint::reached("remove:after-marker");
        let result = self.destroy(&c, volumes, true).await;
        if let Err(e) = &result {
            let mut r = c.lock();
            r.state.status = Status::Dead;
            r.state.error = e.to_string();
            r.pending = None;
            let _ = self.save(&r);
            return result;
        }
        let parked: Vec<_> =
            std::mem::take(&mut *c.pending_attach.lock().unwrap_or_else(|p| p.into_inner()));
        for p in parked {
            use tokio::io::AsyncWriteExt;
            if let Ok(Ok(mut io)) = tokio::time::timeout(Duration::from_secs(1), p.io).await {
                let _ = io.shutdown().await;
            }
        }
        self.index.write().remove(&rec.id);
        self.publish(&rec, "destroy");
        c.progress.send_modify(|p| p.removed = true);
        Ok(())
    }

    /// A removal. What is on disk and what the API or other objects can
    /// see goes before the answer: the rootfs mount, volumes, rw layer,
    /// image hold and, last, the record. A shim still in its own teardown
    /// (it runs `runtime delete` after the exit, about 2 ms) is waited for
    /// behind the answer when `behind`, and then its bundle and runtime
    /// state go; if a crash cuts that off, restore's sweep of the exec root
    /// removes what is left.
    pub(super) async fn destroy(
        self: &Arc<Self>,
        c: &Arc<Container>,
        volumes: bool,
        behind: bool,
    ) -> Result<()> {
        let rec = c.snapshot();
        let mut steps = Steps::new("remove", &rec.id);
        self.release_run(&rec.id, &mut steps);
        let bundle = self.settings.bundle_dir(&rec.id);
        if berth_common::mounts::is_mount_point(&bundle.join("rootfs")) {
            return Err(ContainerError::Internal(format!(
                "the root filesystem of {} is still mounted",
                rec.id
            )));
        }
        // A shim that is gone leaves nothing to wait for, only runtime state
        // if it died without cleaning. In a shared pid namespace processes
        // can outlive the init until the runtime's delete kills them: they
        // must be gone before their volumes are released.
        let settled = !behind || !self.shim(&rec.id).is_alive() || shares_pid_namespace(&rec);
        if settled {
            self.settle_runtime(c, &rec).await;
            steps.done("runtime state gone");
        }
        self.mounts
            .release(&rec.id, &rec.mounts, volumes)
            .map_err(|e| ContainerError::internal("releasing volumes", e))?;
        self.trash
            .take(&rootfs::layer_dir(&self.settings.data_root, &rec.id))
            .map_err(|e| ContainerError::internal("removing the container layer", e))?;
        steps.done("volumes released, layer to the trash");
        crashpoint::reached("remove:after-layer");
        self.images
            .release(&rec.id)
            .map_err(|e| ContainerError::internal("releasing the image layers", e))?;
        // The record goes last: until it has, restore finishes the removal.
        self.trash
            .take(&self.container_dir(&rec.id))
            .map_err(|e| ContainerError::internal("removing the container record", e))?;
        super::exec::store().remove_container(&rec.id);
        steps.done("image layers released, record to the trash");
        if !settled {
            let (this, c) = (Arc::clone(self), Arc::clone(c));
            self.background.spawn(async move {
                crashpoint::reached("remove:behind-answer");
                let mut steps = Steps::new("remove", &rec.id);
                this.settle_runtime(&c, &rec).await;
                steps.done("shim gone, runtime state gone");
            });
        }
        Ok(())
    }

    /// The shim gone, its bundle and the runtime's state removed.
    async fn settle_runtime(&self, c: &Container, rec: &ContainerRecord) {
        self.cleanup_runtime(c).await;
        self.force_delete_runtime_state(rec).await;
    }

    /// A shim that died without `runtime delete` leaves runtime state; clear it.
    pub(super) async fn force_delete_runtime_state(&self, rec: &ContainerRecord) {
        self.force_delete_runtime_state_of(&rec.id, &rec.host_config.runtime)
            .await;
    }

    pub(super) async fn force_delete_runtime_state_of(&self, id: &str, runtime: &str) {
        let root = self.settings.runtime_root();
        if !root.join(id).exists() {
            return;
        }
        let Ok(runtime) = self.runtime_path(runtime) else {
            return;
        };
        let out = tokio::process::Command::new(runtime)
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", id])
            .output()
            .await;
        if let Ok(o) = out {
            if !o.status.success() {
                tracing::warn!(%id, stderr = %String::from_utf8_lossy(&o.stderr), "runtime delete --force failed");
            }
        }
    }

    pub fn rename(&self, reference: &str, new_name: &str) -> Result<()> {
        if new_name.is_empty() {
            return Err(ContainerError::InvalidParameter(
                "Neither old nor new names may be empty".into(),
            ));
        }
        if !super::names::is_valid(new_name) {
            return Err(ContainerError::InvalidParameter(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let c = self.get(reference)?;
        let new = super::names::canonical(new_name);
        let mut r = c.lock();
        let old = r.name.clone();
        if old == new {
            return Err(ContainerError::InvalidParameter(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        {
            let mut index = self.index.write();
            index.reserve_name(&new, &c.id)?;
            index.release_name(&old, &c.id);
        }
        r.name = new.clone();
        if let Err(e) = self.save(&r) {
            let mut index = self.index.write();
            index.release_name(&new, &c.id);
            let _ = index.reserve_name(&old, &c.id);
            r.name = old;
            return Err(e);
        }
        let rec = r.clone();
        drop(r);
        self.events
            .publish(self.event(&rec, "rename").attr("oldName", old));
        Ok(())
    }
}

/// `10m`, `1g`, `512k`, `1024` → bytes.
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// What a failed start records: dockerd's 127/126 for a missing or
/// non-executable command, else 128.
fn classify_start_error(e: &ContainerError) -> (i32, String) {
    let msg = e.to_string();
    let code =
        if msg.contains("executable file not found") || msg.contains("no such file or directory") {
            127
        } else if msg.contains("permission denied") {
            126
        } else {
            128
        };
    (code, msg)
}

/// A runtime/shim failure to create or start the container. Command
/// problems are the client's (400), the rest ours (500).
fn start_error(msg: String) -> ContainerError {
    // Rust's io::Error text capitalises what Go (and so runc, and the
    // docker CLI's exit-code mapping) spells in lower case.
    let msg = msg.replace(
        "No such file or directory (os error 2)",
        "no such file or directory",
    );
    let msg = format!("failed to create task for container: {msg}");
    let lower = msg.to_ascii_lowercase();
    if lower.contains("executable file not found")
        || lower.contains("no such file or directory")
        || lower.contains("permission denied")
        || lower.contains("not a directory")
    {
        ContainerError::InvalidParameter(msg)
    } else {
        ContainerError::Internal(msg)
    }
}

/// dockerd's restart back-off: 100 ms, doubled after each restart up to
/// a minute, back to 100 ms after a run of 10 s or more.
fn next_backoff(current: Duration, ran_secs: i64) -> Duration {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(60);
    let current = if ran_secs >= 10 {
        Duration::ZERO
    } else {
        current
    };
    if current.is_zero() {
        FIRST
    } else {
        (current * 2).min(MAX)
    }
}

/// A run's bundle once its rootfs is unmounted, with the overlay that the
/// unmount left alive (see `rootfs::detach_rootfs`).
pub(super) struct Released {
    overlay: Option<std::os::fd::OwnedFd>,
}

/// The container's processes share a pid namespace with others (the
/// host's or another container's), so its init's exit does not end them.
fn shares_pid_namespace(rec: &ContainerRecord) -> bool {
    let mode = rec.host_config.pid_mode.as_str();
    mode == "host" || mode.starts_with("container:")
}

/// Remove a bundle directory without ever descending into a mount: the
/// rootfs mount point is only `rmdir`ed (fails harmlessly if still
/// mounted or not empty).
pub(super) fn remove_bundle(bundle: &Path) {
    let Ok(entries) = std::fs::read_dir(bundle) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let res = if is_dir {
            if berth_common::mounts::is_mount_point(&path) {
                tracing::warn!(path = %path.display(), "leaving a mounted directory in place");
                continue;
            }
            if entry.file_name() == "rootfs" {
                std::fs::remove_dir(&path)
            } else {
                berth_common::tree::remove_all(&path)
            }
        } else {
            std::fs::remove_file(&path)
        };
        // NotFound: the exit's clean-up and a removal raced to it.
        match res {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), error = %e, "cleaning the bundle");
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_dir(bundle);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..4 {
            b = next_backoff(b, 0);
            seen.push(b);
        }
        assert_eq!(seen, [ms(100), ms(200), ms(400), ms(800)]);
        assert_eq!(next_backoff(ms(800), 10), ms(100));
        assert_eq!(
            next_backoff(Duration::from_secs(45), 1),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn start_errors() {
        let e = start_error("exec: \"nope\": executable file not found in $PATH".into());
        assert!(matches!(e, ContainerError::InvalidParameter(_)));
        assert_eq!(classify_start_error(&e).0, 127);
        assert!(matches!(
            start_error("cgroup trouble".into()),
            ContainerError::Internal(_)
        ));
    }

    #[test]
    fn bundle_removal_keeps_non_empty_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        std::fs::create_dir_all(b.join("rootfs/etc")).unwrap();
        std::fs::write(b.join("config.json"), "{}").unwrap();
        remove_bundle(&b);
        // The rootfs had content (as a mounted one would): nothing under it went.
        assert!(b.join("rootfs/etc").is_dir());
        assert!(!b.join("config.json").exists());
        std::fs::remove_dir(b.join("rootfs/etc")).unwrap();
        remove_bundle(&b);
        assert!(!b.exists());
    }
}
