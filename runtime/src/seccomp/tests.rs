use super::*;
use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

/// Runs a compiled program against one seccomp_data, like the kernel does.
fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let word = |off: u32| {
        let o = off as usize;
        u32::from_le_bytes(data[o..o + 4].try_into().unwrap())
    };
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => acc = word(i.k),
            ALU_AND_K => acc &= i.k,
            JMP_JA => pc += i.k as usize,
            RET_K => return i.k,
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K | JMP_JSET_K => {
                let taken = match i.code {
                    JMP_JEQ_K => acc == i.k,
                    JMP_JGT_K => acc > i.k,
                    JMP_JGE_K => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

fn native_arch() -> u32 {
    native().unwrap().audit_arch
}

fn nr(name: &str) -> u32 {
    syscall_number(name).unwrap()
}

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> oci_spec::runtime::LinuxSyscall {
    let mut b = LinuxSyscallBuilder::default()
        .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(action);
    if let Some(e) = errno {
        b = b.errno_ret(e);
    }
    if !args.is_empty() {
        b = b.args(args);
    }
    b.build().unwrap()
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64, two: Option<u64>) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(t) = two {
        b = b.value_two(t);
    }
    b.build().unwrap()
}

fn filter(
    default: LinuxSeccompAction,
    default_errno: Option<u32>,
    syscalls: Vec<oci_spec::runtime::LinuxSyscall>,
) -> Filter {
    let mut b = LinuxSeccompBuilder::default()
        .default_action(default)
        .syscalls(syscalls);
    if let Some(e) = default_errno {
        b = b.default_errno_ret(e);
    }
    compile(&b.build().unwrap()).unwrap()
}

const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;
const ERRNO: LinuxSeccompAction = LinuxSeccompAction::ScmpActErrno;

#[test]
fn names_resolve_on_the_native_table() {
    assert!(syscall_number("read").is_some());
    assert!(syscall_number("clone3").is_some());
    assert_eq!(syscall_number("no_such_syscall"), None);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("openat2"), Some(437));
    }
}

