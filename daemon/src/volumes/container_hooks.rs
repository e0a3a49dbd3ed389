//! The volume store as the container store's [`MountResolver`]: mounts are
//! resolved at create, new volumes are filled from the image's layers and
//! device-backed volumes mounted then; everything is released at removal.

use std::path::{Path, PathBuf};

use super::error::VolumeError;
use super::resolve::MountRequest;
use super::store::VolumeStore;
use crate::containers::hooks::{self, MountError, MountResolver};
use crate::containers::record::MountPoint;

impl From<VolumeError> for MountError {
    fn from(e: VolumeError) -> Self {
        match e {
            VolumeError::Invalid(m) => MountError::Invalid(m),
            // C1 maps NotFound to 404; a volume conflict keeps its message.
            VolumeError::NotFound(m) | VolumeError::Conflict(m) => MountError::NotFound(m),
            e @ VolumeError::Io { .. } => MountError::Internal(e.to_string()),
        }
    }
}

impl MountResolver for VolumeStore {
    fn resolve(&self, r: &hooks::MountRequest<'_>) -> Result<Vec<MountPoint>, MountError> {
        let hc = r.host_config;
        let binds = hc.binds.as_deref().unwrap_or_default();
        let mounts = hc.mounts.as_deref().unwrap_or_default();
        let anonymous: Vec<String> = r
            .config
            .volumes
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        // The container store gives `--volumes-from` as "<id>:<mode>" with
        // the mounts of that container.
        let volumes_from: Vec<String> = r
            .volumes_from
            .iter()
            .map(|(spec, _)| spec.strip_suffix(':').unwrap_or(spec).to_string())
            .collect();
        let lookup = |container: &str| {
            r.volumes_from
                .iter()
                .find(|(spec, _)| spec.split(':').next() == Some(container))
                .map(|(_, mounts)| mounts.clone())
        };
        let req = MountRequest {
            container_id: r.container_id,
            binds,
            mounts,
            // Only for the duplicate check: the spec builder mounts these.
            tmpfs: hc.tmpfs.as_ref(),
            volumes_from: &volumes_from,
            anonymous: &anonymous,
        };
        let resolved = VolumeStore::resolve(self, &req, &lookup)?;
        let prepared = self
            .mount_container(r.container_id, &resolved.mounts)
            .and_then(|()| self.populate_from_layers(r.container_id, &resolved.mounts, r.layers));
        if let Err(e) = prepared {
            self.unmount_container(r.container_id, &resolved.mounts);
            self.release_container(r.container_id, &resolved.mounts, true);
            return Err(e.into());
        }
        Ok(resolved.mounts)
    }

    fn release(
        &self,
        container_id: &str,
        mounts: &[MountPoint],
        remove_anonymous: bool,
    ) -> Result<(), MountError> {
        self.unmount_container(container_id, mounts);
        self.release_container(container_id, mounts, remove_anonymous);
        Ok(())
    }
}

impl VolumeStore {
    /// Fills the container's empty volumes from the image: the layers are
    /// the container's whole root file system at create time.
    fn populate_from_layers(
        &self,
        container: &str,
        mounts: &[MountPoint],
        layers: &[PathBuf],
    ) -> Result<(), VolumeError> {
        if layers.is_empty() || !mounts.iter().any(|m| m.kind == "volume") {
            return Ok(());
        }
        let image_root = ImageRoot::mount(&self.scratch_dir(container), layers)?;
        for m in mounts {
            self.populate(m, image_root.path())?;
        }
        Ok(())
    }

    /// A private directory for temporary mounts (its dot-name is never a
    /// volume name).
    fn scratch_dir(&self, container: &str) -> PathBuf {
        self.root().join(format!(".image-{container}"))
    }
}

/// The image's file system, read-only: one layer as is, several as an
/// overlay of lower directories only. Unmounted and removed on drop.
struct ImageRoot {
    path: PathBuf,
    mounted: bool,
}

impl ImageRoot {
    fn mount(dir: &Path, layers: &[PathBuf]) -> Result<ImageRoot, VolumeError> {
        if let [single] = layers {
            return Ok(ImageRoot {
                path: single.clone(),
                mounted: false,
            });
        }
        std::fs::create_dir_all(dir)
            .map_err(VolumeError::io(format!("creating {}", dir.display())))?;
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| escape_overlay(&l.to_string_lossy()))
            .collect();
        let opts = format!("lowerdir={}", lower.join(":"));
        let mounted = nix::mount::mount(
            Some("overlay"),
            dir,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(opts.as_str()),
        );
        if let Err(e) = mounted {
            let _ = std::fs::remove_dir(dir);
            return Err(VolumeError::Io {
                context: format!("mounting the image layers at {}", dir.display()),
                source: e.into(),
            });
        }
        Ok(ImageRoot {
            path: dir.to_path_buf(),
            mounted: true,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ImageRoot {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        if let Err(e) = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %self.path.display(), error = %e, "unmounting the image layers");
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// overlayfs splits lowerdir on `:` and options on `,`.
fn escape_overlay(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::config::{ContainerConfig, HostConfig};
    use crate::events::Events;

    #[test]
    fn resolver_fills_volumes_from_layered_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(&dir.path().join("root"), Events::new()).unwrap();
        // Two layers: the upper one replaces /data/a and adds /data/b.
        let (l1, l2) = (dir.path().join("l1"), dir.path().join("l2"));
        std::fs::create_dir_all(l1.join("data")).unwrap();
        std::fs::create_dir_all(l2.join("data")).unwrap();
        std::fs::write(l1.join("data/a"), b"old").unwrap();
        std::fs::write(l1.join("data/keep"), b"k").unwrap();
        std::fs::write(l2.join("data/a"), b"new").unwrap();
        let config: ContainerConfig = serde_json::from_str(r#"{"Volumes":{"/data":{}}}"#).unwrap();
        let host_config: HostConfig =
            serde_json::from_str(r#"{"Binds":["named:/other:nocopy"]}"#).unwrap();
        let layers = vec![l1, l2];
        let req = hooks::MountRequest {
            container_id: "c1",
            config: &config,
            host_config: &host_config,
            layers: &layers,
            volumes_from: Vec::new(),
        };
        let mounts = MountResolver::resolve(&store, &req).unwrap();
        assert_eq!(mounts.len(), 2);
        let data = mounts.iter().find(|m| m.destination == "/data").unwrap();
        let src = Path::new(&data.source);
        assert_eq!(std::fs::read(src.join("a")).unwrap(), b"new");
        assert_eq!(std::fs::read(src.join("keep")).unwrap(), b"k");
        // No mount or scratch directory is left behind.
        assert!(!store.scratch_dir("c1").exists());
        MountResolver::release(&store, "c1", &mounts, true).unwrap();
        assert_eq!(store.list().len(), 1, "only the named volume remains");
    }

    #[test]
    fn resolver_errors_map_to_container_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(dir.path(), Events::new()).unwrap();
        let config = ContainerConfig::default();
        let host_config: HostConfig =
            serde_json::from_str(r#"{"Binds":["vol:/x"],"Tmpfs":{"/x":""}}"#).unwrap();
        let req = hooks::MountRequest {
            container_id: "c1",
            config: &config,
            host_config: &host_config,
            layers: &[],
            volumes_from: Vec::new(),
        };
        match MountResolver::resolve(&store, &req) {
            Err(MountError::Invalid(m)) => assert_eq!(m, "Duplicate mount point: /x"),
            other => panic!("{other:?}"),
        }
        assert!(store.list().is_empty());
    }
}
