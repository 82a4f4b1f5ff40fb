#!/usr/bin/env bash
# Stand-ins for the registry images docker-compose.yml and the Dockerfile name, for a machine
# that reaches Debian's package archive but no image registry. Each is built only if missing:
#   pairsearch-local/debian:bookworm   debootstrap --variant=minbase bookworm, docker import
#   pairsearch-local/python:bookworm   + python3, python3-venv (the Dockerfile's BASE_IMAGE)
#   pairsearch-local/redis:bookworm    + redis-server (REDIS_IMAGE)
#   pairsearch-local/nginx:bookworm    + nginx, with the official image's templates step (NGINX_IMAGE)
# Needs root (debootstrap) and a running Docker engine. With registry access none of this is
# needed: `docker compose up --build` pulls python:3.11-slim, redis and nginx.
set -euo pipefail
cd "$(dirname "$0")"
DOCKER=${DOCKER:-docker}
PREFIX=pairsearch-local

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

if ! have "$PREFIX/debian:bookworm"; then
  command -v debootstrap >/dev/null || { echo "base-images: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
  root=$(mktemp -d /tmp/pairsearch-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "base-images: debootstrap --variant=minbase bookworm (about a minute)"
  debootstrap --variant=minbase bookworm "$root" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | "$DOCKER" import -c 'CMD ["bash"]' - "$PREFIX/debian:bookworm" >/dev/null
fi

for name in python redis nginx; do
  have "$PREFIX/$name:bookworm" && continue
  echo "base-images: building $PREFIX/$name:bookworm"
  log=$(mktemp)
  "$DOCKER" build --network host --build-arg "BASE=$PREFIX/debian:bookworm" \
    -t "$PREFIX/$name:bookworm" "images/$name" >"$log" 2>&1 || { tail -30 "$log" >&2; rm -f "$log"; exit 1; }
  rm -f "$log"
done
