//! Exec instances (`docker exec`): their configuration and state, the
//! process they run, and dockerd's error texts for failed starts.
//! Running them goes through the container's shim (`exec` operation).

pub mod bundle;
pub mod detach;
pub mod process;
pub mod relay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How long an exited exec stays inspectable when its container lives on.
const KEEP_EXITED: Duration = Duration::from_secs(10 * 60);

/// Exited execs kept at most, the last to exit first. Clients inspect an
/// exec for its exit code right after its stream ends; dockerd keeps them
/// all until the container goes, which under steady `docker exec` load
/// (or healthchecks) grows without end.
const MAX_EXITED: usize = 256;

/// The store is pruned when it has grown to twice its size after the last
/// prune, and never below this: an exec create stays O(1) amortised.
const PRUNE_FLOOR: usize = 2 * MAX_EXITED;

/// What `POST /containers/{id}/exec` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    /// (height, width).
    pub console_size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecState {
    pub started: bool,
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
}

pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    state: Mutex<ExecState>,
    /// Becomes true once the exit code is known.
    exited: watch::Sender<bool>,
    exited_at: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    #[error("Error: Exec command {0} is already running")]
    AlreadyRunning(String),
    #[error("Error: Exec command {0} has already run")]
    AlreadyRan(String),
}

impl Exec {
    fn lock(&self) -> MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> ExecState {
        self.lock().clone()
    }

    /// Claim the one start an exec gets.
    pub fn begin_start(&self) -> Result<(), ExecError> {
        let mut st = self.lock();
        if st.running {
            return Err(ExecError::AlreadyRunning(self.id.clone()));
        }
        if st.started {
            return Err(ExecError::AlreadyRan(self.id.clone()));
        }
        st.started = true;
        Ok(())
    }

    pub fn set_running(&self, pid: i32) {
        let mut st = self.lock();
        if st.exit_code.is_none() {
            st.running = true;
            st.pid = pid;
        }
    }

    /// Record the exit; true only for the first caller (who publishes
    /// `exec_die`).
    pub fn finish(&self, exit_code: i32) -> bool {
        let mut st = self.lock();
        if st.exit_code.is_some() {
            return false;
        }
        st.running = false;
        st.exit_code = Some(exit_code);
        drop(st);
        *self.exited_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        self.exited.send_replace(true);
        true
    }

    /// Resolves once the exit code is recorded.
    pub async fn wait_exited(&self) {
        let mut rx = self.exited.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    fn exited_at(&self) -> Option<Instant> {
        *self.exited_at.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every exec of the daemon, by ID.
#[derive(Default)]
pub struct ExecStore {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    map: HashMap<String, Arc<Exec>>,
    /// The size at which the next create prunes.
    prune_at: usize,
}

impl Kept {
    /// Drop execs that exited more than [`KEEP_EXITED`] ago, then all but
    /// the [`MAX_EXITED`] that exited last.
    fn prune(&mut self, now: Instant) {
        let mut exited: Vec<(Instant, String)> = Vec::new();
        self.map.retain(|id, e| match e.exited_at() {
            Some(at) if now.duration_since(at) > KEEP_EXITED => false,
            Some(at) => {
                exited.push((at, id.clone()));
                true
            }
            None => true,
        });
        if exited.len() > MAX_EXITED {
            exited.sort_unstable();
            for (_, id) in &exited[..exited.len() - MAX_EXITED] {
                self.map.remove(id);
            }
        }
        self.prune_at = (2 * self.map.len()).max(PRUNE_FLOOR);
        self.map.shrink_to(self.prune_at);
    }
}

/// The daemon's exec store.
pub fn store() -> &'static ExecStore {
    static STORE: OnceLock<ExecStore> = OnceLock::new();
    STORE.get_or_init(ExecStore::default)
}

impl ExecStore {
    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create(&self, container_id: &str, config: ExecConfig) -> Arc<Exec> {
        let id = hex::encode(rand::random::<[u8; 32]>());
        let (exited, _) = watch::channel(false);
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: container_id.to_string(),
            config,
            state: Mutex::new(ExecState::default()),
            exited,
            exited_at: Mutex::new(None),
        });
        let mut kept = self.kept();
        if kept.map.len() >= kept.prune_at {
            kept.prune(Instant::now());
        }
        kept.map.insert(id, exec.clone());
        exec
    }

