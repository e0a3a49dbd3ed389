"""docker-py against berthd and a private registry (argv[1] = host:port,
holding test/busybox:1): pull with streamed progress, distribution
inspect, containers.run of a missing image, push and the not-found error.
Exits non-zero on the first failure."""
import sys

import docker
from docker.errors import APIError, NotFound

reg = sys.argv[1]
client = docker.from_env()
api = client.api


def check(cond, msg):
    if not cond:
        print("FAIL:", msg, file=sys.stderr)
        sys.exit(1)


repo = f"{reg}/test/busybox"
lines = list(api.pull(repo, tag="1", stream=True, decode=True))
statuses = [l.get("status", "") for l in lines]
check(any(s.startswith("Digest: sha256:") for s in statuses), f"no digest line: {lines}")
check("Pull complete" in statuses, f"no Pull complete: {lines}")
check(not any("error" in l for l in lines), f"error in stream: {lines}")
img = client.images.get(f"{repo}:1")
check(any(d.startswith(repo + "@sha256:") for d in img.attrs["RepoDigests"]), img.attrs)

dist = api.inspect_distribution(f"{repo}:1")
check(dist["Descriptor"]["digest"].startswith("sha256:"), dist)
check({"os": "linux", "architecture": "amd64"}.items() <= dist["Platforms"][0].items(), dist)

client.images.remove(f"{repo}:1")
out = client.containers.run(f"{repo}:1", ["echo", "pulled by run"], remove=True)
check(out == b"pulled by run\n", out)

img = client.images.get(f"{repo}:1")
img.tag(f"{reg}/py/pushed", "t1")
pushed = list(api.push(f"{reg}/py/pushed", tag="t1", stream=True, decode=True))
aux = [l["aux"] for l in pushed if "aux" in l]
check(len(aux) == 1 and aux[0]["Tag"] == "t1" and aux[0]["Digest"].startswith("sha256:"), pushed)

try:
    client.images.pull(repo, tag="missing")
    check(False, "pull of a missing tag succeeded")
except NotFound as e:
    check("manifest unknown" in str(e), str(e))
except APIError as e:
    check(False, f"wrong error class {type(e)}: {e}")
print("ok")
