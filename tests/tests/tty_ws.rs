//! `GET /containers/{id}/attach/ws`: stdin as websocket messages, output
//! back as binary messages (API ≥ 1.42) or text (older), detach keys.

use berth_tests::Daemon;

const SCRIPT: &str = r#"
import os, socket, time
import docker, websocket

client = docker.from_env()
c = client.containers.run("busybox", ["sh", "-c", "while read l; do echo got:$l; echo err:$l >&2; done"],
                          detach=True, stdin_open=True)
path = os.environ["DOCKER_HOST"][len("unix://"):]

def connect(version, query):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    url = "ws://localhost/%s/containers/%s/attach/ws?%s" % (version, c.id, query)
    return websocket.create_connection(url, socket=s, timeout=10)

def read_until(ws, want):
    got = b""
    deadline = time.time() + 10
    while want not in got and time.time() < deadline:
        op, data = ws.recv_data()
        got += data
        last_op = op
    assert want in got, got
    return op

try:
    ws = connect("v1.50", "stream=1&stdin=1&stdout=1&stderr=0")
    ws.send_binary(b"hello\n")
    op = read_until(ws, b"got:hello\n")
    assert op == websocket.ABNF.OPCODE_BINARY, op
    ws.send("text-frame\n")
    read_until(ws, b"got:text-frame\n")
    ws.close()

    # logs=1 replays what the container printed before we attached.
    ws = connect("v1.50", "stream=1&stdin=0&stdout=1&stderr=1&logs=1")
    read_until(ws, b"got:hello\n")
    ws.close()

    # Old API versions get text frames.
    ws = connect("v1.41", "stream=1&stdin=1&stdout=1&stderr=1")
    ws.send("again\n")
    op = read_until(ws, b"got:again\n")
    assert op == websocket.ABNF.OPCODE_TEXT, op
    # ctrl-p ctrl-q detaches: the server closes, the container runs on.
    ws.send_binary(b"\x10\x11")
    closed = False
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            op, _ = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            closed = True
            break
    assert closed
    c.reload()
    assert c.status == "running", c.status

    # Not a websocket request: 400.
    r = client.api._get(client.api._url("/containers/{0}/attach/ws", c.id))
    assert r.status_code == 400, r.status_code
finally:
    c.remove(force=True)
print("ws attach: ok")
"#;

#[test]
fn websocket_attach_streams_and_detaches() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.python(SCRIPT);
    assert!(
        out.success() && out.stdout.contains("ws attach: ok"),
        "websocket attach script failed:\n{}\n{}\nberthd log:\n{}",
        out.stdout,
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
}
