//! `docker network connect`/`disconnect` as dockerd does them: on created
//! and stopped containers (taking effect at the next start), disconnect
//! and reconnect of a running container, a failed connect that leaves
//! nothing behind, the connect/disconnect events at start and stop, and
//! the endpoint and network shapes of inspect.

use std::process::Command;
use std::time::Duration;

use berth_tests::{wait_until, Daemon};
use serde_json::Value;

/// Removes the test's bridges (and what names them) whatever happens.
struct Bridges(Vec<String>);

impl Drop for Bridges {
    fn drop(&mut self) {
        for b in &self.0 {
            berth_tests::cleanup::remove_network(b);
        }
    }
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

fn iptables_rules() -> String {
    let mut s = String::new();
    for table in ["nat", "filter"] {
        let out = Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .expect("iptables must be installed");
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    s
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn networks(d: &Daemon, c: &str) -> Value {
    d.inspect("container", c)["NetworkSettings"]["Networks"].clone()
}

fn network_names(d: &Daemon, c: &str) -> Vec<String> {
    let mut v: Vec<String> = networks(d, c)
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn addresses(d: &Daemon, c: &str) -> String {
    d.docker_ok(&["exec", c, "ip", "-o", "-4", "addr"])
}

/// A daemon plus a user network `side` on its own bridge and /24.
fn setup() -> (Daemon, Bridges, String, String) {
    let d = Daemon::with_busybox();
    let net = d.network.as_ref().expect("the daemon's test network");
    let (slot, bridge) = (net.slot, format!("{}s", net.bridge));
    let guard = Bridges(
        ["s", "a", "b", "c"]
            .iter()
            .map(|x| format!("{}{x}", net.bridge))
            .collect(),
    );
    let base = format!("10.126.{slot}");
    let opt = format!("com.docker.network.bridge.name={bridge}");
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{base}.0/24"),
        "-o",
        &opt,
        "side",
    ]);
    (d, guard, bridge, base)
}

#[test]
fn connect_and_disconnect_created_and_stopped_containers() {
    let (d, _guard, bridge, base) = setup();
    let since = now_secs().to_string();
    d.docker_ok(&["create", "--name", "cc", "busybox", "sleep", "300"]);
    assert_eq!(network_names(&d, "cc"), ["bridge"]);

    // Created: disconnect from the default network, connect to `side`.
    d.docker_ok(&["network", "disconnect", "bridge", "cc"]);
    assert!(network_names(&d, "cc").is_empty(), "{}", networks(&d, "cc"));
    let again = d.docker(&["network", "disconnect", "bridge", "cc"]);
    assert!(
        !again.success() && again.stderr.contains("is not connected to network bridge"),
        "{}",
        again.stderr
    );
    let ip = format!("{base}.50");
    d.docker_ok(&[
        "network", "connect", "--alias", "al", "--ip", &ip, "side", "cc",
    ]);
    let nets = networks(&d, "cc");
    assert_eq!(network_names(&d, "cc"), ["side"]);
    assert_eq!(nets["side"]["Aliases"], serde_json::json!(["al"]));
    assert_eq!(nets["side"]["IPAMConfig"]["IPv4Address"], ip.as_str());
    assert_eq!(nets["side"]["IPAddress"], "", "not running: no address yet");

    // Start: only `side`, as eth0, with the default route through it.
    d.docker_ok(&["start", "cc"]);
    let addrs = addresses(&d, "cc");
    assert!(addrs.contains(&format!("eth0    inet {ip}/24")), "{addrs}");
    assert!(!addrs.contains("eth1"), "{addrs}");
    let route = d.docker_ok(&["exec", "cc", "ip", "route"]);
    assert!(
        route.contains(&format!("default via {base}.1 dev eth0")),
        "{route}"
    );
    assert_eq!(networks(&d, "cc")["side"]["IPAddress"], ip.as_str());
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
    let ping = d.docker_ok(&["exec", "peer", "ping", "-c1", "-W3", "al"]);
    assert!(ping.contains("1 packets received"), "{ping}");

    // Stopped: connect the default network again; both at the next start.
    d.docker_ok(&["stop", "-t", "0", "cc"]);
    d.docker_ok(&["network", "connect", "bridge", "cc"]);
    assert_eq!(network_names(&d, "cc"), ["bridge", "side"]);
    d.docker_ok(&["start", "cc"]);
    let addrs = addresses(&d, "cc");
    assert!(addrs.contains(&format!("inet {ip}/24")), "{addrs}");
    assert!(addrs.contains("eth0") && addrs.contains("eth1"), "{addrs}");

    // Events: connect for each network at start, disconnect at stop.
    d.docker_ok(&["stop", "-t", "0", "cc"]);
    let id = d.inspect("container", "cc")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let until = (now_secs() + 1).to_string();
    let events = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}",
    ]);
    let count = |what: &str| {
        events
            .lines()
            .filter(|l| *l == format!("{what} {id}"))
            .count()
    };
    assert_eq!(count("connect side"), 2, "{events}");
    assert_eq!(count("disconnect side"), 2, "{events}");
    assert_eq!(count("connect bridge"), 1, "{events}");
    assert_eq!(count("disconnect bridge"), 1, "{events}");

    d.docker_ok(&["rm", "-f", "cc", "peer"]);
    d.docker_ok(&["network", "rm", "side"]);
    assert!(
        wait_until(Duration::from_secs(5), || bridge_ports(
            &d.network
                .as_ref()
                .map(|n| n.bridge.clone())
                .unwrap_or_default()
        )
        .is_empty()),
        "veths left on the default bridge"
    );
    assert!(
        !iptables_rules().contains(&bridge),
        "rules of side are left"
    );
}

