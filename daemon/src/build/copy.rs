//! COPY and ADD: select the sources (globs, `.dockerignore`), apply
//! dockerd's destination rules, checksum what would be copied (contents
//! and metadata, never mtimes) for the cache, and write it into the step's
//! root file system through a tar stream and the same in-root extraction
//! as `docker cp`. Sources are read through an [`FsView`], so symlinks
//! never lead out of the context or the source stage.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use sha2::{Digest as _, Sha256};

use super::ignore::{clean, Ignore};
use super::BuildError;
use crate::containers::archive::{self, sys, ArchiveError, ExtractOptions, FsView};

/// Bound on the entries one COPY may select (a runaway glob or tree).
const MAX_ENTRIES: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// One thing to create in the destination.
#[derive(Debug, Clone)]
struct Entry {
    /// Source path components in the source view.
    src: Vec<OsString>,
    /// Destination path, relative to `/`.
    dest: String,
    kind: Kind,
    mode: u32,
    size: u64,
    mtime: i64,
    link: Vec<u8>,
}

pub struct CopyRequest<'a> {
    pub instruction: &'a str,
    pub sources: &'a [String],
    /// Absolute, already joined with WORKDIR; may end with `/`.
    pub dest: &'a str,
    /// From the build context (not `--from`): forbid `..` escapes, honour
    /// `.dockerignore`.
    pub ignore: Option<&'a Ignore>,
    pub chmod: Option<u32>,
    /// ADD: local tar archives are extracted.
    pub extract_archives: bool,
}

/// What a COPY will do, computed before the cache lookup.
pub struct CopyPlan {
    entries: Vec<Entry>,
    /// Archives to unpack (ADD): source file, destination directory.
    archives: Vec<(Vec<OsString>, String)>,
    /// `file:<sha>`, `dir:<sha>` or `multi:<sha>`, as dockerd names it in
    /// the history; the digest covers contents and metadata.
    pub summary: String,
}

fn not_found(instr: &str, src: &str) -> BuildError {
    BuildError::Step(format!(
        "{instr} failed: file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
    ))
}

fn io_err(what: &str) -> impl Fn(io::Error) -> BuildError + '_ {
    move |e| BuildError::Step(format!("{what}: {e}"))
}

fn arch_err(e: ArchiveError) -> BuildError {
    match e {
        ArchiveError::NotFound => BuildError::Step("no such file or directory".into()),
        other => BuildError::Step(other.to_string()),
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn join_rel(parts: &[OsString]) -> String {
    parts
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Source paths named by `src`: itself, or the glob's matches (sorted).
fn expand_source(
    view: &FsView,
    req: &CopyRequest<'_>,
    src: &str,
) -> Result<Vec<Vec<OsString>>, BuildError> {
    if req.ignore.is_some() {
        // Lexically first: `../x` is refused even if it would resolve in root.
        let mut depth: i64 = 0;
        for part in src.split('/') {
            match part {
                "" | "." => {}
                ".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Err(BuildError::Step(format!(
                    "{} failed: forbidden path outside the build context: {src} ()",
                    req.instruction
                )));
            }
        }
    }
    let cleaned = clean(src);
    if !has_glob(&cleaned) {
        let parts = archive::view_components(cleaned.as_bytes());
        return Ok(vec![parts]);
    }
    let mut current: Vec<Vec<OsString>> = vec![Vec::new()];
    for seg in cleaned.split('/') {
        let mut next = Vec::new();
        for base in &current {
            if !has_glob(seg) {
                let mut p = base.clone();
                p.push(OsString::from(seg));
                next.push(p);
                continue;
            }
            let Ok(resolved) = view.resolve(join_abs(base).as_bytes(), true) else {
                continue;
            };
            let Ok(fd) = view.open(&resolved, libc::O_PATH | libc::O_DIRECTORY) else {
                continue;
            };
            for name in sys::read_dir_names(fd.as_fd()).map_err(io_err("listing a directory"))? {
                if berth_images::filters::glob_match(seg.as_bytes(), name.as_bytes()) {
                    let mut p = base.clone();
                    p.push(name);
                    next.push(p);
                }
            }
            if next.len() > MAX_ENTRIES {
                return Err(BuildError::Step("too many files match".into()));
            }
        }
        current = next;
    }
    Ok(current)
}

