//! `update` (resources of a live container) and `top` (host `ps` filtered
//! to the container's processes). Both ask the runtime, which knows the
//! container's cgroups on any host layout.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::config::UpdateBody;
use super::core::Containers;
use super::error::{ContainerError, Result};
use super::record::ContainerRecord;

/// dockerd's parsing of `ps` output: the PID column of the header says
/// which field to match; the last column takes the rest of the line.
pub fn parse_ps(output: &str, pids: &[i32]) -> Result<Value> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_index = titles.iter().position(|t| *t == "PID").ok_or_else(|| {
        ContainerError::InvalidParameter("Couldn't find PID field in ps output".into())
    })?;
    let mut processes = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_index).and_then(|p| p.parse::<i32>().ok()) else {
            return Err(ContainerError::InvalidParameter(format!(
                "Unexpected pid '{}': not a number",
                fields.get(pid_index).unwrap_or(&"")
            )));
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len();
        let mut row: Vec<String> = fields
            .iter()
            .take(n.saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        if fields.len() >= n {
            row.push(fields[n - 1..].join(" "));
        }
        processes.push(row);
    }
    Ok(json!({ "Titles": titles, "Processes": processes }))
}

impl Containers {
    /// `POST /containers/prune`: remove stopped containers matching the
    /// label filters and created before `until` (ns); (IDs, bytes freed).
    pub async fn prune(
        self: &std::sync::Arc<Self>,
        filters: &crate::api::extract::Filters,
        until: Option<i64>,
    ) -> Result<(Vec<String>, u64)> {
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for c in self.all() {
            let rec = c.snapshot();
            if rec.state.status.is_live() {
                continue;
            }
            let label = |k: &str| {
                rec.config
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(k))
                    .map(String::as_str)
            };
            if !filters.matches_labels("label", label) {
                continue;
            }
            if filters
                .get("label!")
                .iter()
                .any(|want| match want.split_once('=') {
                    Some((k, v)) => label(k) == Some(v),
                    None => label(want).is_some(),
                })
            {
                continue;
            }
            if let Some(until) = until {
                let created = super::timefmt::parse(&rec.created)
                    .and_then(|t| t.timestamp_nanos_opt())
                    .unwrap_or(0);
                if created >= until {
                    continue;
                }
            }
            let size = super::query::dir_size(
                &super::rootfs::layer_dir(&self.settings.data_root, &rec.id).join("upper"),
            );
            match self.remove(&rec.id, false, false).await {
                Ok(()) => {
                    deleted.push(rec.id.clone());
                    reclaimed += size;
                }
                Err(ContainerError::NotFound(_)) => {}
                Err(e) => tracing::warn!(id = %rec.id, error = %e, "prune: removing container"),
            }
        }
        if !deleted.is_empty() || filters.is_empty() {
            self.events.publish(
                crate::events::Event::new(crate::events::EventType::Container, "prune", "")
                    .attr("reclaimed", reclaimed.to_string()),
            );
        }
        Ok((deleted, reclaimed))
    }

    pub fn update(&self, reference: &str, body: UpdateBody) -> Result<Vec<String>> {
        let c = self.get(reference)?;
        let mut r = c.lock();
        let mut hc = r.host_config.clone();
        macro_rules! set {
            ($field:ident) => {
                if let Some(v) = body.$field.clone() {
                    hc.$field = v;
                }
            };
        }
        set!(cpu_shares);
        set!(memory);
        set!(nano_cpus);
        set!(blkio_weight);
        set!(cpu_period);
        set!(cpu_quota);
        set!(cpuset_cpus);
        set!(cpuset_mems);
        set!(memory_reservation);
        set!(memory_swap);
        if let Some(l) = body.pids_limit {
            hc.pids_limit = Some(l);
        }
        if let Some(p) = body.restart_policy.clone() {
            super::validate::restart_policy(&p)?;
            if hc.auto_remove && !matches!(p.name.as_str(), "" | "no") {
                return Err(ContainerError::InvalidParameter(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                ));
            }
            hc.restart_policy = p;
        }
        if body.nano_cpus.is_some_and(|n| n > 0) {
            if r.host_config.cpu_quota > 0 && body.cpu_quota.is_none() {
                return Err(ContainerError::InvalidParameter(
                    "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set".into(),
                ));
            }
            if r.host_config.cpu_period > 0 && body.cpu_period.is_none() {
                return Err(ContainerError::InvalidParameter(
                    "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set".into(),
                ));
            }
        }
        if body.cpu_quota.is_some_and(|q| q > 0)
            && r.host_config.nano_cpus > 0
            && body.nano_cpus.is_none()
        {
            return Err(ContainerError::InvalidParameter(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                    .into(),
            ));
        }
        super::spec::resources::validate(&hc)?;
        let mut updated = r.clone();
        updated.host_config = hc;
        if updated.state.status.is_live() {
            self.apply_resources(&updated)?;
        }
        self.save(&updated)?;
        *r = updated;
        let rec = r.clone();
        drop(r);
        self.publish(&rec, "update");
        Ok(Vec::new())
    }

    /// Run `runtime --root R OP ARGS…` for the container, feeding `input`;
    /// its stdout, or an error carrying the runtime's message.
    fn runtime_call(
        &self,
        rec: &ContainerRecord,
        op: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let runtime = self.runtime_path(&rec.host_config.runtime)?;
        let mut child = Command::new(runtime)
            .arg("--root")
            .arg(self.settings.runtime_root())
            .arg(op)
            .args(args)
            .arg(&rec.id)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ContainerError::internal(format!("running the runtime's {op}"), e))?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(data)
                .map_err(|e| ContainerError::internal(format!("feeding the runtime's {op}"), e))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| ContainerError::internal(format!("waiting for the runtime's {op}"), e))?;
        if !out.status.success() {
            return Err(ContainerError::Internal(format!(
                "runtime {op} of container {}: {}",
                rec.id,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Hand the record's resources to the runtime (`update --resources -`).
    /// Devices are left as they were set at create.
    fn apply_resources(&self, rec: &ContainerRecord) -> Result<()> {
        let mut resources =
            super::spec::resources::resources(&rec.host_config, rec.host_config.privileged)?;
        if let Some(r) = resources.as_object_mut() {
            r.remove("devices");
        }
        let input = resources.to_string();
        self.runtime_call(rec, "update", &["--resources", "-"], Some(input.as_bytes()))?;
        Ok(())
    }

    pub async fn top(&self, reference: &str, ps_args: &str) -> Result<Value> {
        let rec = self.get(reference)?.snapshot();
        if !rec.state.status.is_live() {
            return Err(ContainerError::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if ps_args.contains('\0') {
            return Err(ContainerError::InvalidParameter(
                "invalid ps_args: contains a NUL byte".into(),
            ));
        }
        let out = self.runtime_call(&rec, "ps", &["--format", "json"], None)?;
        let pids: Vec<i32> = serde_json::from_slice(&out)
            .map_err(|e| ContainerError::internal("reading the runtime's ps output", e))?;
        let args: Vec<&str> = if ps_args.trim().is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| ContainerError::internal("running ps", e))?;
        // ps ran; what it refuses are the caller's arguments.
        if !out.status.success() {
            return Err(ContainerError::InvalidParameter(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_by_pid() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init splash\nroot 42 1 0 10:01 ? 00:00:00 sleep 100\n";
        let v = parse_ps(out, &[42]).unwrap();
        assert_eq!(v["Titles"][1], "PID");
        assert_eq!(v["Processes"].as_array().unwrap().len(), 1);
        assert_eq!(v["Processes"][0][7], "sleep 100");
        assert!(parse_ps("A B\n1 2\n", &[1]).is_err());
    }
}
