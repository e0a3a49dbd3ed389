//! Records the git commit, build time and compiler for /version.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let commit =
        output("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_else(|| "rustc (unknown)".into());
    let build_time = output("date", &["-u", "+%Y-%m-%dT%H:%M:%S.000000000+00:00"])
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=BERTH_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=BERTH_BUILD_TIME={build_time}");
}