    /// By full ID, as dockerd looks execs up.
    pub fn get(&self, id: &str) -> Option<Arc<Exec>> {
        self.kept().map.get(id).cloned()
    }

    /// IDs of a container's execs (inspect's `ExecIDs`, for the
    /// containers API).
    #[allow(dead_code)]
    pub fn ids_for(&self, container_id: &str) -> Vec<String> {
        self.kept()
            .map
            .values()
            .filter(|e| e.container_id == container_id)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Forget a removed container's execs.
    pub fn remove_container(&self, container_id: &str) {
        self.kept()
            .map
            .retain(|_, e| e.container_id != container_id);
    }
}

/// dockerd's message and exit code for an exec the runtime could not start,
/// from the shim's error (which carries the runtime's stderr).
pub fn start_failure(shim_error: &str) -> (String, i32) {
    let detail = match shim_error.find("exec: \"") {
        Some(i) => shim_error[i..]
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        None => runtime_message(shim_error),
    };
    let code = if detail.contains("executable file not found")
        || detail.contains("no such file or directory")
    {
        127
    } else {
        126
    };
    (
        format!("OCI runtime exec failed: exec failed: unable to start container process: {detail}: unknown"),
        code,
    )
}

/// The runtime's own words from the shim's "RUNTIME exec failed (exit
/// status: N): berth-runtime: MESSAGE".
fn runtime_message(shim_error: &str) -> String {
    let rest = match shim_error.find(" exec failed (") {
        Some(i) => shim_error[i..]
            .split_once("): ")
            .map(|(_, m)| m)
            .unwrap_or(shim_error),
        None => shim_error,
    };
    let rest = rest.trim();
    rest.strip_prefix("berth-runtime: ")
        .unwrap_or(rest)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_once_and_finishes_once() {
        let s = ExecStore::default();
        let e = s.create("c1", ExecConfig::default());
        assert_eq!(e.id.len(), 64);
        assert!(s.get(&e.id).is_some());
        e.begin_start().unwrap();
        e.set_running(42);
        assert_eq!(
            e.begin_start().unwrap_err(),
            ExecError::AlreadyRunning(e.id.clone())
        );
        assert!(e.finish(3));
        assert!(!e.finish(4));
        let st = e.state();
        assert_eq!((st.running, st.pid, st.exit_code), (false, 42, Some(3)));
        assert_eq!(
            e.begin_start().unwrap_err(),
            ExecError::AlreadyRan(e.id.clone())
        );
        assert_eq!(s.ids_for("c1"), vec![e.id.clone()]);
        s.remove_container("c1");
        assert!(s.get(&e.id).is_none());
    }

    #[test]
    fn failure_messages_like_dockerd() {
        let err = "/usr/bin/berth-runtime exec failed (exit status: 1): exec: \"nope\": executable file not found in $PATH";
        let (msg, code) = start_failure(err);
        assert_eq!(
            msg,
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown"
        );
        assert_eq!(code, 127);
        assert_eq!(start_failure("exec: \"/etc\": permission denied").1, 126);
        let (msg, code) = start_failure(
            "/bin/berth-runtime exec failed (exit status: 1): berth-runtime: chdir to cwd (\"/nope\"): no such file or directory",
        );
        assert_eq!(
            msg,
            "OCI runtime exec failed: exec failed: unable to start container process: chdir to cwd (\"/nope\"): no such file or directory: unknown"
        );
        assert_eq!(code, 127);
    }

    #[test]
    fn keeps_running_execs_and_the_last_to_exit() {
        let s = ExecStore::default();
        let running = s.create("c", ExecConfig::default());
        let mut exited = Vec::new();
        for _ in 0..3 * PRUNE_FLOOR {
            let e = s.create("c", ExecConfig::default());
            e.finish(0);
            exited.push(e.id.clone());
        }
        let kept = s.kept().map.len();
        assert!(kept <= 2 * PRUNE_FLOOR, "{kept} execs kept");
        assert!(s.get(&running.id).is_some());
        assert!(s.get(&exited[0]).is_none());
        assert!(exited[exited.len() - MAX_EXITED..]
            .iter()
            .all(|id| s.get(id).is_some()));
    }

    #[tokio::test]
    async fn waiters_see_the_exit() {
        let e = ExecStore::default().create("c", ExecConfig::default());
        let e2 = e.clone();
        let t = tokio::spawn(async move { e2.wait_exited().await });
        e.finish(0);
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .unwrap()
            .unwrap();
    }
}
