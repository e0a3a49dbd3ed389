//! Seccomp filters compiled from the OCI config into classic BPF.
//!
//! The program checks the architecture, loads the syscall number, then
//! finds the number's outcome with a balanced binary search over ranges of
//! numbers that share it. A range whose numbers all return the same action
//! whatever the arguments is one `RET`; a number with argument conditions
//! gets its own block, which tries its rules in order (rules with argument
//! conditions first, so a specific match wins over a blanket one) and falls
//! back to the default action.
//!
//! Why a tree: a typical allow-list (Docker's default) names ~350 syscalls.
//! One comparison per syscall made a program of 1400+ instructions that
//! the kernel took about a millisecond to load on every container start,
//! and that every syscall walked linearly. Adjacent numbers mostly share an
//! action, so the ranges are few and the search is a handful of jumps.
//!
//! Semantics worth knowing:
//! - Only the native ABI (x86_64 or aarch64) is translated. Syscalls made
//!   through another ABI (i386 `int 0x80`, x32, arm32 compat) get the
//!   default action when it denies, and ENOSYS when the default allows, so
//!   a deny-list cannot be bypassed through a compat ABI.
//! - Unknown syscall names are skipped, like runc does with libseccomp.
//! - Several conditions on the same argument index in one rule are ORed
//!   (split into separate rules), as runc does; otherwise conditions AND.
//! - SCMP_ACT_TRACE with no tracer attached makes the syscall fail with
//!   ENOSYS (kernel behaviour); SCMP_ACT_NOTIFY needs a seccomp agent and is
//!   refused.

pub mod cache;
mod tables;

use std::collections::BTreeMap;
use std::io;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp action {0} is not supported by berth")]
    UnsupportedAction(&'static str),
    #[error("seccomp flag {0:?} is not supported by berth")]
    UnsupportedFlag(String),
    #[error("seccomp rule for {syscall}: argument index {index} is out of range (0..=5)")]
    BadArgIndex { syscall: String, index: usize },
    #[error("seccomp filter is too large: {0} instructions (the kernel allows 4096)")]
    TooLarge(usize),
    #[error("seccomp filter has a conditional jump of {0} instructions (limit 255)")]
    JumpTooFar(usize),
    #[error("seccomp is not supported on this CPU architecture")]
    UnsupportedArch,
    #[error("installing the seccomp filter: {0}")]
    Install(io::Error),
}

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_DATA: u32 = 0x0000_ffff;

const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

// Classic BPF opcodes (linux/filter.h).
/// BPF_LD | BPF_W | BPF_ABS (the first two are zero).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x04 | 0x50;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x05 | 0x10;
const JMP_JGT_K: u16 = 0x05 | 0x20;
const JMP_JGE_K: u16 = 0x05 | 0x30;
const JMP_JSET_K: u16 = 0x05 | 0x40;
const RET_K: u16 = 0x06;

// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const BPF_MAXINSNS: usize = 4096;

struct Native {
    audit_arch: u32,
    table: &'static [(&'static str, u32)],
    /// x86_64 shares its audit arch with x32, told apart by this bit.
    x32_bit: bool,
}

fn native() -> Result<Native, SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok(Native {
            audit_arch: Arch::ScmpArchX86_64 as u32,
            table: tables::X86_64,
            x32_bit: true,
        })
    } else if cfg!(target_arch = "aarch64") {
        Ok(Native {
            audit_arch: Arch::ScmpArchAarch64 as u32,
            table: tables::AARCH64,
            x32_bit: false,
        })
    } else {
        Err(SeccompError::UnsupportedArch)
    }
}

/// The syscall number of `name` on the native architecture.
pub fn syscall_number(name: &str) -> Option<u32> {
    let table = native().ok()?.table;
    table
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table[i].1)
}

/// A compiled filter, ready to install in the container's init right
/// before exec.
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
}

impl Filter {
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// Installs the filter on the calling thread (or all threads with
    /// SECCOMP_FILTER_FLAG_TSYNC). The caller must have set no_new_privs or
    /// hold CAP_SYS_ADMIN.
    pub fn apply(&self) -> Result<(), SeccompError> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at our live instruction vector for the
        // duration of the call; the kernel copies it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            return Err(SeccompError::Install(io::Error::last_os_error()));
        }
        if rc > 0 {
            // With TSYNC, a positive result is a thread that could not sync.
            return Err(SeccompError::Install(io::Error::other(format!(
                "thread {rc} could not be synchronised to the filter (TSYNC)"
            ))));
        }
        Ok(())
    }
}

