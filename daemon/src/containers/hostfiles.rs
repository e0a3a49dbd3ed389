//! The per-container /etc/hostname, /etc/hosts and /etc/resolv.conf,
//! written under the container's record directory and bind-mounted in.

use std::io;
use std::path::Path;

/// These files are derived (rewritten at every start), so a plain write
/// is enough: no fsync on the create path. A file that already says
/// `data` is left alone: on ext4 truncating a written file makes its
/// close force a write-out (`auto_da_alloc`), which a start that finds
/// the files as the create wrote them need not pay.
fn write_file_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)
}

pub struct DnsSettings<'a> {
    pub servers: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
}

fn hosts_content(hostname: &str, domainname: &str, extra_hosts: &[String]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in extra_hosts {
        // `name:ip` (ip may contain colons for IPv6).
        if let Some((name, ip)) = h.split_once(':') {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    // Without a bridge address the container's own name resolves to
    // loopback, so programs looking up their hostname still work.
    let fqdn = if domainname.is_empty() {
        hostname.to_string()
    } else {
        format!("{hostname}.{domainname} {hostname}")
    };
    s.push_str(&format!("127.0.1.1\t{fqdn}\n"));
    s
}

/// The host's resolv.conf with container-level overrides; loopback
/// nameservers (useless in a private network namespace) are dropped and
/// public ones used when none are left, as dockerd does.
fn resolv_content(host: &str, dns: &DnsSettings<'_>, host_network: bool) -> String {
    let mut servers: Vec<String> = dns.servers.to_vec();
    let mut search: Vec<String> = dns.search.to_vec();
    let mut options: Vec<String> = dns.options.to_vec();
    for line in host.lines() {
        let mut f = line.split_whitespace();
        match (f.next(), dns.servers.is_empty()) {
            (Some("nameserver"), true) => {
                if let Some(ns) = f.next() {
                    let loopback = ns.starts_with("127.") || ns == "::1";
                    if host_network || !loopback {
                        servers.push(ns.to_string());
                    }
                }
            }
            (Some("search"), _) if dns.search.is_empty() => search.extend(f.map(str::to_string)),
            (Some("options"), _) if dns.options.is_empty() => options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut s = String::new();
    for ns in servers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

pub fn write_all(
    dir: &Path,
    hostname: &str,
    domainname: &str,
    extra_hosts: &[String],
    dns: &DnsSettings<'_>,
    host_network: bool,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_file_mode(
        &dir.join("hostname"),
        format!("{hostname}\n").as_bytes(),
        0o644,
    )?;
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts")
            .unwrap_or_else(|_| hosts_content(hostname, domainname, extra_hosts))
    } else {
        hosts_content(hostname, domainname, extra_hosts)
    };
    write_file_mode(&dir.join("hosts"), hosts.as_bytes(), 0o644)?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_file_mode(
        &dir.join("resolv.conf"),
        resolv_content(&host_resolv, dns, host_network).as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_file_is_not_written_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hostname");
        write_file_mode(&p, b"one\n", 0o644).unwrap();
        let stamp = |p: &Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.mtime(), m.mtime_nsec())
        };
        let before = stamp(&p);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_file_mode(&p, b"one\n", 0o644).unwrap();
        assert_eq!(stamp(&p), before, "rewritten with the same content");
        write_file_mode(&p, b"two\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two\n");
        assert_ne!(stamp(&p), before);
    }

    #[test]
    fn resolv_drops_loopback_servers() {
        let none: Vec<String> = Vec::new();
        let dns = DnsSettings {
            servers: &none,
            search: &none,
            options: &none,
        };
        let r = resolv_content("nameserver 127.0.0.53\nsearch lan\n", &dns, false);
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch lan\n");
        let r = resolv_content("nameserver 127.0.0.53\n", &dns, true);
        assert_eq!(r, "nameserver 127.0.0.53\n");
        let mine = vec!["1.1.1.1".to_string()];
        let dns = DnsSettings {
            servers: &mine,
            search: &none,
            options: &none,
        };
        assert_eq!(
            resolv_content("nameserver 9.9.9.9\n", &dns, false),
            "nameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn hosts_has_localhost_and_own_name() {
        let h = hosts_content("abc", "", &["db:10.0.0.2".to_string()]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.0.0.2\tdb\n"));
        assert!(h.ends_with("127.0.1.1\tabc\n"));
    }
}
