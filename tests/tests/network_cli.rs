//! Networking through the real docker CLI: the default bridge with
//! published ports (TCP, UDP, -P, random ports, conflicts), user-defined
//! networks with DNS by name and alias, none/host/container modes,
//! connect/disconnect, address reuse and a daemon restart. Each test runs
//! its own berthd on its own bridge and subnet and removes every bridge,
//! veth and iptables rule it caused.

use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::Duration;

use berth_tests::{assert_matches_spec, wait_until, Daemon, DaemonOptions};

/// Removes the test's bridges and NAT rules after the daemon is gone
/// (declare it before the daemon so it drops last).
struct NetGuard {
    prefix: String,
}

impl NetGuard {
    fn new() -> NetGuard {
        let r: u32 = rand_u32();
        NetGuard {
            prefix: format!("bt{:06x}", r & 0xff_ffff),
        }
    }

    fn bridge(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut &f, &mut b).expect("random bytes");
    u32::from_ne_bytes(b)
}

fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn iptables_rules() -> String {
    let mut s = String::new();
    for table in ["nat", "filter"] {
        let out = Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .expect("iptables must be installed for the network tests");
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    s
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        berth_tests::cleanup::remove_port_chains(&self.bridge("0"));
        for l in links().into_iter().filter(|l| l.starts_with(&self.prefix)) {
            let _ = Command::new("ip").args(["link", "del", &l]).status();
        }
        for table in ["nat", "filter"] {
            let out = Command::new("iptables")
                .args(["-w", "-t", table, "-S"])
                .output();
            let Ok(out) = out else { continue };
            for rule in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|r| r.contains(&self.prefix) && r.starts_with("-A "))
            {
                let args: Vec<&str> = rule[3..].split_whitespace().collect();
                let _ = Command::new("iptables")
                    .args(["-w", "-t", table, "-D"])
                    .args(&args)
                    .status();
            }
        }
    }
}