/// A syscall rule after splitting: all `args` must match.
struct Rule {
    action: u32,
    args: Vec<LinuxSeccompArg>,
}

pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let native = native()?;
    let default = action_value(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        libc::EPERM as u32,
    )?;
    let flags = filter_flags(seccomp.flags().as_deref().unwrap_or(&[]))?;

    // syscall number → rules, in config order; BTreeMap keeps output stable.
    let mut by_nr = RulesByNr::new();
    for sc in seccomp.syscalls().iter().flatten() {
        let action = action_value(sc.action(), sc.errno_ret(), libc::EPERM as u32)?;
        let args = sc.args().clone().unwrap_or_default();
        for name in sc.names() {
            if let Some(arg) = args.iter().find(|a| a.index() > 5) {
                return Err(SeccompError::BadArgIndex {
                    syscall: name.clone(),
                    index: arg.index(),
                });
            }
            let Some(nr) = syscall_number(name) else {
                continue;
            };
            let (conditional, plain) = by_nr.entry(nr).or_default();
            if args.is_empty() {
                plain.push(Rule {
                    action,
                    args: Vec::new(),
                });
            } else {
                for args in split_same_index(&args) {
                    conditional.push(Rule { action, args });
                }
            }
        }
    }

    let foreign = if matches!(
        seccomp.default_action(),
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
    ) {
        RET_ERRNO | libc::ENOSYS as u32
    } else {
        default
    };

    let mut asm = Asm::default();
    let native_arch = asm.label();
    asm.stmt(LD_W_ABS, OFF_ARCH);
    asm.jump(JMP_JEQ_K, native.audit_arch, Some(native_arch), None);
    asm.stmt(RET_K, foreign);
    asm.bind(native_arch);
    asm.stmt(LD_W_ABS, OFF_NR);
    if native.x32_bit {
        let not_x32 = asm.label();
        asm.jump(JMP_JSET_K, X32_SYSCALL_BIT, None, Some(not_x32));
        asm.stmt(RET_K, foreign);
        asm.bind(not_x32);
    }
    emit_tree(&mut asm, &segments(&by_nr, default), default);
    let program = asm.finish()?;
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge(program.len()));
    }
    Ok(Filter { program, flags })
}

/// What the numbers of a segment do.
#[derive(Clone, Copy)]
enum Outcome<'a> {
    /// The same return for every number, whatever the arguments.
    Ret(u32),
    /// A single number with argument conditions: its rules, conditional
    /// ones first.
    Rules(&'a [Rule], &'a [Rule]),
}

/// Syscall numbers from `lo` up to the next segment's `lo` (the last one
/// runs to `u32::MAX`).
struct Segment<'a> {
    lo: u32,
    outcome: Outcome<'a>,
}

type RulesByNr = BTreeMap<u32, (Vec<Rule>, Vec<Rule>)>;

/// Partitions the whole syscall-number space into segments, merging
/// neighbours with the same plain outcome.
fn segments(by_nr: &RulesByNr, default: u32) -> Vec<Segment<'_>> {
    let mut segs = Vec::new();
    // The first number not yet covered by a segment.
    let mut next = 0u32;
    for (&nr, (conditional, plain)) in by_nr {
        if nr > next {
            push_segment(&mut segs, next, Outcome::Ret(default));
        }
        push_segment(&mut segs, nr, outcome_of(conditional, plain, default));
        match nr.checked_add(1) {
            Some(n) => next = n,
            None => return segs,
        }
    }
    push_segment(&mut segs, next, Outcome::Ret(default));
    segs
}

/// Without conditions the first plain rule decides, as rules are tried in
/// order.
fn outcome_of<'a>(conditional: &'a [Rule], plain: &'a [Rule], default: u32) -> Outcome<'a> {
    if conditional.is_empty() {
        Outcome::Ret(plain.first().map_or(default, |r| r.action))
    } else {
        Outcome::Rules(conditional, plain)
    }
}

fn push_segment<'a>(segs: &mut Vec<Segment<'a>>, lo: u32, outcome: Outcome<'a>) {
    let extends_last = match (segs.last().map(|s| s.outcome), outcome) {
        (Some(Outcome::Ret(last)), Outcome::Ret(this)) => last == this,
        _ => false,
    };
    if !extends_last {
        segs.push(Segment { lo, outcome });
    }
}

