#!/usr/bin/env bash
# Benchmark of a deployment (issue 5 targets on a 2-core machine: fresh deploy ≤ 6 min with the
# images already built, a re-run with nothing changed ≤ 90 s restarting 0 services, `-t proxy`
# ≤ 30 s, all containers together ≤ 3 GiB). Runs on the demo (`./deploy_psn.sh demo`): removes
# any demo, measures a fresh one, a re-run, `-t proxy`, and the memory of every container, and
# writes the "deploy" section of docs/benchmarks.md. Leaves the demo running.
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
cd "$ROOT"
bash .ci/docker-engine.sh
PSN_SETUP_ONLY=1 ./deploy_psn.sh
bin="$ROOT/.venv/bin"
inventory=demo/hosts.yml
certs=demo/certificates
# The demo server's container (psn/emulated.py names it <network>-<host>).
server=$("$bin/python" -c 'from psn import demo; print(f"{demo.DEMO_NETWORK}-{demo.DEMO_HOST}")')
logs=$(mktemp -d)

# The images are built and archived before any timing: the target excludes image builds.
"$bin/python" -c 'from pathlib import Path; import psn; from psn import images
images.ensure_archive(Path("."), psn.__version__)'
./deploy_psn.sh demo down

# The deployment's own duration, as its summary reports it (H:MM:SS → seconds).
deploy_seconds() {
  grep -o 'Finished successfully in [0-9:]*' "$1" | tail -1 | awk '{split($4, t, ":"); print t[1]*3600 + t[2]*60 + t[3]}'
}
# Task container of every service of the swarm: "service container-id" lines.
containers() {
  docker exec "$server" docker ps --filter label=com.docker.swarm.service.name \
    --format '{{.Label "com.docker.swarm.service.name"}} {{.ID}}' | sort
}
rerun() {  # rerun <log> <extra args>...: the operator's command on the demo inventory
  local log=$1; shift
  local start; start=$(date +%s)
  ./deploy_psn.sh "$inventory" --certs-dir "$certs" --log-dir "$logs" -e precheck__hardware=warn "$@" >"$log" 2>&1
  echo $(( $(date +%s) - start ))
}

start=$(date +%s)
./deploy_psn.sh demo >"$logs/fresh.txt" 2>&1
demo_s=$(( $(date +%s) - start ))
fresh_s=$(deploy_seconds "$logs/fresh.txt")
verify=$(grep -c '^✓ [^:]*: ' "$logs/fresh.txt" || true)

before=$(containers)
rerun_s=$(rerun "$logs/rerun.txt")
after=$(containers)
restarted=$(comm -3 <(echo "$before") <(echo "$after") | awk '{print $1}' | sort -u | grep -c . || true)

before=$(containers)
proxy_s=$(rerun "$logs/proxy.txt" -t proxy)
after=$(containers)
proxy_restarted=$(comm -3 <(echo "$before") <(echo "$after") | awk '{print $1}' | sort -u | tr '\n' ' ')

memory=$(docker exec "$server" docker stats --no-stream --format '{{.Name}} {{.MemUsage}}')
total_mib=$("$bin/python" - "$memory" <<'PY'
import re, sys
units = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
total = 0.0
for line in sys.argv[1].splitlines():
    value, unit = re.match(r"\S+ ([\d.]+)(\w+)", line).groups()
    total += float(value) * units[unit]
print(round(total))
PY
)
largest=$(echo "$memory" | awk '{print $2, $1}' | sort -h -r | head -5 | awk '{printf "%s %s; ", $2, $1}')

section=$(mktemp)
cat > "$section" <<MD
## Deployment ($(date -u +%Y-%m-%d), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg))

Measured by \`bench/deploy.sh\` on the demo (every role on one emulated server, images built
beforehand, the small test signature database of ClamAV).

| measure | value | target |
|---|---|---|
| fresh deployment (the playbook run of \`./deploy_psn.sh demo\`) | ${fresh_s} s | ≤ 360 s |
| whole \`./deploy_psn.sh demo\` (server start, deployment, verify: ${verify} checks ✓) | ${demo_s} s | |
| re-run with nothing changed | ${rerun_s} s | ≤ 90 s |
| services restarted by that re-run | ${restarted} | 0 |
| \`-t proxy\` | ${proxy_s} s | ≤ 30 s |
| memory of all containers (docker stats) | ${total_mib} MiB | ≤ 3072 MiB |

Largest containers: ${largest}
Services restarted by \`-t proxy\` (the certificate is unchanged, so none is expected): ${proxy_restarted:-none}.
MD
"$bin/python" bench/section.py deploy "$section"
rm -f "$section"
echo "bench/deploy.sh: fresh ${fresh_s}s, re-run ${rerun_s}s (${restarted} restarted), -t proxy ${proxy_s}s, ${total_mib} MiB -> docs/benchmarks.md (logs: $logs)"