/// A daemon on bridge `<prefix>0` with a random 10.x.y.0/24 subnet.
fn daemon(g: &NetGuard) -> (Daemon, String) {
    let r = rand_u32();
    let subnet_base = format!("10.{}.{}", 150 + (r % 100), (r >> 8) % 250 + 1);
    let d = Daemon::start_with(DaemonOptions {
        config: Some(
            serde_json::json!({ "bridge": g.bridge("0"), "bip": format!("{subnet_base}.1/24") }),
        ),
        args: vec![],
    });
    d.load_busybox();
    (d, subnet_base)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "-m", "3", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .expect("curl must be installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_http(port: u16, path: &str) -> String {
    let mut body = None;
    wait_until(Duration::from_secs(10), || {
        body = http_get(port, path);
        body.is_some()
    });
    body.unwrap_or_else(|| panic!("no HTTP answer on 127.0.0.1:{port}{path}"))
}

fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Veths of stopped containers are deleted in the background: give it a moment.
fn no_ports_soon(bridge: &str) -> bool {
    wait_until(Duration::from_secs(5), || bridge_ports(bridge).is_empty())
}

const HTTPD: &[&str] = &["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"];

#[test]
fn published_tcp_port_answers_and_is_reported() {
    let g = NetGuard::new();
    let (d, subnet) = daemon(&g);
    let port = free_port();
    let mut args = vec!["run", "-d", "--name", "web"];
    let publish = format!("{port}:80");
    args.extend(["-p", &publish]);
    args.extend(HTTPD);
    let id = d.docker_ok(&args).trim().to_string();
    assert_eq!(wait_http(port, "/hostname").trim(), &id[..12]);
    let ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    assert!(
        ip.trim().starts_with(&format!("{subnet}.")),
        "address {ip:?} not in {subnet}.0/24"
    );
    // dockerd 28 publishes on `::` too when the host has IPv6.
    let v6 = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty());
    let ports = d.docker_ok(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"]);
    let (json6, port6, ps6) = if v6 {
        (
            format!(r#",{{"HostIp":"::","HostPort":"{port}"}}"#),
            format!("\n80/tcp -> [::]:{port}"),
            format!(", [::]:{port}->80/tcp"),
        )
    } else {
        Default::default()
    };
    assert_eq!(
        ports.trim(),
        format!(r#"{{"80/tcp":[{{"HostIp":"0.0.0.0","HostPort":"{port}"}}{json6}]}}"#)
    );
    assert_eq!(
        d.docker_ok(&["port", "web"]).trim(),
        format!("80/tcp -> 0.0.0.0:{port}{port6}")
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("0.0.0.0:{port}->80/tcp{ps6}"));
    let gw = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Gateway}} {{.NetworkSettings.MacAddress}}",
        "web",
    ]);
    assert!(gw.starts_with(&format!("{subnet}.1 02:42:")), "{gw}");
    // The container has its address, a default route and loopback.
    let addr = d.docker_ok(&["exec", "web", "ip", "-o", "-4", "addr"]);
    assert!(
        addr.contains(&format!("eth0    inet {}", ip.trim())) || addr.contains(ip.trim()),
        "{addr}"
    );
    assert!(
        addr.contains("lo    inet 127.0.0.1") || addr.contains("127.0.0.1/8"),
        "{addr}"
    );
    let route = d.docker_ok(&["exec", "web", "ip", "route"]);
    assert!(
        route.contains(&format!("default via {subnet}.1 dev eth0")),
        "{route}"
    );
    // It reaches the gateway, and /etc/hosts names it by its address.
    d.docker_ok(&[
        "exec",
        "web",
        "ping",
        "-c",
        "1",
        "-W",
        "3",
        &format!("{subnet}.1"),
    ]);
    assert!(d
        .docker_ok(&["exec", "web", "cat", "/etc/hosts"])
        .contains(&format!("{}\t{}", ip.trim(), &id[..12])));
    assert_eq!(bridge_ports(&g.bridge("0")).len(), 1);
    assert!(iptables_rules().contains(&format!(
        "-A POSTROUTING -s {subnet}.0/24 ! -o {} -j MASQUERADE",
        g.bridge("0")
    )));

    d.docker_ok(&["rm", "-f", "web"]);
    assert!(
        no_ports_soon(&g.bridge("0")),
        "a veth is left on the bridge"
    );
    assert!(
        http_get(port, "/hostname").is_none(),
        "the proxy still answers after removal"
    );
    TcpListener::bind(("0.0.0.0", port)).expect("the published port is free again");
}

#[test]
fn publish_all_random_ports_and_udp() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "pall",
        "--expose",
        "80",
        "-P",
        "-p",
        "127.0.0.1::80",
    ];
    args.extend(HTTPD);
    d.docker_ok(&args);
    let out = d.docker_ok(&["port", "pall", "80/tcp"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "the explicit binding replaces -P's for the same port: {out}"
    );
    let port: u16 = lines[0].rsplit(':').next().unwrap().parse().unwrap();
    assert!(lines[0].starts_with("127.0.0.1:"), "{out}");
    assert!(wait_http(port, "/passwd").contains("root:"));

    // -P alone: every EXPOSEd port on a random host port.
    let mut args = vec!["run", "-d", "--name", "pall2", "--expose", "80", "-P"];
    args.extend(HTTPD);
    d.docker_ok(&args);
    let out = d.docker_ok(&["port", "pall2", "80"]);
    let port: u16 = out
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait_http(port, "/passwd").contains("root:"));

    // UDP: socat from the host's /usr (read-only) echoes datagrams.
    let uport = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("{uport}:5353/udp");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "udp",
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
    assert_eq!(
        d.docker_ok(&["port", "udp"])
            .lines()
            .next()
            .unwrap_or_default(),
        format!("5353/udp -> 0.0.0.0:{uport}")
    );
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut got = None;
    wait_until(Duration::from_secs(10), || {
        let _ = client.send_to(b"datagram", ("127.0.0.1", uport));
        let mut b = [0u8; 64];
        got = client.recv(&mut b).ok().map(|n| b[..n].to_vec());
        got.is_some()
    });
    assert_eq!(
        got.as_deref(),
        Some(&b"datagram"[..]),
        "no UDP echo through the published port"
    );
    d.docker_ok(&["rm", "-f", "pall", "pall2", "udp"]);
    assert!(no_ports_soon(&g.bridge("0")));
}

