//! Which repositories a blob is known to be in (`host/path` lines per blob
//! under `<data_dir>/sources/`), so a push can ask the registry to mount
//! the blob from there instead of uploading it. Best effort: a record that
//! is missing or stale only costs an upload.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use berth_images::Digest;

fn file(dir: &Path, blob: &Digest) -> PathBuf {
    dir.join("sources").join(blob.hex())
}

fn read(dir: &Path, blob: &Digest) -> Vec<String> {
    fs::read_to_string(file(dir, blob))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

pub(crate) fn record(dir: &Path, blob: &Digest, host: &str, path: &str) {
    let entry = format!("{host}/{path}");
    let mut lines = read(dir, blob);
    if lines.contains(&entry) {
        return;
    }
    lines.push(entry);
    // A handful is plenty to find a mount source.
    if lines.len() > 16 {
        lines.remove(0);
    }
    let target = file(dir, blob);
    // Unique per write: two pushes may record the same blob at once.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = target.with_extension(format!("tmp{}.{n}", std::process::id()));
    let res = fs::create_dir_all(dir.join("sources"))
        .and_then(|()| fs::write(&tmp, lines.join("\n") + "\n"))
        .and_then(|()| fs::rename(&tmp, &target));
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        tracing::debug!(error = %e, "recording the source of blob {blob}");
    }
}

/// Whether repository `path` on `host` is known to hold `blob`, and which
/// other repositories there are.
pub(crate) fn on_host(dir: &Path, blob: &Digest, host: &str, path: &str) -> (bool, Vec<String>) {
    let mut here = false;
    let others = read(dir, blob)
        .into_iter()
        .filter_map(|l| l.strip_prefix(&format!("{host}/")).map(str::to_owned))
        .filter(|p| {
            here |= p == path;
            p != path
        })
        .collect();
    (here, others)
}
