//! The device cgroup rules a container gets: the config's rules followed by
//! the devices every container needs and the ones it configured, as runc
//! does (without them a "deny all" rule would also forbid /dev/null).

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// Always allowed: mknod of anything (access is what counts), the standard
/// nodes, /dev/console, /dev/ptmx, /dev/pts/* and /dev/net/tun.
fn defaults() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// `resources` with the default and configured devices allowed after the
/// config's own rules. Only touches configs that restrict devices at all.
pub fn with_required_devices(
    resources: Option<&LinuxResources>,
    devices: &[LinuxDevice],
) -> Option<LinuxResources> {
    let mut r = resources.cloned()?;
    let Some(mut rules) = r.devices().clone() else {
        return Some(r);
    };
    // A device the config already has a rule for keeps that rule's access
    // (`--device /dev/x:/dev/x:r` stays read-only).
    let configured = rules.clone();
    rules.extend(defaults());
    for d in devices {
        let typ = match d.typ() {
            LinuxDeviceType::U => LinuxDeviceType::C,
            // FIFOs are not device-controlled: the kernel refuses a "p" rule.
            LinuxDeviceType::P => continue,
            t => t,
        };
        let has_rule = configured.iter().any(|r| {
            r.allow()
                && r.typ() == Some(typ)
                && r.major() == Some(d.major())
                && r.minor() == Some(d.minor())
        });
        if !has_rule {
            rules.push(rule(typ, Some(d.major()), Some(d.minor()), "rwm"));
        }
    }
    r.set_devices(Some(rules));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_all_is_followed_by_allows() {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".into()));
        let mut res = LinuxResources::default();
        res.set_devices(Some(vec![deny]));
        let out = with_required_devices(Some(&res), &[]).unwrap();
        let rules = out.devices().as_ref().unwrap();
        assert!(!rules[0].allow());
        assert!(rules[1..].iter().all(|r| r.allow()));
        assert!(rules
            .iter()
            .any(|r| r.major() == Some(1) && r.minor() == Some(3)));
    }

    #[test]
    fn configured_access_is_kept() {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".into()));
        let read_only = rule(LinuxDeviceType::C, Some(1), Some(11), "r");
        let mut res = LinuxResources::default();
        res.set_devices(Some(vec![deny, read_only]));
        let mut dev = LinuxDevice::default();
        dev.set_typ(LinuxDeviceType::C);
        dev.set_major(1);
        dev.set_minor(11);
        let other = {
            let mut d = dev.clone();
            d.set_minor(12);
            d
        };
        let out = with_required_devices(Some(&res), &[dev, other]).unwrap();
        let for_dev = |minor: i64| -> Vec<String> {
            out.devices()
                .as_ref()
                .unwrap()
                .iter()
                .filter(|r| r.major() == Some(1) && r.minor() == Some(minor))
                .map(|r| r.access().clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(for_dev(11), ["r"]);
        assert_eq!(for_dev(12), ["rwm"]);
    }

    #[test]
    fn fifo_gets_no_cgroup_rule() {
        let mut deny = LinuxDeviceCgroup::default();
        deny.set_allow(false);
        deny.set_access(Some("rwm".into()));
        let mut res = LinuxResources::default();
        res.set_devices(Some(vec![deny]));
        let mut fifo = LinuxDevice::default();
        fifo.set_typ(LinuxDeviceType::P);
        fifo.set_major(8);
        fifo.set_minor(666);
        let out = with_required_devices(Some(&res), &[fifo]).unwrap();
        let rules = out.devices().as_ref().unwrap();
        assert!(rules.iter().all(|r| r.typ() != Some(LinuxDeviceType::P)));
        assert!(!rules.iter().any(|r| r.minor() == Some(666)));
    }
}
