//! Published ports forwarded by the kernel: iptables DNAT rules, as dockerd
//! installs them, so a port keeps answering while berthd is down or
//! restarting and no byte of it passes through the daemon.
//!
//! Every daemon owns three chains named after its default bridge (tests run
//! several daemons side by side, each with its own bridge), made when it
//! first publishes a port:
//!
//! - nat `BERTH-<bridge>`, jumped to from PREROUTING and OUTPUT for local
//!   destinations: one `DNAT --to-destination CIP:CPORT` per published
//!   port, limited to the host address the port is bound to;
//! - nat `BERTH-<bridge>-POST`, jumped to from POSTROUTING: MASQUERADE for
//!   a container reaching its own published port (hairpin) and, without the
//!   userland proxy, for connections from 127.0.0.0/8;
//! - filter `BERTH-<bridge>`, jumped to from FORWARD: accepts the published
//!   container port (and its replies) even where FORWARD's policy is DROP.
//!
//! Each per-port rule carries the container ID as its comment, so a
//! container's rules are found (and removed) without any state of ours, and
//! at start-up the chains are re-synced in one atomic `iptables-restore`
//! batch: rules of containers that died while the daemon was away go,
//! adopted containers get theirs rewritten without a gap.
//!
//! Loopback is what the kernel cannot do alone: a connection to 127.0.0.1
//! that DNAT sends out of the bridge keeps its loopback source, and the
//! kernel drops it unless `route_localnet` is set on the bridge. Like
//! dockerd, berthd by default (`userland-proxy: true`) leaves that case to
//! the userland proxy: the OUTPUT jump skips 127.0.0.0/8 and DNAT skips
//! traffic arriving from the container's own bridge, both of which reach
//! the proxy's socket on the host port. The proxy lives inside berthd (one
//! process for every port, not a docker-proxy per port), so `localhost:PORT`
//! on the host goes dark while berthd is down; every other path (the
//! host's addresses, other hosts, other networks and namespaces) keeps
//! answering. With `userland-proxy: false` the kernel does everything, as
//! dockerd then does: `route_localnet=1` on the bridge, the OUTPUT jump
//! covers 127.0.0.0/8, loopback sources are masqueraded, DNAT also applies
//! on the bridge and veth ports get hairpin mode; berthd then only holds the
//! host port (never accepting on it) so that no other program or container
//! can take it, and localhost keeps answering while berthd is away.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::ports::Published;

/// One published port of one container.
#[derive(Debug, Clone)]
pub struct Mapping<'a> {
    pub container: &'a str,
    /// The bridge the container's endpoint is on.
    pub bridge: &'a str,
    pub container_ip: Ipv4Addr,
    pub port: &'a Published,
}

#[derive(Debug)]
pub struct Forwarder {
    /// None: iptables is off or missing; the userland proxy does it all.
    bins: Option<Bins>,
    chain: String,
    post_chain: String,
    userland_proxy: bool,
    /// Setting the chains up failed: the proxy serves every port.
    failed: AtomicBool,
    /// The chains and jumps exist and hold what they should.
    ready: Mutex<bool>,
}

#[derive(Debug, Clone)]
struct Bins {
    iptables: PathBuf,
    restore: PathBuf,
}