fn join_abs(parts: &[OsString]) -> String {
    format!("/{}", join_rel(parts))
}

fn lstat(view: &FsView, parts: &[OsString]) -> Result<Option<libc::stat>, BuildError> {
    view.lstat(parts).map_err(io_err("stat"))
}

fn kind_of(st: &libc::stat) -> Option<Kind> {
    match sys::file_type(st) {
        libc::S_IFDIR => Some(Kind::Dir),
        libc::S_IFREG => Some(Kind::File),
        libc::S_IFLNK => Some(Kind::Symlink),
        _ => None,
    }
}

fn entry(view: &FsView, src: Vec<OsString>, st: &libc::stat, dest: String) -> Option<Entry> {
    let kind = kind_of(st)?;
    let link = if kind == Kind::Symlink {
        view.read_link(&src).ok()?.as_bytes().to_vec()
    } else {
        Vec::new()
    };
    Some(Entry {
        src,
        dest,
        kind,
        mode: st.st_mode & 0o7777,
        size: if kind == Kind::File {
            st.st_size as u64
        } else {
            0
        },
        mtime: st.st_mtime,
        link,
    })
}

/// Walks the directory `root` (resolved) iteratively; entries go below `dest`.
fn walk_dir(
    view: &FsView,
    ignore: Option<&Ignore>,
    root: &[OsString],
    dest: &str,
    out: &mut Vec<Entry>,
) -> Result<(), BuildError> {
    let mut stack: Vec<(Vec<OsString>, String)> = vec![(root.to_vec(), dest.to_owned())];
    while let Some((dir, dest_dir)) = stack.pop() {
        let fd = view
            .open(&dir, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(io_err("opening a directory"))?;
        for name in sys::read_dir_names(fd.as_fd()).map_err(io_err("listing a directory"))? {
            let mut src = dir.clone();
            src.push(name.clone());
            if let Some(ig) = ignore {
                if ig.excluded(&join_rel(&src)) && !ig.has_exceptions() {
                    continue;
                }
            }
            let Some(st) = lstat(view, &src)? else {
                continue;
            };
            let d = format!("{dest_dir}/{}", name.to_string_lossy());
            let excluded = ignore.is_some_and(|ig| ig.excluded(&join_rel(&src)));
            let Some(e) = entry(view, src.clone(), &st, d.clone()) else {
                continue;
            };
            if e.kind == Kind::Dir {
                stack.push((src, d));
            }
            if !excluded {
                out.push(e);
            }
            if out.len() > MAX_ENTRIES {
                return Err(BuildError::Step("too many files to copy".into()));
            }
        }
    }
    Ok(())
}

/// Is the file a tar archive (plain or compressed) that ADD unpacks?
fn is_archive(view: &FsView, parts: &[OsString]) -> bool {
    let Ok(fd) = view.open(parts, libc::O_PATH) else {
        return false;
    };
    let Ok(fd) = sys::reopen(fd.as_fd(), libc::O_RDONLY) else {
        return false;
    };
    let mut head = [0u8; 512];
    let mut f = File::from(fd);
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    let h = &head[..n];
    h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &h[257..262] == b"ustar")
}

/// Does `dest` name an existing directory in the target?
pub fn is_dir_in(target: &FsView, dest: &str) -> bool {
    target
        .resolve(dest.as_bytes(), true)
        .ok()
        .and_then(|p| target.lstat(&p).ok().flatten())
        .is_some_and(|st| sys::file_type(&st) == libc::S_IFDIR)
}

