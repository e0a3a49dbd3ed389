"""docker-py against berthd: load, list, get, tag, history, save/load
round trip, import, remove, prune. Exits non-zero on the first failure."""
import io
import os
import sys
import tarfile

import docker
from docker.errors import APIError, ImageNotFound

fixtures = os.environ["BERTH_FIXTURES"]
client = docker.from_env()
api = client.api


def check(cond, msg):
    if not cond:
        print("FAIL:", msg, file=sys.stderr)
        sys.exit(1)


with open(os.path.join(fixtures, "busybox.tar"), "rb") as f:
    loaded = client.images.load(f.read())
check(len(loaded) == 1 and "busybox:latest" in loaded[0].tags, f"load returned {loaded}")
img = client.images.get("busybox")
check(img.id.startswith("sha256:") and img.short_id == img.id[:19], img.id)
check(img.attrs["Config"]["Cmd"] == ["sh"], img.attrs["Config"])
check(img.labels == {}, img.labels)

check(img.tag("pyrepo/app", "v1"), "tag")
check(sorted(client.images.get(img.id).tags) == ["busybox:latest", "pyrepo/app:v1"], client.images.get(img.id).tags)
names = sorted(t for i in client.images.list() for t in i.tags)
check(names == ["busybox:latest", "pyrepo/app:v1"], names)
check([i.id for i in client.images.list(name="pyrepo/app")] == [img.id], "list by name")
check(client.images.list(filters={"dangling": True}) == [], "no dangling images")

hist = img.history()
check(len(hist) == 1 and hist[0]["Id"] == img.id and "busybox:latest" in hist[0]["Tags"], hist)

# save -> load keeps the ID
data = b"".join(img.save(named=True))
with tarfile.open(fileobj=io.BytesIO(data)) as tf:
    check("manifest.json" in tf.getnames(), tf.getnames())
client.images.remove("pyrepo/app:v1")
client.images.remove("busybox", force=True)
try:
    client.images.get("busybox")
    check(False, "busybox should be gone")
except ImageNotFound:
    pass
again = client.images.load(data)
check(again[0].id == img.id, f"{again[0].id} != {img.id}")

# import a rootfs tar with changes
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as tf:
    content = b"hello from docker-py\n"
    ti = tarfile.TarInfo("hello.txt")
    ti.size = len(content)
    tf.addfile(ti, io.BytesIO(content))
res = api.import_image_from_data(buf.getvalue(), repository="pyimport", tag="1", changes=['CMD ["cat", "/hello.txt"]', "LABEL origin=py"])
check("sha256:" in str(res), res)
imported = client.images.get("pyimport:1")
check(imported.attrs["Config"]["Cmd"] == ["cat", "/hello.txt"], imported.attrs["Config"])
check(imported.labels == {"origin": "py"}, imported.labels)
check([i.id for i in client.images.list(filters={"label": "origin=py"})] == [imported.id], "label filter")

try:
    client.images.get("NotLower")
    check(False, "invalid reference accepted")
except APIError as e:
    check(e.status_code == 400, e)

client.images.remove("pyimport:1")
pruned = client.images.prune(filters={"dangling": False})
check(pruned["SpaceReclaimed"] > 0 and any("Deleted" in x for x in pruned["ImagesDeleted"]), pruned)
check(client.images.list() == [], client.images.list())
print("ok")
