//! Tar archives of test directories, made with the host's `tar`.

use std::path::Path;
use std::process::Command;

/// `tar -C dir -cf archive member` (`-czf` when `archive` ends in .gz);
/// panics when tar fails.
pub fn create(dir: &Path, archive: &Path, member: &str) {
    let gzip = archive.extension().is_some_and(|e| e == "gz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg(if gzip { "-czf" } else { "-cf" })
        .arg(archive)
        .arg(member)
        .status()
        .unwrap();
    assert!(st.success());
}