/// Plans a copy from `view`. `dest_is_dir_in_target` is asked only when
/// the destination's existing type decides where a single file goes, so a
/// caller can avoid mounting the target for the common directory copies.
pub fn plan(
    view: &FsView,
    dest_is_dir_in_target: &mut dyn FnMut(&str) -> Result<bool, BuildError>,
    req: &CopyRequest<'_>,
) -> Result<CopyPlan, BuildError> {
    let mut matched: Vec<Vec<OsString>> = Vec::new();
    for src in req.sources {
        let found = expand_source(view, req, src)?;
        let mut any = false;
        for parts in found {
            let resolved = match view.resolve(join_abs(&parts).as_bytes(), true) {
                Ok(r) => r,
                Err(_) => continue,
            };
            if lstat(view, &resolved)?.is_none() {
                continue;
            }
            if let Some(ig) = req.ignore {
                if !parts.is_empty() && ig.excluded(&join_rel(&parts)) {
                    continue;
                }
            }
            any = true;
            matched.push(resolved);
        }
        if !any {
            if has_glob(src) {
                return Err(BuildError::Step(format!(
                    "{} failed: no source files were specified",
                    req.instruction
                )));
            }
            return Err(not_found(req.instruction, src));
        }
    }
    let single_file = matched.len() == 1
        && lstat(view, &matched[0])?.is_some_and(|st| kind_of(&st) != Some(Kind::Dir));
    let dest_is_dir = req.dest.ends_with('/')
        || matched.len() > 1
        || (single_file && dest_is_dir_in_target(req.dest)?);
    let dest_root = clean(req.dest);
    let mut entries = Vec::new();
    let mut archives = Vec::new();
    let mut summary_kind = if matched.len() > 1 { "multi" } else { "file" };
    for src in matched {
        let Some(st) = lstat(view, &src)? else {
            continue;
        };
        match kind_of(&st) {
            Some(Kind::Dir) => {
                if summary_kind == "file" {
                    summary_kind = "dir";
                }
                walk_dir(view, req.ignore, &src, &dest_root, &mut entries)?;
            }
            Some(_) => {
                if req.extract_archives && is_archive(view, &src) {
                    archives.push((src, dest_root.clone()));
                    continue;
                }
                let name = src
                    .last()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dest = if dest_is_dir {
                    if dest_root.is_empty() {
                        name
                    } else {
                        format!("{dest_root}/{name}")
                    }
                } else {
                    dest_root.clone()
                };
                if let Some(e) = entry(view, src, &st, dest) {
                    entries.push(e);
                }
            }
            None => {}
        }
    }
    let digest = checksum(view, &entries, &archives, req.chmod)?;
    Ok(CopyPlan {
        entries,
        archives,
        summary: format!("{summary_kind}:{digest}"),
    })
}

fn open_file(view: &FsView, parts: &[OsString]) -> Result<File, BuildError> {
    let fd = view
        .open(parts, libc::O_PATH)
        .map_err(io_err("opening a source file"))?;
    let fd = sys::reopen(fd.as_fd(), libc::O_RDONLY).map_err(io_err("opening a source file"))?;
    Ok(File::from(fd))
}

