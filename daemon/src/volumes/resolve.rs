//! Turning a container's mount requests into the mounts it gets: volumes
//! created on demand, host paths checked (or created for `-v`), duplicate
//! destinations refused, in dockerd's precedence order:
//! `--volumes-from` < `-v`/`--mount`/`--tmpfs` < image and `Config.Volumes`.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{Result, VolumeError};
use super::spec::{self, Planned, Source};
use super::store::{CreateRequest, VolumeStore, LOCAL_DRIVER};
use crate::containers::record::MountPoint;

/// What a container asks to mount (from its Config and HostConfig).
#[derive(Debug, Clone, Copy, Default)]
pub struct MountRequest<'a> {
    pub container_id: &'a str,
    /// `HostConfig.Binds` (`-v` with a `:`).
    pub binds: &'a [String],
    /// `HostConfig.Mounts` (`--mount`).
    pub mounts: &'a [serde_json::Value],
    /// `HostConfig.Tmpfs` (`--tmpfs`).
    pub tmpfs: Option<&'a BTreeMap<String, String>>,
    /// `HostConfig.VolumesFrom` (`container[:ro|:rw]`).
    pub volumes_from: &'a [String],
    /// Destinations of `Config.Volumes` (`-v /path`) and the image's
    /// `Volumes`: anonymous volumes unless something else is mounted there.
    pub anonymous: &'a [String],
}

/// The mounts of a container, parents before children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedMounts {
    /// Inspect's `Mounts`; each also goes into the OCI spec.
    pub mounts: Vec<MountPoint>,
    /// `HostConfig.Tmpfs` mounts: in the spec but, as with dockerd, not in
    /// inspect's `Mounts`.
    pub tmpfs: Vec<MountPoint>,
}

enum Entry {
    Planned(Planned),
    /// Copied from another container (`--volumes-from`).
    Inherited(MountPoint),
}

/// Where a destination's mount came from, for the duplicate check.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Origin {
    VolumesFrom,
    Explicit,
    HostTmpfs,
}

fn duplicate(dest: &str) -> VolumeError {
    VolumeError::invalid(format!("Duplicate mount point: {dest}"))
}

impl VolumeStore {
    /// Resolves `req`, creating the volumes it needs and recording the
    /// container as their user. `container_mounts` gives the mounts of a
    /// `--volumes-from` container (None: no such container). On error
    /// nothing is left behind.
    pub fn resolve(
        &self,
        req: &MountRequest<'_>,
        container_mounts: &dyn Fn(&str) -> Option<Vec<MountPoint>>,
    ) -> Result<ResolvedMounts> {
        let plan = plan(req, container_mounts)?;
        let mut created: Vec<String> = Vec::new();
        let result = self.materialize(req.container_id, plan, &mut created);
        match result {
            Ok(resolved) => {
                for m in resolved.mounts.iter().filter(|m| m.kind == "volume") {
                    self.add_user(&m.name, req.container_id);
                }
                Ok(resolved)
            }
            Err(e) => {
                for name in created {
                    if let Err(err) = self.remove(&name, true) {
                        tracing::warn!(volume = %name, error = %err, "removing a volume of a failed create");
                    }
                }
                Err(e)
            }
        }
    }

    fn materialize(
        &self,
        container: &str,
        plan: Vec<(Origin, Entry)>,
        created: &mut Vec<String>,
    ) -> Result<ResolvedMounts> {
        let mut out = ResolvedMounts::default();
        for (origin, entry) in plan {
            let mp = match entry {
                Entry::Inherited(mp) => mp,
                Entry::Planned(p) => self.mount_point(container, p, created)?,
            };
            if origin == Origin::HostTmpfs {
                out.tmpfs.push(mp);
            } else {
                out.mounts.push(mp);
            }
        }
        sort_parents_first(&mut out.mounts);
        sort_parents_first(&mut out.tmpfs);
        Ok(out)
    }

