#!/usr/bin/env bash
# Guide §4.2.4.1: ./gen_self_signed_cert.sh <DOMAIN> [--domain-module T] [--inventory F] [--force]
# Writes a local CA and a server certificate into certificates/<DEFAULT_DOMAIN>/.
set -euo pipefail
exec "$(dirname "$(readlink -f "$0")")/deploy_psn.sh" certs self-signed "$@"
