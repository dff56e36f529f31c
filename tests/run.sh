#!/usr/bin/env bash
# README's test command: lints and every test suite, on a fresh Debian 12 machine or a dev tree.
#   ./tests/run.sh            lints, unit tests (stop at their first failure), then the image and
#                             end-to-end tests (starts a Docker engine; CI runs this)
#   ./tests/run.sh --fast     lints and unit tests only: no Docker, no browser, a few minutes
#   ./tests/run.sh ARGS...    lints, then pytest ARGS (e.g. tests/e2e/test_cluster.py -m e2e)
# As root it installs the Debian packages the tests need; the Python ones go into .venv.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
cd "$ROOT"

log() { printf '\n== %s\n' "$*" >&2; }

fast=0
if [ "${1:-}" = --fast ]; then
  fast=1
  shift
fi

packages=(python3-venv git shellcheck)
[ "$fast" = 1 ] || packages+=(chromium chromium-driver)
need=()
for pkg in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)" == ii* ]] || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "tests/run.sh: install ${need[*]} (apt-get) or run as root" >&2; exit 1; }
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
fi

log "virtualenv with test tools"
PSN_EXTRAS=test PSN_SETUP_ONLY=1 ./deploy_psn.sh
bin="$ROOT/.venv/bin"
export PATH="$bin:$PATH"

log "ruff"
"$bin/ruff" check .
"$bin/ruff" format --check .
log "yamllint"
"$bin/yamllint" --strict .
log "ansible-lint (production profile)"
ANSIBLE_CONFIG="$ROOT/ansible.cfg" "$bin/ansible-lint" --offline -q
log "shellcheck"
mapfile -t scripts < <(find . \( -path ./.venv -o -path ./demo -o -path ./dist \) -prune -o -name '*.sh' -print)
shellcheck .ci/run "${scripts[@]}"

if [ "$#" -gt 0 ]; then
  [ "$(id -u)" != 0 ] || bash .ci/docker-engine.sh
  log "pytest $*"
  exec "$bin/pytest" "$@"
fi

# Fast tests first: a broken unit stops the run before 40 minutes of servers.
log "unit tests"
"$bin/pytest" -x -q --durations=10 tests/unit
[ "$fast" = 0 ] || exit 0

if [ "$(id -u)" = 0 ]; then
  log "Docker engine (for the image and end-to-end tests)"
  bash .ci/docker-engine.sh
fi

log "image and end-to-end tests"
# One path, not tests/images tests/e2e: both have a conftest module of that name, and pytest
# would load the two up front, the second shadowing the first.
"$bin/pytest" --durations=30 tests --ignore=tests/unit
