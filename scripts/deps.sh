#!/usr/bin/env bash
# Installs what building, running and testing berth needs on Debian (as root):
# apt packages and a Python venv with docker-py at .venv (or $BERTH_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    build-essential pkg-config ca-certificates   # building
    python3 python3-venv                          # fixtures, docker-py
    busybox-static mmdebstrap                     # test images (busybox; Debian's python3 + Flask)
    curl jq socat tmux procps iproute2 iptables   # test drivers and checks
    git                                           # remote build contexts
    runc docker.io                                # the runc-compatibility test and benchmarks
    containerd                                    # runtime_containerd: ctr + containerd-shim-runc-v2
    podman crun                                   # runtime_podman (podman 4.3 + conmon); crun for bench/runtime.sh
    docker-compose                                # compose 1.29 tests (compose_cli, health, build)
    docker-registry skopeo apache2-utils openssl  # registry tests: server, filling it, htpasswd, test CA
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # docker.io and docker-registry must not start system services: tests
    # start their own.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    rm -f /usr/sbin/policy-rc.d
fi

# The static berth-shim (scripts/build-release.sh). Optional: without it
# the shim is glibc-linked, which works the same and maps more memory.
musl=x86_64-unknown-linux-musl
if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$musl"; then
    rustup target add "$musl" || echo "deps: no $musl target, berth-shim stays glibc-linked" >&2
fi

venv=${BERTH_VENV:-$PWD/.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# Idempotent: brings an existing venv up to tests/py/requirements.txt too.
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/py/requirements.txt
echo "deps: ok (venv $venv)"
