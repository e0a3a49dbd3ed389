//! `network connect` / `disconnect` of a container, running or not: the
//! record's `EndpointsConfig` says which networks the container is on at
//! its next start; a running container is also plugged in or out now.

use serde_json::Value;

use super::core::Containers;
use super::error::ContainerError;
use super::record::Status;
use crate::network::{configured, NetError, Result};

fn lookup_err(e: ContainerError) -> NetError {
    match e {
        ContainerError::InvalidParameter(m) => NetError::InvalidParameter(m),
        other => NetError::NotFound(other.to_string()),
    }
}

fn removal(id: &str) -> NetError {
    NetError::Conflict(format!(
        "Container {id} is marked for removal and cannot be connected or disconnected to the network"
    ))
}

impl Containers {
    fn net(&self) -> Result<&std::sync::Arc<crate::network::Networks>> {
        self.networks
            .get()
            .ok_or_else(|| NetError::Internal("networking is not set up".into()))
    }

    /// Returns the network's ID. Not to be dropped half-way (the interface
    /// is plugged in before the record says so): the API server runs it in
    /// a task of its own (`api::must_finish`), as `disconnect_network`.
    pub async fn connect_network(
        &self,
        container: &str,
        net_ref: &str,
        epc: Value,
    ) -> Result<String> {
        let networks = self.net()?.clone();
        let c = self.get(container).map_err(lookup_err)?;
        let _op = c.op.lock().await;
        let (net_id, net_name, predefined) = networks.resolve(net_ref)?;
        let rec = c.snapshot();
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(removal(&rec.id));
        }
        let mode = rec.host_config.network_mode();
        if mode.starts_with("container:") || mode == "host" {
            return Err(NetError::InvalidParameter("container sharing network namespace with another container or host cannot be connected to any other network".into()));
        }
        if net_name == "host" {
            return Err(NetError::InvalidParameter(
                "cannot connect container to host network - container must be created in host network mode".into(),
            ));
        }
        let current = configured::configured(&rec);
        if net_name == "none" || mode == "none" {
            let other = current.iter().any(|(n, _)| n != &net_name);
            if other || (mode == "none" && net_name != "none") {
                return Err(NetError::InvalidParameter("container cannot be connected to multiple networks with one of the networks in private (none) mode".into()));
            }
        }
        let req = configured::EndpointRequest::parse(&epc)?;
        req.check_network(predefined)?;
        let running = rec.state.status.is_live() && rec.state.pid > 0;
        if running {
            let (rec2, pid, epc2, net) = (rec.clone(), rec.state.pid, epc.clone(), net_id.clone());
            let networks = networks.clone();
            tokio::task::spawn_blocking(move || networks.connect(&net, &rec2, pid, &epc2))
                .await
                .map_err(|e| NetError::internal("network task failed", e))??;
        } else if current.iter().any(|(n, _)| *n == net_name) {
            // dockerd keeps the first config of a network it already has.
            return Ok(net_id);
        }
        let mut r = c.lock();
        r.networking_config =
            configured::with_endpoint(&configured::materialized(&r), &net_name, Some(epc));
        let saved = self.save(&r);
        drop(r);
        if let Err(e) = saved {
            if running {
                let _ = networks.disconnect(&net_id, &rec.id, rec.state.pid);
            }
            return Err(NetError::Internal(e.to_string()));
        }
        Ok(net_id)
    }

    pub async fn disconnect_network(
        &self,
        container: &str,
        net_ref: &str,
        force: bool,
    ) -> Result<()> {
        let networks = self.net()?.clone();
        let c = self.get(container).map_err(lookup_err)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(removal(&rec.id));
        }
        // A network removed meanwhile can still be dropped by name.
        let resolved = networks.resolve(net_ref);
        let name = match &resolved {
            Ok((_, name, _)) => name.clone(),
            Err(_) if force => net_ref.to_string(),
            Err(e) => return Err(NetError::NotFound(e.to_string())),
        };
        let mode = rec.host_config.network_mode();
        if mode == "host" && name == "host" {
            return Err(NetError::InvalidParameter(
                "cannot disconnect container from host network - container was created in host network mode".into(),
            ));
        }
        let configured_here = configured::configured(&rec).iter().any(|(n, _)| *n == name);
        let running = rec.state.status.is_live() && rec.state.pid > 0;
        let mut unplugged = false;
        if running {
            if let Ok((id, _, _)) = &resolved {
                let (networks, id, cid, pid) =
                    (networks.clone(), id.clone(), rec.id.clone(), rec.state.pid);
                unplugged =
                    tokio::task::spawn_blocking(move || networks.disconnect(&id, &cid, pid))
                        .await
                        .map_err(|e| NetError::internal("network task failed", e))??;
            }
        }
        if !unplugged && !configured_here {
            return Err(NetError::Forbidden(format!(
                "container {} is not connected to network {name}",
                rec.id
            )));
        }
        let mut r = c.lock();
        r.networking_config = configured::with_endpoint(&configured::materialized(&r), &name, None);
        self.save(&r).map_err(|e| NetError::Internal(e.to_string()))
    }
}
