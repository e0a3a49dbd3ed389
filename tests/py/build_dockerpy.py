"""docker-py's images.build against berthd: a build from a directory and
from a file object (gzip context), its streamed log, tags, build args,
labels, target, nocache, a failing build (BuildError), the low-level
streamed JSON, and the build cache in df and prune."""
import io
import os
import sys
import tarfile
import tempfile

import docker
from docker.errors import BuildError

fixtures = os.environ["BERTH_FIXTURES"]
client = docker.from_env()
api = client.api


def check(cond, msg):
    if not cond:
        print("FAIL:", msg, file=sys.stderr)
        sys.exit(1)


with open(os.path.join(fixtures, "busybox.tar"), "rb") as f:
    client.images.load(f.read())

with tempfile.TemporaryDirectory() as ctx:
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(
            "FROM busybox AS base\n"
            "ARG WHO=nobody\n"
            "COPY hello.txt /hello.txt\n"
            "RUN echo \"hi $WHO\" && cat /hello.txt > /copied\n"
            "FROM base AS final\n"
            "CMD [\"cat\", \"/copied\"]\n"
        )
    with open(os.path.join(ctx, "hello.txt"), "w") as f:
        f.write("hello from py\n")
    image, logs = client.images.build(
        path=ctx, tag="pybuild:1", buildargs={"WHO": "py"}, labels={"via": "docker-py"}
    )
    logs = list(logs)
    text = "".join(l.get("stream", "") for l in logs)
    check("Step 1/7 : FROM busybox AS base" in text, text)
    check("hi py\n" in text, text)
    check(any("aux" in l for l in logs), logs)
    check("pybuild:1" in image.tags, image.tags)
    check(image.labels.get("via") == "docker-py", image.labels)
    out = client.containers.run("pybuild:1", remove=True)
    check(out == b"hello from py\n", out)

    # Again: every step from the cache, same image.
    again, logs = client.images.build(
        path=ctx, tag="pybuild:1", buildargs={"WHO": "py"}, labels={"via": "docker-py"}
    )
    text = "".join(l.get("stream", "") for l in logs)
    check(again.id == image.id, (again.id, image.id))
    check(text.count("Using cache") == 5, text)

    # --target and nocache
    base, logs = client.images.build(path=ctx, target="base", nocache=True, tag="pybuild:base")
    text = "".join(l.get("stream", "") for l in logs)
    check("Using cache" not in text and "hi nobody" in text, text)

# A gzip context from a file object, custom Dockerfile name, failing RUN.
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    data = b"FROM busybox\nRUN echo failing >&2; exit 7\n"
    info = tarfile.TarInfo("build/Failing")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
buf.seek(0)
try:
    client.images.build(fileobj=buf, custom_context=True, encoding="gzip", dockerfile="build/Failing")
    check(False, "the failing build succeeded")
except BuildError as e:
    check("returned a non-zero code: 7" in str(e), str(e))
check(client.containers.list(all=True) == [], "a build container was left")

# The low-level API streams decoded JSON as it comes.
with tempfile.TemporaryDirectory() as ctx:
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nRUN echo streamed\n")
    chunks = list(api.build(path=ctx, decode=True, rm=True, forcerm=True))
    check(any(c.get("stream") == "streamed\n" for c in chunks), chunks)
    check(chunks[-1].get("stream", "").startswith("Successfully built "), chunks[-1])

df = api.df()
check(isinstance(df["BuildCache"], list) and len(df["BuildCache"]) > 0, df["BuildCache"])
pruned = api.prune_builds()
check(len(pruned["CachesDeleted"]) > 0 and "SpaceReclaimed" in pruned, pruned)
check(api.df()["BuildCache"] == [], "cache left after prune")
print("ok")
