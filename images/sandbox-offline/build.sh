#!/bin/sh
# Builds a sandbox image with no registry: a root filesystem holding only a
# static busybox (Debian's busybox-static package) and its applet links,
# imported with `docker import`. Takes about a second.
#
#   images/sandbox-offline/build.sh [TAG]     (default mcp-bridge-sandbox:offline)
# IMAGE_LABEL=key=value adds that label (the tests mark their images with it).
set -eu
tag="${1:-mcp-bridge-sandbox:offline}"
busybox="${BUSYBOX:-/bin/busybox}"
if ! "$busybox" --list >/dev/null 2>&1 || ! file_is_static=$(ldd "$busybox" 2>&1 | grep -c 'not a dynamic'); then
  echo "error: $busybox is not a working busybox; install Debian's busybox-static (apt-get install busybox-static) or set BUSYBOX=PATH" >&2
  exit 1
fi
if [ "$file_is_static" != 1 ]; then
  echo "error: $busybox is dynamically linked; a FROM-scratch image needs the static build (apt-get install busybox-static)" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/workspace" "$root/proc" "$root/dev" "$root/sys"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/tmp:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | docker import \
  ${IMAGE_LABEL:+--change "LABEL $IMAGE_LABEL"} \
  --change 'USER 65534:65534' \
  --change 'WORKDIR /workspace' \
  --change 'ENV PATH=/bin HOME=/tmp' \
  --change 'CMD ["/bin/sh"]' \
  - "$tag" >/dev/null
echo "built $tag"
