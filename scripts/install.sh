#!/usr/bin/env bash
# Builds berth, installs it to /usr/local/bin and starts berthd on
# /var/run/berth.sock with default settings, then loads the busybox image.
# On a systemd host berthd runs as the berthd.service unit.
#
# Running it again upgrades: the new binaries replace the old ones (running
# processes keep theirs), berthd restarts, and containers, images and
# volumes in /var/lib/berth stay. The restart is a graceful stop: without
# "live-restore" berthd stops the running containers and brings back those
# whose restart policy says so; with it they keep running and are adopted.
# scripts/uninstall.sh removes the service and binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

scripts/deps.sh
scripts/build-release.sh
install -m 0755 target/dist/berthd target/dist/berth-shim target/dist/berth-runtime /usr/local/bin/
mkdir -p /etc/berth /var/lib/berth
[ -f /etc/berth/daemon.json ] || echo '{}' >/etc/berth/daemon.json

# Members of group berth use the socket without root: root-equivalent.
getent group berth >/dev/null || groupadd --system berth

socket=/var/run/berth.sock
if [ -d /run/systemd/system ]; then
    # Socket-activated (-H fd://), Type=notify. daemon.json must not set
    # "hosts" then (a flag/file conflict, as with dockerd's unit).
    install -m 0644 contrib/berthd.socket /etc/systemd/system/berthd.socket
    install -m 0644 contrib/berthd.service /etc/systemd/system/berthd.service
    systemctl daemon-reload
    systemctl enable berthd.socket berthd.service
    systemctl stop berthd.service 2>/dev/null || true
    systemctl restart berthd.socket
    systemctl start berthd.service
else
    if [ -f /run/berth/berthd.pid ] && kill -0 "$(cat /run/berth/berthd.pid)" 2>/dev/null; then
        # Stopping the containers may take their stop timeouts.
        pid="$(cat /run/berth/berthd.pid)"
        kill "$pid"
        for _ in $(seq 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    setsid /usr/local/bin/berthd --pidfile /run/berth/berthd.pid </dev/null >>/var/log/berthd.log 2>&1 &
fi
for _ in $(seq 100); do
    curl -sf --unix-socket "$socket" http://localhost/_ping >/dev/null 2>&1 && break
    sleep 0.1
done
curl -sf --unix-socket "$socket" http://localhost/_ping >/dev/null || {
    echo "install.sh: berthd did not come up; see /var/log/berthd.log or journalctl -u berthd" >&2
    exit 1
}
mkdir -p target/fixtures
[ -f target/fixtures/busybox.tar ] || rootfs-fixtures/build.sh target/fixtures
docker -H "unix://$socket" load -i target/fixtures/busybox.tar
echo "berthd is running: export DOCKER_HOST=unix://$socket"
