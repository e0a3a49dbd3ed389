//! `HTTP_PROXY` / `NO_PROXY` in berthd's environment, as dockerd honours
//! them: registry requests go through the proxy unless the registry is
//! excluded. The proxy is a small forwarding one in the test that notes
//! every request line it relays.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use berth_tests::registry::Registry;
use berth_tests::Daemon;

/// A plain-HTTP forward proxy on 127.0.0.1; `seen` holds the request
/// line of each connection it relayed.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = log.clone();
                thread::spawn(move || relay(client, &log));
            }
        });
        Proxy { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Relays one connection: the first request line names the origin
/// (absolute form); the origin (Go's net/http) takes absolute-form lines,
/// so everything after it is copied as it is, both ways.
fn relay(client: TcpStream, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    log.lock().unwrap().push(line.trim_end().to_owned());
    let Some(authority) = line
        .split_whitespace()
        .nth(1)
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.split('/').next())
    else {
        return;
    };
    let Ok(mut origin) = TcpStream::connect(authority) else {
        return;
    };
    origin.write_all(line.as_bytes()).unwrap();
    let buffered = reader.buffer().to_vec();
    origin.write_all(&buffered).unwrap();
    let mut to_client = client.try_clone().unwrap();
    let mut from_origin = origin.try_clone().unwrap();
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut from_origin, &mut to_client);
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut rest = reader.into_inner();
    let mut buf = [0u8; 16384];
    loop {
        match rest.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if origin.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = origin.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
}

#[test]
fn pulls_go_through_http_proxy_unless_no_proxy_names_the_registry() {
    let reg = Registry::start();
    reg.push_fixture("proxied/busybox:1");
    let proxy = Proxy::start();
    let name = reg.image("proxied/busybox:1");

    let mut d = Daemon::start();
    d.stop();
    d.set_env("HTTP_PROXY", Some(&proxy.url()));
    d.set_env("NO_PROXY", Some(""));
    d.set_env("no_proxy", None);
    d.start_again();
    d.docker_ok(&["pull", &name]);
    let seen = proxy.seen();
    let via_proxy = format!("http://{}/v2/", reg.host());
    assert!(
        seen.iter().any(|l| l.contains(&via_proxy)),
        "no registry request went through the proxy: {seen:?}"
    );
    let out = d.docker_ok(&["run", "--rm", &name, "echo", "ran"]);
    assert_eq!(out, "ran\n");

    d.docker_ok(&["rmi", &name]);
    d.stop();
    d.set_env("NO_PROXY", Some("127.0.0.1"));
    d.start_again();
    let before = proxy.seen().len();
    d.docker_ok(&["pull", &name]);
    assert_eq!(
        proxy.seen().len(),
        before,
        "NO_PROXY=127.0.0.1 still used the proxy: {:?}",
        proxy.seen()
    );
}
