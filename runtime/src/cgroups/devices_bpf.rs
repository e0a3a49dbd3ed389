//! Device access control on cgroup v2: there is no devices.allow file, the
//! kernel asks a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup.
//! We compile the OCI rule list into such a program (last matching rule
//! wins, no match means deny), attach it with BPF_F_ALLOW_MULTI so nested
//! cgroups can add their own, and detach the programs it replaces.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

// bpf(2) commands, program and attach types (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// struct bpf_cgroup_dev_ctx encodings.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

// Opcodes used here.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

/// Compiles the rules. Registers: r2 = device type, r3 = access bits,
/// r4 = major, r5 = minor, r1 = scratch (after the context is read).
pub fn compile(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    // Last match wins: test the rules back to front, stop at the first hit.
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        let dev_type = match rule.typ() {
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DEV_CHAR),
            // FIFOs are not device nodes; the kernel never asks about them.
            Some(LinuxDeviceType::P) => continue,
            Some(LinuxDeviceType::A) | None => None,
        };
        if let Some(t) = dev_type {
            block.push(insn(JMP_JNE_K, 2, 0, i16::MAX, t));
        }
        let access = access_bits(rule.access().as_deref());
        if access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            // Skip unless every requested bit is granted by the rule.
            block.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
            block.push(insn(ALU64_AND_K, 1, 0, 0, !access));
            block.push(insn(JMP_JNE_K, 1, 0, i16::MAX, 0));
        }
        if let Some(major) = rule.major().filter(|m| *m >= 0) {
            block.push(insn(JMP_JNE_K, 4, 0, i16::MAX, major as i32));
        }
        if let Some(minor) = rule.minor().filter(|m| *m >= 0) {
            block.push(insn(JMP_JNE_K, 5, 0, i16::MAX, minor as i32));
        }
        let catch_all = block.is_empty();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow())));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        // Point every "skip" jump just past this block.
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
        // Rules before a catch-all can never decide anything, and the
        // verifier rejects unreachable code.
        if catch_all {
            return prog;
        }
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

fn access_bits(access: Option<&str>) -> i32 {
    let access = access.unwrap_or("rwm");
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        };
    }
    bits
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<i64> {
    // SAFETY: attr is a zeroed 128-byte bpf_attr; every pointer stored in
    // it refers to memory that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr() as *mut libc::c_void,
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn err(what: &str, e: io::Error) -> CgroupError {
    CgroupError::DeviceProgram(format!("{what}: {e}"))
}

fn load(prog: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(BPF_PROG_TYPE_CGROUP_DEVICE) | ((prog.len() as u64) << 32);
    attr[1] = prog.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    attr[3] = 1 | ((log.len() as u64) << 32); // log_level, log_size
    attr[4] = log.as_mut_ptr() as u64;
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: the kernel returned a new fd that we now own.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let verifier = String::from_utf8_lossy(&log[..end]);
            let first = verifier.lines().next().unwrap_or("").to_owned();
            Err(err(&format!("loading the program (verifier: {first})"), e))
        }
    }
}

/// IDs of the device programs attached directly to `cgroup`.
fn attached(cgroup: &File) -> Result<Vec<u32>, CgroupError> {
    let mut ids = [0u32; 64];
    let mut attr = [0u64; 16];
    attr[0] = cgroup.as_raw_fd() as u64 | (u64::from(BPF_CGROUP_DEVICE) << 32);
    attr[2] = ids.as_mut_ptr() as u64;
    attr[3] = ids.len() as u64;
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| err("querying attached programs", e))?;
    let count = (attr[3] & 0xffff_ffff) as usize;
    Ok(ids[..count.min(ids.len())].to_vec())
}

fn detach(cgroup: &File, id: u32) -> Result<(), CgroupError> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) {
        // SAFETY: a fresh fd from the kernel.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
        // Gone already.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(err("opening an old program", e)),
    };
    let mut attr = [0u64; 16];
    attr[0] = cgroup.as_raw_fd() as u64 | ((fd.as_raw_fd() as u64) << 32);
    attr[1] = u64::from(BPF_CGROUP_DEVICE);
    match bpf(BPF_PROG_DETACH, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(err("detaching an old program", e)),
    }
}

/// Replaces the device program of the cgroup at `dir` with one built from
/// `rules`. An empty rule list leaves device access as it is.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    if rules.is_empty() {
        return Ok(());
    }
    let cgroup = File::open(dir).map_err(|e| err(&format!("opening {}", dir.display()), e))?;
    let old = attached(&cgroup)?;
    let prog = load(&compile(rules))?;
    let mut attr = [0u64; 16];
    attr[0] = cgroup.as_raw_fd() as u64 | ((prog.as_raw_fd() as u64) << 32);
    attr[1] = u64::from(BPF_CGROUP_DEVICE) | (u64::from(BPF_F_ALLOW_MULTI) << 32);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| err("attaching the program", e))?;
    for id in old {
        detach(&cgroup, id)?;
    }
    Ok(())
}

/// Programs go away with their cgroup; nothing to do before rmdir.
pub fn detach_all(_dir: &Path) -> Result<(), CgroupError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// Runs the compiled program in a tiny interpreter.
    fn eval(prog: &[Insn], typ: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | typ) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0;
        loop {
            let i = prog[pc];
            pc += 1;
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            match i.code {
                LDX_MEM_W => r[dst] = i64::from(ctx[i.off as usize / 4]),
                ALU64_AND_K => r[dst] &= i64::from(i.imm),
                ALU64_RSH_K => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                ALU64_MOV_K => r[dst] = i64::from(i.imm),
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JNE_K => {
                    if r[dst] != i64::from(i.imm) {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        access: &str,
    ) -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .major(major)
            .minor(minor)
            .access(access)
            .build()
            .unwrap()
    }

    #[test]
    fn last_matching_rule_wins_and_default_denies() {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .build()
            .unwrap();
        let rules = vec![
            deny_all,
            rule(true, LinuxDeviceType::C, 1, 3, "rwm"), // /dev/null
            rule(true, LinuxDeviceType::C, 1, 9, "r"),   // /dev/urandom, read only
            rule(false, LinuxDeviceType::C, 1, 3, "w"),  // later: no writes to null
        ];
        let p = compile(&rules);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 9), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_WRITE, 1, 9), 0);
        assert_eq!(eval(&p, DEV_BLOCK, ACC_READ, 1, 3), 0);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 8, 0), 0);
    }

    #[test]
    fn rules_shadowed_by_a_catch_all_are_dropped() {
        let allow_null = rule(true, LinuxDeviceType::C, 1, 3, "rwm");
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .build()
            .unwrap();
        let p = compile(&[allow_null, deny_all]);
        // Context loads, then only "r0 = 0; exit": nothing unreachable.
        assert_eq!(p.len(), 8);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ, 1, 3), 0);
    }

    #[test]
    fn wildcards_match_everything() {
        let any = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(136)
            .access("rw")
            .build()
            .unwrap();
        let p = compile(&[any]);
        assert_eq!(eval(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 136, 7), 1);
        assert_eq!(eval(&p, DEV_CHAR, ACC_MKNOD, 136, 7), 0);
        let allow_all = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .build()
            .unwrap();
        assert_eq!(eval(&compile(&[allow_all]), DEV_BLOCK, ACC_MKNOD, 8, 1), 1);
    }
}
