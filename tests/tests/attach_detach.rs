//! `POST /containers/{id}/attach` as raw clients use it (docker-py's
//! attach_socket): the detach keys leave the container running, and a bad
//! key spec is refused.

use berth_tests::Daemon;

#[test]
fn detach_keys_from_a_raw_client_leave_the_container_running() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.python(
        r#"
import docker, time
client = docker.from_env()
c = client.containers.run('busybox', 'sh', detach=True, tty=True, stdin_open=True)
s = client.api.attach_socket(c.id, params={'stdin': 1, 'stdout': 1, 'stream': 1})
s._sock.sendall(b'echo marker-$((40+2))\n')
seen = b''
deadline = time.time() + 10
while b'marker-42' not in seen and time.time() < deadline:
    seen += s._sock.recv(4096)
assert b'marker-42' in seen, seen
s._sock.sendall(b'\x10\x11')          # ctrl-p ctrl-q
s._sock.settimeout(10)
while s._sock.recv(4096):
    pass                              # the daemon ends the stream
c.reload()
assert c.status == 'running', c.status
# A custom sequence is honoured too, and the shell is still there.
s = client.api.attach_socket(c.id, params={'stdin': 1, 'stdout': 1, 'stream': 1, 'detachKeys': 'ctrl-x'})
s._sock.sendall(b'echo again-$((1+1))\n')
seen = b''
deadline = time.time() + 10
while b'again-2' not in seen and time.time() < deadline:
    seen += s._sock.recv(4096)
assert b'again-2' in seen, seen
s._sock.sendall(b'\x18')
s._sock.settimeout(10)
while s._sock.recv(4096):
    pass
c.reload()
assert c.status == 'running', c.status
c.remove(force=True)
print('ok')
"#,
    );
    assert!(
        out.success() && out.stdout.contains("ok"),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn bad_detach_keys_are_a_400() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d.docker_ok(&["create", "-t", "busybox", "sh"]);
    let out = d.curl(&[
        "-X",
        "POST",
        "-w",
        "\n%{http_code}",
        &format!(
            "http://localhost/containers/{}/attach?stream=1&stdin=1&detachKeys=notakey",
            id.trim()
        ),
    ]);
    let body = out.stdout;
    assert!(body.ends_with("400"), "{body}");
    assert!(body.contains("message"), "{body}");
}