#[test]
fn port_conflict_is_a_clear_error_and_starts_nothing() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let publish = format!("{port}:80");
    let mut args = vec!["run", "-d", "--name", "clash", "-p", &publish];
    args.extend(HTTPD);
    let out = d.docker(&args);
    assert!(!out.success());
    assert!(
        out.stderr.contains(&format!(
            "Bind for 0.0.0.0:{port} failed: port is already allocated"
        )),
        "{}",
        out.stderr
    );
    let state = d.docker_ok(&["inspect", "-f", "{{.State.Running}}", "clash"]);
    assert_eq!(state.trim(), "false");
    assert!(no_ports_soon(&g.bridge("0")), "a failed start left a veth");
    // The address went back to the pool: the next container gets the first one.
    drop(held);
    d.docker_ok(&["start", "clash"]);
    assert!(wait_http(port, "/hostname").len() > 5);
    d.docker_ok(&["rm", "-f", "clash"]);
}

#[test]
fn user_network_dns_by_name_and_alias_and_lifecycle() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let r = rand_u32();
    let subnet = format!("10.{}.{}.0/24", 50 + r % 90, (r >> 8) % 250 + 1);
    let base = subnet.trim_end_matches(".0/24").to_string();
    let bridge_opt = format!("com.docker.network.bridge.name={}", g.bridge("u"));
    let gw = format!("{base}.254");
    let range = format!("{base}.128/25");
    let id = d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        "--gateway",
        &gw,
        "--ip-range",
        &range,
        "--label",
        "team=n",
        "-o",
        &bridge_opt,
        "appnet",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ls = d.docker_ok(&[
        "network",
        "ls",
        "--filter",
        "label=team=n",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(ls.trim(), "appnet");
    let ls = d.docker_ok(&[
        "network",
        "ls",
        "--filter",
        "type=builtin",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(
        ls.split_whitespace().collect::<Vec<_>>(),
        ["bridge", "host", "none"]
    );
    let cfg = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{json .IPAM.Config}}",
        "appnet",
    ]);
    let cfg: serde_json::Value = serde_json::from_str(cfg.trim()).expect("IPAM config JSON");
    assert_eq!(
        cfg,
        serde_json::json!([{ "Subnet": subnet, "IPRange": range, "Gateway": gw }])
    );

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "appnet",
        "--network-alias",
        "database",
        "busybox",
        "sleep",
        "300",
    ]);
    let db_ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"appnet\").IPAddress}}",
        "db",
    ]);
    assert_eq!(
        db_ip.trim(),
        format!("{base}.128"),
        "first address of the ip-range"
    );
    for (path, template) in [
        ("/networks", "/networks"),
        ("/networks/appnet", "/networks/{id}"),
        ("/networks/host", "/networks/{id}"),
    ] {
        let body = d.curl(&[&format!("http://localhost/v1.50{path}")]).ok();
        assert_matches_spec("GET", template, &body);
    }
    let fixed = format!("{base}.10");
    let out = d.docker_ok(&[
        "run", "--rm", "--network", "appnet", "--ip", &fixed, "busybox", "sh", "-c",
        "cat /etc/resolv.conf; ip -o -4 addr show eth0; nslookup db; nslookup database; ping -c1 -W3 db; ping -c1 -W3 database",
    ]);
    assert!(out.starts_with("nameserver 127.0.0.11\n"), "{out}");
    assert!(out.contains(&format!("inet {fixed}/24")), "{out}");
    assert_eq!(
        out.matches(&format!("Address: {}", db_ip.trim())).count(),
        2,
        "db and its alias resolve: {out}"
    );
    assert_eq!(out.matches("1 packets received").count(), 2, "{out}");

    // Names outside the network are forwarded / not found, not invented.
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "busybox",
        "nslookup",
        "no-such-container.invalid",
    ]);
    assert!(
        !out.success() || out.stdout.contains("NXDOMAIN") || out.stdout.contains("can't find"),
        "{}",
        out.stdout
    );

    let rm = d.docker(&["network", "rm", "appnet"]);
    assert!(
        !rm.success() && rm.stderr.contains("has active endpoints"),
        "{}",
        rm.stderr
    );
    let pre = d.docker(&["network", "rm", "bridge"]);
    assert!(
        pre.stderr
            .contains("pre-defined network and cannot be removed"),
        "{}",
        pre.stderr
    );
    d.docker_ok(&["rm", "-f", "db"]);
    d.docker_ok(&["network", "rm", "appnet"]);
    assert!(
        !links().contains(&g.bridge("u")),
        "the network's bridge is left"
    );
    assert!(
        !iptables_rules().contains(&g.bridge("u")),
        "the network's NAT rule is left"
    );

    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        "-o",
        &bridge_opt,
        "spare",
    ]);
    let pruned = d.docker_ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("spare"), "{pruned}");
    assert!(!links().contains(&g.bridge("u")));
}

