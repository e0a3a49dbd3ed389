//! Small pieces shared by berthd, berth-shim and berth-runtime.

pub mod atomic;
pub mod crashpoint;
pub mod mounts;
pub mod mux;
pub mod readonly_exe;
pub mod shim;
pub mod tree;

/// `s` as a system call takes it: an error, not a panic, for a NUL inside.
pub fn c_string(s: &std::ffi::OsStr) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(s.as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))
}
