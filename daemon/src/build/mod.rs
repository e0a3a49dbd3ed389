//! `docker build` through the classic build API: the Dockerfile parser,
//! the stage planner, the step executor (RUN steps are berth containers,
//! COPY/ADD/WORKDIR write into a private overlay of the current image),
//! and the step cache.
//!
//! Interface for the API router: [`Builder::prepare`] takes the received
//! context directory and the options and answers parse errors before any
//! output; [`Prepared::run`] executes and reports through [`Output`].

mod cache;
mod context;
mod copy;
mod exec;
mod ignore;
mod parser;
mod plan;
mod remote;
mod run;
mod stepfs;
mod words;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

pub use context::{receive_context, BuildContext, MemoryDirs};
pub use remote::context as remote_context;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad Dockerfile or options, before the build starts: a 400.
    #[error("{0}")]
    Invalid(String),
    /// The Dockerfile (or context) is not there: dockerd answers 500.
    #[error("{0}")]
    Missing(String),
    /// A step failed (sent as an errorDetail message).
    #[error("{0}")]
    Step(String),
    /// A RUN command exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    Command { command: String, code: i64 },
    /// The client went away.
    #[error("build cancelled")]
    Cancelled,
    #[error("{0}")]
    Internal(String),
}

/// Query parameters of `POST /build` the builder uses.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub tags: Vec<berth_images::Reference>,
    pub quiet: bool,
    pub no_cache: bool,
    pub build_args: Vec<(String, Option<String>)>,
    pub labels: Vec<(String, String)>,
    pub target: String,
    pub dockerfile: String,
    pub network_mode: String,
    pub extra_hosts: Vec<String>,
    /// Resource limits for RUN containers, as HostConfig JSON fields.
    pub resources: serde_json::Map<String, serde_json::Value>,
    /// `--cache-from`: images whose history may stand for steps.
    pub cache_from: Vec<String>,
    /// `X-Registry-Config`: credentials by registry, for FROM pulls.
    pub registry_auth: std::collections::HashMap<String, berth_distribution::AuthConfig>,
}

/// One message of the build's JSON stream.
#[derive(Debug, Clone)]
pub enum Message {
    Stream(String),
    Aux(String),
    /// A pull's progress message, relayed as the pull endpoint sends it.
    Progress(serde_json::Value),
}

impl Message {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Message::Stream(s) => json!({ "stream": s }),
            Message::Aux(id) => json!({ "aux": { "ID": id } }),
            Message::Progress(v) => v.clone(),
        }
    }
}

/// Where progress goes; a closed channel means the client left.
#[derive(Clone)]
pub struct Output {
    tx: mpsc::Sender<Message>,
    quiet: bool,
}

impl Output {
    pub fn new(tx: mpsc::Sender<Message>, quiet: bool) -> Output {
        Output { tx, quiet }
    }

    async fn send(&self, m: Message) -> Result<(), BuildError> {
        self.tx.send(m).await.map_err(|_| BuildError::Cancelled)
    }

    /// Step progress (suppressed with `q`).
    pub async fn stream(&self, s: impl Into<String>) -> Result<(), BuildError> {
        if self.quiet {
            return self.check();
        }
        self.send(Message::Stream(s.into())).await
    }

    pub async fn always(&self, s: impl Into<String>) -> Result<(), BuildError> {
        self.send(Message::Stream(s.into())).await
    }

    /// A pull progress message (suppressed with `q`).
    pub async fn progress(&self, v: serde_json::Value) -> Result<(), BuildError> {
        if self.quiet {
            return self.check();
        }
        self.send(Message::Progress(v)).await
    }

    pub async fn aux(&self, id: &str) -> Result<(), BuildError> {
        self.send(Message::Aux(id.to_owned())).await
    }

