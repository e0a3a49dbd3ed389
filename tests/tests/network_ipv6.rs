//! IPv6 through the docker CLI: a `--ipv6` user network with a v6 subnet
//! (addresses, `--ip6`, inspect, reaching each other by address and by
//! name), and `ipv6`/`fixed-cidr-v6` for the default bridge in daemon.json.

use berth_tests::{Daemon, DaemonOptions};

/// Removes the test's bridges (and what names them) whatever happens.
struct Bridges(Vec<String>);

impl Drop for Bridges {
    fn drop(&mut self) {
        for b in &self.0 {
            berth_tests::cleanup::remove_network(b);
        }
    }
}

fn endpoint(d: &Daemon, c: &str, net: &str) -> serde_json::Value {
    d.inspect("container", c)["NetworkSettings"]["Networks"][net].clone()
}

#[test]
fn ipv6_user_network() {
    let d = Daemon::with_busybox();
    let net = d.network.as_ref().expect("the daemon's test network");
    let (slot, bridge) = (net.slot, format!("{}6", net.bridge));
    let _guard = Bridges(vec![bridge.clone()]);
    let v6 = format!("fd00:b127:{slot:x}::");
    let opt = format!("com.docker.network.bridge.name={bridge}");
    d.docker_ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("10.129.{slot}.0/24"),
        "--subnet",
        &format!("{v6}/64"),
        "-o",
        &opt,
        "six",
    ]);
    let n = d.inspect("network", "six");
    assert_eq!(n["EnableIPv6"], true);
    assert_eq!(
        n["IPAM"]["Config"][1],
        serde_json::json!({"Subnet": format!("{v6}/64"), "Gateway": format!("{v6}1")})
    );

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "one",
        "--network",
        "six",
        "busybox",
        "sleep",
        "300",
    ]);
    let fixed = format!("{v6}99");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "two",
        "--network",
        "six",
        "--ip6",
        &fixed,
        "busybox",
        "sleep",
        "300",
    ]);
    let one = endpoint(&d, "one", "six");
    assert_eq!(one["GlobalIPv6Address"], format!("{v6}2"), "{one}");
    assert_eq!(one["GlobalIPv6PrefixLen"], 64);
    assert_eq!(one["IPv6Gateway"], format!("{v6}1"));
    assert!(
        one["IPAddress"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("10.129.{slot}."))),
        "{one}"
    );
    let two = endpoint(&d, "two", "six");
    assert_eq!(two["GlobalIPv6Address"], fixed.as_str());
    assert_eq!(two["IPAMConfig"]["IPv6Address"], fixed.as_str());
    let members = d.inspect("network", "six")["Containers"].clone();
    assert!(
        members.as_object().is_some_and(|m| m
            .values()
            .any(|c| c["IPv6Address"] == format!("{fixed}/64"))),
        "{members}"
    );

    // Both ways over IPv6: by address, and by name (AAAA from the
    // embedded DNS); the v6 default route goes through the gateway.
    let route = d.docker_ok(&["exec", "one", "ip", "-6", "route"]);
    assert!(
        route.contains(&format!("default via {v6}1 dev eth0")),
        "{route}"
    );
    let ping = d.docker_ok(&["exec", "one", "ping", "-6", "-c1", "-W3", &fixed]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let ping = d.docker_ok(&["exec", "two", "ping", "-6", "-c1", "-W3", "one"]);
    assert!(
        ping.contains(&format!("({v6}2)")) && ping.contains("1 packets received"),
        "{ping}"
    );
    let taken = d.docker(&[
        "run",
        "--rm",
        "--network",
        "six",
        "--ip6",
        &fixed,
        "busybox",
        "true",
    ]);
    assert!(
        taken.stderr.contains("Address already in use"),
        "{}",
        taken.stderr
    );

    // Addresses go back to the pool.
    d.docker_ok(&["rm", "-f", "one", "two"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "three",
        "--network",
        "six",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(
        endpoint(&d, "three", "six")["GlobalIPv6Address"],
        format!("{v6}2")
    );
    d.docker_ok(&["rm", "-f", "three"]);
    d.docker_ok(&["network", "rm", "six"]);
    assert!(!std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists());
}

#[test]
fn ipv6_on_the_default_bridge() {
    // The daemon gets its own test bridge; the v6 range is random.
    let r = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ std::process::id())
        .unwrap_or_default();
    let v6 = format!("fd00:b128:{:x}::", r & 0xffff);
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({ "ipv6": true, "fixed-cidr-v6": format!("{v6}/64") })),
        args: vec![],
    });
    d.load_busybox();
    let bridge = d.inspect("network", "bridge");
    assert_eq!(bridge["EnableIPv6"], true);
    assert_eq!(bridge["IPAM"]["Config"][1]["Subnet"], format!("{v6}/64"));
    d.docker_ok(&["run", "-d", "--name", "b1", "busybox", "sleep", "300"]);
    let c = d.inspect("container", "b1");
    let addr = c["NetworkSettings"]["GlobalIPv6Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(addr, format!("{v6}2"), "{}", c["NetworkSettings"]);
    assert_eq!(
        c["NetworkSettings"]["Networks"]["bridge"]["GlobalIPv6Address"],
        addr.as_str()
    );
    let out = d.docker_ok(&["run", "--rm", "busybox", "ping", "-6", "-c1", "-W3", &addr]);
    assert!(out.contains("1 packets received"), "{out}");
    d.docker_ok(&["rm", "-f", "b1"]);
}
