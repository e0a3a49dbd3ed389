//! Published ports forwarded by the kernel (iptables DNAT): they keep
//! answering while berthd is killed and restarted, adopted containers keep
//! their rules, rules of containers that died meanwhile and of stopped
//! containers go, and nothing is left in iptables after the test.
//!
//! Traffic stays on this machine: the host reaches the port through the
//! bridge's own address, and a network namespace made by the test reaches
//! it through a veth pair into the host.

use std::time::Duration;

use berth_tests::host_cmd::{run, run_ok};
use berth_tests::{cleanup, wait_until, Daemon, DaemonOptions};

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut &f, &mut b).expect("random bytes");
    u32::from_ne_bytes(b)
}

/// This test's bridge, subnet and client namespace; dropped after the
/// daemon, it removes them with the daemon's iptables chains.
struct Net {
    bridge: String,
    /// `10.A.B` of the bridge's /24.
    base: String,
    ns: String,
    /// `10.A.C` of the /30 between the host and the namespace.
    link_base: String,
}

impl Net {
    fn new() -> Net {
        let r = rand_u32();
        let tag = format!("bp{:06x}", r & 0xff_ffff);
        let a = 150 + (r % 100);
        let b = (r >> 8) % 125 + 1;
        Net {
            bridge: format!("{tag}0"),
            base: format!("10.{a}.{b}"),
            ns: tag.clone(),
            link_base: format!("10.{a}.{}", b + 125),
        }
    }

    fn gateway(&self) -> String {
        format!("{}.1", self.base)
    }

    fn daemon(&self, userland_proxy: bool) -> Daemon {
        let d = Daemon::start_with(DaemonOptions {
            config: Some(serde_json::json!({
                "bridge": self.bridge,
                "bip": format!("{}.1/24", self.base),
                "userland-proxy": userland_proxy,
            })),
            args: vec![],
        });
        d.load_busybox();
        d
    }

    /// A namespace with a veth to the host: host end `<ns>h` at .1, the
    /// namespace's end at .2, default route via the host.
    fn client_namespace(&self) {
        let (host_end, ns_end) = (format!("{}h", self.ns), format!("{}n", self.ns));
        run_ok(&["ip", "netns", "add", &self.ns]);
        run_ok(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
        ]);
        run_ok(&["ip", "link", "set", &ns_end, "netns", &self.ns]);
        run_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}.1/30", self.link_base),
            "dev",
            &host_end,
        ]);
        run_ok(&["ip", "link", "set", &host_end, "up"]);
        let in_ns = |args: &[&str]| {
            let mut a = vec!["ip", "netns", "exec", &self.ns];
            a.extend(args);
            run_ok(&a);
        };
        in_ns(&[
            "ip",
            "addr",
            "add",
            &format!("{}.2/30", self.link_base),
            "dev",
            &ns_end,
        ]);
        in_ns(&["ip", "link", "set", &ns_end, "up"]);
        in_ns(&["ip", "link", "set", "lo", "up"]);
        in_ns(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &format!("{}.1", self.link_base),
        ]);
    }

    /// The host's address as the namespace sees it.
    fn host_from_ns(&self) -> String {
        format!("{}.1", self.link_base)
    }

    /// GET from the client namespace.
    fn get_from_ns(&self, host: &str, port: u16) -> Option<String> {
        curl(Some(&self.ns), host, port)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.ns]);
        let _ = run(&["ip", "link", "del", &format!("{}h", self.ns)]);
        cleanup::remove_network(&self.bridge);
    }
}