/// sha256 over every entry's destination, type, mode, size, link target
/// and content.
fn checksum(
    view: &FsView,
    entries: &[Entry],
    archives: &[(Vec<OsString>, String)],
    chmod: Option<u32>,
) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let files = entries
        .iter()
        .map(|e| (&e.src, e.dest.as_str(), e.kind, e.mode, e.size, &e.link[..]))
        .chain(
            archives
                .iter()
                .map(|(s, d)| (s, d.as_str(), Kind::File, 0, 0, &[][..])),
        );
    for (src, dest, kind, mode, size, link) in files {
        h.update(dest.as_bytes());
        h.update([0, kind as u8]);
        h.update(chmod.unwrap_or(mode).to_le_bytes());
        h.update(size.to_le_bytes());
        h.update(link);
        h.update([0]);
        if kind == Kind::File {
            let mut f = open_file(view, src)?;
            loop {
                let n = f.read(&mut buf).map_err(io_err("reading a source file"))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
    }
    Ok(hex::encode(h.finalize()))
}

impl CopyPlan {
    /// Writes the planned files into `target` (a mounted step root file
    /// system), owned by `owner`.
    pub fn apply(
        &self,
        src_dir: &std::path::Path,
        target: &FsView,
        owner: (u32, u32),
        chmod: Option<u32>,
    ) -> Result<(), BuildError> {
        let root = archive::prepare_extract(target, "/", false).map_err(arch_err)?;
        let opts = || ExtractOptions {
            no_overwrite_dir_non_dir: false,
            chown: Some(owner),
        };
        // Parents that do not exist yet are created root-owned 0755 by the
        // extraction; the entries come in walk order (parents first).
        let (reader, mut writer) = io::pipe().map_err(io_err("creating a pipe"))?;
        std::thread::scope(|s| -> Result<(), BuildError> {
            let producer = s.spawn(move || -> Result<(), BuildError> {
                let view = &source_view(src_dir)?;
                let mut tar = tar::Builder::new(&mut writer);
                for e in &self.entries {
                    append(&mut tar, view, e, chmod)?;
                }
                tar.finish().map_err(io_err("writing the copy stream"))?;
                drop(tar);
                writer.flush().map_err(io_err("writing the copy stream"))?;
                Ok(())
            });
            let extracted = archive::extract(target, &root, reader, opts()).map_err(arch_err);
            let produced = producer
                .join()
                .map_err(|_| BuildError::Internal("copy thread panicked".into()))?;
            extracted?;
            produced
        })?;
        let view = &source_view(src_dir)?;
        for (src, dest) in &self.archives {
            // The destination directory first, then the archive into it.
            let dir = format!("{dest}/");
            let dir_entry = Entry {
                src: Vec::new(),
                dest: dest.clone(),
                kind: Kind::Dir,
                mode: 0o755,
                size: 0,
                mtime: 0,
                link: Vec::new(),
            };
            if !dest.is_empty() && !is_dir_in(target, &format!("/{dir}")) {
                let mut buf = Vec::new();
                {
                    let mut tar = tar::Builder::new(&mut buf);
                    append(&mut tar, view, &dir_entry, None)?;
                    tar.finish().map_err(io_err("writing the copy stream"))?;
                }
                archive::extract(target, &root, &buf[..], opts()).map_err(arch_err)?;
            }
            let into =
                archive::prepare_extract(target, &format!("/{dest}"), false).map_err(arch_err)?;
            let file = open_file(view, src)?;
            archive::extract(
                target,
                &into,
                file,
                ExtractOptions {
                    no_overwrite_dir_non_dir: false,
                    chown: None,
                },
            )
            .map_err(arch_err)?;
        }
        Ok(())
    }
}

/// A read-only view of a source tree (context or mounted stage).
pub fn source_view(dir: &std::path::Path) -> Result<FsView, BuildError> {
    FsView::new(vec![archive::ViewMount {
        destination: "/".into(),
        source: dir.to_owned(),
        read_only: true,
    }])
    .map_err(arch_err)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    view: &FsView,
    e: &Entry,
    chmod: Option<u32>,
) -> Result<(), BuildError> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(chmod.unwrap_or(e.mode));
    header.set_mtime(e.mtime.max(0) as u64);
    header.set_uid(0);
    header.set_gid(0);
    let path = e.dest.trim_start_matches('/');
    let err = io_err("writing the copy stream");
    match e.kind {
        Kind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{path}/"), io::empty())
                .map_err(err)
        }
        Kind::Symlink => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, path, OsStr::from_bytes(&e.link))
                .map_err(err)
        }
        Kind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(e.size);
            // Exactly the size planned, even if the file changed meanwhile.
            let f = open_file(view, &e.src)?;
            let data = f.take(e.size).chain(io::repeat(0)).take(e.size);
            tar.append_data(&mut header, path, data).map_err(err)
        }
    }
}

/// uid/gid for `--chown=user[:group]` from the target's /etc files.
pub fn lookup_owner(target: &FsView, spec: &str) -> Result<(u32, u32), BuildError> {
    let passwd = read_text(target, "/etc/passwd");
    let group = read_text(target, "/etc/group");
    let u = crate::containers::spec::user::resolve(spec, &[], &passwd, &group).map_err(|e| {
        BuildError::Step(format!(
            "unable to convert uid/gid chown string to host mapping: {e}"
        ))
    })?;
    Ok((u.uid, u.gid))
}

fn read_text(view: &FsView, path: &str) -> String {
    let Ok(parts) = view.resolve(path.as_bytes(), true) else {
        return String::new();
    };
    let Ok(mut f) = open_file(view, &parts) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = (&mut f).take(16 << 20).read_to_string(&mut s);
    s
}
