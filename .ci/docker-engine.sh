#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, starting one if needed.
#
# Idempotent: installs Debian's docker.io and debootstrap with apt-get when they are missing,
# then, when `docker info` does not answer, starts containerd and dockerd in the background
# (there is no systemd here) and waits until the engine answers.
#
# Environment:
#   PSN_DOCKER_WAIT   seconds to wait for the engine (default 60)
#   PSN_DOCKER_LOGDIR where containerd.log and dockerd.log go (default /var/log/psn-ci)
set -euo pipefail

WAIT="${PSN_DOCKER_WAIT:-60}"
LOGDIR="${PSN_DOCKER_LOGDIR:-/var/log/psn-ci}"
CONTAINERD_SOCK=/run/containerd/containerd.sock

log() { printf 'docker-engine: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

engine_answers() { docker info >/dev/null 2>&1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts dockerd)"

# 1. Packages. `dpkg-query` rather than `command -v docker`: a client-only docker binary may be
#    on PATH without any engine.
missing=()
for pkg in docker.io debootstrap; do
    status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)"
    [[ "$status" == ii* ]] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >/dev/null ||
        die "apt-get update failed"
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi

if engine_answers; then
    log "engine already answers"
    exit 0
fi

mkdir -p "$LOGDIR"

# 2. containerd, unless one answers on the socket. Asking the socket, not `pidof`: the
#    containerd of an emulated server shows in this machine's process list too, and a dead
#    containerd leaves its socket file behind.
containerd_answers() { ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }
if ! containerd_answers; then
    log "starting containerd (log: $LOGDIR/containerd.log)"
    setsid nohup containerd </dev/null >>"$LOGDIR/containerd.log" 2>&1 &
    for _ in $(seq 1 "$WAIT"); do
        containerd_answers && break
        sleep 1
    done
    containerd_answers ||
        die "containerd did not answer on $CONTAINERD_SOCK within ${WAIT}s; see $LOGDIR/containerd.log"
fi

# 3. dockerd, unless ours is still starting (its pid file names a live process; `pidof` would
#    also see the engines inside emulated servers). A stale pid file would stop a new one.
pid="$(cat /var/run/docker.pid 2>/dev/null || true)"
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f /var/run/docker.pid
    log "starting dockerd (log: $LOGDIR/dockerd.log)"
    setsid nohup dockerd --containerd="$CONTAINERD_SOCK" </dev/null >>"$LOGDIR/dockerd.log" 2>&1 &
fi

for _ in $(seq 1 "$WAIT"); do
    if engine_answers; then
        log "engine answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    sleep 1
done
tail -n 20 "$LOGDIR/dockerd.log" >&2 || true
die "the Docker engine did not answer within ${WAIT}s; see $LOGDIR/dockerd.log"
