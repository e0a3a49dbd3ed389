//! IPv6 published ports through the docker CLI: `-p PORT:80` publishes on
//! 0.0.0.0 and on `::` with the same host port, `-p [::1]:PORT:80` on v6
//! loopback only; both answer over [::1] and over a host v6 address
//! reached from a network namespace the test makes, for containers on a
//! v4-only network and on a `--ipv6` network. Nothing is left in
//! ip6tables/iptables after rm.

use berth_tests::host_cmd::{run, run_ok};
use berth_tests::Daemon;

/// `GET /hostname` of busybox httpd at `[ip]:port`, from the host or `ns`.
fn curl6(ns: Option<&str>, ip: &str, port: u16) -> Option<String> {
    let url = format!("http://[{ip}]:{port}/hostname");
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["ip", "netns", "exec", ns]);
    }
    args.extend(["curl", "-gsf", "--noproxy", "*", "-m", "5", &url]);
    let out = run(&args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A namespace joined to the host by a veth pair with fd-prefix addresses.
struct Client {
    ns: String,
    host_if: String,
    host_ip: String,
}

impl Client {
    fn new(slot: u32) -> Client {
        let ns = format!("b6p{slot:x}");
        let host_if = format!("b6p{slot:x}h");
        let peer = format!("b6p{slot:x}n");
        let host_ip = format!("fd00:b6b6:{slot:x}::1");
        let c = Client {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
        };
        run_ok(&["ip", "netns", "add", &ns]);
        run_ok(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer,
        ]);
        run_ok(&["ip", "link", "set", &peer, "netns", &ns]);
        run_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/64"),
            "dev",
            &host_if,
            "nodad",
        ]);
        run_ok(&["ip", "link", "set", &host_if, "up"]);
        let inside = format!("fd00:b6b6:{slot:x}::2/64");
        for cmd in [
            vec!["ip", "addr", "add", &inside, "dev", &peer, "nodad"],
            vec!["ip", "link", "set", &peer, "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            let mut a = vec!["ip", "netns", "exec", &ns];
            a.extend(cmd);
            run_ok(&a);
        }
        c
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &self.host_if]);
        let _ = run(&["ip", "netns", "del", &self.ns]);
    }
}

struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        berth_tests::cleanup::remove_network(&self.0);
    }
}

fn save(cmd: &str) -> String {
    let out = run(&[cmd]);
    assert!(out.status.success(), "{cmd} must work");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port free on both families (a dual-stack `::` bind holds both).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("::", 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

const HTTPD: &[&str] = &["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"];

#[test]
fn ipv6_published_ports() {
    if !std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty()) {
        eprintln!("skipped: no IPv6 on this host");
        return;
    }
    let d = Daemon::with_busybox();
    let net = d.network.as_ref().expect("the daemon's test network");
    let slot = net.slot;
    let bridge = format!("{}6", net.bridge);
    let _bridge = Bridge(bridge.clone());
    let client = Client::new(u32::from(slot));
    d.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("10.131.{slot}.0/24"),
        "--subnet",
        &format!("fd00:b131:{slot:x}::/64"),
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
        "six",
    ]);

    let (p4, p6) = (free_port(), free_port());
    let mut ids = Vec::new();
    for (name, port, net) in [("web4", p4, "bridge"), ("web6", p6, "six")] {
        let publish = format!("{port}:80");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "-p",
            &publish,
        ];
        args.extend(HTTPD);
        ids.push(d.docker_ok(&args).trim().to_string());
    }
    for (name, port) in [("web4", p4), ("web6", p6)] {
        let ports = d.inspect("container", name)["NetworkSettings"]["Ports"]["80/tcp"].clone();
        assert_eq!(
            ports,
            serde_json::json!([
                {"HostIp": "0.0.0.0", "HostPort": port.to_string()},
                {"HostIp": "::", "HostPort": port.to_string()},
            ]),
            "{name}"
        );
        let shown = d.docker_ok(&["port", name]);
        assert!(
            shown.contains(&format!("80/tcp -> 0.0.0.0:{port}"))
                && shown.contains(&format!("80/tcp -> [::]:{port}")),
            "{shown}"
        );
        let ps = d.docker_ok(&[
            "ps",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Ports}}",
        ]);
        assert!(
            ps.contains(&format!("0.0.0.0:{port}->80/tcp"))
                && ps.contains(&format!("[::]:{port}->80/tcp")),
            "{ps}"
        );
        let hostname = d.inspect("container", name)["Config"]["Hostname"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut got = None;
        berth_tests::wait_until(std::time::Duration::from_secs(10), || {
            got = curl6(None, "::1", port);
            got.is_some()
        });
        assert_eq!(got.as_deref(), Some(hostname.as_str()), "{name} over [::1]");
        assert_eq!(
            curl6(Some(&client.ns), &client.host_ip, port).as_deref(),
            Some(hostname.as_str()),
            "{name} over {} from a namespace",
            client.host_ip
        );
    }

    // v6 loopback only.
    let p = free_port();
    let publish = format!("[::1]:{p}:80");
    let mut args = vec!["run", "-d", "--name", "lo6", "-p", &publish];
    args.extend(HTTPD);
    ids.push(d.docker_ok(&args).trim().to_string());
    assert_eq!(
        d.inspect("container", "lo6")["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "::1", "HostPort": p.to_string()}])
    );
    assert!(berth_tests::wait_until(
        std::time::Duration::from_secs(10),
        || curl6(None, "::1", p).is_some()
    ));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
        "[::1] publishes on v6 only"
    );

    // Random ports: the same on both families; the same container port
    // published twice gets two host ports, each on both families.
    let mut args = vec!["run", "-d", "--name", "rnd", "-p", "80", "-p", "80"];
    args.extend(HTTPD);
    ids.push(d.docker_ok(&args).trim().to_string());
    let ports = d.inspect("container", "rnd")["NetworkSettings"]["Ports"]["80/tcp"].clone();
    let mut pairs: Vec<(String, String)> = ports
        .as_array()
        .expect("80/tcp bindings")
        .iter()
        .map(|b| {
            (
                b["HostPort"].as_str().unwrap_or("").to_string(),
                b["HostIp"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(pairs.len(), 4, "{ports}");
    assert_eq!(pairs[0].0, pairs[1].0, "{ports}");
    assert_eq!(pairs[2].0, pairs[3].0, "{ports}");
    assert_ne!(pairs[0].0, pairs[2].0, "{ports}");
    for pair in pairs.chunks(2) {
        assert_eq!(
            (pair[0].1.as_str(), pair[1].1.as_str()),
            ("0.0.0.0", "::"),
            "{ports}"
        );
    }

    d.docker_ok(&["rm", "-f", "web4", "web6", "lo6", "rnd"]);
    for id in &ids {
        for cmd in ["iptables-save", "ip6tables-save"] {
            let left: Vec<String> = save(cmd)
                .lines()
                .filter(|l| l.contains(id.as_str()))
                .map(str::to_string)
                .collect();
            assert!(left.is_empty(), "{cmd} after rm: {left:?}");
        }
    }
    assert!(curl6(None, "::1", p6).is_none(), "closed after rm");
    d.docker_ok(&["network", "rm", "six"]);
}
