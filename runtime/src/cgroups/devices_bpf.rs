//! Device access control on cgroup v2, where it is an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup.

use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::CgroupError;

pub fn apply(_dir: &Path, _rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    Err(CgroupError::DeviceProgram(
        "device rules on cgroup v2 are not implemented yet".into(),
    ))
}

/// Detaching happens implicitly when the cgroup is removed.
pub fn detach_all(_dir: &Path) -> Result<(), CgroupError> {
    Ok(())
}
