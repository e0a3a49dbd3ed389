//! `POST /containers/create`: merge the image config, validate, reserve the
//! name, write the record and the per-container files.

use std::sync::Arc;

use super::config::{ContainerConfig, CreateBody, HostConfig};
use super::core::{Container, Containers};
use super::error::{ContainerError, Result};
use super::hooks::{ImageLookupError, MountError, MountRequest};
use super::record::{ContainerRecord, Pending, State};
use super::steps::Steps;
use super::{crashpoint, hostfiles, names, rootfs, spec, timefmt};

/// Image defaults under the user's settings, as dockerd merges them.
pub fn merge_image_config(user: &mut ContainerConfig, image: &ContainerConfig) {
    if user.user.is_empty() {
        user.user = image.user.clone();
    }
    // Image env first; user values replace same-named ones.
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    for var in user.env.iter().flatten() {
        let key = var.split('=').next().unwrap_or(var);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(var.clone());
    }
    user.env = Some(env);
    // An explicit Entrypoint drops the image's Cmd; only fall back to the
    // image's Cmd when neither was given.
    if user.entrypoint.is_none() {
        user.entrypoint = image.entrypoint.clone();
        if user.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            user.cmd = image.cmd.clone();
        }
    }
    if user.working_dir.is_empty() {
        user.working_dir = image.working_dir.clone();
    }
    if let Some(ports) = &image.exposed_ports {
        let merged = user.exposed_ports.get_or_insert_with(Default::default);
        for (k, v) in ports {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(vols) = &image.volumes {
        let merged = user.volumes.get_or_insert_with(Default::default);
        for (k, v) in vols {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(labels) = &image.labels {
        let merged = user.labels.get_or_insert_with(Default::default);
        for (k, v) in labels {
            merged.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if user.stop_signal.is_none() {
        user.stop_signal = image.stop_signal.clone();
    }
    crate::health::config::merge(&mut user.healthcheck, image.healthcheck.as_ref());
    if user.shell.is_none() {
        user.shell = image.shell.clone();
    }
    if user.on_build.is_none() {
        user.on_build = image.on_build.clone();
    }
    if user.labels.is_none() {
        user.labels = Some(Default::default());
    }
}

/// The process to run: Entrypoint + Cmd.
pub fn command(config: &ContainerConfig) -> Result<(String, Vec<String>)> {
    let mut all: Vec<String> = match config.entrypoint.as_deref() {
        // `--entrypoint ""` resets the image's entrypoint.
        Some([only]) if only.is_empty() => Vec::new(),
        Some(ep) => ep.to_vec(),
        None => Vec::new(),
    };
    all.extend(config.cmd.clone().unwrap_or_default());
    let mut it = all.into_iter();
    match it.next() {
        Some(path) if !path.is_empty() => Ok((path, it.collect())),
        _ => Err(ContainerError::InvalidParameter(
            "no command specified".into(),
        )),
    }
}

fn validate_host_config(
    hc: &HostConfig,
    networks: Option<&crate::network::Networks>,
) -> Result<()> {
    spec::resources::validate(hc)?;
    let mode = hc.network_mode();
    if !(matches!(mode, "bridge" | "host" | "none") || mode.starts_with("container:")) {
        match networks {
            Some(n) => n
                .check_mode(mode)
                .map_err(|e| ContainerError::NotFoundOther(e.to_string()))?,
            None => {
                return Err(ContainerError::NotFoundOther(format!(
                    "network {mode} not found"
                )))
            }
        }
    }
    let publishes = hc.publish_all_ports
        || hc
            .port_bindings
            .as_ref()
            .and_then(|p| p.as_object())
            .is_some_and(|p| !p.is_empty());
    if mode.starts_with("container:") && publishes {
        return Err(ContainerError::InvalidParameter(
            "conflicting options: port publishing and the container type network mode".into(),
        ));
    }
    for (what, value) in [
        ("PID", &hc.pid_mode),
        ("IPC", &hc.ipc_mode),
        ("UTS", &hc.uts_mode),
    ] {
        let ok = match what {
            "IPC" => {
                matches!(
                    value.as_str(),
                    "" | "host" | "private" | "shareable" | "none"
                ) || value.starts_with("container:")
            }
            "UTS" => matches!(value.as_str(), "" | "host"),
            _ => matches!(value.as_str(), "" | "host") || value.starts_with("container:"),
        };
        if !ok {
            return Err(ContainerError::InvalidParameter(format!(
                "invalid {what} mode: {value}"
            )));
        }
    }
    if hc.auto_remove && !matches!(hc.restart_policy.name.as_str(), "" | "no") {
        return Err(ContainerError::InvalidParameter(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    super::validate::restart_policy(&hc.restart_policy)?;
    super::spec::caps::effective(
        hc.privileged,
        hc.cap_add.as_deref().unwrap_or_default(),
        hc.cap_drop.as_deref().unwrap_or_default(),
    )?;
    Ok(())
}

fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

impl Containers {
    /// Create a container; returns its ID and warnings.
    pub fn create(&self, name: Option<&str>, body: CreateBody) -> Result<(String, Vec<String>)> {
        // Logged under the ID once there is one.
        let steps = Steps::new("create", "");
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !names::is_valid(n) {
                    return Err(ContainerError::InvalidParameter(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                Some(names::canonical(n))
            }
            None => None,
        };
        let mut config = body.config;
        if config.image.is_empty() {
            return Err(ContainerError::InvalidParameter(
                "config cannot be empty in order to create a container".into(),
            ));
        }
        let mut host_config = body.host_config.unwrap_or_default();
        // Before validation: dockerd checks the options against the
        // driver they will go to.
        if host_config.log_config.kind.is_empty() {
            host_config.log_config.kind = self.settings.log_driver.clone();
            if host_config.log_config.config.is_empty() {
                host_config.log_config.config = self.settings.log_opts.clone();
            }
        }
        validate_host_config(&host_config, self.networks.get().map(|n| n.as_ref()))?;
        super::validate::create_request(&config, &host_config)?;
        let image = self.images.lookup(&config.image).map_err(|e| match e {
            ImageLookupError::NotFound(r) => {
                ContainerError::NotFoundOther(format!("No such image: {r}"))
            }
            ImageLookupError::Invalid(m) => ContainerError::InvalidParameter(m),
            ImageLookupError::Internal(m) => ContainerError::Internal(m),
        })?;
        merge_image_config(&mut config, &image.config);
        let (path, args) = command(&config)?;
        if host_config.cgroupns_mode.is_empty() {
            // dockerd's default: the host's on cgroup v1, private on v2.
            let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
            host_config.cgroupns_mode = if v2 { "private" } else { "host" }.into();
        }
        if host_config.network_mode.is_empty() {
            host_config.network_mode = "bridge".into();
        }
        let networking_config = body.networking_config.unwrap_or(serde_json::json!({}));
        let networking_config = match self.networks.get() {
            Some(n) => n
                .endpoints_at_create(host_config.network_mode(), &networking_config)
                .map_err(|e| match e.status() {
                    404 => ContainerError::NotFoundOther(e.to_string()),
                    400 | 403 => ContainerError::InvalidParameter(e.to_string()),
                    _ => ContainerError::Internal(e.to_string()),
                })?,
            None => networking_config,
        };
        if host_config.network_mode == "host" && config.hostname.is_empty() {
            config.hostname = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        if host_config.shm_size == 0 && host_config.ipc_mode != "host" {
            host_config.shm_size = spec::DEFAULT_SHM_SIZE;
        }
        let runtime = if host_config.runtime.is_empty() {
            self.live().default_runtime.clone()
        } else {
            host_config.runtime.clone()
        };
        self.runtime_path(&runtime)?;
        host_config.runtime = runtime.clone();

        let id = random_id();
        let mut steps = steps.with_id(&id);
        steps.done("request checked, image looked up");
        if config.hostname.is_empty() && !host_config.network_mode().starts_with("container:") {
            config.hostname = id[..12].to_string();
        }
        let name = self.reserve_name(name, &id)?;
        let mut resolved = Vec::new();
        let created = (|| {
            let mut rec = ContainerRecord {
                id: id.clone(),
                name: name.clone(),
                created: timefmt::now(),
                path,
                args,
                config,
                host_config,
                networking_config,
                image_id: image.id.clone(),
                layers: image.layers.clone(),
                top_layer: image.top_layer.clone(),
                state: State::default(),
                restart_count: 0,
                has_been_started: false,
                manually_stopped: false,
                mounts: Vec::new(),
                platform: if image.os.is_empty() {
                    "linux".into()
                } else {
                    image.os.clone()
                },
                runtime,
                pending: None,
            };
            // As dockerd: links on a user-defined network are endpoint
            // settings (the CLI puts them there), not registered here.
            let legacy = rec.host_config.network_mode() == "bridge";
            if let Some(links) = rec
                .host_config
                .links
                .clone()
                .filter(|l| legacy && !l.is_empty())
            {
                rec.host_config.links = Some(self.canonical_links(&rec.name, &links)?);
            }
            let volumes_from = self.volumes_from(&rec.host_config)?;
            rec.mounts = self
                .mounts
                .resolve(&MountRequest {
                    container_id: &id,
                    config: &rec.config,
                    host_config: &rec.host_config,
                    layers: &rec.layers,
                    volumes_from,
                })
                .map_err(|e| match e {
                    MountError::Invalid(m) => ContainerError::InvalidParameter(m),
                    MountError::NotFound(m) => ContainerError::NotFoundOther(m),
                    MountError::Internal(m) => ContainerError::Internal(m),
                })?;
            resolved = rec.mounts.clone();
            steps.done("name reserved, mounts resolved");
            // From here on a crash leaves files behind: the marked record
            // tells restore to remove them (see `restore`).
            rec.pending = Some(Pending::Creating);
            self.save_run_state(&rec)?;
            crashpoint::reached("create:after-record");
            steps.done("creating marker saved");
            self.write_host_files(&rec)?;
            steps.done("host files");
            rootfs::create_layer(&self.settings.data_root, &id)
                .map_err(|e| ContainerError::internal("creating the container layer", e))?;
            crashpoint::reached("create:after-layer");
            steps.done("container layer");
            self.images
                .hold(&id, image.top_layer.as_deref())
                .map_err(|e| ContainerError::internal("holding the image layers", e))?;
            rec.pending = None;
            self.save(&rec)?;
            steps.done("image layers held, record saved");
            Ok(rec)
        })();
        let rec = match created {
            Ok(rec) => rec,
            Err(e) => {
                self.index.write().release_name(&name, &id);
                self.undo_create(&id, &resolved);
                return Err(e);
            }
        };
        let mut warnings = Vec::new();
        if rec.host_config.memory > 0
            && !std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
            && !std::path::Path::new("/sys/fs/cgroup/memory.max").exists()
        {
            warnings.push("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.".to_string());
        }
        self.publish(&rec, "create");
        let c = Container::new(rec);
        self.index.write().insert(Arc::clone(&c), &name);
        Ok((id, warnings))
    }

    /// Remove what an unfinished create left: volumes it made, the image
    /// hold, the container layer, the record directory.
    pub(super) fn undo_create(&self, id: &str, mounts: &[super::record::MountPoint]) {
        if let Err(e) = self.mounts.release(id, mounts, true) {
            tracing::warn!(%id, error = %e, "releasing the mounts of an unfinished create");
        }
        if let Err(e) = self.images.release(id) {
            tracing::warn!(%id, error = %e, "releasing the image of an unfinished create");
        }
        if let Err(e) = rootfs::remove_layer(&self.settings.data_root, id) {
            tracing::warn!(%id, error = %e, "removing the layer of an unfinished create");
        }
        if let Err(e) = self.records.remove(id) {
            tracing::warn!(%id, error = %e, "removing the directory of an unfinished create");
        }
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf for the container
    /// (at create, and again at every start, as the host's DNS may change).
    pub(super) fn write_host_files(&self, rec: &ContainerRecord) -> Result<()> {
        let dns = hostfiles::DnsSettings {
            servers: rec
                .host_config
                .dns
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or(&self.settings.dns),
            search: rec
                .host_config
                .dns_search
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or(&self.settings.dns_search),
            options: rec
                .host_config
                .dns_options
                .as_deref()
                .filter(|d| !d.is_empty())
                .unwrap_or(&self.settings.dns_options),
        };
        hostfiles::write_all(
            &self.container_dir(&rec.id),
            &spec::hostname(rec),
            &rec.config.domainname,
            rec.host_config.extra_hosts.as_deref().unwrap_or_default(),
            &dns,
            rec.host_config.network_mode() == "host",
        )
        .map_err(|e| ContainerError::internal("writing hostname, hosts and resolv.conf", e))
    }

    fn reserve_name(&self, name: Option<String>, id: &str) -> Result<String> {
        let mut index = self.index.write();
        if let Some(n) = name {
            index.reserve_name(&n, id)?;
            return Ok(n);
        }
        for attempt in 0..64 {
            let mut n = format!("/{}", names::generate());
            if attempt >= 8 {
                n.push_str(&rand::random::<u8>().to_string());
            }
            if !index.name_taken(&n) {
                index.reserve_name(&n, id)?;
                return Ok(n);
            }
        }
        Err(ContainerError::Internal(
            "could not generate a free container name".into(),
        ))
    }

    /// Mount points of the containers named by `--volumes-from`.
    fn volumes_from(
        &self,
        hc: &HostConfig,
    ) -> Result<Vec<(String, Vec<super::record::MountPoint>)>> {
        let mut out = Vec::new();
        for spec in hc.volumes_from.iter().flatten() {
            let (reference, mode) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            let c = self.get(reference)?;
            let rec = c.snapshot();
            out.push((format!("{}:{mode}", rec.id), rec.mounts.clone()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> ContainerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn entrypoint_and_cmd_merging() {
        let image = cfg(
            r#"{"Cmd":["sh"],"Env":["PATH=/bin","A=1"],"WorkingDir":"/srv","Labels":{"x":"1"}}"#,
        );
        let mut c = cfg(r#"{"Image":"busybox","Env":["A=2","B=3"]}"#);
        merge_image_config(&mut c, &image);
        assert_eq!(command(&c).unwrap(), ("sh".to_string(), vec![]));
        assert_eq!(c.env.as_deref().unwrap(), &["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.labels.as_ref().unwrap()["x"], "1");

        let mut c = cfg(r#"{"Entrypoint":["echo"]}"#);
        merge_image_config(&mut c, &image);
        assert_eq!(command(&c).unwrap(), ("echo".to_string(), vec![]));

        let mut c = cfg(r#"{"Cmd":["ls","-l"]}"#);
        let image = cfg(r#"{"Entrypoint":["/bin/busybox"],"Cmd":["sh"]}"#);
        merge_image_config(&mut c, &image);
        assert_eq!(
            command(&c).unwrap(),
            (
                "/bin/busybox".to_string(),
                vec!["ls".to_string(), "-l".to_string()]
            )
        );

        let mut c = cfg(r#"{}"#);
        merge_image_config(&mut c, &cfg("{}"));
        assert_eq!(command(&c).unwrap_err().to_string(), "no command specified");
    }

    #[test]
    fn host_config_checks() {
        let hc = HostConfig {
            auto_remove: true,
            restart_policy: super::super::config::RestartPolicy {
                name: "always".into(),
                maximum_retry_count: 0,
            },
            ..Default::default()
        };
        assert!(validate_host_config(&hc, None).is_err());
        let hc = HostConfig {
            network_mode: "mynet".into(),
            ..Default::default()
        };
        assert_eq!(
            validate_host_config(&hc, None).unwrap_err().to_string(),
            "network mynet not found"
        );
        assert!(validate_host_config(&HostConfig::default(), None).is_ok());
    }
}
