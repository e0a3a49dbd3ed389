#!/usr/bin/env bash
# Removes what install.sh installed: stops berthd, removes its systemd units
# and its binaries. Containers, images and volumes (/var/lib/berth) and the
# configuration (/etc/berth) stay, so a later install.sh finds them again.
#
#   scripts/uninstall.sh            keep /var/lib/berth and /etc/berth
#   scripts/uninstall.sh --purge    remove them too, and the berth group
#
# DESTDIR=/some/root works on a tree laid out under that root instead of
# the system (no service is stopped then); the tests use it.
set -euo pipefail

purge=0
for arg in "$@"; do
    case "$arg" in
        --purge) purge=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "uninstall.sh: unknown argument $arg (expected --purge)" >&2; exit 2 ;;
    esac
done
root="${DESTDIR:-}"
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
    echo "uninstall.sh: run as root" >&2
    exit 1
fi

bin="$root/usr/local/bin"
units="$root/etc/systemd/system"
data="$root/var/lib/berth"
exec_root="$root/run/berth"

# A graceful stop: without live-restore berthd stops the containers itself.
if [ -z "$root" ]; then
    if [ -d /run/systemd/system ] && [ -f "$units/berthd.service" ]; then
        systemctl disable --now berthd.socket berthd.service 2>/dev/null || true
    fi
    pidfile="$exec_root/berthd.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "uninstall.sh: berthd (pid $pid) did not stop within 60 s" >&2
            exit 1
        fi
    fi
fi

rm -f "$units/berthd.socket" "$units/berthd.service"
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
rm -f "$bin/berthd" "$bin/berth-shim" "$bin/berth-runtime" "$root/var/run/berth.sock"

# Containers that live-restore kept running still hold mounts of the data
# root; their shims keep running from the deleted binaries.
shims=""
if [ -z "$root" ]; then
    shims="$(pgrep -x berth-shim || true)"
fi
if [ -n "$shims" ]; then
    echo "uninstall.sh: containers still run (live-restore), held by berth-shim processes:" $shims >&2
fi

if [ "$purge" = 1 ]; then
    if [ -n "$shims" ] || grep -qE " ($data|$exec_root)(/| )" /proc/self/mountinfo; then
        echo "uninstall.sh: not purging: containers still run or mounts remain under $data or $exec_root;" \
            "remove the containers first (docker rm -f \$(docker ps -aq)) with berthd running" >&2
        exit 1
    fi
    rm -rf "$data" "$exec_root" "$root/etc/berth"
    if [ -z "$root" ] && getent group berth >/dev/null; then
        groupdel berth
    fi
    echo "berth removed, with its data and configuration"
else
    echo "berth removed; containers, images and volumes stay in $data (--purge removes them)"
fi