/// `GET /hostname` of busybox httpd, from the host or inside `ns`.
fn curl(ns: Option<&str>, host: &str, port: u16) -> Option<String> {
    let url = format!("http://{host}:{port}/hostname");
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["ip", "netns", "exec", ns]);
    }
    args.extend(["curl", "-sf", "--noproxy", "*", "-m", "5", &url]);
    let out = run(&args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn iptables_save() -> String {
    let out = run(&["iptables-save"]);
    assert!(out.status.success(), "iptables-save must work");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rules that mention `needle` (a container ID or a bridge).
fn rules_naming(needle: &str) -> Vec<String> {
    iptables_save()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// One datagram to `host:port` comes back.
fn udp_echo(host: &str, port: u16) -> bool {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let _ = s.send_to(b"datagram", (host, port));
    let mut b = [0u8; 64];
    s.recv(&mut b).ok().map(|n| &b[..n] == b"datagram") == Some(true)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const HTTPD: &[&str] = &["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"];

/// `docker run -d -p PORT:80` of busybox httpd; (ID, container address).
fn run_web(d: &Daemon, name: &str, port: u16) -> (String, String) {
    let publish = format!("{port}:80");
    let mut args = vec!["run", "-d", "--name", name, "-p", &publish];
    args.extend(HTTPD);
    let id = d.docker_ok(&args).trim().to_string();
    let ip = d.inspect("container", name)["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (id, ip)
}

#[track_caller]
fn answers(what: &str, f: impl Fn() -> Option<String>, id: &str) {
    let mut got = None;
    wait_until(Duration::from_secs(10), || {
        got = f();
        got.is_some()
    });
    assert_eq!(got.as_deref(), Some(&id[..12]), "{what}");
}

#[test]
fn ports_answer_while_the_daemon_is_down_and_rules_follow_containers() {
    let net = Net::new();
    let mut d = net.daemon(true);
    net.client_namespace();
    let gw = net.gateway();
    let port = free_port();
    let (id, ip) = run_web(&d, "web", port);
    let dnat = format!("--dport {port} -m comment --comment {id} -j DNAT --to-destination {ip}:80");
    assert!(
        rules_naming(&id).iter().any(|r| r.ends_with(&dnat)),
        "no DNAT rule for the published port:\n{}",
        rules_naming(&id).join("\n")
    );
    answers(
        "loopback (userland proxy)",
        || curl(None, "127.0.0.1", port),
        &id,
    );
    answers(
        "host address (DNAT in OUTPUT)",
        || curl(None, &gw, port),
        &id,
    );
    let from_ns = net.host_from_ns();
    answers(
        "another namespace (DNAT in PREROUTING)",
        || net.get_from_ns(&from_ns, port),
        &id,
    );

    // A port bound to one host address is forwarded for that address only.
    let port2 = free_port();
    let publish = format!("{gw}:{port2}:80");
    let mut args = vec!["run", "-d", "--name", "bound", "-p", &publish];
    args.extend(HTTPD);
    let id2 = d.docker_ok(&args).trim().to_string();
    answers(
        "bound address from another namespace",
        || net.get_from_ns(&gw, port2),
        &id2,
    );
    assert_eq!(net.get_from_ns(&from_ns, port2), None);
    assert!(rules_naming(&id2)
        .iter()
        .any(|r| r.contains(&format!("-d {gw}/32 ")) && r.contains("-j DNAT")));
    d.docker_ok(&["rm", "-f", "bound"]);
    assert_eq!(rules_naming(&id2), Vec::<String>::new());

    // A UDP echo (the host's socat, run with the host's loader).
    let uport = std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("{uport}:5353/udp");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &publish,
        "-v",
        "/usr:/usr:ro",
        "busybox",
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/bin/socat",
        "UDP4-RECVFROM:5353,fork",
        "EXEC:/bin/cat",
    ]);
    assert!(wait_until(Duration::from_secs(10), || udp_echo(&gw, uport)));

    // The daemon dies: the kernel still forwards, only loopback (served by
    // the daemon, as dockerd's default userland proxy) goes dark.
    d.kill9();
    assert_eq!(curl(None, &gw, port).as_deref(), Some(&id[..12]));
    assert_eq!(net.get_from_ns(&from_ns, port).as_deref(), Some(&id[..12]));
    assert_eq!(curl(None, "127.0.0.1", port), None);
    assert!(
        udp_echo(&gw, uport),
        "UDP through DNAT while berthd is down"
    );

    // Adopted: the same rules once (no duplicates), loopback back.
    d.start_again();
    answers(
        "loopback after a restart",
        || curl(None, "127.0.0.1", port),
        &id,
    );
    assert_eq!(net.get_from_ns(&from_ns, port).as_deref(), Some(&id[..12]));
    let kept = rules_naming(&id);
    assert_eq!(kept.len(), 4, "rules after adoption:\n{}", kept.join("\n"));

    // Stop removes them and the port goes dark everywhere.
    d.docker_ok(&["stop", "-t", "1", "web"]);
    assert_eq!(rules_naming(&id), Vec::<String>::new());
    assert_eq!(curl(None, &gw, port), None);
    assert_eq!(curl(None, "127.0.0.1", port), None);

    // Started again; then it dies while the daemon is away: the restarted
    // daemon drops its rules.
    d.docker_ok(&["start", "web"]);
    let ip = d.inspect("container", "web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    answers("after docker start", || curl(None, &gw, port), &id);
    assert!(rules_naming(&id)
        .iter()
        .any(|r| r.ends_with(&format!("--to-destination {ip}:80"))));
    let pid = d.inspect("container", "web")["State"]["Pid"]
        .as_i64()
        .unwrap_or(0) as i32;
    assert!(pid > 0);
    d.kill9();
    // SAFETY: kill(2) on the container's init, read from inspect.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    assert!(wait_until(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }));
    d.start_again();
    // Gone at restore, or once the adopted shim reports the exit.
    wait_until(Duration::from_secs(10), || rules_naming(&id).is_empty());
    assert_eq!(
        rules_naming(&id),
        Vec::<String>::new(),
        "rules of a container that died while berthd was down"
    );
    d.docker_ok(&["rm", "-f", "web", "echo"]);

    // Nothing of this daemon is left once the test's clean-up ran.
    let bridge = net.bridge.clone();
    drop(d);
    drop(net);
    assert_eq!(rules_naming(&bridge), Vec::<String>::new());
    assert_eq!(rules_naming(&id), Vec::<String>::new());
}

#[test]
fn without_the_userland_proxy_the_kernel_serves_loopback_too() {
    let net = Net::new();
    let mut d = net.daemon(false);
    let gw = net.gateway();
    let port = free_port();
    let (id, _) = run_web(&d, "web", port);
    answers(
        "loopback (route_localnet)",
        || curl(None, "127.0.0.1", port),
        &id,
    );
    // The port stays reserved: nobody else can bind it.
    assert!(std::net::TcpListener::bind(("0.0.0.0", port)).is_err());
    // Hairpin: the container reaches its own published port on the host.
    let url = format!("http://{gw}:{port}/hostname");
    assert_eq!(
        d.docker_ok(&["exec", "web", "wget", "-qO-", &url]).trim(),
        &id[..12]
    );
    d.kill9();
    assert_eq!(curl(None, "127.0.0.1", port).as_deref(), Some(&id[..12]));
    assert_eq!(curl(None, &gw, port).as_deref(), Some(&id[..12]));
    d.start_again();
    answers("after a restart", || curl(None, "127.0.0.1", port), &id);
    assert_eq!(rules_naming(&id).len(), 5);
    d.docker_ok(&["rm", "-f", "web"]);
    assert_eq!(rules_naming(&id), Vec::<String>::new());
    assert_eq!(curl(None, "127.0.0.1", port), None);
    std::net::TcpListener::bind(("0.0.0.0", port)).expect("the port is free again");
    let bridge = net.bridge.clone();
    drop(d);
    drop(net);
    assert_eq!(rules_naming(&bridge), Vec::<String>::new());
}
