//! Legacy links through the docker CLI: `--link name:alias` on the default
//! bridge (the `ALIAS_*` variables and the /etc/hosts entry), HostConfig.Links
//! in inspect, `docker rm --link`, and link aliases resolved by the embedded
//! DNS on a user-defined network.

use berth_tests::Daemon;

/// Removes the test's bridges (and what names them) whatever happens.
struct Bridges(Vec<String>);

impl Drop for Bridges {
    fn drop(&mut self) {
        for b in &self.0 {
            berth_tests::cleanup::remove_network(b);
        }
    }
}

#[test]
fn links_on_the_default_bridge_and_user_networks() {
    let d = Daemon::with_busybox();
    let net = d.network.as_ref().expect("the daemon's test network");
    let (slot, bridge) = (net.slot, format!("{}l", net.bridge));
    let _guard = Bridges(vec![bridge.clone()]);

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "db-main",
        "-e",
        "SECRET=s3",
        "-e",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--expose",
        "5432",
        "--expose",
        "8000-8001",
        "busybox",
        "sleep",
        "300",
    ]);
    let db_ip = d.inspect("container", "db-main")["NetworkSettings"]["Networks"]["bridge"]
        ["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!db_ip.is_empty());

    // Variables and the hosts entry of a link.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--name",
        "app",
        "--link",
        "db-main:db",
        "busybox",
        "sh",
        "-c",
        "env | grep ^DB_ | sort; grep -w db /etc/hosts",
    ]);
    for want in [
        format!("DB_PORT=tcp://{db_ip}:5432"),
        format!("DB_PORT_5432_TCP=tcp://{db_ip}:5432"),
        format!("DB_PORT_5432_TCP_ADDR={db_ip}"),
        "DB_PORT_5432_TCP_PORT=5432".to_string(),
        "DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        format!("DB_PORT_8000_TCP_START=tcp://{db_ip}:8000"),
        format!("DB_PORT_8000_TCP_END=tcp://{db_ip}:8001"),
        "DB_NAME=/app/db".to_string(),
        "DB_ENV_SECRET=s3".to_string(),
    ] {
        assert!(out.lines().any(|l| l == want), "{want} missing:\n{out}");
    }
    assert!(!out.contains("DB_ENV_PATH"), "{out}");
    let hosts_line = out
        .lines()
        .find(|l| l.starts_with(&db_ip))
        .unwrap_or_else(|| panic!("no hosts entry for db:\n{out}"));
    let names: Vec<&str> = hosts_line.split_whitespace().skip(1).collect();
    assert_eq!(names[0], "db", "{hosts_line}");
    assert!(names.contains(&"db-main"), "{hosts_line}");
    let ping = d.docker_ok(&[
        "run",
        "--rm",
        "--link",
        "db-main:db",
        "busybox",
        "ping",
        "-c1",
        "-W3",
        "db",
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");

    // Inspect shows the link as dockerd does; `rm --link` drops it.
    d.docker_ok(&[
        "create",
        "--name",
        "holder",
        "--link",
        "db-main:db",
        "busybox",
        "true",
    ]);
    assert_eq!(
        d.inspect("container", "holder")["HostConfig"]["Links"],
        serde_json::json!(["/db-main:/holder/db"])
    );
    d.docker_ok(&["rm", "--link", "holder/db"]);
    assert_eq!(
        d.inspect("container", "holder")["HostConfig"]["Links"],
        serde_json::json!([])
    );
    let again = d.docker(&["rm", "--link", "holder/db"]);
    assert!(!again.success(), "{}", again.stdout);
    let env = d.docker_ok(&["start", "-a", "holder"]);
    assert!(env.is_empty(), "{env}");

    // A link to a container that does not exist is refused at create.
    let missing = d.docker(&["create", "--link", "nosuch:x", "busybox", "true"]);
    assert!(
        missing
            .stderr
            .contains("could not get container for nosuch"),
        "{}",
        missing.stderr
    );
    // A stopped linked container: the start fails, as in dockerd.
    d.docker_ok(&[
        "create",
        "--name",
        "late",
        "--link",
        "db-main:db",
        "busybox",
        "true",
    ]);
    d.docker_ok(&["stop", "-t", "0", "db-main"]);
    let down = d.docker(&["start", "late"]);
    assert!(
        down.stderr
            .contains("Cannot link to a non running container"),
        "{}",
        down.stderr
    );

    // On a user-defined network the alias resolves through the DNS, for
    // the linking container only.
    let opt = format!("com.docker.network.bridge.name={bridge}");
    d.docker_ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.128.{slot}.0/24"),
        "-o",
        &opt,
        "lnet",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "target",
        "--network",
        "lnet",
        "busybox",
        "sleep",
        "300",
    ]);
    let ping = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "lnet",
        "--link",
        "target:tgt",
        "busybox",
        "ping",
        "-c1",
        "-W3",
        "tgt",
    ]);
    assert!(
        ping.contains(&format!("10.128.{slot}.")) && ping.contains("1 packets received"),
        "{ping}"
    );
    let other = d.docker(&[
        "run",
        "--rm",
        "--network",
        "lnet",
        "busybox",
        "ping",
        "-c1",
        "-W3",
        "tgt",
    ]);
    assert!(
        !other.success(),
        "tgt resolves without the link: {}",
        other.stdout
    );

    d.docker_ok(&["rm", "-f", "db-main", "holder", "late", "target"]);
    d.docker_ok(&["network", "rm", "lnet"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
}
