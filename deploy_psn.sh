#!/usr/bin/env bash
# The install guide's entry point (§4.3.1):
#   ./deploy_psn.sh <inventory> [ansible arguments]   install (e.g. -t proxy, --limit host)
#   ./deploy_psn.sh <command> ...                     any deploy_psn command (validate, genpwd, ...)
#   ./deploy_psn.sh demo [down]                       local all-in-one demo
# On first run it creates a virtualenv in .venv (from wheels/ when the distribution carries them).
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "$0")")" && pwd)"
VENV="${PSN_VENV:-$ROOT/.venv}"
export PSN_ROOT="$ROOT"

die() { echo "deploy_psn.sh: $*" >&2; exit 1; }

# Debian ships venv and ensurepip in a separate package.
ensure_python() {
  command -v python3 >/dev/null || die "python3 is required (guide §4.2.2: python3 >= 3.11 on the installer machine)"
  if python3 -c 'import ensurepip, venv' 2>/dev/null; then return; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deploy_psn.sh: installing python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
  else
    die "python3's venv module is missing: install it (Debian/Ubuntu: sudo apt-get install python3-venv)"
  fi
}

ensure_venv() {
  local stamp="$VENV/.psn-installed" extras="${PSN_EXTRAS:-}"
  if [ -x "$VENV/bin/deploy_psn" ] && [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ] &&
     { [ -z "$extras" ] || [ "$(cat "$stamp")" = "$extras" ]; }; then
    return
  fi
  ensure_python
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local pip=("$VENV/bin/pip" install --quiet --disable-pip-version-check)
  # An unpacked offline distribution installs from its wheels only; a development checkout
  # (which may hold wheels/ from a `dist build --offline`) keeps using the package index.
  if [ -d "$ROOT/wheels" ] && [ ! -d "$ROOT/.git" ]; then
    pip+=(--no-index --find-links "$ROOT/wheels")
  fi
  echo "deploy_psn.sh: installing the installer's Python packages into $VENV" >&2
  "${pip[@]}" --editable "$ROOT${extras:+[$extras]}"
  printf '%s' "$extras" > "$stamp"
}

ensure_venv
[ "${PSN_SETUP_ONLY:-}" = 1 ] && exit 0

# Global options may precede the command or the inventory.
globals=()
while [ $# -gt 0 ]; do
  case "$1" in
    --debug|--skip-checksum|--root=*) globals+=("$1"); shift ;;
    --root) globals+=("$1" "${2:-}"); shift 2 ;;
    *) break ;;
  esac
done

case "${1:-}" in
  "")
    "$VENV/bin/deploy_psn" --help
    exit 2 ;;
  -h|--help|--version|validate|genpwd|certs|dns|images|dist|deploy|precheck|status|verify|demo|users|groups|domains|tenants)
    exec "$VENV/bin/deploy_psn" "${globals[@]}" "$@" ;;
  *)
    exec "$VENV/bin/deploy_psn" "${globals[@]}" deploy "$@" ;;
esac
