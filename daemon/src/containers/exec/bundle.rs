//! The OCI process of an exec, from the running container's bundle: its
//! own process settings with the exec's overrides (see [`super::process`]).

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};

use super::{process, ExecConfig};
use crate::containers::core::Containers;
use crate::containers::record::ContainerRecord;

/// The container's process settings as its start wrote them (from the
/// bundle's `config.json` after a daemon restart), with `cfg.user`
/// resolved in the container's root; errors are messages for the client.
pub async fn process_for(
    containers: &Containers,
    rec: &ContainerRecord,
    cfg: &ExecConfig,
) -> Result<Value, String> {
    let bundle = containers.settings.bundle_dir(&rec.id);
    let container = containers.get(&rec.id).ok();
    let kept = container.as_ref().and_then(|c| {
        c.exec_base
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    });
    let base = match kept {
        Some(base) => base,
        None => {
            let read = read_base_process(&bundle).await?;
            if let Some(c) = &container {
                c.exec_base
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| read.clone());
            }
            read
        }
    };
    let user = if cfg.user.is_empty() {
        None
    } else {
        let rootfs = bundle.join("rootfs");
        let user = cfg.user.clone();
        let group_add = rec.host_config.group_add.clone().unwrap_or_default();
        let resolved = tokio::task::spawn_blocking(move || {
            use crate::containers::spec::user;
            let passwd = user::read_in_root(&rootfs, "etc/passwd")?;
            let group = user::read_in_root(&rootfs, "etc/group")?;
            user::resolve(&user, &group_add, &passwd, &group)
        })
        .await
        .map_err(|err| format!("resolving the user: {err}"))?
        .map_err(|err| err.to_string())?;
        Some(process::ExecUser {
            uid: resolved.uid,
            gid: resolved.gid,
            additional_gids: resolved.additional_gids,
        })
    };
    Ok(process::build(
        base.as_ref(),
        cfg,
        user.as_ref(),
        &process::privileged_caps(crate::containers::spec::caps::ALL),
    ))
}

async fn read_base_process(bundle: &Path) -> Result<Arc<Value>, String> {
    let spec_path = bundle.join("config.json");
    let data = tokio::fs::read(&spec_path)
        .await
        .map_err(|err| format!("reading {}: {err}", spec_path.display()))?;
    let spec: Value = serde_json::from_slice(&data)
        .map_err(|err| format!("parsing {}: {err}", spec_path.display()))?;
    Ok(Arc::new(
        spec.get("process").cloned().unwrap_or_else(|| json!({})),
    ))
}