type Rule = (&'static str, String, Vec<String>);

fn words(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

impl Forwarder {
    /// `key` names the chains (the daemon's default bridge). Without
    /// iptables (disabled or not installed) nothing is forwarded in the
    /// kernel and [`Forwarder::userland_proxy`] is always true.
    pub fn detect(enabled: bool, key: &str, userland_proxy: bool) -> Forwarder {
        let bins = if enabled {
            match (
                super::nat::find_in_path("iptables"),
                super::nat::find_in_path("iptables-restore"),
            ) {
                (Some(iptables), Some(restore)) => Some(Bins { iptables, restore }),
                _ => {
                    tracing::warn!("no iptables/iptables-restore on this host: published ports are served by berthd alone and go dark while it is down");
                    None
                }
            }
        } else {
            None
        };
        Forwarder {
            userland_proxy: userland_proxy || bins.is_none(),
            bins,
            chain: format!("BERTH-{key}"),
            post_chain: format!("BERTH-{key}-POST"),
            failed: AtomicBool::new(false),
            ready: Mutex::new(false),
        }
    }

    pub fn active(&self) -> bool {
        self.bins.is_some() && !self.failed.load(Ordering::Relaxed)
    }

    /// Whether berthd listens on published ports itself (else it only
    /// holds them bound).
    pub fn userland_proxy(&self) -> bool {
        self.userland_proxy || !self.active()
    }

    /// The jumps into our chains, as (table, chain, rule).
    fn jumps(&self, userland_proxy: bool) -> Vec<Rule> {
        let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", &self.chain];
        let mut output = Vec::new();
        if userland_proxy {
            output.extend(words(&["!", "-d", "127.0.0.0/8"]));
        }
        output.extend(words(&local));
        vec![
            ("nat", "PREROUTING".into(), words(&local)),
            ("nat", "OUTPUT".into(), output),
            (
                "nat",
                "POSTROUTING".into(),
                words(&["-j", &self.post_chain]),
            ),
            ("filter", "FORWARD".into(), words(&["-j", &self.chain])),
        ]
    }

    fn iptables(&self, args: &[&str]) -> Result<std::process::Output, String> {
        let Some(b) = &self.bins else {
            return Err("iptables is not in use".into());
        };
        Command::new(&b.iptables)
            .arg("-w")
            .args(args)
            .output()
            .map_err(|e| format!("running {}: {e}", b.iptables.display()))
    }

    /// The rules that forward one published port.
    fn rules(&self, m: &Mapping) -> Vec<Rule> {
        let p = m.port;
        if p.host_ip.is_ipv6() {
            // Left to the userland proxy (no ip6tables rules yet).
            return Vec::new();
        }
        let proto = p.proto.as_str();
        let (hport, cport) = (p.host_port.to_string(), p.container_port.to_string());
        let cip = format!("{}/32", m.container_ip);
        let to = format!("{}:{}", m.container_ip, p.container_port);
        let hip = format!("{}/32", p.host_ip);
        let mut dnat: Vec<&str> = Vec::new();
        if !p.host_ip.is_unspecified() {
            dnat.extend(["-d", &hip]);
        }
        if self.userland_proxy {
            // The proxy serves containers on the same bridge.
            dnat.extend(["!", "-i", m.bridge]);
        }
        dnat.extend(["-p", proto, "-m", proto, "--dport", &hport]);
        dnat.extend(["-m", "comment", "--comment", m.container]);
        dnat.extend(["-j", "DNAT", "--to-destination", &to]);
        // Traffic from `source` to the container's port leaves with the
        // bridge's address, so the reply comes back through the host.
        let masquerade = |source: &str| {
            words(&[
                "-s",
                source,
                "-d",
                &cip,
                "-p",
                proto,
                "-m",
                proto,
                "--dport",
                &cport,
                "-m",
                "comment",
                "--comment",
                m.container,
                "-j",
                "MASQUERADE",
            ])
        };
        let mut rules = vec![
            ("nat", self.chain.clone(), words(&dnat)),
            ("nat", self.post_chain.clone(), masquerade(&cip)),
            (
                "filter",
                self.chain.clone(),
                words(&[
                    "-d",
                    &cip,
                    "!",
                    "-i",
                    m.bridge,
                    "-o",
                    m.bridge,
                    "-p",
                    proto,
                    "-m",
                    proto,
                    "--dport",
                    &cport,
                    "-m",
                    "comment",
                    "--comment",
                    m.container,
                    "-j",
                    "ACCEPT",
                ]),
            ),
            (
                "filter",
                self.chain.clone(),
                words(&[
                    "-s",
                    &cip,
                    "-i",
                    m.bridge,
                    "!",
                    "-o",
                    m.bridge,
                    "-p",
                    proto,
                    "-m",
                    proto,
                    "--sport",
                    &cport,
                    "-m",
                    "comment",
                    "--comment",
                    m.container,
                    "-j",
                    "ACCEPT",
                ]),
            ),
        ];
        if !self.userland_proxy {
            rules.push(("nat", self.post_chain.clone(), masquerade("127.0.0.0/8")));
        }
        rules
    }

    /// Install the rules of a container's published ports (one atomic
    /// batch: all or nothing).
    pub fn add(&self, maps: &[Mapping]) -> Result<(), String> {
        if !self.active() || maps.is_empty() {
            return Ok(());
        }
        {
            // The first port of a daemon without chains makes them (empty:
            // no rule was added before).
            let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            if !*ready {
                self.start_batch(&[])?;
                *ready = true;
            }
        }
        self.prepare_bridges(maps);
        let adds: Vec<Rule> = maps.iter().flat_map(|m| self.rules(m)).collect();
        self.restore(&[], &adds)
    }

    /// Remove every rule of `container` (whatever setting installed it).
    pub fn remove(&self, container: &str) -> Result<(), String> {
        if !self.active() {
            return Ok(());
        }
        let dels: Vec<Rule> = self
            .listed()?
            .into_iter()
            .filter(|(_, _, r)| comment_of(r) == Some(container))
            .collect();
        if dels.is_empty() {
            return Ok(());
        }
        self.restore(&dels, &[])
    }

    /// At daemon start: create the chains and the jumps into them (dropping
    /// the OUTPUT jump of the other `userland-proxy` setting) and make the
    /// chains hold exactly the rules of `maps`, the live containers. One
    /// atomic batch, so adopted ports never stop answering and rules of
    /// containers that died while berthd was away are gone. On failure the
    /// kernel forwards nothing new and the userland proxy serves every port.
    ///
    /// A daemon that never published a port has no chains: they are made
    /// with the first published port, and nothing is done here while none
    /// exist.
    pub fn start(&self, maps: &[Mapping]) -> Result<(), String> {
        if self.bins.is_none() {
            return Ok(());
        }
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        if maps.is_empty()
            && !self
                .iptables(&["-t", "nat", "-S", &self.chain])?
                .status
                .success()
        {
            return Ok(());
        }
        let result = self.start_batch(maps);
        match &result {
            Ok(()) => *ready = true,
            Err(_) => self.failed.store(true, Ordering::Relaxed),
        }
        result
    }

    fn start_batch(&self, maps: &[Mapping]) -> Result<(), String> {
        self.prepare_bridges(maps);
        let rules: Vec<Rule> = maps.iter().flat_map(|m| self.rules(m)).collect();
        let mut script = String::new();
        for table in ["nat", "filter"] {
            let out = self.iptables(&["-t", table, "-S"])?;
            if !out.status.success() {
                return Err(format!(
                    "iptables -t {table} -S: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let listing = String::from_utf8_lossy(&out.stdout);
            script.push_str(&self.start_script(table, &listing, &rules));
        }
        self.restore_raw(&script)
    }

    /// The start batch for one table, given what `iptables -t TABLE -S`
    /// lists now.
    fn start_script(&self, table: &str, listing: &str, rules: &[Rule]) -> String {
        let present: std::collections::HashSet<&str> = listing.lines().collect();
        let has = |chain: &str, rule: &[String]| {
            present.contains(format!("-A {chain} {}", rule.join(" ")).as_str())
        };
        let mut script = format!("*{table}\n");
        for chain in self.chains(table) {
            // Declared (created if missing), then emptied.
            script.push_str(&format!(":{chain} - [0:0]\n-F {chain}\n"));
        }
        for (t, chain, rule) in self.jumps(!self.userland_proxy) {
            if t == table && chain == "OUTPUT" && has(&chain, &rule) {
                script.push_str(&format!("-D {chain} {}\n", rule.join(" ")));
            }
        }
        for (t, chain, rule) in self.jumps(self.userland_proxy) {
            if t != table || has(&chain, &rule) {
                continue;
            }
            // FORWARD: before any DROP of the host's own firewall.
            let op = if table == "filter" {
                format!("-I {chain} 1")
            } else {
                format!("-A {chain}")
            };
            script.push_str(&format!("{op} {}\n", rule.join(" ")));
        }
        for (_, chain, rule) in rules.iter().filter(|r| r.0 == table) {
            script.push_str(&format!("-A {chain} {}\n", rule.join(" ")));
        }
        script.push_str("COMMIT\n");
        script
    }

    fn chains(&self, table: &str) -> Vec<&String> {
        if table == "nat" {
            vec![&self.chain, &self.post_chain]
        } else {
            vec![&self.chain]
        }
    }

    fn prepare_bridges(&self, maps: &[Mapping]) {
        for m in maps {
            self.prepare_bridge(m.bridge);
        }
    }

    /// Without the proxy, loopback-sourced packets must be routable out of
    /// the bridge (called when a bridge is set up, and again for bridges
    /// that existed before a restart).
    pub fn prepare_bridge(&self, bridge: &str) {
        if self.userland_proxy() {
            return;
        }
        if bridge.contains('/') || bridge.starts_with('.') {
            return;
        }
        let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
        if std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == "1") {
            return;
        }
        if let Err(e) = std::fs::write(&path, "1") {
            tracing::warn!(bridge, error = %e, "enabling route_localnet: published ports will not answer on 127.0.0.1");
        }
    }

    /// The rules now in our chains, as -S prints them.
    fn listed(&self) -> Result<Vec<Rule>, String> {
        let mut out = Vec::new();
        for (table, chain) in [
            ("nat", &self.chain),
            ("nat", &self.post_chain),
            ("filter", &self.chain),
        ] {
            let o = self.iptables(&["-t", table, "-S", chain])?;
            if !o.status.success() {
                continue;
            }
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let mut w = line.split_whitespace();
                if w.next() != Some("-A") || w.next() != Some(chain.as_str()) {
                    continue;
                }
                out.push((table, chain.clone(), w.map(str::to_string).collect()));
            }
        }
        Ok(out)
    }

    fn restore(&self, dels: &[Rule], adds: &[Rule]) -> Result<(), String> {
        self.restore_raw(&restore_script(dels, adds))
    }

    fn restore_raw(&self, script: &str) -> Result<(), String> {
        let Some(b) = &self.bins else {
            return Ok(());
        };
        let mut child = Command::new(&b.restore)
            .args(["-w", "--noflush"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", b.restore.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .map_err(|e| format!("writing to iptables-restore: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for iptables-restore: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "iptables-restore: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
}

/// The value of `--comment` in a rule.
fn comment_of(rule: &[String]) -> Option<&str> {
    rule.iter()
        .position(|w| w == "--comment")
        .and_then(|i| rule.get(i + 1))
        .map(|s| s.trim_matches('"'))
}

/// An `iptables-restore --noflush` script: per table, deletions first.
fn restore_script(dels: &[Rule], adds: &[Rule]) -> String {
    let mut s = String::new();
    for table in ["nat", "filter"] {
        let lines: Vec<String> = dels
            .iter()
            .filter(|r| r.0 == table)
            .map(|(_, c, r)| format!("-D {c} {}", r.join(" ")))
            .chain(
                adds.iter()
                    .filter(|r| r.0 == table)
                    .map(|(_, c, r)| format!("-A {c} {}", r.join(" "))),
            )
            .collect();
        if lines.is_empty() {
            continue;
        }
        s.push_str(&format!("*{table}\n"));
        for l in lines {
            s.push_str(&l);
            s.push('\n');
        }
        s.push_str("COMMIT\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports::Proto;

    fn fwd(proxy: bool) -> Forwarder {
        Forwarder {
            bins: Some(Bins {
                iptables: "iptables".into(),
                restore: "iptables-restore".into(),
            }),
            chain: "BERTH-bt0".into(),
            post_chain: "BERTH-bt0-POST".into(),
            userland_proxy: proxy,
            failed: AtomicBool::new(false),
            ready: Mutex::new(false),
        }
    }

    fn script(f: &Forwarder, host_ip: Ipv4Addr) -> String {
        let p = Published {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: host_ip.into(),
            host_port: 8080,
        };
        let m = Mapping {
            container: "abc",
            bridge: "bt0",
            container_ip: Ipv4Addr::new(10, 1, 2, 3),
            port: &p,
        };
        restore_script(&[], &f.rules(&m))
    }

    #[test]
    fn dnat_rules_as_dockerd_writes_them() {
        let s = script(&fwd(true), Ipv4Addr::UNSPECIFIED);
        assert!(s.contains("*nat\n-A BERTH-bt0 ! -i bt0 -p tcp -m tcp --dport 8080 -m comment --comment abc -j DNAT --to-destination 10.1.2.3:80\n"), "{s}");
        assert!(s.contains("-A BERTH-bt0-POST -s 10.1.2.3/32 -d 10.1.2.3/32 -p tcp -m tcp --dport 80 -m comment --comment abc -j MASQUERADE\n"), "{s}");
        assert!(s.contains("*filter\n-A BERTH-bt0 -d 10.1.2.3/32 ! -i bt0 -o bt0 -p tcp -m tcp --dport 80 -m comment --comment abc -j ACCEPT\n"), "{s}");
        assert!(!s.contains("127.0.0.0/8"), "{s}");
        let s = script(&fwd(false), Ipv4Addr::new(192, 0, 2, 1));
        assert!(s.contains("-A BERTH-bt0 -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -m comment --comment abc -j DNAT --to-destination 10.1.2.3:80\n"), "{s}");
        assert!(
            s.contains("-A BERTH-bt0-POST -s 127.0.0.0/8 -d 10.1.2.3/32"),
            "{s}"
        );
    }

    #[test]
    fn output_jump_skips_loopback_only_with_the_proxy() {
        let f = fwd(true);
        let out = |p| {
            f.jumps(p)
                .into_iter()
                .find(|(_, c, _)| c == "OUTPUT")
                .map(|(_, _, r)| r.join(" "))
                .unwrap()
        };
        assert_eq!(
            out(true),
            "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j BERTH-bt0"
        );
        assert_eq!(out(false), "-m addrtype --dst-type LOCAL -j BERTH-bt0");
    }

    #[test]
    fn start_creates_chains_fixes_jumps_and_refills() {
        let f = fwd(true);
        let listing = "-P OUTPUT ACCEPT\n-N BERTH-bt0\n-A PREROUTING -m addrtype --dst-type LOCAL -j BERTH-bt0\n-A OUTPUT -m addrtype --dst-type LOCAL -j BERTH-bt0\n-A BERTH-bt0 -p tcp -m tcp --dport 1 -m comment --comment dead -j DNAT --to-destination 10.1.2.9:80\n";
        let rule = (
            "nat",
            "BERTH-bt0".to_string(),
            words(&["-p", "udp", "-j", "DNAT"]),
        );
        let s = f.start_script("nat", listing, &[rule]);
        assert_eq!(
            s,
            "*nat\n:BERTH-bt0 - [0:0]\n-F BERTH-bt0\n:BERTH-bt0-POST - [0:0]\n-F BERTH-bt0-POST\n\
             -D OUTPUT -m addrtype --dst-type LOCAL -j BERTH-bt0\n\
             -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j BERTH-bt0\n\
             -A POSTROUTING -j BERTH-bt0-POST\n\
             -A BERTH-bt0 -p udp -j DNAT\nCOMMIT\n"
        );
        let s = f.start_script("filter", "-P FORWARD DROP\n", &[]);
        assert_eq!(
            s,
            "*filter\n:BERTH-bt0 - [0:0]\n-F BERTH-bt0\n-I FORWARD 1 -j BERTH-bt0\nCOMMIT\n"
        );
    }

    #[test]
    fn comments_name_the_container() {
        let r = words(&[
            "-p",
            "tcp",
            "-m",
            "comment",
            "--comment",
            "abc",
            "-j",
            "DNAT",
        ]);
        assert_eq!(comment_of(&r), Some("abc"));
        assert_eq!(comment_of(&words(&["-j", "ACCEPT"])), None);
        assert_eq!(restore_script(&[], &[]), "");
    }
}
