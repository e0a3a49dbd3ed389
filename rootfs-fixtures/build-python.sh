#!/usr/bin/env bash
# Builds the Python test image of SCENARIOS.md §3 from Debian packages with
# mmdebstrap; nothing comes from an image hub.
#
#   rootfs-fixtures/build-python.sh OUTDIR
#
# OUTDIR/python.tar   a `docker load`-able archive tagged
#                     berth-fixtures/python:3-bookworm: Debian bookworm's
#                     python3 with pip and Flask installed, CMD ["python3"].
#
# Like the official python images, pip may install into the system (no
# EXTERNALLY-MANAGED marker), so a Dockerfile's `RUN pip install` works.
set -euo pipefail

out=${1:?usage: build-python.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
command -v mmdebstrap >/dev/null || { echo "build-python.sh: needs mmdebstrap (scripts/deps.sh)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rootfs=$work/rootfs
excludes=()
for p in man doc locale info; do
    excludes+=(--dpkgopt="path-exclude=/usr/share/$p/*")
done
mmdebstrap --quiet --variant=essential --include=python3-flask,python3-pip \
    "${excludes[@]}" bookworm "$rootfs"
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
# An image carries no device nodes or host files: the runtime makes them.
find "$rootfs/dev" -mindepth 1 -delete
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*

python3 "$here/make-image.py" \
    --rootfs "$rootfs" \
    --tag berth-fixtures/python:3-bookworm \
    --cmd python3 \
    --comment "python3, pip and Flask from Debian bookworm" \
    --output "$out/python.tar.tmp"
mv "$out/python.tar.tmp" "$out/python.tar"
echo "built $out/python.tar"
