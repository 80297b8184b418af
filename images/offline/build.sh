#!/bin/sh
# Builds every image compose.yaml uses, with no registry:
#   mcp-bridge:local            bridge + runner binaries built on this host, with
#                               exactly the shared libraries they link (from ldd)
#   mcp-bridge-sandbox:latest   the busybox sandbox (../sandbox-offline/build.sh)
# After this, `docker-compose up` (or `docker compose up`) finds the images
# and builds nothing.
#
#   images/offline/build.sh [--bin-dir DIR]    (default: cargo build --profile dist)
# BRIDGE_IMAGE and SANDBOX_IMAGE override the tags (compose.yaml reads the same);
# IMAGE_LABEL=key=value adds that label to both (the tests mark their images).
set -eu
bridge_image="${BRIDGE_IMAGE:-mcp-bridge:local}"
sandbox_image="${SANDBOX_IMAGE:-mcp-bridge-sandbox:latest}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin_dir=""
if [ "${1:-}" = "--bin-dir" ]; then bin_dir="$2"; fi
if [ -z "$bin_dir" ]; then
  (cd "$repo" && cargo build --profile dist -p bridge -p runner)
  bin_dir="$repo/target/dist"
fi
bin_dir=$(cd "$bin_dir" && pwd)
for b in bridge runner; do
  [ -x "$bin_dir/$b" ] || { echo "error: $bin_dir/$b not found; build it first" >&2; exit 1; }
done
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/local/bin" "$root/data" "$root/tmp" "$root/etc"
cp "$bin_dir/bridge" "$bin_dir/runner" "$root/usr/local/bin/"
# The dynamic loader and every library the binaries link, at the same paths.
libs=$(for b in bridge runner; do ldd "$bin_dir/$b" | awk '/=> \// {print $3} /^[[:space:]]*\// {print $1}'; done | sort -u)
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | docker import \
  ${IMAGE_LABEL:+--change "LABEL $IMAGE_LABEL"} \
  --change 'ENV PATH=/usr/local/bin BRIDGE_DB=/data/bridge.db' \
  --change 'CMD ["bridge", "serve", "--http", "0.0.0.0:8765"]' \
  - "$bridge_image" >/dev/null
echo "built $bridge_image"
"$repo/images/sandbox-offline/build.sh" "$sandbox_image"
