//! Parsing what a container asks to mount, with dockerd's rules and error
//! messages: `-v` specs (`HostConfig.Binds`, `Config.Volumes`), `--mount`
//! objects (`HostConfig.Mounts`), `--tmpfs` (`HostConfig.Tmpfs`) and
//! `--volumes-from`. Pure: nothing is created here.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::error::{Result, VolumeError};
use super::name;
use super::tmpfs_opts;

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path; `create_missing` for `-v` (dockerd creates the
    /// directory), not for `--mount type=bind` (an error instead).
    Bind { host: String, create_missing: bool },
    /// A named volume, or an anonymous one when `name` is None.
    Volume {
        name: Option<String>,
        driver_options: BTreeMap<String, String>,
        labels: BTreeMap<String, String>,
        nocopy: bool,
        /// The part of the volume to mount (relative, checked lexically
        /// here; resolved inside the volume at each start).
        subpath: Option<String>,
    },
    /// Extra tmpfs mount data (`size=…,mode=…`).
    Tmpfs { data: Vec<String> },
}

/// One parsed mount request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Clean absolute container path.
    pub destination: String,
    pub source: Source,
    pub rw: bool,
    /// The mode as inspect shows it (`ro`, `z`, ... or empty).
    pub mode: String,
    /// Bind propagation (`rprivate` by default for binds, empty otherwise).
    pub propagation: String,
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

fn invalid_spec(raw: &str) -> VolumeError {
    VolumeError::invalid(format!("invalid volume specification: '{raw}'"))
}

/// Go's `filepath.Clean` for absolute paths.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `filepath.IsLocal`: relative, not empty, and not leaving its
/// directory lexically.
fn is_local(path: &str) -> bool {
    if path.is_empty() || path.starts_with('/') {
        return false;
    }
    let mut depth = 0usize;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            _ => depth += 1,
        }
    }
    true
}

fn check_destination(raw_ctx: &str, kind: &str, dest: &str) -> Result<String> {
    if dest.is_empty() {
        return Err(VolumeError::invalid(format!(
            "{raw_ctx}invalid mount config for type \"{kind}\": field Target must not be empty"
        )));
    }
    if !dest.starts_with('/') {
        return Err(VolumeError::invalid(format!(
            "{raw_ctx}invalid mount config for type \"{kind}\": invalid mount path: '{dest}' mount path must be absolute"
        )));
    }
    let dest = clean(dest);
    if dest == "/" {
        return Err(VolumeError::invalid(
            "invalid specification: destination can't be '/'",
        ));
    }
    Ok(dest)
}

/// The parts of a `-v` mode string (`ro,z,rshared,nocopy`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Mode {
    rw: bool,
    propagation: Option<String>,
    nocopy: bool,
}