#[test]
fn none_host_and_container_modes() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let none = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; ip -o -4 addr",
    ]);
    let mut names: Vec<&str> = none.lines().take_while(|l| !l.contains("inet")).collect();
    names.sort();
    assert_eq!(names, ["lo"], "{none}");
    assert!(none.contains("127.0.0.1/8"), "loopback is up: {none}");
    let inspect_none = d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "nonet",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(inspect_none.trim().len(), 64);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "nonet"])
            .trim(),
        ""
    );

    let host = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    let mut mine = links();
    mine.retain(|l| !l.starts_with("veth") && !l.starts_with("bt"));
    for l in mine {
        assert!(
            host.split_whitespace().any(|h| h == l),
            "host interface {l} not seen in --network host: {host}"
        );
    }

    d.docker_ok(&["run", "-d", "--name", "owner", "busybox", "sleep", "300"]);
    let a = d.docker_ok(&["exec", "owner", "readlink", "/proc/self/ns/net"]);
    let b = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(a, b);
    let owner_ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "owner"]);
    let seen = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(seen.contains(owner_ip.trim()), "{seen}");
    let clash = d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:owner",
        "-p",
        "80",
        "busybox",
        "true",
    ]);
    assert!(
        clash
            .stderr
            .contains("conflicting options: port publishing and the container type network mode"),
        "{}",
        clash.stderr
    );
    d.docker_ok(&["rm", "-f", "owner", "nonet"]);
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let r = rand_u32();
    let base = format!("10.{}.{}", 50 + r % 90, (r >> 8) % 250 + 1);
    let subnet = format!("{base}.0/24");
    let bridge_opt = format!("com.docker.network.bridge.name={}", g.bridge("c"));
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        "-o",
        &bridge_opt,
        "side",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "side",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["run", "-d", "--name", "mover", "busybox", "sleep", "300"]);
    let ip = format!("{base}.77");
    d.docker_ok(&[
        "network", "connect", "--ip", &ip, "--alias", "moved", "side", "mover",
    ]);
    let addr = d.docker_ok(&["exec", "mover", "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(addr.contains(&format!("{ip}/24")), "{addr}");
    let nets = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
        "mover",
    ]);
    assert!(
        nets.contains(&format!("side={ip}")) && nets.contains("bridge="),
        "{nets}"
    );
    let ping = d.docker_ok(&["exec", "peer", "ping", "-c1", "-W3", "moved"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let inspect = d.docker_ok(&["network", "inspect", "-f", "{{len .Containers}}", "side"]);
    assert_eq!(inspect.trim(), "2");

    d.docker_ok(&["network", "disconnect", "side", "mover"]);
    let gone = d.docker(&["exec", "mover", "ip", "link", "show", "eth1"]);
    assert!(!gone.success(), "eth1 is still there: {}", gone.stdout);
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{len .Containers}}", "side"])
            .trim(),
        "1"
    );
    assert_eq!(bridge_ports(&g.bridge("c")).len(), 1);
    d.docker_ok(&["rm", "-f", "peer", "mover"]);
    d.docker_ok(&["network", "rm", "side"]);
}