#[test]
fn running_container_disconnect_reconnect_and_failed_connect() {
    let (d, _guard, bridge, base) = setup();
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
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "mm",
        "--network",
        "side",
        "--network-alias",
        "em",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&["network", "connect", "bridge", "mm"]);
    assert_eq!(network_names(&d, "mm"), ["bridge", "side"]);

    // Disconnect the primary network: gone from inspect, the default
    // route moves to the remaining interface.
    d.docker_ok(&["network", "disconnect", "side", "mm"]);
    assert_eq!(network_names(&d, "mm"), ["bridge"]);
    let route = d.docker_ok(&["exec", "mm", "ip", "route"]);
    assert!(
        route.contains("default via") && route.contains("dev eth1"),
        "{route}"
    );
    assert_eq!(bridge_ports(&bridge).len(), 1, "only peer on side");

    // And back (dockerd's users do this to change aliases); the embedded
    // DNS keeps answering both ways.
    d.docker_ok(&["network", "connect", "--alias", "back", "side", "mm"]);
    assert_eq!(network_names(&d, "mm"), ["bridge", "side"]);
    let ping = d.docker_ok(&["exec", "peer", "ping", "-c1", "-W3", "back"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let ping = d.docker_ok(&["exec", "mm", "ping", "-c1", "-W3", "peer"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    d.docker_ok(&["network", "disconnect", "side", "mm"]);
    d.docker_ok(&["network", "connect", "side", "mm"]);
    let ping = d.docker_ok(&["exec", "mm", "ping", "-c1", "-W3", "peer"]);
    assert!(ping.contains("1 packets received"), "{ping}");

    // A connect that fails leaves nothing attached.
    d.docker_ok(&["network", "disconnect", "side", "mm"]);
    let before = addresses(&d, "mm");
    let peer_ip = networks(&d, "peer")["side"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let taken = d.docker(&["network", "connect", "--ip", &peer_ip, "side", "mm"]);
    assert!(
        !taken.success() && taken.stderr.contains("Address already in use"),
        "{}",
        taken.stderr
    );
    let outside = d.docker(&["network", "connect", "--ip", "192.0.2.9", "side", "mm"]);
    assert!(!outside.success(), "{}", outside.stdout);
    assert_eq!(addresses(&d, "mm"), before);
    assert_eq!(network_names(&d, "mm"), ["bridge"]);
    assert_eq!(bridge_ports(&bridge).len(), 1);
    let side = d.inspect("network", "side");
    assert_eq!(side["Containers"].as_object().map(|c| c.len()), Some(1));

    // Unknown network or container: 404s.
    let nonet = d.docker(&["network", "connect", "nosuch", "mm"]);
    assert!(
        nonet.stderr.contains("network nosuch not found"),
        "{}",
        nonet.stderr
    );
    let noc = d.docker(&["network", "connect", "side", "nosuch"]);
    assert!(
        noc.stderr.contains("No such container: nosuch"),
        "{}",
        noc.stderr
    );

    // The next start has just what inspect shows.
    d.docker_ok(&["restart", "-t", "0", "mm"]);
    assert_eq!(network_names(&d, "mm"), ["bridge"]);
    let addrs = addresses(&d, "mm");
    assert!(!addrs.contains(&format!("{base}.")), "{addrs}");

    d.docker_ok(&["rm", "-f", "mm", "peer"]);
    d.docker_ok(&["network", "rm", "side"]);
    assert!(
        !iptables_rules().contains(&bridge),
        "rules of side are left"
    );
}

#[test]
fn endpoint_and_network_shapes() {
    let (d, _guard, bridge, _base) = setup();
    let slot = d.network.as_ref().map(|n| n.slot).unwrap_or_default();
    let extra = |x: &str, n: u8| {
        (
            format!(
                "com.docker.network.bridge.name={}{x}",
                &bridge[..bridge.len() - 1]
            ),
            format!("10.127.{slot}.{}/26", n * 64),
        )
    };
    // A network name with a space (dockerd only refuses empty ones).
    let (o, sn) = extra("a", 0);
    d.docker_ok(&[
        "network",
        "create",
        "--internal",
        "-o",
        &o,
        "--subnet",
        &sn,
        "my net",
    ]);
    assert_eq!(d.inspect("network", "my net")["Name"], "my net");
    let empty = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Name":"  "}"#,
        "-w",
        " %{http_code}",
        "http://localhost/v1.50/networks/create",
    ]);
    assert!(
        empty.stdout.contains("invalid name: name is empty") && empty.stdout.ends_with(" 400"),
        "{}",
        empty.stdout
    );
    // IPAM.Options: null unless given.
    let (o, sn) = extra("b", 1);
    let plain = serde_json::json!({
        "Name": "plain", "Internal": true,
        "Options": {o.split_once('=').map(|x| x.0).unwrap_or(""): o.split_once('=').map(|x| x.1).unwrap_or("")},
        "IPAM": {"Config": [{"Subnet": sn}]},
    });
    let created = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &plain.to_string(),
        "http://localhost/v1.50/networks/create",
    ]);
    assert!(created.stdout.contains("\"Id\""), "{}", created.stdout);
    assert_eq!(
        d.inspect("network", "plain")["IPAM"]["Options"],
        Value::Null
    );
    let (o, sn) = extra("c", 2);
    d.docker_ok(&[
        "network",
        "create",
        "--internal",
        "-o",
        &o,
        "--subnet",
        &sn,
        "--ipam-opt",
        "k=v",
        "opted",
    ]);
    assert_eq!(d.inspect("network", "opted")["IPAM"]["Options"]["k"], "v");

    // Create with a network that does not exist: 404, nothing created.
    let missing = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"nosuch":{}}}}"#,
        "-w",
        " %{http_code}",
        "http://localhost/v1.50/containers/create?name=lost",
    ]);
    assert!(
        missing.stdout.contains("network nosuch not found") && missing.stdout.ends_with(" 404"),
        "{}",
        missing.stdout
    );
    assert!(!d.docker(&["inspect", "lost"]).success());

    // No aliases: null. Links, DriverOpts and link-local IPs kept.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ss",
        "--network",
        "side",
        "busybox",
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "tt",
        "--network",
        "side",
        "busybox",
        "sleep",
        "300",
    ]);
    let ep = &networks(&d, "ss")["side"];
    assert_eq!(ep["Aliases"], Value::Null, "{ep}");
    // Clients before API 1.45 find the short ID among the aliases.
    let old = d.curl(&["http://localhost/v1.44/containers/ss/json"]).ok();
    let old: Value = serde_json::from_str(&old).expect("inspect JSON");
    let short = &old["Id"].as_str().unwrap_or_default()[..12];
    assert_eq!(
        old["NetworkSettings"]["Networks"]["side"]["Aliases"],
        serde_json::json!([short]),
        "{}",
        old["NetworkSettings"]
    );
    // Before 1.42 as well, and the HostConfig still has KernelMemory; the
    // kept answer is the one built with sizes, less the sizes.
    let older = d.curl(&["http://localhost/v1.41/containers/ss/json"]).ok();
    let older: Value = serde_json::from_str(&older).expect("inspect JSON");
    assert_eq!(
        older["NetworkSettings"]["Networks"]["side"]["Aliases"],
        serde_json::json!([short])
    );
    assert_eq!(
        older["HostConfig"]["KernelMemory"], 0,
        "{}",
        older["HostConfig"]
    );
    assert!(old["HostConfig"].get("KernelMemory").is_none());
    for v in ["1.41", "1.44", "1.50"] {
        let kept = d
            .curl(&[&format!("http://localhost/v{v}/containers/ss/json")])
            .ok();
        let sized = d
            .curl(&[&format!("http://localhost/v{v}/containers/ss/json?size=1")])
            .ok();
        let kept: Value = serde_json::from_str(&kept).expect("inspect JSON");
        let mut sized: Value = serde_json::from_str(&sized).expect("inspect JSON");
        let m = sized.as_object_mut().expect("an object");
        assert!(m.remove("SizeRw").is_some(), "{v}: no SizeRw");
        m.remove("SizeRootFs");
        assert_eq!(kept, sized, "API {v}");
    }
    assert!(
        ep["DNSNames"]
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n == "ss")),
        "{ep}"
    );
    let body = serde_json::json!({
        "Container": "ss",
        "EndpointConfig": {
            "IPAMConfig": {"LinkLocalIPs": ["169.254.9.9"]},
            "Links": ["tt:tee"],
            "DriverOpts": {"x": "y"},
        }
    });
    let connect = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        &body.to_string(),
        "-w",
        "%{http_code}",
        "http://localhost/v1.50/networks/my%20net/connect",
    ]);
    assert_eq!(connect.stdout.trim(), "200", "{}", connect.stdout);
    let ep = &networks(&d, "ss")["my net"];
    assert_eq!(
        ep["IPAMConfig"]["LinkLocalIPs"],
        serde_json::json!(["169.254.9.9"]),
        "{ep}"
    );
    assert_eq!(ep["Links"], serde_json::json!(["tt:tee"]), "{ep}");
    assert_eq!(ep["DriverOpts"], serde_json::json!({"x": "y"}), "{ep}");
    let body = d.curl(&["http://localhost/v1.50/networks/my%20net"]).ok();
    berth_tests::assert_matches_spec("GET", "/networks/{id}", &body);
    assert!(
        ep["IPAddress"]
            .as_str()
            .is_some_and(|ip| ip.starts_with(&format!("10.127.{slot}."))),
        "{ep}"
    );
    // The default bridge refuses aliases and fixed addresses.
    let alias = d.docker(&["network", "connect", "--alias", "x", "bridge", "ss"]);
    assert!(
        alias
            .stderr
            .contains("network-scoped aliases are only supported for user-defined networks"),
        "{}",
        alias.stderr
    );

    d.docker_ok(&["rm", "-f", "ss", "tt"]);
    d.docker_ok(&["network", "rm", "my net", "plain", "opted", "side"]);
}

