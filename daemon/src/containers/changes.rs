//! `GET /containers/{id}/changes`: what the container changed in its root
//! file system, read from its overlay upper directory (dockerd's overlay
//! `docker diff`): Kind 0 modified, 1 added, 2 deleted (whiteouts).
//!
//! Mount points the runtime had to create (the /etc files, volumes) and
//! directories that only hold such placeholders are left out, as dockerd's
//! init layer hides them.

use serde::Serialize;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::record::ContainerRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[repr(u8)]
pub enum Kind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: u8,
}

/// Paths every container gets mounted over (created in the upper layer by
/// the runtime when the image lacks them).
const RUNTIME_MOUNTS: [&str; 7] = [
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/dev",
    "/proc",
    "/sys",
    "/sbin/docker-init",
];

/// The changes of `rec`, whose writable layer is `upper`, sorted by path.
pub fn changes(rec: &ContainerRecord, upper: &Path) -> io::Result<Vec<Change>> {
    let mut hidden: BTreeSet<String> = RUNTIME_MOUNTS.iter().map(|s| s.to_string()).collect();
    hidden.extend(rec.mounts.iter().map(|m| m.destination.clone()));
    let walker = Walker {
        layers: &rec.layers,
        hidden: &hidden,
    };
    let mut out = Vec::new();
    match walker.walk(upper, &mut out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        r => {
            r?;
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// A directory being walked.
struct Frame {
    path: PathBuf,
    /// Its container path (`""` for the root).
    prefix: String,
    entries: Vec<fs::DirEntry>,
    /// Whether anything below it changed.
    any: bool,
    /// Its own entry in the output, decided once its content is known.
    dir: Option<DirChange>,
}

struct DirChange {
    /// Index of its entry in the output.
    at: usize,
    /// The image's version of it, if any.
    lower: Option<fs::Metadata>,
    md: fs::Metadata,
}

impl Frame {
    fn open(path: &Path, prefix: String, dir: Option<DirChange>) -> io::Result<Frame> {
        let mut entries = fs::read_dir(path)?.collect::<io::Result<Vec<_>>>()?;
        // Popped from the end.
        entries.reverse();
        Ok(Frame {
            path: path.to_path_buf(),
            prefix,
            entries,
            any: false,
            dir,
        })
    }
}

struct Walker<'a> {
    /// Image layers, lowest first.
    layers: &'a [PathBuf],
    hidden: &'a BTreeSet<String>,
}

impl Walker<'_> {
    /// Adds the changes below `top`. Depth-first with an explicit stack, so
    /// a tree of any depth costs heap, never call stack.
    fn walk(&self, top: &Path, out: &mut Vec<Change>) -> io::Result<()> {
        let mut stack = vec![Frame::open(top, String::new(), None)?];
        while let Some(frame) = stack.last_mut() {
            let Some(entry) = frame.entries.pop() else {
                let Some(done) = stack.pop() else { break };
                let (Some(dir), Some(parent)) = (done.dir, stack.last_mut()) else {
                    continue;
                };
                match dir.lower {
                    None => out[dir.at].kind = Kind::Added as u8,
                    // A directory copied up only because something below it
                    // was (or a hidden mount point was created in it).
                    Some(l) if !done.any && same_attrs(&l, &dir.md) && !is_opaque(&done.path) => {
                        out.truncate(dir.at);
                        continue;
                    }
                    Some(_) => {}
                }
                parent.any = true;
                continue;
            };
            let name = entry.file_name();
            let path = format!("{}/{}", frame.prefix, name.to_string_lossy());
            let md = entry.metadata()?;
            if is_whiteout(&md) {
                out.push(Change {
                    path,
                    kind: Kind::Deleted as u8,
                });
                frame.any = true;
                continue;
            }
            let lower = self.lower(&path);
            if self.hidden.contains(&path) {
                continue;
            }
            if md.is_dir() {
                let at = out.len();
                out.push(Change {
                    path: path.clone(),
                    kind: Kind::Modified as u8,
                });
                let child = Frame::open(&entry.path(), path, Some(DirChange { at, lower, md }))?;
                stack.push(child);
                continue;
            }
            let kind = if lower.is_some() {
                Kind::Modified
            } else {
                Kind::Added
            };
            out.push(Change {
                path,
                kind: kind as u8,
            });
            frame.any = true;
        }
        Ok(())
    }

    /// The metadata of `path` in the image, if it is there (the topmost
    /// layer that has it, unless a higher layer deleted it).
    fn lower(&self, path: &str) -> Option<fs::Metadata> {
        let rel = path.trim_start_matches('/');
        for layer in self.layers.iter().rev() {
            match fs::symlink_metadata(layer.join(rel)) {
                Ok(md) if is_whiteout(&md) => return None,
                Ok(md) => return Some(md),
                Err(_) => {}
            }
            let wh = Path::new(rel);
            if let (Some(parent), Some(name)) = (wh.parent(), wh.file_name()) {
                let mut marker = std::ffi::OsString::from(".wh.");
                marker.push(name);
                if layer.join(parent).join(marker).exists() {
                    return None;
                }
            }
        }
        None
    }
}

/// overlayfs marks deletions with a 0:0 character device.
fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    xattr_is_y(dir, "trusted.overlay.opaque")
}