#[test]
fn addresses_are_reused_after_many_create_remove_cycles() {
    let g = NetGuard::new();
    let r = rand_u32();
    let base = format!("10.{}.{}", 150 + r % 100, (r >> 8) % 250 + 1);
    // A /29: five usable addresses for twenty containers in turn.
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({ "bridge": g.bridge("0"), "bip": format!("{base}.1/29") })),
        args: vec![],
    });
    d.load_busybox();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let name = format!("cycle{i}");
        d.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "60"]);
        let ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]);
        seen.insert(ip.trim().to_string());
        d.docker_ok(&["rm", "-f", &name]);
    }
    assert_eq!(
        seen.len(),
        5,
        "all five addresses were used in turn: {seen:?}"
    );
    // Two live containers never share an address.
    d.docker_ok(&["run", "-d", "--name", "live1", "busybox", "sleep", "60"]);
    d.docker_ok(&["run", "-d", "--name", "live2", "busybox", "sleep", "60"]);
    let a = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}}",
        "live1",
        "live2",
    ]);
    let ips: Vec<&str> = a.lines().collect();
    assert_ne!(ips[0], ips[1]);
    d.docker_ok(&["rm", "-f", "live1", "live2"]);
    assert!(no_ports_soon(&g.bridge("0")));
}

#[test]
fn restart_keeps_addresses_and_published_ports() {
    let g = NetGuard::new();
    let (mut d, _) = daemon(&g);
    let port = free_port();
    let publish = format!("{port}:80");
    let mut args = vec!["run", "-d", "--name", "keep", "-p", &publish];
    args.extend(HTTPD);
    d.docker_ok(&args);
    wait_http(port, "/hostname");
    let ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "keep"]);
    // And a pair on a user network, resolving each other through the embedded DNS.
    let r = rand_u32();
    let subnet = format!("10.{}.{}.0/24", 50 + r % 90, (r >> 8) % 250 + 1);
    let opt = format!("com.docker.network.bridge.name={}", g.bridge("r"));
    d.docker_ok(&["network", "create", "--subnet", &subnet, "-o", &opt, "kept"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dns1",
        "--network",
        "kept",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dns2",
        "--network",
        "kept",
        "busybox",
        "sleep",
        "300",
    ]);
    let dns1_ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"kept\").IPAddress}}",
        "dns1",
    ]);
    d.kill9();
    d.start_again();
    let looked_up = d.docker_ok(&["exec", "dns2", "nslookup", "dns1"]);
    assert!(
        looked_up.contains(&format!("Address: {}", dns1_ip.trim())),
        "embedded DNS after a restart: {looked_up}"
    );
    d.docker_ok(&["rm", "-f", "dns1", "dns2"]);
    d.docker_ok(&["network", "rm", "kept"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "keep"]),
        ip
    );
    wait_http(port, "/hostname");
    assert_eq!(
        d.docker_ok(&["port", "keep"])
            .lines()
            .next()
            .unwrap_or_default(),
        format!("80/tcp -> 0.0.0.0:{port}")
    );
    // A new container does not get the kept address.
    d.docker_ok(&["run", "-d", "--name", "next", "busybox", "sleep", "60"]);
    let next = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "next"]);
    assert_ne!(next, ip);
    d.docker_ok(&["rm", "-f", "keep", "next"]);
    assert!(http_get(port, "/hostname").is_none());
}

#[test]
fn hosts_and_resolv_conf_options() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--hostname",
        "box1",
        "--add-host",
        "gateway.test:10.9.8.7",
        "--dns",
        "10.1.1.1",
        "--dns-search",
        "example.test",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hosts /etc/resolv.conf",
    ]);
    assert!(out.starts_with("box1\n"), "{out}");
    assert!(out.contains("10.9.8.7\tgateway.test"), "{out}");
    assert!(
        out.contains("nameserver 10.1.1.1") && out.contains("search example.test"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.ends_with("\tbox1") && !l.starts_with("127.")),
        "own address line: {out}"
    );
    let mac = d.docker_ok(&[
        "run",
        "--rm",
        "--mac-address",
        "02:42:de:ad:be:ef",
        "busybox",
        "cat",
        "/sys/class/net/eth0/address",
    ]);
    assert_eq!(mac.trim(), "02:42:de:ad:be:ef");
}

