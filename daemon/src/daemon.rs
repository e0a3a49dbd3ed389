//! The backend every API router works on.
//!
//! Routers get `State<AppState>`. Each subsystem is a field here; add yours
//! as one field plus its construction in [`Daemon::new`].

use anyhow::{Context, Result};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::config::Config;
use crate::events::Events;

pub type AppState = Arc<Daemon>;

pub struct Daemon {
    /// The configuration berthd started with.
    pub config: Config,
    /// The same with the keys reloaded since (SIGHUP); see `config_now`.
    live_config: std::sync::RwLock<Arc<Config>>,
    pub events: Events,
    /// Stable engine ID (persisted in DATA_ROOT/engine-id), shown by /info.
    pub id: String,
    pub started: Instant,
    /// Figures other subsystems report for /info and /system/df.
    pub reports: Reports,
    /// Image store (blobs, references, unpacked layers) under DATA_ROOT.
    pub images: Arc<berth_images::ImageStore>,
    /// Registry client: pull, push, login.
    pub registry: Arc<berth_distribution::Distribution>,
    /// Container store (records, lifecycle through berth-shim).
    pub containers: Arc<crate::containers::Containers>,
    /// Local volumes under DATA_ROOT/volumes; also the containers' mount resolver.
    pub volumes: Arc<crate::volumes::VolumeStore>,
    /// Bridge networks, endpoints, published ports, embedded DNS.
    pub networks: Arc<crate::network::Networks>,
    /// `docker build`: Dockerfile parser, executor and step cache.
    pub builder: Arc<crate::build::Builder>,
}

impl Daemon {
    pub fn new(config: Config) -> Result<Daemon> {
        let id = engine_id(&config)?;
        let events = Events::new();
        let images = Arc::new(
            berth_images::ImageStore::open(&config.data_root).with_context(|| {
                format!("opening the image store in {}", config.data_root.display())
            })?,
        );
        images.set_events(Arc::new(crate::api::images::ImageEventSink(events.clone())));
        let registry = Arc::new(
            berth_distribution::Distribution::new(images.clone(), registry_config(&config))
                .context("registry settings")?,
        );
        let volumes = Arc::new(
            crate::volumes::VolumeStore::open(&config.data_root, events.clone()).with_context(
                || format!("opening the volume store in {}", config.data_root.display()),
            )?,
        );
        let networks = crate::network::Networks::open(
            crate::network::NetConfig {
                data_root: config.data_root.clone(),
                bridge: config
                    .bridge
                    .clone()
                    .unwrap_or_else(|| crate::network::DEFAULT_BRIDGE.into()),
                bip: config.bip.clone(),
                fixed_cidr: config.fixed_cidr.clone(),
                mtu: config.mtu,
                ipv6: config.ipv6,
                fixed_cidr_v6: config.fixed_cidr_v6.clone(),
                iptables: config.iptables,
                userland_proxy: config.userland_proxy,
            },
            events.clone(),
        )
        .context("setting up networking")?;
        let mut settings = crate::containers::Settings::from_config(&config);
        settings.init_binary =
            Some(crate::init::install(&config.exec_root).context("installing the --init binary")?);
        let containers = crate::containers::Containers::new(
            settings,
            events.clone(),
            images.clone(),
            volumes.clone(),
        );
        containers.keep_cgroup_parent();
        containers
            .restore()
            .with_context(|| format!("loading containers from {}", config.data_root.display()))?;
        for c in containers.all() {
            let rec = c.snapshot();
            volumes.restore_container(&rec.id, &rec.mounts);
        }
        let _ = containers.networks.set(networks.clone());
        let live: Vec<(String, i32)> = containers
            .all()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.state.status.is_live() && r.state.pid > 0)
            .map(|r| (r.id, r.state.pid))
            .collect();
        networks.restore(&live);
        containers.restart_by_policy();
        images.set_usage(Arc::new(crate::containers::ImageUsers(containers.clone())));
        let builder = Arc::new(
            crate::build::Builder::open(
                &config.data_root,
                containers.clone(),
                images.clone(),
                registry.clone(),
            )
            .with_context(|| {
                format!("opening the build cache in {}", config.data_root.display())
            })?,
        );
        let reports = Reports::default();
        let _ = reports.containers.set(containers.clone());
        let _ = reports.volumes.set(volumes.clone());
        Ok(Daemon {
            live_config: std::sync::RwLock::new(Arc::new(config.clone())),
            config,
            events,
            containers,
            volumes,
            networks,
            images,
            registry,
            builder,
            id,
            started: Instant::now(),
            reports,
        })
    }
}

/// `insecure-registries`, `registry-mirrors` and transfer limits; certificates in `certs.d` next
/// to the config file, then /etc/berth/certs.d and /etc/docker/certs.d.
pub fn registry_config(config: &Config) -> berth_distribution::RegistryConfig {
    let mut rc = berth_distribution::RegistryConfig {
        insecure: config.insecure_registries.clone(),
        mirrors: config.registry_mirrors.clone(),
        max_concurrent_downloads: config.max_concurrent_downloads as usize,
        max_concurrent_uploads: config.max_concurrent_uploads as usize,
        max_download_attempts: config.max_download_attempts as usize,
        data_dir: config.data_root.join("image").join("distribution"),
        ..Default::default()
    };
    if let Some(dir) = config.config_file.as_ref().and_then(|f| f.parent()) {
        let own = dir.join("certs.d");
        if !rc.cert_dirs.contains(&own) {
            rc.cert_dirs.insert(0, own);
        }
    }
    rc
}

impl Daemon {
    /// The configuration in force, reloadable keys included.
    pub fn config_now(&self) -> Arc<Config> {
        self.live_config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_config(&self, config: Config) {
        *self.live_config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

/// Reads or creates the engine ID, a random UUID kept across restarts.
fn engine_id(config: &Config) -> Result<String> {
    let path = config.data_root.join("engine-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = random_uuid();
    berth_common::atomic::write_file_mode(&path, id.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// A random (version 4) UUID in its usual 8-4-4-4-12 form.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Counts of containers by state, for /info.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerCounts {
    pub running: u64,
    pub paused: u64,
    pub stopped: u64,
}

/// What the container store tells the system endpoints.
pub trait ContainerReport: Send + Sync {
    fn counts(&self) -> ContainerCounts;
    /// `/system/df` `Containers` entries: ContainerSummary objects with
    /// `SizeRw` and `SizeRootFs` filled in.
    fn disk_usage(&self) -> Vec<Value>;
}

/// What the volume store tells the system endpoints.
pub trait VolumeReport: Send + Sync {
    /// `/system/df` `Volumes` entries: Volume objects with `UsageData`
    /// (`Size`, `RefCount`) filled in.
    fn disk_usage(&self) -> Vec<Value>;
}

/// Registration points for subsystems that the system endpoints report on
/// but that berthd's core does not depend on. Register once at startup:
/// `daemon.reports.containers.set(store.clone())`. Until registered the
/// corresponding figures are zero / empty lists.
#[derive(Default)]
pub struct Reports {
    pub containers: OnceLock<Arc<dyn ContainerReport>>,
    pub volumes: OnceLock<Arc<dyn VolumeReport>>,
}

impl Reports {
    pub fn container_counts(&self) -> ContainerCounts {
        self.containers
            .get()
            .map(|c| c.counts())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_shape() {
        let id = super::random_uuid();
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, super::random_uuid());
    }
}
