//! Crash-safe file writes: write a temp file beside the target, fsync it,
//! rename it over the target, then fsync the directory.
//!
//! Files under a volatile root (the exec root, the runtime's state under
//! /run) use [`write_file_volatile`]: the rename still means a reader never
//! sees a torn file, but nothing is forced to disk, because such files do
//! not outlive a reboot anyway.
//!
//! A file rewritten at every step of something frequent (a container's
//! record) uses [`Swapped`]: the new content is written over a kept
//! sibling, and the two names are exchanged. A rename over a file frees
//! the old one, and on ext4 that costs a block allocation and a write-out
//! forced by the rename (`auto_da_alloc`) plus, where it is mounted with
//! `discard`, a device round trip for the freed blocks: about 0.1 ms a
//! write on this project's machines against 0.01 ms for the exchange.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Atomically replace `path` with `data` (mode 0600 unless `mode` given).
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    write_file_mode(path, data, 0o600)
}

pub fn write_file_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, true)
}

/// Replace `path` with `data` through a rename, without fsync: for files
/// that live on volatile storage.
pub fn write_file_volatile(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A file replaced by exchanging it with a kept sibling, `.NAME.prev`,
/// that holds the version before (see the module's notes).
///
/// A reader never sees a torn file while the host is up: the exchange is
/// atomic and the sibling is the only file written in place. A host
/// crash in the middle of an unforced write can leave the named file
/// torn, though (its blocks half written back): [`Swapped::read`] falls
/// back to the sibling then.
pub struct Swapped<'a> {
    path: &'a Path,
}

impl<'a> Swapped<'a> {
    pub fn new(path: &'a Path) -> Self {
        Swapped { path }
    }

    fn sibling(&self) -> io::Result<std::path::PathBuf> {
        let name = self
            .path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
        let mut prev = std::ffi::OsString::from(".");
        prev.push(name);
        prev.push(".prev");
        Ok(self.path.with_file_name(prev))
    }

    /// Replace the file with `data` (a new file gets `mode`); `durable`
    /// forces it to disk before returning. Where the file system cannot
    /// exchange names, a plain atomic replace.
    pub fn write(&self, data: &[u8], mode: u32, durable: bool) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let prev = self.sibling()?;
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&prev)?;
        f.write_all_at(data, 0)?;
        f.set_len(data.len() as u64)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        match exchange(&prev, self.path) {
            Ok(()) => {}
            // The first version.
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::rename(&prev, self.path)?,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
                let _ = fs::remove_file(&prev);
                return replace(self.path, data, mode, durable);
            }
            Err(e) => return Err(e),
        }
        if durable {
            File::open(self.path.parent().unwrap_or_else(|| Path::new(".")))?.sync_all()?;
        }
        Ok(())
    }

    /// The file's content as `parse` accepts it, else the version before
    /// it; the error is the named file's.
    pub fn read<T, E>(&self, parse: impl Fn(&[u8]) -> Result<T, E>) -> io::Result<T>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let data = fs::read(self.path)?;
        match parse(&data) {
            Ok(v) => Ok(v),
            Err(e) => {
                let e = io::Error::new(io::ErrorKind::InvalidData, e);
                match self.sibling().and_then(fs::read) {
                    Ok(before) => parse(&before).map_err(|_| e),
                    Err(_) => Err(e),
                }
            }
        }
    }
}

/// renameat2(RENAME_EXCHANGE): NotFound when `b` does not exist.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let a = crate::c_string(a.as_os_str())?;
    let b = crate::c_string(b.as_os_str())?;
    // SAFETY: two valid C strings; renameat2 only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Atomically write `value` as JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_file(path, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("berth-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn swapped_keeps_the_version_before_and_reads_it_when_the_file_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let file = Swapped::new(&p);
        let parse = |d: &[u8]| serde_json::from_slice::<serde_json::Value>(d);
        file.write(br#"{"v":1,"pad":"long first version"}"#, 0o600, true)
            .unwrap();
        file.write(br#"{"v":2}"#, 0o600, false).unwrap();
        assert_eq!(
            fs::read(&p).unwrap(),
            br#"{"v":2}"#,
            "a shorter write is not cut"
        );
        assert_eq!(file.read(parse).unwrap()["v"], 2);
        file.write(br#"{"v":3}"#, 0o600, false).unwrap();
        assert_eq!(file.read(parse).unwrap()["v"], 3);
        let prev = dir.path().join(".config.json.prev");
        assert_eq!(fs::read(&prev).unwrap(), br#"{"v":2}"#);
        // What a host crash in an unforced write can leave.
        fs::write(&p, br#"{"v":4,"#).unwrap();
        assert_eq!(file.read(parse).unwrap()["v"], 2);
        fs::write(&prev, b"").unwrap();
        assert_eq!(
            file.read(parse).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
