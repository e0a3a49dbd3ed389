//! Seccomp profiles from config.json, enforced on busybox containers run by
//! berth-runtime: configured errnos, argument conditions, kill actions,
//! default actions, unknown names.

mod runtime_support;

use runtime_support::Bundle;
use serde_json::json;

fn with_seccomp(b: &mut Bundle, seccomp: serde_json::Value) {
    b.config["linux"]["seccomp"] = seccomp;
}

/// mkdir fails with `errno` (SCMP_ACT_ERRNO's own default without one);
/// everything else is allowed.
fn deny_mkdir(b: &mut Bundle, errno: Option<u32>) {
    let mut rule = json!({ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" });
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    with_seccomp(
        b,
        json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule] }),
    );
}

#[test]
fn denied_syscall_fails_with_the_configured_errno() {
    let mut b = Bundle::new();
    with_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
            "syscalls": [
                { "names": ["mkdir", "mkdirat", "no_such_syscall_is_skipped"],
                  "action": "SCMP_ACT_ERRNO", "errnoRet": 122 }
            ]
        }),
    );
    b.set_args(&[
        "sh",
        "-c",
        "mkdir /tmp/x; echo rc=$?; ls / >/dev/null && echo listed",
    ]);
    let out = b.run("errno");
    // 122 is EDQUOT: an errno no real mkdir in /tmp would give.
    assert!(
        out.stderr.contains("Disk quota exceeded"),
        "mkdir should fail with EDQUOT: {out:?}"
    );
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    assert!(
        out.stdout.contains("listed"),
        "other syscalls still work: {out:?}"
    );
}

/// An exec'd process gets the container's filter: the first exec
/// compiles and keeps it, later ones install the kept one.
#[test]
fn exec_runs_under_the_container_filter() {
    let mut b = Bundle::new();
    deny_mkdir(&mut b, Some(122));
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("execfilter");
    for round in 0..2 {
        let out = b.rt(&["exec", &id, "sh", "-c", "mkdir /tmp/x$$; echo rc=$?"]);
        assert!(
            out.stderr.contains("Disk quota exceeded") && out.stdout.contains("rc=1"),
            "exec {round}: mkdir should fail with EDQUOT: {out:?}"
        );
    }
    let out = b.rt(&["exec", &id, "sh", "-c", "ls / >/dev/null && echo listed"]);
    assert!(out.stdout.contains("listed"), "{out:?}");
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn errno_action_without_errno_ret_is_eperm() {
    let mut b = Bundle::new();
    deny_mkdir(&mut b, None);
    // Without seccomp this would be EROFS (read-only rootfs).
    b.set_args(&["sh", "-c", "mkdir /x; echo rc=$?"]);
    let out = b.run("deferrno");
    assert!(out.stdout.contains("rc=1"), "mkdir should fail: {out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
}

#[test]
fn argument_conditions_select_the_call() {
    let mut b = Bundle::new();
    // kill(pid, SIGKILL) is refused; kill(pid, SIGTERM) is not.
    with_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                { "names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                  "args": [ { "index": 1, "value": 9, "op": "SCMP_CMP_EQ" } ] }
            ]
        }),
    );
    b.set_args(&[
        "sh",
        "-c",
        "sleep 100 & p=$!; kill -9 $p; echo kill9=$?; kill -15 $p; echo kill15=$?; wait $p; echo done",
    ]);
    let out = b.run("args");
    assert!(
        out.stdout.contains("kill9=1"),
        "SIGKILL must be refused: {out:?}"
    );
    assert!(
        out.stdout.contains("kill15=0"),
        "SIGTERM must pass: {out:?}"
    );
    assert!(out.stdout.contains("done"), "{out:?}");
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let mut b = Bundle::new();
    with_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [ { "names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS" } ]
        }),
    );
    b.set_args(&["uname"]);
    let out = b.run("kill");
    assert_eq!(out.code(), Some(128 + libc::SIGSYS), "{out:?}");
}

#[test]
fn allow_list_with_default_errno() {
    let mut b = Bundle::new();
    // A deny-by-default profile: the minimum `true` (a static busybox)
    // needs, plus what the runtime's final exec path uses. `echo` in the
    // shell then fails for lack of write, proving the default applies.
    let allowed = [
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "brk",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "rseq",
        "prlimit64",
        "getuid",
        "getgid",
        "geteuid",
        "getegid",
        "getpid",
        "getppid",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "mmap",
        "munmap",
        "mprotect",
        "close",
        "read",
        "fstat",
        "newfstatat",
        "readlinkat",
        "getrandom",
        "capget",
        "capset",
        "prctl",
        "setgroups",
        "setresuid",
        "setresgid",
        "fcntl",
        "close_range",
        "getcwd",
        "chdir",
        "ioctl",
        "openat",
        "wait4",
        "dup2",
        "dup3",
    ];
    with_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [ { "names": allowed.to_vec(), "action": "SCMP_ACT_ALLOW" } ]
        }),
    );
    b.set_args(&["true"]);
    let out = b.run("allowlist");
    assert!(out.success(), "true under an allow-list: {out:?}");
    b.set_args(&["sh", "-c", "echo hello"]);
    let out = b.run("allowlist-write");
    assert!(
        !out.stdout.contains("hello"),
        "write is not allowed, so nothing can be printed: {out:?}"
    );
}
