"""docker-py logs against berthd: plain, stream=True with follow (ends when
the container stops), stdout/stderr selection, tail, timestamps."""
import time

import docker

client = docker.from_env()
c = client.containers.run(
    "busybox",
    ["sh", "-c", "for i in 1 2 3; do echo out-$i; echo err-$i >&2; sleep 0.3; done"],
    detach=True,
)
try:
    started = time.time()
    chunks = list(c.logs(stream=True, follow=True, stdout=True, stderr=False))
    assert time.time() - started < 20, "follow did not end with the container"
    assert b"".join(chunks) == b"out-1\nout-2\nout-3\n", chunks

    c.wait(timeout=20)
    both = c.logs()
    assert both.count(b"out-") == 3 and both.count(b"err-") == 3, both
    assert c.logs(stdout=False, stderr=True, tail=1) == b"err-3\n", c.logs(stderr=True, tail=1)
    stamped = c.logs(timestamps=True, tail=1).decode()
    ts, text = stamped.split(" ", 1)
    assert text == "err-3\n" and ts.endswith("Z") and len(ts) == 30, stamped
    print("ok")
finally:
    c.remove(force=True)
