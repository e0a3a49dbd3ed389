#!/usr/bin/env python3
"""Build a `docker load`-able docker-archive from a JSON spec (argv[1]).

spec = {"out": "/path/x.tar",
        "images": [{"tag": "name:tag" | null,
                    "cmd": ["sh"],
                    "layers": [[entry, ...], ...]}]}
entry = {"name": "a/b", "type": "file"|"dir"|"symlink"|"hardlink",
         "data": "text", "random": bytes, "seed": n, "target": "..."}

Names are written verbatim (no cleaning), so tests can produce hostile
tars. "random" content is deterministic (seeded), for benchmarks.
"""
import hashlib
import io
import json
import random
import sys
import tarfile


def layer_tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.mtime = 1_600_000_000
            ti.mode = e.get("mode", 0o755 if e["type"] == "dir" else 0o644)
            kind = e["type"]
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e["target"]
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e["target"]
                tf.addfile(ti)
            else:
                if "random" in e:
                    data = random.Random(e.get("seed", 0)).randbytes(e["random"])
                else:
                    data = e.get("data", "").encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def main():
    spec = json.loads(sys.argv[1])
    manifest = []
    with tarfile.open(spec["out"], mode="w", format=tarfile.GNU_FORMAT) as out:
        def put(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1_600_000_000
            out.addfile(ti, io.BytesIO(data))

        for img in spec["images"]:
            diff_ids, paths = [], []
            for entries in img["layers"]:
                data = layer_tar(entries)
                h = hashlib.sha256(data).hexdigest()
                diff_ids.append("sha256:" + h)
                paths.append(h + "/layer.tar")
                put(h + "/layer.tar", data)
            config = {
                "architecture": "amd64",
                "os": "linux",
                "created": "2024-01-01T00:00:00Z",
                "config": {"Cmd": img.get("cmd", ["sh"]), "Labels": img.get("labels", {})},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "layer %d" % i}
                            for i in range(len(diff_ids))],
            }
            cdata = json.dumps(config).encode()
            cname = hashlib.sha256(cdata).hexdigest() + ".json"
            put(cname, cdata)
            manifest.append({"Config": cname,
                             "RepoTags": [img["tag"]] if img.get("tag") else None,
                             "Layers": paths})
        put("manifest.json", json.dumps(manifest).encode())


if __name__ == "__main__":
    main()
