//! `Config.User` and `HostConfig.GroupAdd` resolved against the
//! container's own /etc/passwd and /etc/group. The files are opened with
//! RESOLVE_IN_ROOT, so a symlink in the image cannot point us at the host's.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// uid, gid, additional gids and the home directory of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    #[error("reading {file} in the container: {err}")]
    Read { file: String, err: String },
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Read a file of the container's rootfs without leaving it. A missing file
/// is an empty file, as for images without /etc/passwd.
pub fn read_in_root(rootfs: &Path, rel: &str) -> Result<String, UserError> {
    let err = |e: &dyn std::fmt::Display| UserError::Read {
        file: rel.to_string(),
        err: e.to_string(),
    };
    let root = nix::fcntl::open(
        rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(&e))?;
    // SAFETY: `open` returned a fresh descriptor we now own.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match nix::fcntl::openat2(root.as_raw_fd(), rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(err(&e)),
    };
    // SAFETY: as above.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut text = String::new();
    // Cap what we read: a huge passwd file is not worth a daemon's memory.
    (&mut file)
        .take(16 << 20)
        .read_to_string(&mut text)
        .map_err(|e| err(&e))?;
    Ok(text)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Resolve `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) and
/// `group_add` from the given passwd and group file contents.
pub fn resolve(
    user: &str,
    group_add: &[String],
    passwd: &str,
    group: &str,
) -> Result<ResolvedUser, UserError> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = users.iter().find(|e| e.name == user_part).or_else(|| {
        let uid: u32 = user_part.parse().ok()?;
        users.iter().find(|e| e.uid == uid)
    });
    let (uid, mut gid, name, home) = match (entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.clone()), e.home.clone()),
        (None, Ok(uid)) => (uid, 0, None, "/".to_string()),
        (None, Err(_)) => return Err(UserError::NoUser(user_part.to_string())),
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = find_group(&groups, g)?;
    }

    let mut additional = Vec::new();
    // Supplementary groups from /etc/group apply only when no group was
    // given explicitly, as in runc/libcontainer.
    if group_part.is_none() {
        if let Some(name) = &name {
            for g in &groups {
                if g.members.iter().any(|m| m == name) && g.gid != gid {
                    additional.push(g.gid);
                }
            }
        }
    }
    for g in group_add {
        additional.push(find_group(&groups, g)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        home,
    })
}

fn find_group(groups: &[GroupEntry], g: &str) -> Result<u32, UserError> {
    if let Some(e) = groups.iter().find(|e| e.name == g) {
        return Ok(e.gid);
    }
    g.parse::<u32>()
        .map_err(|_| UserError::NoGroup(g.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:user,root\nnogroup:x:65534:\nuser:x:1000:\naudio:x:29:user\n";

    #[test]
    fn default_is_root() {
        let r = resolve("", &[], PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (0, 0));
        assert_eq!(r.home, "/root");
        assert_eq!(r.additional_gids, vec![10]);
    }

    #[test]
    fn names_numbers_and_groups() {
        let r = resolve("user", &[], PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        assert_eq!(r.additional_gids, vec![10, 29]);
        let r = resolve(
            "1000:nogroup",
            &["audio".into(), "4242".into()],
            PASSWD,
            GROUP,
        )
        .unwrap();
        assert_eq!((r.uid, r.gid), (1000, 65534));
        assert_eq!(r.additional_gids, vec![29, 4242]);
        let r = resolve("4321:42", &[], PASSWD, GROUP).unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (4321, 42, "/"));
    }

    #[test]
    fn unknown_names_fail_like_dockerd() {
        assert_eq!(
            resolve("ghost", &[], PASSWD, GROUP)
                .unwrap_err()
                .to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
        assert!(matches!(
            resolve("user:ghosts", &[], PASSWD, GROUP),
            Err(UserError::NoGroup(_))
        ));
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        // An absolute symlink resolves inside the root, not to the host file.
        std::os::unix::fs::symlink("/secret", dir.path().join("etc/passwd")).unwrap();
        std::fs::write(dir.path().join("secret"), "inside:x:7:7::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(
            "../../../../../../etc/hostname",
            dir.path().join("etc/group"),
        )
        .unwrap();
        let passwd = read_in_root(dir.path(), "etc/passwd").unwrap();
        assert_eq!(passwd, "inside:x:7:7::/:/bin/sh\n");
        // `..` cannot climb out: it ends at the root, where etc/hostname is missing.
        assert_eq!(read_in_root(dir.path(), "etc/group").unwrap(), "");
    }
}
