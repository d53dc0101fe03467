#!/usr/bin/env bash
# Build the resource image as CI must, on a machine with no registry and no internet
# beyond the package registries, through the resource's own put (`make release`):
#   1. the Debian base from debootstrap, committed to buildah's store (DEBIAN_IMAGE);
#   2. img and spruce, which cannot be downloaded here, replaced by stand-in scripts
#      served from 127.0.0.1 and verified by their sha256 like the real ones;
#   3. `make release`: opt/resource/out builds the image (`make image-archive`) and
#      publishes it into the local store .release-store/;
#   4. `make image-test`: the Dockerfile's test stage (the unit tests, in the image).
# Then tests/resource_image/ runs put, check and get inside the published image.
#
# BUILD_CA (default: this machine's CA bundle, where one exists) is handed to the
# build as the BuildKit secret `ca`, for pip behind a TLS-intercepting proxy.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${IMAGE_WORK:-$root/.image}
export STORAGE_DRIVER=vfs
base=localhost/debian:bookworm-debootstrap
mkdir -p "$work"

# 1. The base: debootstrap's minbase, trimmed as the slim images are.
if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  rm -rf "$work/rootfs"
  debootstrap --variant=minbase bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # What debian:bookworm-slim leaves out (its /etc/dpkg/dpkg.cfg.d/docker), so that
  # sizes measured here are those the image has on the real slim base.
  cat >"$work/rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
SLIM
  find "$work/rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  rm -rf "$work/rootfs"/usr/share/{groff,info,linda,lintian,locale,man}/*
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  container=$(buildah from scratch)
  mountpoint=$(buildah mount "$container")
  tar -C "$work/rootfs" -c . | tar -C "$mountpoint" -x
  buildah umount "$container" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash "$container"
  buildah commit --quiet --rm "$container" "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

# 2. Stand-ins for the two downloads, served from 127.0.0.1.
files="$work/files"
mkdir -p "$files"
stand_in() {  # NAME VERSION-LINE: a script that answers --version and refuses the rest
  cat >"$files/$1" <<SCRIPT
#!/bin/sh
# A stand-in for $1: its release binary cannot be downloaded where this image was built.
case "\${1:-}" in
  -v|--version|version) echo "$2 (stand-in)" >&2; exit 0 ;;
esac
echo "$1 stand-in: the real $1 could not be downloaded where this image was built" >&2
exit 1
SCRIPT
}
stand_in img "img version v0.5.11"
stand_in spruce "spruce - Version 1.31.1"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$files" "$port" >"$work/files.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fsS -o /dev/null "http://127.0.0.1:$port/img" && break; sleep 0.1; done

export DEBIAN_IMAGE=$base
export IMG_URL=http://127.0.0.1:$port/img IMG_SHA256=$(sha256sum <"$files/img" | cut -d' ' -f1)
export SPRUCE_FROM=download SPRUCE_URL=http://127.0.0.1:$port/spruce
export SPRUCE_SHA256=$(sha256sum <"$files/spruce" | cut -d' ' -f1)
if [ -z "${BUILD_CA+set}" ] && [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  export BUILD_CA=/etc/ssl/certs/ca-certificates.crt
fi

# 3 and 4.
cd "$root"
make release
make image-test DOCKER=buildah
