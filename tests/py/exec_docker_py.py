"""docker-py exec_run against berthd: plain, stream, socket, demux, tty,
environment, user, workdir, exit codes."""
import socket
import sys
import time

import docker

client = docker.from_env()
c = client.containers.run("busybox", ["sleep", "1000"], detach=True)
try:
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert r.exit_code == 4, r
    assert b"out\n" in r.output and b"err\n" in r.output, r.output

    r = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert r.exit_code == 0, r
    assert r.output == (b"out\n", b"err\n"), r.output

    r = c.exec_run(["sh", "-c", "echo $X; pwd; id -u"], environment={"X": "y"}, workdir="/tmp", user="1000")
    assert r.output == b"y\n/tmp\n1000\n", r.output

    r = c.exec_run(["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done"], stream=True)
    chunks = b"".join(r.output)
    assert chunks == b"line1\nline2\nline3\n", chunks

    r = c.exec_run(["sh", "-c", "echo a; echo b >&2"], stream=True, demux=True)
    got_out, got_err = b"", b""
    for out, err in r.output:
        got_out += out or b""
        got_err += err or b""
    assert (got_out, got_err) == (b"a\n", b"b\n"), (got_out, got_err)

    r = c.exec_run(["tty"], tty=True)
    assert r.output.startswith(b"/dev/pts/"), r.output

    # socket=True: a raw hijacked socket, multiplexed; we write stdin and
    # half-close it.
    api = client.api
    ex = api.exec_create(c.id, ["cat"], stdin=True, stdout=True, stderr=True)
    sock = api.exec_start(ex["Id"], socket=True)
    raw = sock._sock if hasattr(sock, "_sock") else sock
    raw.sendall(b"over the socket\n")
    raw.shutdown(socket.SHUT_WR)
    data = b""
    raw.settimeout(10)
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        data += chunk
    # One stdout frame: header then payload.
    assert data[:1] == b"\x01", data
    assert data[8:] == b"over the socket\n", data
    deadline = time.time() + 10
    while api.exec_inspect(ex["Id"])["Running"] and time.time() < deadline:
        time.sleep(0.05)
    info = api.exec_inspect(ex["Id"])
    assert info["ExitCode"] == 0, info

    r = c.exec_run("nope")
    assert r.exit_code == 127, r
    assert b"executable file not found" in r.output, r.output
finally:
    c.remove(force=True)
print("exec_docker_py: ok")