    fn mount_point(
        &self,
        container: &str,
        p: Planned,
        created: &mut Vec<String>,
    ) -> Result<MountPoint> {
        match p.source {
            Source::Bind {
                host,
                create_missing,
            } => {
                let path = Path::new(&host);
                if !path.exists() {
                    if !create_missing {
                        return Err(VolumeError::invalid(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {host}"
                        )));
                    }
                    std::fs::create_dir_all(path).map_err(VolumeError::io(format!(
                        "error while creating mount source path '{host}'"
                    )))?;
                }
                Ok(MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: host,
                    destination: p.destination,
                    driver: String::new(),
                    options: bind_options(p.rw, &p.propagation),
                    mode: p.mode,
                    rw: p.rw,
                    propagation: p.propagation,
                    anonymous: false,
                    subpath: String::new(),
                })
            }
            Source::Volume {
                name,
                driver_options,
                labels,
                nocopy: _,
                subpath,
            } => {
                let anonymous = name.is_none();
                let (volume, new) = self.create(CreateRequest {
                    name,
                    driver: LOCAL_DRIVER.into(),
                    options: driver_options,
                    labels,
                    anonymous,
                })?;
                if new {
                    created.push(volume.name.clone());
                }
                tracing::debug!(container, volume = %volume.name, "volume for mount");
                Ok(MountPoint {
                    kind: "volume".into(),
                    source: self.mountpoint(&volume.name).to_string_lossy().into_owned(),
                    name: volume.name,
                    destination: p.destination,
                    driver: LOCAL_DRIVER.into(),
                    options: bind_options(p.rw, "rprivate"),
                    mode: p.mode,
                    rw: p.rw,
                    propagation: p.propagation,
                    // By the mount, as dockerd: `rm -v` spares a volume
                    // mounted by name, however it was created.
                    anonymous,
                    subpath: subpath.unwrap_or_default(),
                })
            }
            Source::Tmpfs { data } => {
                let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into()];
                if !data.iter().any(|d| d == "exec" || d == "noexec") {
                    options.push("noexec".into());
                }
                options.extend(data);
                if !p.rw {
                    options.push("ro".into());
                }
                Ok(MountPoint {
                    kind: "tmpfs".into(),
                    name: String::new(),
                    // The mount's source as the container's mount table shows it.
                    source: "tmpfs".into(),
                    destination: p.destination,
                    driver: String::new(),
                    options,
                    mode: p.mode,
                    rw: p.rw,
                    propagation: p.propagation,
                    anonymous: false,
                    subpath: String::new(),
                })
            }
        }
    }

    /// Forgets `container`'s volume references (it is being removed) and,
    /// for `docker rm -v`, removes its anonymous volumes that no other
    /// container uses. Named volumes are never removed here.
    pub fn release_container(
        &self,
        container: &str,
        mounts: &[MountPoint],
        remove_anonymous: bool,
    ) {
        self.release(container);
        if !remove_anonymous {
            return;
        }
        for m in mounts.iter().filter(|m| m.kind == "volume" && m.anonymous) {
            match self.remove(&m.name, true) {
                Ok(()) | Err(VolumeError::Conflict(_)) => {}
                Err(e) => {
                    tracing::warn!(volume = %m.name, error = %e, "removing an anonymous volume")
                }
            }
        }
    }

    /// Re-registers the volume references of an existing container (at
    /// daemon start).
    pub fn restore_container(&self, container: &str, mounts: &[MountPoint]) {
        for m in mounts.iter().filter(|m| m.kind == "volume") {
            self.add_user(&m.name, container);
        }
    }

    /// Mounts the volumes of a starting container (devices of volumes with
    /// `type`/`device` options) and emits `mount` events.
    pub fn mount_container(&self, container: &str, mounts: &[MountPoint]) -> Result<()> {
        for m in mounts.iter().filter(|m| m.kind == "volume") {
            self.mount(&m.name, container, &m.destination, m.rw)?;
        }
        Ok(())
    }

    /// The counterpart of [`Self::mount_container`] when it stops.
    pub fn unmount_container(&self, container: &str, mounts: &[MountPoint]) {
        for m in mounts.iter().filter(|m| m.kind == "volume") {
            if let Err(e) = self.unmount(&m.name, container) {
                tracing::warn!(volume = %m.name, error = %e, "unmounting a volume");
            }
        }
    }
}

fn bind_options(rw: bool, propagation: &str) -> Vec<String> {
    let mut o = vec!["rbind".to_string()];
    if !propagation.is_empty() {
        o.push(propagation.to_string());
    }
    if !rw {
        o.push("ro".to_string());
    }
    o
}

fn sort_parents_first(mounts: &mut [MountPoint]) {
    mounts.sort_by_key(|m| m.destination.split('/').filter(|c| !c.is_empty()).count());
}

/// Parses every request and applies precedence; fails before anything is
/// created.
fn plan(
    req: &MountRequest<'_>,
    container_mounts: &dyn Fn(&str) -> Option<Vec<MountPoint>>,
) -> Result<Vec<(Origin, Entry)>> {
    let mut by_dest: BTreeMap<String, (Origin, Entry)> = BTreeMap::new();
    for raw in req.volumes_from {
        let (container, rw) = spec::parse_volumes_from(raw)?;
        let mounts = container_mounts(&container)
            .ok_or_else(|| VolumeError::NotFound(format!("No such container: {container}")))?;
        for mut mp in mounts {
            if let Some(rw) = rw {
                mp.rw = rw;
                mp.options.retain(|o| o != "ro" && o != "rw");
                if !rw {
                    mp.options.push("ro".into());
                }
            }
            by_dest.insert(
                mp.destination.clone(),
                (Origin::VolumesFrom, Entry::Inherited(mp)),
            );
        }
    }
    let explicit = req
        .binds
        .iter()
        .map(|b| spec::parse_bind(b))
        .chain(req.mounts.iter().map(spec::parse_mount));
    for planned in explicit {
        let planned = planned?;
        add(&mut by_dest, Origin::Explicit, planned)?;
    }
    for (dest, opts) in req.tmpfs.into_iter().flatten() {
        add(
            &mut by_dest,
            Origin::HostTmpfs,
            spec::parse_tmpfs(dest, opts)?,
        )?;
    }
    for dest in req.anonymous {
        let planned = spec::parse_bind(dest)?;
        by_dest
            .entry(planned.destination.clone())
            .or_insert((Origin::Explicit, Entry::Planned(planned)));
    }
    Ok(by_dest.into_values().collect())
}

fn add(by_dest: &mut BTreeMap<String, (Origin, Entry)>, origin: Origin, p: Planned) -> Result<()> {
    if let Some((prev, _)) = by_dest.get(&p.destination) {
        if *prev != Origin::VolumesFrom {
            return Err(duplicate(&p.destination));
        }
    }
    by_dest.insert(p.destination.clone(), (origin, Entry::Planned(p)));
    Ok(())
}

#[cfg(test)]
mod tests;