#[test]
fn docker_py_networks_ports_and_connect() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let r = rand_u32();
    let base = format!("10.{}.{}", 50 + r % 90, (r >> 8) % 250 + 1);
    let script = berth_tests::workspace_root().join("tests/py/network_dockerpy.py");
    let out = d.python_file(&script, &[&g.bridge("p"), &base]);
    assert!(
        out.success() && out.stdout.trim() == "ok",
        "docker-py script failed:\nstdout: {}\nstderr: {}\nberthd log:\n{}",
        out.stdout,
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
    assert!(
        !links().contains(&g.bridge("p")),
        "the pruned network's bridge is left"
    );
    assert!(
        d.docker_ok(&["ps", "-aq"]).trim().is_empty(),
        "containers left"
    );
}

#[test]
fn internal_networks_and_create_errors() {
    let g = NetGuard::new();
    let (d, subnet0) = daemon(&g);
    let r = rand_u32();
    let subnet = format!("10.{}.{}.0/24", 50 + r % 90, (r >> 8) % 250 + 1);
    let bridge = g.bridge("i");
    let opt = format!("com.docker.network.bridge.name={bridge}");
    d.docker_ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &subnet,
        "-o",
        &opt,
        "sealed",
    ]);
    let rules = iptables_rules();
    assert!(
        rules.contains(&format!("-A FORWARD -i {bridge} ! -o {bridge} -j DROP")),
        "{rules}"
    );
    assert!(
        !rules.contains(&format!("! -o {bridge} -j MASQUERADE")),
        "an internal network is not NATed: {rules}"
    );
    assert_eq!(
        d.docker_ok(&["network", "inspect", "-f", "{{.Internal}}", "sealed"])
            .trim(),
        "true"
    );

    let dup = d.docker(&["network", "create", "sealed"]);
    assert!(
        dup.stderr
            .contains("network with name sealed already exists"),
        "{}",
        dup.stderr
    );
    let overlap = d.docker(&[
        "network",
        "create",
        "--subnet",
        &format!("{subnet0}.0/24"),
        "clash",
    ]);
    assert!(overlap.stderr.contains("overlaps"), "{}", overlap.stderr);
    let bad = d.docker(&["network", "create", "--subnet", "10.0.0.0/99", "bad"]);
    assert!(
        !bad.success() && bad.stderr.contains("invalid"),
        "{}",
        bad.stderr
    );
    // The CLI turns any 404 from create into a pull; ask the API directly.
    let missing = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuchnet"}}"#,
        "-w",
        " %{http_code}",
        "http://localhost/v1.50/containers/create",
    ]);
    assert!(
        missing.stdout.contains("network nosuchnet not found") && missing.stdout.ends_with(" 404"),
        "{}",
        missing.stdout
    );

    // A non-bridge interface is never taken over (nor deleted).
    let lo = d.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=lo",
        "grab",
    ]);
    assert!(
        lo.stderr
            .contains("interface lo exists and is not a bridge"),
        "{}",
        lo.stderr
    );
    assert!(links().contains(&"lo".to_string()));

    d.docker_ok(&["network", "rm", "sealed"]);
    let rules = iptables_rules();
    assert!(
        !rules.contains(&bridge),
        "rules of the removed network are left: {rules}"
    );
    assert!(!links().contains(&bridge));
}

#[test]
fn bridge_names_are_checked_and_unique() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let name = |n: &str| format!("com.docker.network.bridge.name={n}");
    let out = d.docker(&[
        "network",
        "create",
        "-o",
        &name("a-name-longer-than-15"),
        "long",
    ]);
    assert!(!out.success());
    assert!(out.stderr.contains("invalid bridge name"), "{}", out.stderr);
    // The daemon's own bridge belongs to its default network.
    let out = d.docker(&["network", "create", "-o", &name(&g.bridge("0")), "taken"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("networks have same bridge name"),
        "{}",
        out.stderr
    );
    let mine = g.bridge("m");
    d.docker_ok(&["network", "create", "-o", &name(&mine), "mine"]);
    let out = d.docker(&["network", "create", "-o", &name(&mine), "again"]);
    assert!(
        out.stderr.contains("networks have same bridge name"),
        "{}",
        out.stderr
    );
    d.docker_ok(&["network", "rm", "mine"]);
    assert!(!links().contains(&mine));
    assert!(links().contains(&"lo".to_owned()));
}

