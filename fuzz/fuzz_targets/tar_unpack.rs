//! Layer extraction (berth_images::layer::unpack), the code every load,
//! pull and import runs on archives from elsewhere: never a panic or a
//! hang, and nothing written outside the extraction root, whatever the
//! entries' names, link targets and types.
//!
//! The archives are either raw bytes or built from a structured input
//! (so checksums are right and the interesting cases come often:
//! `..`, absolute and chained symlinks, hard links out of the root,
//! whiteouts, a file replacing a directory). As extraction runs as root,
//! it runs in a private mount namespace chrooted into a tmpfs: even a bug
//! cannot touch the host's files, and a sentinel next to the root shows
//! any escape.
#![no_main]

use std::fs;
use std::path::Path;
use std::sync::Once;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const JAIL: &str = "/tmp/berth-fuzz-tar-jail";

/// Enter a private mount namespace, mount a tmpfs on JAIL and chroot into
/// it (the working directory stays, so libFuzzer's relative corpus and
/// artifact paths keep working).
fn enter_jail() {
    fn check(rc: libc::c_int, what: &str) {
        assert!(rc == 0, "{what}: {}", std::io::Error::last_os_error());
    }
    fs::create_dir_all(JAIL).expect("create the jail directory");
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
    // SAFETY: plain syscalls with valid NUL-terminated strings.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS), "unshare(CLONE_NEWNS)");
        check(
            libc::mount(
                std::ptr::null(),
                c("/").as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            "make / private",
        );
        check(
            libc::mount(
                c("tmpfs").as_ptr(),
                c(JAIL).as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                c("size=256m").as_ptr().cast(),
            ),
            "mount the jail tmpfs",
        );
        check(libc::chroot(c(JAIL).as_ptr()), "chroot");
    }
    for d in ["/work", "/etc"] {
        fs::create_dir_all(d).expect("jail dirs");
    }
    fs::write("/etc/passwd", "sentinel").expect("sentinel");
}

#[derive(Debug, Arbitrary)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(u8),
    Hardlink(u8),
    Fifo,
    CharDev,
}

#[derive(Debug, Arbitrary)]
struct Entry {
    name: Vec<u8>,
    kind: Kind,
    mode: u16,
    uid: u16,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(Vec<u8>),
    Built(Vec<Entry>),
}

/// Path pieces that matter to extraction.
const PIECES: &[&str] = &[
    "a",
    "b",
    "..",
    ".",
    "/",
    "etc",
    "passwd",
    ".wh.a",
    ".wh..wh..opq",
    "l",
    "c/d",
    "",
];

fn name_of(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes.iter().take(12) {
        if !s.is_empty() && b & 0x80 == 0 {
            s.push('/');
        }
        s.push_str(PIECES[(*b as usize & 0x7f) % PIECES.len()]);
    }
    if s.is_empty() {
        "a".into()
    } else {
        s
    }
}

fn build(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let names: Vec<String> = entries.iter().map(|e| name_of(&e.name)).collect();
    for (e, name) in entries.iter().zip(&names) {
        let mut h = tar::Header::new_gnu();
        h.set_mode(u32::from(e.mode) & 0o7777);
        h.set_uid(u64::from(e.uid));
        h.set_gid(u64::from(e.uid));
        h.set_mtime(1);
        let target = |i: &u8| {
            names
                .get(*i as usize % names.len().max(1))
                .cloned()
                .unwrap_or_default()
        };
        let data: &[u8] = match &e.kind {
            Kind::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                d
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                &[]
            }
            Kind::Symlink(i) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let t = if i % 3 == 0 {
                    format!("/{}", target(i))
                } else {
                    target(i)
                };
                if h.set_link_name(&t).is_err() {
                    continue;
                }
                &[]
            }
            Kind::Hardlink(i) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                if h.set_link_name(target(i)).is_err() {
                    continue;
                }
                &[]
            }
            Kind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_size(0);
                &[]
            }
            Kind::CharDev => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(1).ok();
                h.set_device_minor(3).ok();
                h.set_size(0);
                &[]
            }
        };
        // The tar crate refuses `..` in names; raw headers do not.
        let bytes = name.as_bytes();
        if bytes.len() >= 100 {
            continue;
        }
        let gnu = h.as_old_mut();
        gnu.name = [0; 100];
        gnu.name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        let _ = b.append(&h, data);
    }
    b.into_inner().unwrap_or_default()
}

/// Every path below `dir`, iteratively (no symlink followed).
fn count_below(dir: &Path) -> usize {
    let mut n = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    n
}

static JAILED: Once = Once::new();

fuzz_target!(|input: Input| {
    JAILED.call_once(enter_jail);
    let archive = match &input {
        Input::Raw(b) => b.clone(),
        Input::Built(entries) => build(entries),
    };
    let root = Path::new("/work/root");
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root).expect("root");
    let _ = berth_images::layer::unpack::unpack(&archive[..], root);
    // Nothing outside the root: the jail holds /work/root, /etc/passwd
    // (unchanged) and nothing else.
    assert_eq!(
        fs::read_to_string("/etc/passwd").ok().as_deref(),
        Some("sentinel"),
        "extraction wrote through to /etc/passwd"
    );
    assert_eq!(
        count_below(Path::new("/etc")),
        1,
        "extraction wrote into /etc"
    );
    let top: Vec<String> = fs::read_dir("/work")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top,
        vec!["root".to_string()],
        "extraction wrote next to its root"
    );
    let jail_top: usize = fs::read_dir("/").map(|r| r.count()).unwrap_or(0);
    assert_eq!(jail_top, 2, "extraction wrote at the jail's top");
});