/// Emits a binary search over `segs` with the syscall number in the
/// accumulator: `JGE` the first number of the upper half, else the lower
/// half. Every leaf ends in a `RET`, so nothing runs after a leaf.
fn emit_tree(asm: &mut Asm, segs: &[Segment], default: u32) {
    let Some((lower, upper)) = halves(segs) else {
        emit_leaf(asm, segs, default);
        return;
    };
    let boundary = upper[0].lo;
    let to_upper = asm.label();
    if needs_stub(tree_len(lower, default)) {
        // Conditional jumps only reach 255 instructions: hop over a JA
        // with a 32-bit offset instead.
        let to_lower = asm.label();
        asm.jump(JMP_JGE_K, boundary, None, Some(to_lower));
        asm.long_jump(to_upper);
        asm.bind(to_lower);
    } else {
        asm.jump(JMP_JGE_K, boundary, Some(to_upper), None);
    }
    emit_tree(asm, lower, default);
    asm.bind(to_upper);
    emit_tree(asm, upper, default);
}

/// The instruction count `emit_tree` produces for `segs`.
fn tree_len(segs: &[Segment], default: u32) -> usize {
    let Some((lower, upper)) = halves(segs) else {
        let mut scratch = Asm::default();
        emit_leaf(&mut scratch, segs, default);
        return scratch.insns.len();
    };
    let lower_len = tree_len(lower, default);
    1 + usize::from(needs_stub(lower_len)) + lower_len + tree_len(upper, default)
}

/// The split point of the search; `None` for a leaf.
fn halves<'s, 'a>(segs: &'s [Segment<'a>]) -> Option<(&'s [Segment<'a>], &'s [Segment<'a>])> {
    (segs.len() > 1).then(|| segs.split_at(segs.len() / 2))
}

fn needs_stub(skipped: usize) -> bool {
    skipped > usize::from(u8::MAX)
}

fn emit_leaf(asm: &mut Asm, segs: &[Segment], default: u32) {
    match segs.first().map(|s| s.outcome) {
        Some(Outcome::Ret(action)) => asm.stmt(RET_K, action),
        Some(Outcome::Rules(conditional, plain)) => emit_rules(asm, conditional, plain, default),
        None => asm.stmt(RET_K, default),
    }
}

/// A conditional number's block: its rules in order, then the default.
/// Conditions load arguments into the accumulator, so nothing after the
/// first one may rely on it holding the syscall number (nothing does).
fn emit_rules(asm: &mut Asm, conditional: &[Rule], plain: &[Rule], default: u32) {
    for rule in conditional.iter().chain(plain) {
        let fail = asm.label();
        for arg in &rule.args {
            emit_condition(asm, arg, fail);
        }
        asm.stmt(RET_K, rule.action);
        asm.bind(fail);
    }
    asm.stmt(RET_K, default);
}

/// Conditions naming the same argument twice are alternatives (runc's
/// reading of the spec): one rule per condition then. Otherwise one rule.
fn split_same_index(args: &[LinuxSeccompArg]) -> Vec<Vec<LinuxSeccompArg>> {
    let mut seen = [false; 6];
    let repeated = args
        .iter()
        .any(|a| std::mem::replace(&mut seen[a.index()], true));
    if repeated {
        args.iter().map(|a| vec![*a]).collect()
    } else {
        vec![args.to_vec()]
    }
}