fn xattr_is_y(path: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(p), Ok(n)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()),
        std::ffi::CString::new(OsStr::new(name).as_bytes()),
    ) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: valid NUL-terminated strings and a buffer of the given size.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}

fn same_attrs(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.mode() == b.mode() && a.uid() == b.uid() && a.gid() == b.gid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::record::MountPoint;

    fn rec(layers: Vec<PathBuf>, mounts: &[&str]) -> ContainerRecord {
        let mut r: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "c", "name": "/c", "created": "", "path": "", "args": [], "config": {},
            "host_config": {}, "networking_config": {}, "image_id": "", "layers": [],
            "state": {"status":"exited","pid":0,"exit_code":0,"error":"","oom_killed":false,
                      "started_at":"","finished_at":""},
            "restart_count": 0, "has_been_started": false, "platform": "linux", "runtime": "berth"
        }))
        .unwrap();
        r.layers = layers;
        r.mounts = mounts
            .iter()
            .map(|d| MountPoint {
                destination: d.to_string(),
                ..Default::default()
            })
            .collect();
        r
    }

    #[test]
    fn added_modified_deleted_and_hidden_mount_points() {
        let dir = tempfile::tempdir().unwrap();
        let (layer, upper) = (dir.path().join("layer"), dir.path().join("upper"));
        for d in ["etc", "tmp", "bin", "usr/lib"] {
            fs::create_dir_all(layer.join(d)).unwrap();
        }
        fs::write(layer.join("etc/passwd"), b"root").unwrap();
        fs::write(layer.join("bin/sh"), b"sh").unwrap();
        // The container: edits /etc/passwd, adds /tmp/new and /newdir/f,
        // deletes /bin/sh; the runtime created /etc/hostname and /data.
        for d in ["etc", "tmp", "bin", "newdir", "data", "usr"] {
            fs::create_dir_all(upper.join(d)).unwrap();
        }
        fs::write(upper.join("etc/passwd"), b"root\nx").unwrap();
        fs::write(upper.join("etc/hostname"), b"").unwrap();
        fs::write(upper.join("tmp/new"), b"n").unwrap();
        fs::write(upper.join("newdir/f"), b"f").unwrap();
        nix::sys::stat::mknod(
            &upper.join("bin/sh"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        // /usr copied up with nothing changed below it (same attributes).
        let lmd = fs::metadata(layer.join("usr")).unwrap();
        fs::set_permissions(
            upper.join("usr"),
            std::os::unix::fs::PermissionsExt::from_mode(lmd.mode()),
        )
        .unwrap();

        let got = changes(&rec(vec![layer], &["/data"]), &upper).unwrap();
        let got: Vec<(String, u8)> = got.into_iter().map(|c| (c.path, c.kind)).collect();
        let want: Vec<(String, u8)> = [
            ("/bin", 0),
            ("/bin/sh", 2),
            ("/etc", 0),
            ("/etc/passwd", 0),
            ("/newdir", 1),
            ("/newdir/f", 1),
            ("/tmp", 0),
            ("/tmp/new", 1),
        ]
        .iter()
        .map(|(p, k)| (p.to_string(), *k))
        .collect();
        assert_eq!(got, want);
        assert!(changes(&rec(vec![], &[]), &dir.path().join("none"))
            .unwrap()
            .is_empty());
    }
}
