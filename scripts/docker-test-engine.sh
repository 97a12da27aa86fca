#!/usr/bin/env bash
# docker-test-engine.sh: a private Docker engine for the container tests of CommandProcessor, and an image built
# offline (no registry is reachable on the machines we test on): busybox-static imported as taskmanager-busybox:test.
# Installs docker.io and busybox-static with apt when they are missing. Starts and stops only its own dockerd
# (socket, data and pid file under one state directory); never touches another engine.
set -euo pipefail

readonly PROG=docker-test-engine
ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly ROOT
STATE=$(realpath -m -- "${DOCKER_TEST_STATE:-$ROOT/.cache/docker-test}")
readonly STATE
readonly SOCK="$STATE/docker.sock"
readonly PIDFILE="$STATE/dockerd.pid"
readonly IMAGE=taskmanager-busybox:test
readonly APT_LOCK=${TASKMANAGER_APT_LOCK:-/tmp/taskmanager-apt.lock}

usage() {
  cat <<'USAGE'
Usage: scripts/docker-test-engine.sh start|stop|status|env

  start   install docker.io and busybox-static if missing (apt), start a private dockerd
          (--iptables=false --bridge=none), import the busybox image; prints DOCKER_HOST=… on its last line
  stop    stop that dockerd (only the one this script started)
  status  exit 0 when it answers
  env     print DOCKER_HOST=unix://…/docker.sock

Environment: DOCKER_TEST_STATE (default .cache/docker-test).
Exit codes: 0 ok, 1 failed (the reason on stderr), 2 bad usage.
USAGE
}

die() {
  echo "$PROG: $*" >&2
  exit 1
}

client() { docker -H "unix://$SOCK" "$@"; }

answers() { [[ -S "$SOCK" ]] && client version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  ((${#missing[@]} == 0)) && return 0
  [[ $(id -u) -eq 0 ]] || die "needs ${missing[*]} (apt-get install ${missing[*]} as root)"
  command -v apt-get >/dev/null 2>&1 || die "needs ${missing[*]}, and there is no apt-get here"
  echo "$PROG: installing ${missing[*]} with apt" >&2
  # Other test files may install packages at the same time: one apt at a time (APT_LOCK, shared with them).
  flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 ||
    die 'apt-get update failed'
  flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

import_image() {
  client image inspect "$IMAGE" >/dev/null 2>&1 && return 0
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
  cp /bin/busybox "$dir/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$dir/bin/$applet"
  done
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >"$dir/etc/passwd"
  tar -C "$dir" -c . | client import -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
  rm -rf "$dir"
}

start() {
  mkdir -p "$STATE"
  if answers; then
    import_image
    echo "DOCKER_HOST=unix://$SOCK"
    return 0
  fi
  install_packages
  # A dockerd that is not ours (the system's) is left alone: ours has its own socket, data and exec roots.
  nohup dockerd --iptables=false --ip6tables=false --bridge=none --host "unix://$SOCK" \
    --data-root "$STATE/data" --exec-root "$STATE/exec" --pidfile "$PIDFILE" \
    >"$STATE/dockerd.log" 2>&1 &
  local i
  for ((i = 0; i < 300; i++)); do
    answers && break
    sleep 0.1
  done
  answers || die "dockerd did not answer within 30 s; its log: $STATE/dockerd.log ($(tail -3 "$STATE/dockerd.log" | tr '\n' ' '))"
  import_image
  echo "DOCKER_HOST=unix://$SOCK"
}

stop() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid
  pid=$(cat "$PIDFILE")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local i
    for ((i = 0; i < 200; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) answers ;;
  env) echo "DOCKER_HOST=unix://$SOCK" ;;
  -h | --help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