#[test]
fn tables_are_sorted_for_binary_search() {
    for t in [tables::X86_64, tables::AARCH64] {
        assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

#[test]
fn per_syscall_actions_and_errnos() {
    let f = filter(
        ERRNO,
        Some(1),
        vec![
            rule(&["read", "write", "not_a_syscall"], ALLOW, None, vec![]),
            rule(&["clone3"], ERRNO, Some(38), vec![]),
            rule(&["mkdirat"], ERRNO, None, vec![]),
        ],
    );
    let p = f.instructions();
    let a = native_arch();
    assert_eq!(run(p, a, nr("read"), [0; 6]), RET_ALLOW);
    assert_eq!(run(p, a, nr("write"), [0; 6]), RET_ALLOW);
    assert_eq!(run(p, a, nr("clone3"), [0; 6]), RET_ERRNO | 38);
    assert_eq!(run(p, a, nr("mkdirat"), [0; 6]), RET_ERRNO | 1);
    assert_eq!(run(p, a, nr("getpid"), [0; 6]), RET_ERRNO | 1);
}

#[test]
fn foreign_abis_cannot_bypass_a_deny_list() {
    let f = filter(
        ALLOW,
        None,
        vec![rule(&["mkdirat"], ERRNO, Some(13), vec![])],
    );
    let p = f.instructions();
    let i386 = Arch::ScmpArchX86 as u32;
    assert_eq!(run(p, i386, 39, [0; 6]), RET_ERRNO | libc::ENOSYS as u32);
    if cfg!(target_arch = "x86_64") {
        let x32 = nr("mkdirat") | X32_SYSCALL_BIT;
        assert_eq!(
            run(p, native_arch(), x32, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }
    // An allow-list default applies to foreign ABIs as is.
    let f = filter(ERRNO, Some(1), vec![rule(&["read"], ALLOW, None, vec![])]);
    assert_eq!(run(f.instructions(), i386, 3, [0; 6]), RET_ERRNO | 1);
}

#[test]
fn argument_comparisons_use_all_64_bits() {
    use LinuxSeccompOperator as Op;
    let v: u64 = 0x0000_0001_0000_0010;
    type Check = fn(u64, u64) -> bool;
    let cases: [(Op, Check); 6] = [
        (Op::ScmpCmpEq, |a, v| a == v),
        (Op::ScmpCmpNe, |a, v| a != v),
        (Op::ScmpCmpGt, |a, v| a > v),
        (Op::ScmpCmpGe, |a, v| a >= v),
        (Op::ScmpCmpLt, |a, v| a < v),
        (Op::ScmpCmpLe, |a, v| a <= v),
    ];
    let probes = [
        0,
        0x10,
        0x11,
        v - 1,
        v,
        v + 1,
        0x0000_0002_0000_0000,
        0x0000_0000_ffff_ffff,
        u64::MAX,
    ];
    for (op, want) in cases {
        let f = filter(
            ALLOW,
            None,
            vec![rule(
                &["getpgid"],
                ERRNO,
                Some(7),
                vec![arg(2, op, v, None)],
            )],
        );
        for a in probes {
            let got = run(
                f.instructions(),
                native_arch(),
                nr("getpgid"),
                [0, 0, a, 0, 0, 0],
            );
            let expect = if want(a, v) { RET_ERRNO | 7 } else { RET_ALLOW };
            assert_eq!(got, expect, "{op:?} arg={a:#x} value={v:#x}");
        }
    }
}

#[test]
fn masked_eq_and_same_index_alternatives() {
    use LinuxSeccompOperator as Op;
    // clone: deny when any namespace flag bit is set (docker's shape).
    let ns_mask = 0x7E02_0000u64;
    let f = filter(
        ALLOW,
        None,
        vec![
            rule(
                &["clone"],
                ALLOW,
                None,
                vec![arg(0, Op::ScmpCmpMaskedEq, ns_mask, Some(0))],
            ),
            rule(&["clone"], ERRNO, Some(1), vec![]),
            // personality(0) or personality(8): two conditions on index 0 are ORed.
            rule(
                &["personality"],
                ALLOW,
                None,
                vec![
                    arg(0, Op::ScmpCmpEq, 0, None),
                    arg(0, Op::ScmpCmpEq, 8, None),
                ],
            ),
        ],
    );
    let p = f.instructions();
    let a = native_arch();
    assert_eq!(run(p, a, nr("clone"), [0x11, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(p, a, nr("clone"), [0x2000_0011, 0, 0, 0, 0, 0]),
        RET_ERRNO | 1
    );
    assert_eq!(run(p, a, nr("personality"), [0, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(p, a, nr("personality"), [8, 0, 0, 0, 0, 0]), RET_ALLOW);
    // No personality rule matched, so the default (allow) applies.
    assert_eq!(run(p, a, nr("personality"), [9, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn conditional_rules_win_over_blanket_ones() {
    use LinuxSeccompOperator as Op;
    let f = filter(
        ERRNO,
        Some(1),
        vec![
            rule(&["getpgid"], ALLOW, None, vec![]),
            rule(
                &["getpgid"],
                ERRNO,
                Some(3),
                vec![arg(0, Op::ScmpCmpEq, 42, None)],
            ),
        ],
    );
    let p = f.instructions();
    assert_eq!(
        run(p, native_arch(), nr("getpgid"), [42, 0, 0, 0, 0, 0]),
        RET_ERRNO | 3
    );
    assert_eq!(
        run(p, native_arch(), nr("getpgid"), [41, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
}

#[test]
fn notify_and_bad_indexes_are_refused() {
    let s = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActNotify)
        .build()
        .unwrap();
    assert!(matches!(
        compile(&s),
        Err(SeccompError::UnsupportedAction("SCMP_ACT_NOTIFY"))
    ));
    let s = LinuxSeccompBuilder::default()
        .default_action(ALLOW)
        .syscalls(vec![rule(
            &["read"],
            ERRNO,
            None,
            vec![arg(6, LinuxSeccompOperator::ScmpCmpEq, 0, None)],
        )])
        .build()
        .unwrap();
    let err = compile(&s).unwrap_err();
    assert!(err.to_string().contains("argument index 6"), "{err}");
}

#[test]
fn a_large_profile_stays_within_jump_limits() {
    // Every known syscall allowed, each with a condition: long skips must
    // use 32-bit jumps.
    let names: Vec<&str> = native().unwrap().table.iter().map(|(n, _)| *n).collect();
    let f = filter(
        ERRNO,
        Some(1),
        vec![
            rule(&names, ALLOW, None, vec![]),
            rule(
                &names,
                ERRNO,
                Some(5),
                vec![arg(1, LinuxSeccompOperator::ScmpCmpEq, 77, None)],
            ),
        ],
    );
    let p = f.instructions();
    assert!(
        p.iter().any(|i| i.code == JMP_JA),
        "the tree should need 32-bit jumps here"
    );
    for name in &names {
        let n = nr(name);
        assert_eq!(run(p, native_arch(), n, [0; 6]), RET_ALLOW, "{name}");
        assert_eq!(
            run(p, native_arch(), n, [0, 77, 0, 0, 0, 0]),
            RET_ERRNO | 5,
            "{name}"
        );
    }
}

/// Forks a child that installs `f` and reports through its exit status.
fn in_child(f: &Filter, body: fn() -> i32) -> libc::c_int {
    // SAFETY: the child only makes raw syscalls and _exits; no allocation
    // happens between fork and _exit on the success path.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || f.apply().is_err() {
                libc::_exit(100);
            }
            libc::_exit(body());
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        status
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn kernel_returns_the_configured_errno() {
    let f = filter(
        ALLOW,
        None,
        vec![rule(&["getppid"], ERRNO, Some(42), vec![])],
    );
    let status = in_child(&f, || {
        // SAFETY: plain syscall without pointers.
        let r = unsafe { libc::syscall(libc::SYS_getppid) };
        if r == -1 && errno() == 42 {
            0
        } else {
            1
        }
    });
    assert!(libc::WIFEXITED(status), "child died: {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "getppid was not denied with errno 42"
    );
}

#[test]
fn kernel_applies_argument_conditions() {
    use LinuxSeccompOperator as Op;
    let f = filter(
        ALLOW,
        None,
        vec![rule(
            &["getpgid"],
            ERRNO,
            Some(9),
            vec![arg(0, Op::ScmpCmpGt, 1 << 40, None)],
        )],
    );
    let status = in_child(&f, || {
        // SAFETY: plain syscalls without pointers.
        let small = unsafe { libc::syscall(libc::SYS_getpgid, 0u64) };
        let big = unsafe { libc::syscall(libc::SYS_getpgid, (1u64 << 40) + 1) };
        if small >= 0 && big == -1 && errno() == 9 {
            0
        } else {
            1
        }
    });
    assert_eq!(libc::WEXITSTATUS(status), 0);
}

#[test]
fn kernel_kills_on_kill_process() {
    let f = filter(
        ALLOW,
        None,
        vec![rule(
            &["getppid"],
            LinuxSeccompAction::ScmpActKillProcess,
            None,
            vec![],
        )],
    );
    let status = in_child(&f, || {
        // SAFETY: plain syscall without pointers.
        unsafe { libc::syscall(libc::SYS_getppid) };
        0
    });
    assert!(libc::WIFSIGNALED(status), "status {status:#x}");
    assert_eq!(libc::WTERMSIG(status), libc::SIGSYS);
}

#[test]
fn trace_without_a_tracer_fails_with_enosys() {
    let f = filter(
        ALLOW,
        None,
        vec![rule(
            &["getppid"],
            LinuxSeccompAction::ScmpActTrace,
            None,
            vec![],
        )],
    );
    let status = in_child(&f, || {
        // SAFETY: plain syscall without pointers.
        let r = unsafe { libc::syscall(libc::SYS_getppid) };
        if r == -1 && errno() == libc::ENOSYS {
            0
        } else {
            1
        }
    });
    assert_eq!(libc::WEXITSTATUS(status), 0);
}

/// One profile entry, kept alongside the OCI form so the reference
/// evaluation below reads the same data the compiler does.
struct Entry {
    names: Vec<&'static str>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
}

fn entry(
    names: Vec<&'static str>,
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> Entry {
    Entry {
        names,
        action,
        errno,
        args,
    }
}

fn compile_entries(default: LinuxSeccompAction, default_errno: u32, entries: &[Entry]) -> Filter {
    let syscalls = entries
        .iter()
        .map(|e| rule(&e.names, e.action, e.errno, e.args.clone()))
        .collect();
    filter(default, Some(default_errno), syscalls)
}

fn condition_holds(c: &LinuxSeccompArg, args: &[u64; 6]) -> bool {
    use LinuxSeccompOperator as Op;
    let a = args[c.index()];
    let v = c.value();
    match c.op() {
        Op::ScmpCmpEq => a == v,
        Op::ScmpCmpNe => a != v,
        Op::ScmpCmpGt => a > v,
        Op::ScmpCmpGe => a >= v,
        Op::ScmpCmpLt => a < v,
        Op::ScmpCmpLe => a <= v,
        Op::ScmpCmpMaskedEq => a & v == c.value_two().unwrap_or(0),
    }
}

/// Does an entry's argument list match? Conditions on the same index are
/// alternatives, otherwise all must hold.
fn entry_matches(e: &Entry, args: &[u64; 6]) -> bool {
    let mut indexes: Vec<usize> = e.args.iter().map(|a| a.index()).collect();
    indexes.sort_unstable();
    let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
    if repeated {
        e.args.iter().any(|c| condition_holds(c, args))
    } else {
        e.args.iter().all(|c| condition_holds(c, args))
    }
}

/// The profile evaluated directly: the first matching conditional entry,
/// else the first plain one, else the default.
fn reference(
    default: LinuxSeccompAction,
    default_errno: u32,
    entries: &[Entry],
    nr: u32,
    args: &[u64; 6],
) -> u32 {
    let ret = |action, errno| action_value(action, errno, libc::EPERM as u32).unwrap();
    let names_nr = |e: &&Entry| e.names.iter().any(|n| syscall_number(n) == Some(nr));
    let mine: Vec<&Entry> = entries.iter().filter(names_nr).collect();
    mine.iter()
        .find(|e| !e.args.is_empty() && entry_matches(e, args))
        .or_else(|| mine.iter().find(|e| e.args.is_empty()))
        .map_or(ret(default, Some(default_errno)), |e| {
            ret(e.action, e.errno)
        })
}

/// The native table's names ordered by syscall number.
fn names_by_number() -> Vec<&'static str> {
    let mut t = native().unwrap().table.to_vec();
    t.sort_by_key(|(_, nr)| *nr);
    t.into_iter().map(|(n, _)| n).collect()
}

fn assert_matches_reference(
    f: &Filter,
    default: LinuxSeccompAction,
    default_errno: u32,
    entries: &[Entry],
    probes: &[[u64; 6]],
) {
    let max = names_by_number().last().map(|n| nr(n)).unwrap();
    for n in 0..=max + 10 {
        for args in probes {
            let want = reference(default, default_errno, entries, n, args);
            let got = run(f.instructions(), native_arch(), n, *args);
            assert_eq!(got, want, "nr {n} args {args:x?}");
        }
    }
}

#[test]
fn the_tree_answers_like_the_profile_for_every_number() {
    use LinuxSeccompOperator as Op;
    let s = names_by_number();
    let n = s.len();
    let pick = |r: std::ops::Range<usize>| s[r].to_vec();
    let ev = |i: usize| vec![s[i]];
    let sparse: Vec<&str> = (70..n - 1).filter(|i| i % 7 != 0).map(|i| s[i]).collect();
    let entries = vec![
        entry(pick(0..40), ALLOW, None, vec![]),
        entry(pick(40..60), ERRNO, Some(5), vec![]),
        // 60..70 is a hole, except one explicit rule equal to the default.
        entry(ev(65), ERRNO, Some(1), vec![]),
        entry(
            pick(100..103),
            LinuxSeccompAction::ScmpActKillProcess,
            None,
            vec![],
        ),
        entry(ev(150), LinuxSeccompAction::ScmpActTrap, None, vec![]),
        entry(ev(151), LinuxSeccompAction::ScmpActLog, None, vec![]),
        entry(sparse, ALLOW, None, vec![]),
        // Conditional numbers: 0, both edges of the allow/errno boundary, the
        // last number in the table (conditional only), and one in a hole.
        entry(ev(0), ERRNO, Some(12), vec![arg(2, Op::ScmpCmpNe, 0, None)]),
        entry(ev(39), ERRNO, Some(9), vec![arg(0, Op::ScmpCmpEq, 7, None)]),
        entry(
            ev(40),
            ALLOW,
            None,
            vec![arg(1, Op::ScmpCmpMaskedEq, 0xff00, Some(0x1200))],
        ),
        entry(
            ev(n - 1),
            ERRNO,
            Some(11),
            vec![
                arg(0, Op::ScmpCmpGt, 1 << 33, None),
                arg(1, Op::ScmpCmpLe, 3, None),
            ],
        ),
        entry(
            ev(62),
            ALLOW,
            None,
            vec![
                arg(0, Op::ScmpCmpEq, 0, None),
                arg(0, Op::ScmpCmpEq, 7, None),
            ],
        ),
    ];
    let probes = [
        [0; 6],
        [7, 0, 0, 0, 0, 0],
        [0, 0x12ab, 1, 0, 0, 0],
        [(1 << 33) + 1, 3, 0, 0, 0, 0],
        [(1 << 33) + 1, 4, 0, 0, 0, 0],
        [u64::MAX; 6],
    ];
    let f = compile_entries(ERRNO, 1, &entries);
    assert_matches_reference(&f, ERRNO, 1, &entries, &probes);
}

/// Roughly Docker's default profile: deny by default, allow the native
/// table except a few dangerous calls, with argument checks on clone and
/// personality.
fn docker_like() -> (Vec<Entry>, usize) {
    use LinuxSeccompOperator as Op;
    const DENIED: &[&str] = &[
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "clone",
        "create_module",
        "delete_module",
        "finit_module",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "mount",
        "move_mount",
        "move_pages",
        "name_to_handle_at",
        "nfsservctl",
        "open_by_handle_at",
        "open_tree",
        "perf_event_open",
        "personality",
        "pivot_root",
        "process_vm_readv",
        "process_vm_writev",
        "ptrace",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "set_mempolicy",
        "setns",
        "settimeofday",
        "stime",
        "swapoff",
        "swapon",
        "sysfs",
        "_sysctl",
        "umount",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
    ];
    let allowed: Vec<&'static str> = names_by_number()
        .into_iter()
        .filter(|n| !DENIED.contains(n))
        .collect();
    let count = allowed.len();
    let ns_mask = 0x7E02_0000u64;
    let entries = vec![
        entry(allowed, ALLOW, None, vec![]),
        entry(
            vec!["personality"],
            ALLOW,
            None,
            vec![arg(0, Op::ScmpCmpEq, 0, None)],
        ),
        entry(
            vec!["personality"],
            ALLOW,
            None,
            vec![arg(0, Op::ScmpCmpEq, 8, None)],
        ),
        entry(
            vec!["clone"],
            ALLOW,
            None,
            vec![arg(0, Op::ScmpCmpMaskedEq, ns_mask, Some(0))],
        ),
    ];
    (entries, count)
}

#[test]
fn a_docker_like_allow_list_compiles_to_a_small_tree() {
    let (entries, allowed) = docker_like();
    let f = compile_entries(ERRNO, 1, &entries);
    let len = f.instructions().len();
    assert!(
        len < allowed / 2,
        "{len} instructions for {allowed} allowed syscalls"
    );
    let probes = [
        [0; 6],
        [8, 0, 0, 0, 0, 0],
        [0x2000_0011, 0, 0, 0, 0, 0],
        [0x11, 0, 0, 0, 0, 0],
    ];
    assert_matches_reference(&f, ERRNO, 1, &entries, &probes);
}

/// Kernel load time of the Docker-like profile: one fresh child per sample,
/// timing only the seccomp() call. Run with --ignored --nocapture.
#[test]
#[ignore]
fn time_loading_a_docker_like_profile() {
    let (entries, _) = docker_like();
    let f = compile_entries(ERRNO, 1, &entries);
    let mut samples: Vec<u64> = (0..50).map(|_| load_time_ns(&f)).collect();
    samples.sort_unstable();
    println!(
        "{} instructions; seccomp() load: median {} µs, min {} µs",
        f.instructions().len(),
        samples[samples.len() / 2] / 1000,
        samples[0] / 1000
    );
}

fn load_time_ns(f: &Filter) -> u64 {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array; the child only makes raw
    // syscalls and _exits.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let start = std::time::Instant::now();
            let ok = f.apply().is_ok();
            let ns = start.elapsed().as_nanos() as u64;
            let out = if ok { ns } else { u64::MAX };
            libc::write(fds[1], (&out as *const u64).cast(), 8);
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let mut ns = 0u64;
        let n = libc::read(fds[0], (&mut ns as *mut u64).cast(), 8);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        assert_eq!(n, 8);
        assert_ne!(ns, u64::MAX, "applying the filter failed");
        ns
    }
}
