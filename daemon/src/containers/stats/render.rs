//! The JSON dockerd sends for one stats sample.

use serde_json::{json, Map, Value};

use super::cgroup::{BlkioEntry, CpuSample, Sample};

/// dockerd's zero time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn blkio_list(entries: &[BlkioEntry]) -> Value {
    // dockerd sends null, not [], for lists it has nothing for.
    if entries.is_empty() {
        return Value::Null;
    }
    entries
        .iter()
        .map(|e| json!({ "major": e.major, "minor": e.minor, "op": e.op, "value": e.value }))
        .collect()
}

fn cpu_stats(cpu: &CpuSample) -> Value {
    let mut usage = Map::new();
    usage.insert("total_usage".into(), json!(cpu.total));
    if !cpu.percpu.is_empty() {
        usage.insert("percpu_usage".into(), json!(cpu.percpu));
    }
    usage.insert("usage_in_kernelmode".into(), json!(cpu.kernel));
    usage.insert("usage_in_usermode".into(), json!(cpu.user));
    let mut out = Map::new();
    out.insert("cpu_usage".into(), Value::Object(usage));
    if cpu.system > 0 {
        out.insert("system_cpu_usage".into(), json!(cpu.system));
    }
    if cpu.online_cpus > 0 {
        out.insert("online_cpus".into(), json!(cpu.online_cpus));
    }
    out.insert(
        "throttling_data".into(),
        json!({
            "periods": cpu.periods,
            "throttled_periods": cpu.throttled_periods,
            "throttled_time": cpu.throttled_time,
        }),
    );
    Value::Object(out)
}

fn empty_blkio() -> Value {
    json!({
        "io_service_bytes_recursive": null,
        "io_serviced_recursive": null,
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}

/// The sample of a container that is not running: name and ID, every
/// figure zero, as dockerd answers.
pub fn zero(name: &str, id: &str) -> Value {
    let cpu = cpu_stats(&CpuSample::default());
    json!({
        "name": name,
        "id": id,
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": empty_blkio(),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu,
        "precpu_stats": cpu,
        "memory_stats": {},
    })
}

/// One response object: `cur`, with `precpu_stats`/`preread` from `prev`
/// (empty when there is none, as with `one-shot`).
pub fn render(name: &str, id: &str, cur: &Sample, prev: Option<&Sample>) -> Value {
    let mut blkio = empty_blkio();
    // The spec types this one as a plain array (the others nullable).
    blkio["io_service_bytes_recursive"] = match blkio_list(&cur.io_service_bytes) {
        Value::Null => json!([]),
        v => v,
    };
    blkio["io_serviced_recursive"] = blkio_list(&cur.io_serviced);

    let mut memory = Map::new();
    memory.insert("usage".into(), json!(cur.memory.usage));
    if cur.memory.max_usage > 0 {
        memory.insert("max_usage".into(), json!(cur.memory.max_usage));
    }
    memory.insert("stats".into(), json!(cur.memory.stats));
    if cur.memory.failcnt > 0 {
        memory.insert("failcnt".into(), json!(cur.memory.failcnt));
    }
    memory.insert("limit".into(), json!(cur.memory.limit));

    let mut pids = Map::new();
    pids.insert("current".into(), json!(cur.pids_current));
    if cur.pids_limit > 0 {
        pids.insert("limit".into(), json!(cur.pids_limit));
    }

    let (preread, precpu) = match prev {
        Some(p) => (p.read.as_str(), cpu_stats(&p.cpu)),
        None => (ZERO_TIME, cpu_stats(&CpuSample::default())),
    };
    let mut out = json!({
        "name": name,
        "id": id,
        "read": cur.read,
        "preread": preread,
        "pids_stats": pids,
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(&cur.cpu),
        "precpu_stats": precpu,
        "memory_stats": memory,
    });
    if let Some(nets) = &cur.networks {
        let nets: Map<String, Value> = nets
            .iter()
            .map(|(name, n)| {
                (
                    name.clone(),
                    json!({
                        "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                        "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                        "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                        "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                    }),
                )
            })
            .collect();
        out["networks"] = Value::Object(nets);
    }
    out
}