/// IPAM `AuxiliaryAddresses` (`--aux-address`): kept in inspect and never
/// handed to a container; one outside the subnet is refused.
#[test]
fn auxiliary_addresses_are_reserved() {
    let g = NetGuard::new();
    let (d, _) = daemon(&g);
    let r = rand_u32();
    let base = format!("10.{}.{}", 50 + r % 90, (r >> 8) % 250 + 1);
    let bridge_opt = format!("com.docker.network.bridge.name={}", g.bridge("x"));
    let subnet = format!("{base}.0/24");
    let range = format!("{base}.0/30");
    let aux = format!("router={base}.1");
    // The CLI checks this itself; the API must too.
    let body = serde_json::json!({
        "Name": "auxbad",
        "IPAM": { "Config": [{ "Subnet": subnet, "AuxiliaryAddresses": { "far": "10.255.255.9" } }] },
    })
    .to_string();
    let out = d.curl(&[
        "-s",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        "http://d/networks/create",
    ]);
    assert!(
        out.stdout.contains("must belong to the master pool"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("403"), "{}", out.stdout);
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        "--gateway",
        &format!("{base}.254"),
        "--ip-range",
        &range,
        "--aux-address",
        &aux,
        "-o",
        &bridge_opt,
        "auxnet",
    ]);
    let cfg = d.inspect("network", "auxnet")["IPAM"]["Config"][0].clone();
    assert_eq!(
        cfg["AuxiliaryAddresses"]["router"],
        format!("{base}.1"),
        "{cfg}"
    );
    // The range holds .1 and .2 only: .1 is reserved, so the first
    // container gets .2 and an explicit --ip of .1 is refused.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "auxnet",
        "busybox",
        "sleep",
        "60",
    ]);
    let ip =
        d.inspect("container", "a1")["NetworkSettings"]["Networks"]["auxnet"]["IPAddress"].clone();
    assert_eq!(ip, format!("{base}.2"));
    let out = d.docker(&[
        "run",
        "--rm",
        "--network",
        "auxnet",
        "--ip",
        &format!("{base}.1"),
        "busybox",
        "true",
    ]);
    assert!(!out.status.success(), "a reserved address was handed out");
    d.docker_ok(&["rm", "-f", "a1"]);
    d.docker_ok(&["network", "rm", "auxnet"]);
}

/// `"bridge": "none"` as dockerd's `--bridge none`: no default network and
/// no link named `none`; a container that names no network is refused with
/// dockerd's 404, one with `--network none` or a user network runs.
#[test]
fn bridge_none_turns_the_default_network_off() {
    let g = NetGuard::new();
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({ "bridge": "none" })),
        args: vec![],
    });
    d.load_busybox();
    assert!(
        !links().iter().any(|l| l == "none"),
        "a bridge named none was made"
    );
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.lines().any(|n| n == "bridge"), "{nets}");
    // Through the API: the CLI takes any 404 at create for a missing image
    // and tries a pull first.
    let out = d.curl(&[
        "-s",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Image":"busybox","Cmd":["true"]}"#,
        "http://d/containers/create",
    ]);
    assert!(
        out.stdout.contains("network bridge not found"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("404"), "{}", out.stdout);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--network", "none", "busybox", "echo", "ok"]),
        "ok\n"
    );
    let bridge_opt = format!("com.docker.network.bridge.name={}", g.bridge("n"));
    d.docker_ok(&["network", "create", "-o", &bridge_opt, "own"]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--network", "own", "busybox", "echo", "ok"]),
        "ok\n"
    );
    d.docker_ok(&["network", "rm", "own"]);
}