fn action_value(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<u32, SeccompError> {
    use LinuxSeccompAction as A;
    Ok(match action {
        A::ScmpActKill | A::ScmpActKillThread => RET_KILL_THREAD,
        A::ScmpActKillProcess => RET_KILL_PROCESS,
        A::ScmpActTrap => RET_TRAP,
        A::ScmpActErrno => RET_ERRNO | (errno.unwrap_or(default_errno) & RET_DATA),
        A::ScmpActTrace => RET_TRACE | (errno.unwrap_or(0) & RET_DATA),
        A::ScmpActLog => RET_LOG,
        A::ScmpActAllow => RET_ALLOW,
        A::ScmpActNotify => return Err(SeccompError::UnsupportedAction("SCMP_ACT_NOTIFY")),
    })
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> Result<u32, SeccompError> {
    use LinuxSeccompFilterFlag as F;
    flags.iter().try_fold(0, |acc, f| {
        Ok(acc
            | match f {
                F::SeccompFilterFlagTsync => FLAG_TSYNC,
                F::SeccompFilterFlagLog => FLAG_LOG,
                F::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
                other => return Err(SeccompError::UnsupportedFlag(format!("{other:?}"))),
            })
    })
}

/// Emits code that falls through when the 64-bit argument satisfies the
/// condition and jumps to `fail` otherwise. Arguments are little-endian in
/// seccomp_data on both supported architectures: low word first.
fn emit_condition(asm: &mut Asm, arg: &LinuxSeccompArg, fail: Label) {
    use LinuxSeccompOperator as Op;
    let lo_off = OFF_ARGS + 8 * arg.index() as u32;
    let hi_off = lo_off + 4;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    let (hi, lo) = split(arg.value());
    let pass = asm.label();
    match arg.op() {
        Op::ScmpCmpEq => {
            asm.stmt(LD_W_ABS, hi_off);
            asm.jump(JMP_JEQ_K, hi, None, Some(fail));
            asm.stmt(LD_W_ABS, lo_off);
            asm.jump(JMP_JEQ_K, lo, None, Some(fail));
        }
        Op::ScmpCmpNe => {
            asm.stmt(LD_W_ABS, hi_off);
            asm.jump(JMP_JEQ_K, hi, None, Some(pass));
            asm.stmt(LD_W_ABS, lo_off);
            asm.jump(JMP_JEQ_K, lo, Some(fail), None);
        }
        Op::ScmpCmpMaskedEq => {
            let (want_hi, want_lo) = split(arg.value_two().unwrap_or(0));
            asm.stmt(LD_W_ABS, hi_off);
            asm.stmt(ALU_AND_K, hi);
            asm.jump(JMP_JEQ_K, want_hi, None, Some(fail));
            asm.stmt(LD_W_ABS, lo_off);
            asm.stmt(ALU_AND_K, lo);
            asm.jump(JMP_JEQ_K, want_lo, None, Some(fail));
        }
        // a > v  ⇔  hi > v_hi, or hi == v_hi and lo > v_lo (ge: lo >= v_lo)
        Op::ScmpCmpGt | Op::ScmpCmpGe => {
            let lo_cmp = if arg.op() == Op::ScmpCmpGt {
                JMP_JGT_K
            } else {
                JMP_JGE_K
            };
            asm.stmt(LD_W_ABS, hi_off);
            asm.jump(JMP_JGT_K, hi, Some(pass), None);
            asm.jump(JMP_JEQ_K, hi, None, Some(fail));
            asm.stmt(LD_W_ABS, lo_off);
            asm.jump(lo_cmp, lo, None, Some(fail));
        }
        // a < v ⇔ !(a >= v);  a <= v ⇔ !(a > v)
        Op::ScmpCmpLt | Op::ScmpCmpLe => {
            let lo_cmp = if arg.op() == Op::ScmpCmpLt {
                JMP_JGE_K
            } else {
                JMP_JGT_K
            };
            asm.stmt(LD_W_ABS, hi_off);
            asm.jump(JMP_JGT_K, hi, Some(fail), None);
            asm.jump(JMP_JEQ_K, hi, None, Some(pass));
            asm.stmt(LD_W_ABS, lo_off);
            asm.jump(lo_cmp, lo, Some(fail), None);
        }
    }
    asm.bind(pass);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

enum Target {
    Next,
    To(Label),
}

struct Insn {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
    /// An unconditional jump whose 32-bit offset is resolved from this label.
    long: Option<Label>,
}

/// A tiny assembler with forward labels.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(Insn {
            code,
            k,
            jt: Target::Next,
            jf: Target::Next,
            long: None,
        });
    }

    /// A conditional jump; `None` means fall through.
    fn jump(&mut self, code: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        let t = |l: Option<Label>| l.map_or(Target::Next, Target::To);
        self.insns.push(Insn {
            code,
            k,
            jt: t(jt),
            jf: t(jf),
            long: None,
        });
    }

    fn long_jump(&mut self, to: Label) {
        self.insns.push(Insn {
            code: JMP_JA,
            k: 0,
            jt: Target::Next,
            jf: Target::Next,
            long: Some(to),
        });
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let resolve = |at: usize, l: Label| -> usize {
            // Every label is bound before finish(); unbound would be a bug
            // in this module, so treat it as "end of program".
            let target = self.labels[l.0].unwrap_or(self.insns.len());
            target - (at + 1)
        };
        self.insns
            .iter()
            .enumerate()
            .map(|(at, insn)| {
                let short = |t: &Target| -> Result<u8, SeccompError> {
                    match t {
                        Target::Next => Ok(0),
                        Target::To(l) => {
                            let off = resolve(at, *l);
                            u8::try_from(off).map_err(|_| SeccompError::JumpTooFar(off))
                        }
                    }
                };
                let k = match insn.long {
                    Some(l) => resolve(at, l) as u32,
                    None => insn.k,
                };
                Ok(libc::sock_filter {
                    code: insn.code,
                    jt: short(&insn.jt)?,
                    jf: short(&insn.jf)?,
                    k,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