fn parse_mode(mode: &str) -> Option<Mode> {
    let mut m = Mode {
        rw: true,
        ..Mode::default()
    };
    let (mut seen_rw, mut seen_label, mut seen_copy, mut seen_consistency) =
        (false, false, false, false);
    if mode.is_empty() {
        return Some(m);
    }
    for part in mode.split(',') {
        match part {
            "rw" | "ro" => {
                if std::mem::replace(&mut seen_rw, true) {
                    return None;
                }
                m.rw = part == "rw";
            }
            "z" | "Z" => {
                if std::mem::replace(&mut seen_label, true) {
                    return None;
                }
            }
            "nocopy" => {
                if std::mem::replace(&mut seen_copy, true) {
                    return None;
                }
                m.nocopy = true;
            }
            "consistent" | "cached" | "delegated" => {
                if std::mem::replace(&mut seen_consistency, true) {
                    return None;
                }
            }
            p if PROPAGATIONS.contains(&p) => {
                if m.propagation.replace(p.to_string()).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(m)
}

/// A `-v` spec: `/dst`, `name:/dst[:mode]` or `/host:/dst[:mode]`.
pub fn parse_bind(raw: &str) -> Result<Planned> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => {
            if parse_mode(dst).is_some() && !dst.starts_with('/') {
                // `/foo:ro`: a mode without a source is not a valid volume.
                return Err(invalid_spec(raw));
            }
            (*src, *dst, "")
        }
        [src, dst, mode] => (*src, *dst, *mode),
        _ => return Err(invalid_spec(raw)),
    };
    if parts.len() > 1 && (src.is_empty() || dst.is_empty()) {
        return Err(invalid_spec(raw));
    }
    let Some(m) = parse_mode(mode) else {
        return Err(VolumeError::invalid(format!("invalid mode: {mode}")));
    };
    let is_bind = src.starts_with('/');
    let kind = if is_bind { "bind" } else { "volume" };
    let destination = check_destination(
        &format!("invalid volume specification: '{raw}': "),
        kind,
        dst,
    )?;
    if is_bind {
        if m.nocopy {
            return Err(VolumeError::invalid(format!("invalid mode: {mode}")));
        }
        return Ok(Planned {
            destination,
            source: Source::Bind {
                host: clean(src),
                create_missing: true,
            },
            rw: m.rw,
            mode: mode.to_string(),
            propagation: m.propagation.unwrap_or_else(|| "rprivate".into()),
        });
    }
    if m.propagation.is_some() {
        return Err(VolumeError::invalid(format!("invalid mode: {mode}")));
    }
    let name = if src.is_empty() {
        None
    } else {
        name::validate(src)?;
        Some(src.to_string())
    };
    let shown_mode = match (&name, mode) {
        (Some(_), "") => "z".to_string(),
        _ => mode.to_string(),
    };
    Ok(Planned {
        destination,
        source: Source::Volume {
            name,
            driver_options: BTreeMap::new(),
            labels: BTreeMap::new(),
            nocopy: m.nocopy,
            subpath: None,
        },
        rw: m.rw,
        mode: shown_mode,
        propagation: String::new(),
    })
}

/// `HostConfig.Mounts[]` as the API sends it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ApiMount {
    #[serde(rename = "Type")]
    kind: String,
    source: Option<String>,
    target: Option<String>,
    read_only: Option<bool>,
    bind_options: Option<BindOptions>,
    volume_options: Option<VolumeOptions>,
    tmpfs_options: Option<TmpfsOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct BindOptions {
    propagation: Option<String>,
    non_recursive: Option<bool>,
    create_mountpoint: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeOptions {
    no_copy: Option<bool>,
    labels: Option<BTreeMap<String, String>>,
    driver_config: Option<DriverConfig>,
    subpath: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DriverConfig {
    name: Option<String>,
    options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TmpfsOptions {
    size_bytes: Option<i64>,
    mode: Option<u32>,
    options: Option<Vec<Vec<String>>>,
}

/// One `HostConfig.Mounts` entry (`--mount type=...`).
pub fn parse_mount(value: &serde_json::Value) -> Result<Planned> {
    let m: ApiMount = serde_json::from_value(value.clone())
        .map_err(|e| VolumeError::invalid(format!("invalid mount config: {e}")))?;
    let kind = m.kind.as_str();
    let err = |msg: &str| {
        VolumeError::invalid(format!("invalid mount config for type \"{kind}\": {msg}"))
    };
    let destination = check_destination("", kind, m.target.as_deref().unwrap_or(""))?;
    let rw = !m.read_only.unwrap_or(false);
    let source = m.source.clone().unwrap_or_default();
    match kind {
        "bind" => {
            if m.volume_options.is_some() {
                return Err(err("field VolumeOptions must not be specified"));
            }
            if m.tmpfs_options.is_some() {
                return Err(err("field TmpfsOptions must not be specified"));
            }
            if source.is_empty() {
                return Err(err("field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(err(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let bo = m.bind_options.unwrap_or_default();
            if bo.non_recursive == Some(true) {
                return Err(err("non-recursive bind mounts are not supported"));
            }
            let propagation = match bo.propagation.as_deref() {
                None | Some("") => "rprivate".to_string(),
                Some(p) if PROPAGATIONS.contains(&p) => p.to_string(),
                Some(p) => return Err(err(&format!("invalid propagation mode: {p}"))),
            };
            Ok(Planned {
                destination,
                source: Source::Bind {
                    host: clean(&source),
                    create_missing: bo.create_mountpoint == Some(true),
                },
                rw,
                mode: String::new(),
                propagation,
            })
        }
        "volume" => {
            if m.bind_options.is_some() {
                return Err(err("field BindOptions must not be specified"));
            }
            if m.tmpfs_options.is_some() {
                return Err(err("field TmpfsOptions must not be specified"));
            }
            let vo = m.volume_options.unwrap_or_default();
            let subpath = vo.subpath.filter(|s| !s.is_empty());
            if let Some(sub) = &subpath {
                if source.is_empty() {
                    return Err(err("must not set Subpath when using anonymous volumes"));
                }
                if !is_local(sub) {
                    return Err(err("subpath must be a relative path within the volume"));
                }
            }
            let dc = vo.driver_config.unwrap_or_default();
            if let Some(driver) = dc
                .name
                .as_deref()
                .filter(|d| !d.is_empty() && *d != "local")
            {
                return Err(VolumeError::NotFound(format!(
                    "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
                )));
            }
            let name = if source.is_empty() {
                None
            } else {
                name::validate(&source)?;
                Some(source)
            };
            let nocopy = vo.no_copy.unwrap_or(false);
            Ok(Planned {
                destination,
                mode: if nocopy { "z,nocopy" } else { "z" }.to_string(),
                source: Source::Volume {
                    name,
                    driver_options: dc.options.unwrap_or_default(),
                    labels: vo.labels.unwrap_or_default(),
                    nocopy,
                    subpath,
                },
                rw,
                propagation: String::new(),
            })
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(err("field Source must not be specified"));
            }
            if m.bind_options.is_some() {
                return Err(err("field BindOptions must not be specified"));
            }
            if m.volume_options.is_some() {
                return Err(err("field VolumeOptions must not be specified"));
            }
            let to = m.tmpfs_options.unwrap_or_default();
            let mut data = Vec::new();
            match to.size_bytes {
                Some(s) if s < 0 => return Err(err("invalid tmpfs size")),
                Some(s) if s > 0 => data.push(format!("size={}k", s.unsigned_abs().div_ceil(1024))),
                _ => {}
            }
            if let Some(mode) = to.mode.filter(|m| *m != 0) {
                data.push(format!("mode={:o}", mode & 0o7777));
            }
            // dockerd takes only exec/noexec here (as [flag] or [flag, value]).
            for opt in to.options.unwrap_or_default() {
                match opt.as_slice() {
                    [flag] if flag == "exec" || flag == "noexec" => data.push(flag.clone()),
                    [k, v] if k == "exec" || k == "noexec" => data.push(format!("{k}={v}")),
                    [k] | [k, _] => return Err(err(&format!("invalid option: {k}"))),
                    _ => return Err(err("invalid option array length")),
                }
            }
            tmpfs_opts::check(data.iter().map(String::as_str)).map_err(|e| err(&e))?;
            Ok(Planned {
                destination,
                source: Source::Tmpfs { data },
                rw,
                mode: String::new(),
                propagation: String::new(),
            })
        }
        "" => Err(VolumeError::invalid(
            "invalid mount config: mount type unknown",
        )),
        _ => Err(err("mount type unknown")),
    }
}

/// One `HostConfig.Tmpfs` entry: `/run` → `size=64m,mode=1777,ro`.
pub fn parse_tmpfs(dest: &str, options: &str) -> Result<Planned> {
    let destination = check_destination("", "tmpfs", dest)?;
    let opts: Vec<&str> = options
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    tmpfs_opts::check(opts.iter().copied()).map_err(VolumeError::invalid)?;
    let mut rw = true;
    let mut data = Vec::new();
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match opt {
            "ro" => rw = false,
            "rw" => rw = true,
            o => data.push(o.to_string()),
        }
    }
    Ok(Planned {
        destination,
        source: Source::Tmpfs { data },
        rw,
        mode: String::new(),
        propagation: String::new(),
    })
}

/// A `--volumes-from` value: `container[:ro|:rw]`.
pub fn parse_volumes_from(raw: &str) -> Result<(String, Option<bool>)> {
    let (container, mode) = match raw.rsplit_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (raw, None),
    };
    if container.is_empty() {
        return Err(invalid_spec(raw));
    }
    let rw = match mode {
        None => None,
        Some("rw") => Some(true),
        Some("ro") => Some(false),
        Some(m) => return Err(VolumeError::invalid(format!("invalid mode: {m}"))),
    };
    Ok((container.to_string(), rw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths_must_stay_local() {
        for ok in ["a", "a/b", "a/../b", "./a", "."] {
            assert!(is_local(ok), "{ok}");
        }
        for bad in ["", "/a", "..", "../a", "a/../../b"] {
            assert!(!is_local(bad), "{bad}");
        }
    }
    use serde_json::json;

    #[test]
    fn binds() {
        let p = parse_bind("/data").unwrap();
        assert_eq!(p.destination, "/data");
        assert!(matches!(p.source, Source::Volume { name: None, .. }));
        let p = parse_bind("vol:/data/./x/:ro").unwrap();
        assert_eq!(p.destination, "/data/x");
        assert!(!p.rw);
        assert_eq!(p.mode, "ro");
        assert!(
            matches!(&p.source, Source::Volume { name: Some(n), nocopy: false, .. } if n == "vol")
        );
        assert_eq!(parse_bind("vol:/d").unwrap().mode, "z");
        let p = parse_bind("vol:/d:nocopy").unwrap();
        assert!(matches!(p.source, Source::Volume { nocopy: true, .. }));
        let p = parse_bind("/host/x:/c:ro,rshared").unwrap();
        assert_eq!(
            p,
            Planned {
                destination: "/c".into(),
                source: Source::Bind {
                    host: "/host/x".into(),
                    create_missing: true
                },
                rw: false,
                mode: "ro,rshared".into(),
                propagation: "rshared".into(),
            }
        );
        assert_eq!(parse_bind("/h:/c").unwrap().propagation, "rprivate");
    }

    #[test]
    fn bad_binds_get_dockerds_messages() {
        let msg = |s: &str| parse_bind(s).unwrap_err().to_string();
        assert_eq!(msg("/h:/c:rx"), "invalid mode: rx");
        assert_eq!(msg("/h:/c:ro,rw"), "invalid mode: ro,rw");
        assert_eq!(msg("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(msg(":/c"), "invalid volume specification: ':/c'");
        assert_eq!(
            msg("/h:rel"),
            "invalid volume specification: '/h:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            msg("rel"),
            "invalid volume specification: 'rel': invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            msg("/h:/"),
            "invalid specification: destination can't be '/'"
        );
        assert!(msg("a b:/c").contains("includes invalid characters for a local volume name"));
        assert_eq!(msg("vol:/c:shared"), "invalid mode: shared");
        for s in ["/h:/c:rx", "a:b:c:d", "/h:rel", "a b:/c"] {
            assert_eq!(parse_bind(s).unwrap_err().status(), 400);
        }
    }

    #[test]
    fn mounts() {
        let p = parse_mount(
            &json!({"Type":"bind","Source":"/h","Target":"/c","ReadOnly":true,
            "BindOptions":{"Propagation":"rslave"}}),
        )
        .unwrap();
        assert_eq!(p.propagation, "rslave");
        assert!(!p.rw);
        assert!(matches!(
            p.source,
            Source::Bind {
                create_missing: false,
                ..
            }
        ));
        let p = parse_mount(&json!({"Type":"volume","Source":"v1","Target":"/c",
            "VolumeOptions":{"NoCopy":true,"Labels":{"a":"b"},"DriverConfig":{"Name":"local","Options":{"type":"tmpfs","device":"tmpfs"}}}}))
        .unwrap();
        match p.source {
            Source::Volume {
                name,
                driver_options,
                labels,
                nocopy,
                subpath,
            } => {
                assert_eq!(subpath, None);
                assert_eq!(name.as_deref(), Some("v1"));
                assert_eq!(driver_options["type"], "tmpfs");
                assert_eq!(labels["a"], "b");
                assert!(nocopy);
            }
            other => panic!("{other:?}"),
        }
        let p = parse_mount(
            &json!({"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":1023}}),
        )
        .unwrap();
        assert_eq!(
            p.source,
            Source::Tmpfs {
                data: vec!["size=1024k".into(), "mode=1777".into()]
            }
        );
        let p = parse_mount(&json!({"Type":"volume","Target":"/anon"})).unwrap();
        assert!(matches!(p.source, Source::Volume { name: None, .. }));
    }

    #[test]
    fn bad_mounts() {
        let msg = |v: serde_json::Value| parse_mount(&v).unwrap_err().to_string();
        assert_eq!(
            msg(json!({"Type":"bind","Target":"/c"})),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            msg(json!({"Type":"bind","Source":"/h"})),
            "invalid mount config for type \"bind\": field Target must not be empty"
        );
        assert_eq!(
            msg(json!({"Type":"volume","Source":"v","Target":"c"})),
            "invalid mount config for type \"volume\": invalid mount path: 'c' mount path must be absolute"
        );
        assert_eq!(
            msg(json!({"Type":"tmpfs","Source":"x","Target":"/c"})),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            msg(json!({"Type":"bind","Source":"/h","Target":"/c","VolumeOptions":{}})),
            "invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            msg(json!({"Type":"weird","Target":"/c"})),
            "invalid mount config for type \"weird\": mount type unknown"
        );
        assert_eq!(
            parse_mount(&json!({"Type":"bind","Target":7}))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn tmpfs_and_volumes_from() {
        let p = parse_tmpfs("/run", "size=64m,ro,mode=1777").unwrap();
        assert!(!p.rw);
        assert_eq!(
            p.source,
            Source::Tmpfs {
                data: vec!["size=64m".into(), "mode=1777".into()]
            }
        );
        assert!(parse_tmpfs("run", "").is_err());
        assert_eq!(parse_volumes_from("c1").unwrap(), ("c1".into(), None));
        assert_eq!(
            parse_volumes_from("c1:ro").unwrap(),
            ("c1".into(), Some(false))
        );
        assert_eq!(
            parse_volumes_from("c1:xx").unwrap_err().to_string(),
            "invalid mode: xx"
        );
        assert_eq!(clean("/a//b/../c/."), "/a/c");
    }
}