fn http_get(port: u16) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "-m", "3", &format!("http://127.0.0.1:{port}/i")])
        .output()
        .expect("curl must be installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn published_ports_follow_the_first_network() {
    let (d, _guard, _bridge, _base) = setup();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let publish = format!("127.0.0.1:{port}:80");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "pw",
        "--network",
        "side",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "echo hi > /tmp/i; exec httpd -f -p 80 -h /tmp",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || http_get(port).is_some()),
        "the published port does not answer"
    );
    d.docker_ok(&["network", "connect", "bridge", "pw"]);
    // The network carrying the port goes: the port moves to the next one.
    d.docker_ok(&["network", "disconnect", "side", "pw"]);
    assert_eq!(http_get(port).as_deref(), Some("hi\n"));
    assert_eq!(
        d.docker_ok(&["port", "pw"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    // No network left: the port is closed and its rules are gone.
    d.docker_ok(&["network", "disconnect", "bridge", "pw"]);
    assert_eq!(http_get(port), None);
    assert_eq!(d.docker_ok(&["port", "pw"]).trim(), "");
    assert!(
        !iptables_rules().contains(&format!("--dport {port}")),
        "rules of the closed port are left"
    );
    // Connected again: the port opens with the network.
    d.docker_ok(&["network", "connect", "side", "pw"]);
    assert_eq!(http_get(port).as_deref(), Some("hi\n"));
    d.docker_ok(&["rm", "-f", "pw"]);
    assert!(
        !iptables_rules().contains(&format!("--dport {port}")),
        "rules of the removed container's port are left"
    );
    d.docker_ok(&["network", "rm", "side"]);
}

/// A client that sends `network connect` and goes away at once (hyper then
/// drops the handler) still gets a whole connection: the interface plugged
/// in is in the container's record too, so a restart plugs it in again and
/// the list, inspect and a second connect agree.
#[test]
fn a_connect_whose_client_went_away_is_whole() {
    let (d, _guard, _bridge, _base) = setup();
    d.docker_ok(&["run", "-d", "--name", "gone1", "busybox", "sleep", "100000"]);
    let sock = d.socket.display().to_string();
    let out = d.python(&format!(
        r#"
import json, socket
s = socket.socket(socket.AF_UNIX)
s.connect({sock:?})
body = json.dumps({{"Container": "gone1"}}).encode()
s.sendall(b"POST /v1.50/networks/side/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
s.shutdown(socket.SHUT_WR)
s.close()
"#
    ));
    assert!(out.success(), "{}", out.stderr);
    assert!(
        wait_until(Duration::from_secs(20), || network_names(&d, "gone1")
            .contains(&"side".to_string())),
        "never connected: {:?}",
        network_names(&d, "gone1")
    );
    let again = d.docker(&["network", "connect", "side", "gone1"]);
    assert!(!again.success());
    assert!(
        again.stderr.contains("already exists in network side"),
        "{}",
        again.stderr
    );
    d.docker_ok(&["restart", "-t", "0", "gone1"]);
    assert_eq!(network_names(&d, "gone1"), ["bridge", "side"]);
    assert!(addresses(&d, "gone1").contains("eth1"));
    d.docker_ok(&["rm", "-f", "gone1"]);
}
