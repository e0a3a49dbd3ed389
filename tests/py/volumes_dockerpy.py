"""docker-py volumes against berthd: create/get/list(filters)/remove,
containers.run with a volumes dict, in-use conflict, prune."""
import docker

client = docker.from_env()
v = client.volumes.create(name="pyvol", labels={"k": "v"})
assert v.name == "pyvol", v.attrs
assert v.attrs["Driver"] == "local" and v.attrs["Labels"] == {"k": "v"}, v.attrs
assert client.volumes.get("pyvol").attrs["Mountpoint"] == v.attrs["Mountpoint"]
assert [x.name for x in client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]

out = client.containers.run(
    "busybox", ["sh", "-c", "echo hi > /data/f; cat /data/f"],
    volumes={"pyvol": {"bind": "/data", "mode": "rw"}}, name="pyuser",
)
assert out == b"hi\n", out
try:
    v.remove()
    raise AssertionError("removing a volume in use succeeded")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "volume is in use" in str(e), e

client.containers.get("pyuser").remove()
v.remove()
try:
    client.volumes.get("pyvol")
    raise AssertionError("removed volume still found")
except docker.errors.NotFound:
    pass

anon = client.containers.run("busybox", "true", volumes=["/anon"], name="pyanon", detach=True)
anon.wait(timeout=20)
anon.remove()
res = client.volumes.prune()
assert len(res["VolumesDeleted"]) == 1 and len(res["VolumesDeleted"][0]) == 64, res
assert client.volumes.list() == [], client.volumes.list()
print("ok")