    pub fn check(&self) -> Result<(), BuildError> {
        if self.tx.is_closed() {
            Err(BuildError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The builder subsystem, one per daemon.
pub struct Builder {
    containers: Arc<crate::containers::Containers>,
    images: Arc<berth_images::ImageStore>,
    /// Pulls a base image the daemon does not have (FROM).
    registry: Arc<berth_distribution::Distribution>,
    /// `<data-root>/build`: `tmp/` for contexts and step file systems,
    /// `cache/` for cache records.
    root: PathBuf,
    cache: cache::Cache,
    /// Where small contexts are extracted, if the host has a tmpfs for it.
    memory: Option<MemoryDirs>,
    /// Builds started with a `buildid`, for `POST /build/cancel`.
    running: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// A build's entry in [`Builder::register`]; removed when dropped.
pub struct Registration {
    builder: Arc<Builder>,
    id: String,
    pub cancelled: Arc<tokio::sync::Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = self
            .builder
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if running
            .get(&self.id)
            .is_some_and(|n| Arc::ptr_eq(n, &self.cancelled))
        {
            running.remove(&self.id);
        }
    }
}

impl Builder {
    /// Names a build by the client's `buildid`, so `cancel` can end it.
    pub fn register(self: &Arc<Self>, id: &str) -> Registration {
        let cancelled = Arc::new(tokio::sync::Notify::new());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), cancelled.clone());
        Registration {
            builder: self.clone(),
            id: id.to_owned(),
            cancelled,
        }
    }

    /// `POST /build/cancel?id=`: ends the build as if its client had gone
    /// (the running step's container is killed and removed). An unknown or
    /// finished build is not an error, as with dockerd.
    pub fn cancel(&self, id: &str) {
        if let Some(n) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            n.notify_one();
        }
    }

    pub fn open(
        data_root: &Path,
        containers: Arc<crate::containers::Containers>,
        images: Arc<berth_images::ImageStore>,
        registry: Arc<berth_distribution::Distribution>,
    ) -> std::io::Result<Builder> {
        let root = data_root.join("build");
        std::fs::create_dir_all(&root)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
        let tmp = root.join("tmp");
        // Left over from a build a crash interrupted; nothing is mounted
        // there any more after a reboot, and a daemon restart unmounts
        // in StepRoot's Drop, so only directories remain.
        if tmp.exists() {
            for e in std::fs::read_dir(&tmp)?.flatten() {
                let p = e.path();
                stepfs::unmount_below(&p);
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        std::fs::create_dir_all(&tmp)?;
        let cache = cache::Cache::open(&root.join("cache"))?;
        Ok(Builder {
            containers,
            images,
            registry,
            root,
            cache,
            memory: MemoryDirs::open(data_root),
            running: Default::default(),
        })
    }

    /// Pulls `name` (tag `latest` when it names none), as dockerd's
    /// builder does for a FROM image it lacks, with the build's
    /// credentials for its registry; the pull's progress goes to the build
    /// output and its failure is the step's error.
    async fn pull_base(
        &self,
        name: &str,
        opts: &BuildOptions,
        out: &Output,
    ) -> Result<(), BuildError> {
        let step = |e: String| BuildError::Step(e);
        let mut reference =
            berth_images::Reference::parse_normalized(name).map_err(|e| step(e.to_string()))?;
        if reference.tag().is_none() && reference.digest().is_none() {
            reference = reference
                .with_tag("latest")
                .map_err(|e| step(e.to_string()))?;
        }
        let auth =
            berth_distribution::AuthConfig::for_domain(&opts.registry_auth, reference.domain());
        let pull = berth_distribution::PullOptions {
            reference,
            platform: String::new(),
            auth,
        };
        let (progress, mut rx) = berth_distribution::Progress::channel(64);
        let relay_out = out.clone();
        let relay = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let Ok(v) = m {
                    // A client that left ends the build at its next step.
                    let _ = relay_out.progress(v).await;
                }
            }
        });
        let res = self.registry.pull(&pull, &progress).await;
        drop(progress);
        let _ = relay.await;
        res.map(|_| ()).map_err(|e| step(e.to_string()))
    }

    /// Writes the cache usage figures of the builds that ended; called once
    /// a build's answer is complete, so the client does not wait for it.
    pub fn flush_cache_usage(&self) {
        self.cache.flush_usage();
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn memory_dirs(&self) -> Option<&MemoryDirs> {
        self.memory.as_ref()
    }

    /// `/system/df` `BuildCache` entries.
    pub fn disk_usage(&self) -> Vec<serde_json::Value> {
        self.cache
            .all()
            .into_iter()
            .map(|r| {
                json!({
                    "ID": &r.key[..12.min(r.key.len())],
                    "Parents": if r.parent.is_empty() { json!([]) } else { json!([r.parent]) },
                    "Type": "regular",
                    "Description": r.description,
                    "InUse": false,
                    "Shared": false,
                    "Size": 0,
                    "CreatedAt": r.created,
                    "LastUsedAt": r.last_used,
                    "UsageCount": r.usage_count,
                })
            })
            .collect()
    }

    /// `POST /build/prune`: drops cache records (all of them, or those
    /// last used before `until`) and the untagged step images no other
    /// image or container needs. Returns the IDs removed and the bytes.
    pub fn prune(&self, older_than: Option<chrono::DateTime<chrono::Utc>>) -> (Vec<String>, u64) {
        let mut removed = Vec::new();
        let before = self.images.layers_size().unwrap_or(0);
        let mut records = self.cache.all();
        // Newest first: children go before their parents.
        records.reverse();
        for r in records {
            if let Some(limit) = older_than {
                let used = chrono::DateTime::parse_from_rfc3339(&r.last_used)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(limit);
                if used >= limit {
                    continue;
                }
            }
            self.cache.remove(&r.key);
            // Refused (tagged, has children, used by a container): kept.
            if let Ok(img) = self.images.resolve(&r.image) {
                let (tags, _) = self.images.repo_tags_digests(&img.id).unwrap_or_default();
                if tags.is_empty() {
                    let _ = self.images.delete(&r.image, false, false);
                }
            }
            removed.push(r.key);
        }
        let after = self.images.layers_size().unwrap_or(0);
        (removed, before.saturating_sub(after))
    }
}
