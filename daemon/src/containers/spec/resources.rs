//! `linux.resources` from HostConfig, validated as dockerd validates.

use serde_json::{json, Map, Value};

use super::super::config::HostConfig;
use super::super::error::ContainerError;
use super::cpuset;

/// dockerd refuses smaller memory limits.
pub const MIN_MEMORY: i64 = 6 << 20;
pub const DEFAULT_CPU_PERIOD: i64 = 100_000;
/// The kernel's largest CFS quota in µs (`MAX_BW`, 2^44 - 1): larger values
/// make the cgroup write fail with EINVAL.
pub const MAX_CPU_QUOTA: i64 = (1 << 44) - 1;

fn invalid(msg: impl Into<String>) -> ContainerError {
    ContainerError::InvalidParameter(msg.into())
}

/// Check the resource settings (at create and update).
pub fn validate(hc: &HostConfig) -> Result<(), ContainerError> {
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if hc.memory_swap > 0 && hc.memory > 0 && hc.memory_swap < hc.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if hc.memory_swap < -1 {
        return Err(invalid(format!(
            "invalid MemorySwap ({}): use -1 for unlimited swap",
            hc.memory_swap
        )));
    }
    if hc.memory_swap > 0 && hc.memory == 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if hc.memory_reservation > 0 && hc.memory_reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_reservation > hc.memory {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if let Some(s) = hc.memory_swappiness {
        if !(-1..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if hc.nano_cpus < 0 {
        return Err(invalid(
            "Range of CPUs is from 0.01 to the number of CPUs available",
        ));
    }
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    if hc.nano_cpus > ncpu * 1_000_000_000 {
        return Err(invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if hc.cpu_quota < -1 {
        return Err(invalid(format!(
            "invalid CPU cfs quota ({}): use -1 for unlimited",
            hc.cpu_quota
        )));
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if hc.cpu_quota > MAX_CPU_QUOTA {
        return Err(invalid(format!(
            "CPU cfs quota can not be larger than {MAX_CPU_QUOTA} (the kernel's maximum)"
        )));
    }
    if hc.cpu_shares < 0 {
        return Err(invalid(format!(
            "invalid CPU shares ({}): value must be a positive integer",
            hc.cpu_shares
        )));
    }
    // runc's words: the kernel clamps cpu.shares to 2..=262144 and runc
    // refuses a value it did not take as given.
    if hc.cpu_shares > 262_144 {
        return Err(invalid("the maximum allowed cpu-shares is 262144"));
    }
    if hc.cpu_shares == 1 {
        return Err(invalid("the minimum allowed cpu-shares is 2"));
    }
    if hc.cpu_realtime_period < 0 || hc.cpu_realtime_runtime < -1 {
        return Err(invalid(
            "cpu real-time period and runtime can not be negative",
        ));
    }
    if hc.cpu_realtime_period != 0
        && hc.cpu_realtime_runtime != 0
        && hc.cpu_realtime_runtime > hc.cpu_realtime_period
    {
        return Err(invalid(
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ));
    }
    cpuset::check(cpuset::Kind::Cpus, &hc.cpuset_cpus).map_err(invalid)?;
    cpuset::check(cpuset::Kind::Mems, &hc.cpuset_mems).map_err(invalid)?;
    // dockerd takes 0 and -1 as unlimited; below that is a mistake.
    if let Some(l) = hc.pids_limit.filter(|l| *l < -1) {
        return Err(invalid(format!(
            "invalid PidsLimit ({l}): use a positive number, or 0 or -1 for unlimited"
        )));
    }
    if hc.blkio_weight > 0 && !(10..=1000).contains(&hc.blkio_weight) {
        return Err(invalid("Range of blkio weight is from 10 to 1000"));
    }
    if hc.oom_score_adj < -1000 || hc.oom_score_adj > 1000 {
        return Err(invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            hc.oom_score_adj
        )));
    }
    Ok(())
}

/// The device cgroup rules of an unprivileged container: deny all, allow
/// mknod of anything and the usual character devices.
fn device_rules(privileged: bool) -> Value {
    if privileged {
        return json!([{ "allow": true, "access": "rwm" }]);
    }
    let mut rules = vec![
        json!({ "allow": false, "access": "rwm" }),
        json!({ "allow": true, "type": "c", "access": "m" }),
        json!({ "allow": true, "type": "b", "access": "m" }),
    ];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        rules.push(
            json!({ "allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm" }),
        );
    }
    rules.push(json!({ "allow": true, "type": "c", "major": 136, "access": "rwm" }));
    Value::Array(rules)
}

/// `linux.resources`.
pub fn resources(hc: &HostConfig, privileged: bool) -> Result<Value, ContainerError> {
    validate(hc)?;
    let mut r = Map::new();
    r.insert("devices".into(), device_rules(privileged));

    let mut memory = Map::new();
    if hc.memory > 0 {
        memory.insert("limit".into(), json!(hc.memory));
        // Unset swap means as much swap as memory, as dockerd does.
        let swap = match hc.memory_swap {
            0 => hc.memory.saturating_mul(2),
            s => s,
        };
        memory.insert("swap".into(), json!(swap));
    }
    if hc.memory_reservation > 0 {
        memory.insert("reservation".into(), json!(hc.memory_reservation));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        memory.insert("swappiness".into(), json!(s));
    }
    if let Some(d) = hc.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(d));
    }
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }

    let mut cpu = Map::new();
    if hc.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(hc.cpu_shares));
    }
    if hc.nano_cpus > 0 {
        cpu.insert("period".into(), json!(DEFAULT_CPU_PERIOD));
        cpu.insert(
            "quota".into(),
            json!(hc.nano_cpus * DEFAULT_CPU_PERIOD / 1_000_000_000),
        );
    } else {
        if hc.cpu_period > 0 {
            cpu.insert("period".into(), json!(hc.cpu_period));
        }
        if hc.cpu_quota != 0 {
            cpu.insert("quota".into(), json!(hc.cpu_quota));
        }
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(hc.cpuset_cpus));
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(hc.cpuset_mems));
    }
    if hc.cpu_realtime_period > 0 {
        cpu.insert("realtimePeriod".into(), json!(hc.cpu_realtime_period));
    }
    if hc.cpu_realtime_runtime > 0 {
        cpu.insert("realtimeRuntime".into(), json!(hc.cpu_realtime_runtime));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }

    if let Some(limit) = hc.pids_limit.filter(|l| *l > 0) {
        r.insert("pids".into(), json!({ "limit": limit }));
    }
    if hc.blkio_weight > 0 {
        r.insert("blockIO".into(), json!({ "weight": hc.blkio_weight }));
    }
    Ok(Value::Object(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_map_to_oci() {
        let hc = HostConfig {
            memory: 16 << 20,
            nano_cpus: 1_500_000_000,
            pids_limit: Some(20),
            cpu_shares: 512,
            cpuset_cpus: "0".into(),
            blkio_weight: 300,
            oom_kill_disable: Some(false),
            ..Default::default()
        };
        let r = resources(&hc, false).unwrap();
        assert_eq!(r["memory"]["limit"], 16 << 20);
        assert_eq!(r["memory"]["swap"], 32 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["cpu"]["cpus"], "0");
        assert_eq!(r["pids"]["limit"], 20);
        assert_eq!(r["blockIO"]["weight"], 300);
        assert_eq!(r["devices"][0]["allow"], false);
    }

    #[test]
    fn dockerd_validation_messages() {
        let hc = HostConfig {
            memory: 1 << 20,
            ..Default::default()
        };
        assert_eq!(
            resources(&hc, false).unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        let hc = HostConfig {
            nano_cpus: 1_000_000_000,
            cpu_quota: 50_000,
            ..Default::default()
        };
        assert!(resources(&hc, false).is_err());
        let hc = HostConfig {
            cpu_quota: 20_000,
            cpu_period: 100_000,
            ..Default::default()
        };
        let r = resources(&hc, false).unwrap();
        assert_eq!(
            (r["cpu"]["quota"].as_i64(), r["cpu"]["period"].as_i64()),
            (Some(20_000), Some(100_000))
        );
    }
}
