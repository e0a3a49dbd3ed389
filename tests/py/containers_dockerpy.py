"""docker-py drives the container API: run (attached and detached), list,
inspect, logs-free waits, attach socket, stop, remove. Prints "ok"."""

import docker

client = docker.from_env()

# Attached run returns the output.
out = client.containers.run("busybox", ["echo", "hello"], remove=True)
assert out == b"hello\n", out

# Non-zero exit raises ContainerError with the code.
try:
    client.containers.run("busybox", ["sh", "-c", "exit 4"], remove=True)
    raise AssertionError("expected ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 4, e.exit_status

c = client.containers.run(
    "busybox", ["sleep", "1000"], detach=True, name="pyc",
    labels={"suite": "containers"}, environment={"A": "1"},
)
c.reload()
assert c.status == "running", c.status
assert c.name == "pyc"
assert c.attrs["Config"]["Labels"]["suite"] == "containers"
assert "A=1" in c.attrs["Config"]["Env"]
assert c.attrs["State"]["Pid"] > 0
assert c.image.tags == ["busybox:latest"], c.image.tags

listed = client.containers.list(filters={"label": "suite=containers"})
assert [x.id for x in listed] == [c.id], listed
assert client.containers.get(c.id[:8]).id == c.id

top = c.top()
assert any("sleep 1000" in " ".join(p) for p in top["Processes"]), top

c.stop(timeout=1)
res = c.wait()
assert res["StatusCode"] == 137, res
c.reload()
assert c.status == "exited"
assert client.containers.list() == []
assert len(client.containers.list(all=True)) == 1

c.start()
c.reload()
assert c.status == "running"
c.kill()
assert c.wait()["StatusCode"] == 137

# wait(condition="removed") with auto-remove.
r = client.containers.run("busybox", ["sh", "-c", "sleep 1; exit 0"], detach=True, auto_remove=True)
assert r.wait(condition="removed")["StatusCode"] == 0

c.remove()
try:
    client.containers.get("pyc")
    raise AssertionError("container still exists")
except docker.errors.NotFound:
    pass

# A low-level attach socket with stdin.
api = client.api
cid = api.create_container("busybox", ["cat"], stdin_open=True)["Id"]
sock = api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stream": 1})
api.start(cid)
raw = sock._sock
raw.settimeout(30)
raw.sendall(b"ping\n")
data = b""
while not data.endswith(b"ping\n"):
    chunk = raw.recv(4096)
    assert chunk, data
    data += chunk
assert data == b"\x01\x00\x00\x00\x00\x00\x00\x05ping\n", data
# Without StdinOnce the container keeps its stdin after we go.
raw.close()
api.kill(cid)
assert api.wait(cid)["StatusCode"] == 137
api.remove_container(cid)
print("ok")
