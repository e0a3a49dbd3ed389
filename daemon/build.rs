//! Records the git commit, build time and compiler for /version, and builds
//! berth-init (daemon/init/berth-init.rs), the `--init` PID 1 that berthd
//! embeds, as a static std-only binary so it runs in any image.

use std::env;
use std::path::PathBuf;
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
    version_info();
    build_init();
}

fn version_info() {
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

/// `$RUSTC -O -C panic=abort -C target-feature=+crt-static` of the init into
/// `$OUT_DIR/berth-init` (included by src/init.rs).
fn build_init() {
    // No rerun-if-changed: the version info above wants the default (rerun
    // when any file of the package changes), which covers the init too.
    let source = PathBuf::from("init/berth-init.rs");

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET for build scripts");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let output = out_dir.join("berth-init");

    let status = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["--target", &target, "-C", "target-feature=+crt-static"])
        .arg(&source)
        .arg("-o")
        .arg(&output)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building {} failed: rustc exited with {s}",
            source.display()
        ),
        Err(e) => panic!("running {rustc:?} to build berth-init: {e}"),
    }
}
