#!/usr/bin/env python3
"""Packs a root directory into a one-layer, docker-load-able image archive.

Deterministic: entries sorted, times fixed, owners numeric, so the same
directory always gives the same layer digest and image ID.
"""
import argparse
import hashlib
import io
import json
import os
import platform
import tarfile

EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def add_tree(tar, root):
    """Adds root's content (not root itself) in sorted order."""
    def walk(rel):
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            child = os.path.join(rel, name) if rel else name
            info = tar.gettarinfo(os.path.join(root, child), arcname=child)
            info.mtime = EPOCH
            info.uname = info.gname = ""
            if info.isreg():
                with open(os.path.join(root, child), "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if info.isdir():
                walk(child)
    walk("")


def tar_bytes(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def add_file(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = EPOCH
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mtime = EPOCH
    info.mode = 0o755
    tar.addfile(info)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rootfs", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--cmd", action="append", default=[])
    p.add_argument("--comment", default="")
    p.add_argument("--output", required=True)
    a = p.parse_args()

    layer = tar_bytes(lambda t: add_tree(t, a.rootfs))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": ARCH,
        "os": "linux",
        "created": CREATED,
        "config": {"Env": ["PATH=" + PATH], "Cmd": a.cmd},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": a.comment}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    image_hex = hashlib.sha256(config_bytes).hexdigest()
    layer_dir = hashlib.sha256(diff_id.encode()).hexdigest()
    repo, tag = a.tag.rsplit(":", 1)
    manifest = [{
        "Config": image_hex + ".json",
        "RepoTags": [a.tag],
        "Layers": [layer_dir + "/layer.tar"],
    }]

    def archive(t):
        add_dir(t, layer_dir)
        add_file(t, layer_dir + "/layer.tar", layer)
        add_file(t, layer_dir + "/VERSION", b"1.0")
        add_file(t, image_hex + ".json", config_bytes)
        add_file(t, "manifest.json", json.dumps(manifest).encode())
        add_file(t, "repositories", json.dumps({repo: {tag: layer_dir}}).encode())

    tmp = a.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(tar_bytes(archive))
    os.replace(tmp, a.output)
    print("sha256:" + image_hex)


if __name__ == "__main__":
    main()
