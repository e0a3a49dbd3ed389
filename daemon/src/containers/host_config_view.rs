//! A container's `HostConfig` in dockerd's shape: every field dockerd
//! reports is there (`null` for unset lists and maps, zeros for unset
//! numbers), the unset values dockerd normalises read as it reports them,
//! and field names as dockerd spells them.

use serde_json::{json, Map, Value};

/// Fields dockerd reports as `null` when nothing was given.
const NULL_WHEN_UNSET: &[&str] = &[
    "Binds",
    "BlkioDeviceReadBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceWriteIOps",
    "BlkioWeightDevice",
    "CapAdd",
    "CapDrop",
    "DeviceCgroupRules",
    "DeviceRequests",
    "Devices",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "Links",
    "MemorySwappiness",
    "PidsLimit",
    "PortBindings",
    "SecurityOpt",
    "Ulimits",
    "VolumesFrom",
];

/// Numbers dockerd reports as 0 when unset.
const ZERO_WHEN_UNSET: &[&str] = &[
    "CpuCount",
    "CpuPercent",
    "IOMaximumBandwidth",
    "IOMaximumIOps",
];

/// The masks a container gets when it names none: what dockerd reports
/// for an unprivileged container (a privileged one gets none: `null`).
pub struct DefaultMasks<'a> {
    pub masked: &'a [&'a str],
    pub readonly: &'a [&'a str],
}

/// The masks of berth's container spec.
pub const DEFAULT_MASKS: DefaultMasks<'static> = DefaultMasks {
    masked: super::spec::MASKED_PATHS,
    readonly: super::spec::READONLY_PATHS,
};

/// Rewrites `hc` (a stored HostConfig) into what dockerd answers; with
/// `kernel_memory`, as before API 1.42, which still had `KernelMemory`.
pub fn dockerd_shape(hc: &mut Value, kernel_memory: bool, masks: &DefaultMasks) {
    let Some(m) = hc.as_object_mut() else {
        return;
    };
    // Go's field is ContainerIDFile; a client's own spelling kept in the
    // pass-through fields wins over the stored default.
    if let Some(v) = m.remove("ContainerIdFile") {
        m.entry("ContainerIDFile").or_insert(v);
    }
    m.entry("ContainerIDFile").or_insert_with(|| json!(""));
    for key in NULL_WHEN_UNSET {
        m.entry(*key).or_insert(Value::Null);
    }
    for key in ZERO_WHEN_UNSET {
        m.entry(*key).or_insert_with(|| json!(0));
    }
    m.entry("ConsoleSize").or_insert_with(|| json!([0, 0]));
    m.entry("OomKillDisable").or_insert_with(|| json!(false));
    // dockerd stores -1 ("the kernel's default") and a limit ≤ 0
    // ("unlimited") as unset.
    if m.get("MemorySwappiness").and_then(Value::as_i64) == Some(-1) {
        m.insert("MemorySwappiness".into(), Value::Null);
    }
    if m.get("PidsLimit")
        .and_then(Value::as_i64)
        .is_some_and(|l| l <= 0)
    {
        m.insert("PidsLimit".into(), Value::Null);
    }
    if m.get("IpcMode").and_then(Value::as_str) == Some("") {
        m.insert("IpcMode".into(), json!("private"));
    }
    if let Some(Value::Array(reqs)) = m.get_mut("DeviceRequests") {
        for r in reqs.iter_mut().filter_map(Value::as_object_mut) {
            device_request_shape(r);
        }
    }
    let privileged = m.get("Privileged").and_then(Value::as_bool) == Some(true);
    for (key, defaults) in [
        ("MaskedPaths", masks.masked),
        ("ReadonlyPaths", masks.readonly),
    ] {
        m.entry(key).or_insert_with(|| {
            if privileged {
                Value::Null
            } else {
                json!(defaults)
            }
        });
    }
    // KernelMemory went away in API 1.42; KernelMemoryTCP is omitted when
    // empty from then on.
    if !kernel_memory {
        m.remove("KernelMemory");
        if m.get("KernelMemoryTCP").and_then(Value::as_i64) == Some(0) {
            m.remove("KernelMemoryTCP");
        }
    } else {
        m.entry("KernelMemory").or_insert_with(|| json!(0));
        m.entry("KernelMemoryTCP").or_insert_with(|| json!(0));
    }
}

fn device_request_shape(r: &mut Map<String, Value>) {
    r.entry("Driver").or_insert_with(|| json!(""));
    r.entry("Count").or_insert_with(|| json!(0));
    for key in ["DeviceIDs", "Capabilities", "Options"] {
        r.entry(key).or_insert(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASKS: DefaultMasks = DefaultMasks {
        masked: &["/proc/kcore"],
        readonly: &["/proc/sys"],
    };

    #[test]
    fn unset_fields_read_as_dockerd_reports_them() {
        let mut hc = json!({
            "ContainerIdFile": "", "MemorySwappiness": -1, "PidsLimit": 0,
            "IpcMode": "", "DeviceRequests": [{"Count": 1}], "Dns": ["1.1.1.1"],
        });
        dockerd_shape(&mut hc, true, &MASKS);
        assert_eq!(hc["ContainerIDFile"], "");
        assert!(hc.get("ContainerIdFile").is_none());
        assert!(hc["MemorySwappiness"].is_null() && hc["PidsLimit"].is_null());
        assert!(hc["Binds"].is_null() && hc["DeviceCgroupRules"].is_null());
        assert_eq!(hc["Dns"], json!(["1.1.1.1"]));
        assert_eq!(hc["IpcMode"], "private");
        assert_eq!(hc["ConsoleSize"], json!([0, 0]));
        assert_eq!(hc["KernelMemory"], 0);
        assert_eq!(
            hc["DeviceRequests"],
            json!([{"Driver": "", "Count": 1, "DeviceIDs": null, "Capabilities": null, "Options": null}])
        );
        assert_eq!(hc["MaskedPaths"], json!(["/proc/kcore"]));
        assert_eq!(hc["ReadonlyPaths"], json!(["/proc/sys"]));
    }

    #[test]
    fn newer_versions_and_privileged_containers() {
        let mut hc = json!({"Privileged": true, "ContainerIDFile": "/id", "ContainerIdFile": "", "MemorySwappiness": 30});
        dockerd_shape(&mut hc, false, &MASKS);
        assert_eq!(hc["ContainerIDFile"], "/id");
        assert!(hc["MaskedPaths"].is_null() && hc["ReadonlyPaths"].is_null());
        assert!(hc.get("KernelMemory").is_none() && hc.get("KernelMemoryTCP").is_none());
        assert_eq!(hc["MemorySwappiness"], 30);
    }
}
