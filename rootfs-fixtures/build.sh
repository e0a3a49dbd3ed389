#!/usr/bin/env bash
# Builds berth's test images from Debian packages; nothing comes from an image hub.
#
#   rootfs-fixtures/build.sh OUTDIR
#
# OUTDIR/busybox/rootfs/   a busybox root: applets in /bin, /etc/passwd and
#                          /etc/group with root, nobody and user (uid 1000)
# OUTDIR/busybox.tar       the same as a `docker load`-able archive tagged
#                          busybox:latest (CMD ["sh"], PATH set)
#
# Reproducible: the same busybox-static package gives the same image ID.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The busybox binary: from the installed busybox-static package, else fetched
# with apt (a .deb from Debian's archive).
if dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
    busybox=/bin/busybox
    version=$(dpkg-query -W -f '${Version}' busybox-static)
else
    (cd "$work" && apt-get download -q busybox-static >/dev/null)
    deb=$(ls "$work"/busybox-static_*.deb)
    dpkg-deb -x "$deb" "$work/deb"
    busybox=$work/deb/bin/busybox
    version=$(dpkg-deb -f "$deb" Version)
fi
"$busybox" true || { echo "build.sh: $busybox does not run" >&2; exit 1; }

rootfs=$out/busybox/rootfs
rm -rf "$out/busybox"
mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root,home/user,var/tmp,usr/bin,usr/sbin,sbin}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 700 "$rootfs/root"
install -m 0755 "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
user:x:1000:
EOF
chown 1000:1000 "$rootfs/home/user"

python3 "$here/make-image.py" \
    --rootfs "$rootfs" \
    --tag busybox:latest \
    --cmd sh \
    --comment "busybox-static $version from Debian" \
    --output "$out/busybox.tar"
echo "built $out/busybox.tar and $rootfs"
