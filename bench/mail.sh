#!/usr/bin/env bash
# Mail throughput benchmark (issue 5): ~4 KiB messages over several SMTP connections into port 25,
# delivered by LMTP and counted over IMAP (bench/mailload.py), against
#   native           Debian's own Postfix + Dovecot on this machine (bench/native/), no filters
#   native-filtered  the same + Rspamd's milter + clamd through Rspamd's antivirus module
#   native-filtered-offline  the same with PSN's offline Rspamd settings (no DNS blocklists,
#                    fuzzy hashes or internet maps): like with like for PSN
#   psn              a PSN server (the demo by default: ./deploy_psn.sh demo) as deployed: filtered
#                    when its mail stack runs psn-mail_rspamd
#   psn-unfiltered   the same server without filters: its mail role deployed again with
#                    mail__rspamd_enabled=false (and ClamAV off), measured, then deployed again as
#                    it was (`-t mail`); skipped when the server already runs without Rspamd
# and the ratios PSN / native. Targets: without filters >= 0.8 x native, with filters >= 1.0 x
# native Debian defaults. Also reports where the time goes: Postfix's delays=a/b/c/d of each
# delivery (a: before the queue manager, milter included; b: queue; c: LMTP connection;
# d: LMTP transmission = Dovecot's delivery) and Rspamd's scan time per message.
#
# Every case starts with a warm-up load that is not measured (MAIL_BENCH_WARMUP messages). native
# and PSN without filters alternate MAIL_BENCH_ROUNDS times in one window (native, PSN, native,
# PSN, ...): other work on the machine weighs on both alike; the report gives each side's median.
# Environment: MAIL_BENCH_MESSAGES (3000), MAIL_BENCH_CONNECTIONS (8), MAIL_BENCH_MAILBOXES (4),
# MAIL_BENCH_WARMUP (100), MAIL_BENCH_ROUNDS (3),
# MAIL_BENCH_CASES (native,native-filtered,native-filtered-offline,psn,psn-unfiltered),
# MAIL_BENCH_DIR (/var/tmp/psn-mailbench),
# MAIL_BENCH_SERVER (psn-demo-psn-demo: the emulated server's container), MAIL_BENCH_INVENTORY
# (demo/hosts.yml: its inventory), MAIL_BENCH_CERTS_DIR (certificates/ next to the inventory),
# MAIL_BENCH_QUICK=1 (200 messages, 4 connections, 2 mailboxes, one round; docs/benchmarks.md
# untouched), MAIL_BENCH_DOCS=0 (docs/benchmarks.md untouched).
# Runs as root (installs Debian's packages once; starts and stops the native daemons itself).
set -euo pipefail

ROOT="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
cd "$ROOT"
MESSAGES="${MAIL_BENCH_MESSAGES:-3000}"
CONNECTIONS="${MAIL_BENCH_CONNECTIONS:-8}"
MAILBOXES="${MAIL_BENCH_MAILBOXES:-4}"
WARMUP="${MAIL_BENCH_WARMUP:-100}"
ROUNDS="${MAIL_BENCH_ROUNDS:-3}"
CASES="${MAIL_BENCH_CASES:-native,native-filtered,native-filtered-offline,psn,psn-unfiltered}"
BENCH_DIR="${MAIL_BENCH_DIR:-/var/tmp/psn-mailbench}"
W="$BENCH_DIR/native" # the native daemons' configuration, queue, mailboxes and logs
WRITE_DOCS="${MAIL_BENCH_DOCS:-1}"
if [ "${MAIL_BENCH_QUICK:-0}" = 1 ]; then
  MESSAGES=200 CONNECTIONS=4 MAILBOXES=2 WARMUP=20 ROUNDS=1 WRITE_DOCS=0
fi
LOAD=(python3 "$ROOT/bench/mailload.py" load --messages "$MESSAGES" --connections "$CONNECTIONS")
SERVER="${MAIL_BENCH_SERVER:-psn-demo-psn-demo}"
INVENTORY="${MAIL_BENCH_INVENTORY:-demo/hosts.yml}"
CERTS_DIR="${MAIL_BENCH_CERTS_DIR:-$(dirname "$INVENTORY")/certificates}"
PCONF="$W/postfix"
RESULTS="$BENCH_DIR/results"
# One password for every benchmark mailbox, passed to the load generator in its environment.
MAIL_BENCH_PASSWORD="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
export MAIL_BENCH_PASSWORD

# CPU time per daemon from cgroup v1 cpuacct (the native daemons in psn-mailbench/<name>, the demo's
# containers in docker/<id>); nothing is reported where that hierarchy is missing.
CG=/sys/fs/cgroup/cpuacct
in_cgroup() { # in_cgroup NAME COMMAND...: exec COMMAND in psn-mailbench/NAME (call in a subshell)
  if [ -w "$CG" ]; then
    mkdir -p "$CG/psn-mailbench/$1" && echo "$BASHPID" > "$CG/psn-mailbench/$1/cgroup.procs"
  fi
  exec "${@:2}"
}
cpu_snapshot() { # cpu_snapshot NAME=CGROUP...: "NAME nanoseconds" lines
  local pair
  for pair in "$@"; do
    [ -r "$CG/${pair#*=}/cpuacct.usage" ] && echo "${pair%%=*} $(cat "$CG/${pair#*=}/cpuacct.usage")"
  done
  return 0
}
cpu_delta() { # cpu_delta BEFORE AFTER > CASE.cpu: "NAME milliseconds" lines
  awk 'NR == FNR { start[$1] = $2; next } ($1 in start) { printf "%s %d\n", $1, ($2 - start[$1]) / 1e6 }' \
    "$1" "$2"
}
native_cgroups() { echo postfix=psn-mailbench/postfix dovecot=psn-mailbench/dovecot \
  rspamd=psn-mailbench/rspamd clamd=psn-mailbench/clamd; }

log() { printf '%s mail.sh: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
has_case() { [[ ",$CASES," == *",$1,"* ]]; }
mailboxes() { # mailboxes DOMAIN -> bench1@DOMAIN,bench2@DOMAIN,...
  local i out=""
  for i in $(seq 1 "$MAILBOXES"); do out+="${out:+,}bench$i@$1"; done
  echo "$out"
}

# ---------------------------------------------------------------- native Debian Postfix + Dovecot
native_install() {
  local missing=()
  command -v postfix >/dev/null || missing+=(postfix)
  command -v dovecot >/dev/null || missing+=(dovecot-core dovecot-imapd dovecot-lmtpd)
  [ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
  [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
  command -v rspamd >/dev/null || missing+=(rspamd)
  command -v clamd >/dev/null || missing+=(clamav-daemon)
  [ "${#missing[@]}" = 0 ] && return
  log "installing Debian's ${missing[*]} (their services are not started)"
  local guard=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    guard=1
  fi
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ "$guard" = 0 ] || rm -f /usr/sbin/policy-rc.d
}

render() { # render SRC DEST: a bench/native file with @W@ replaced
  sed "s|@W@|$W|g" "$1" > "$2"
}

native_start() {
  native_stop
  rm -rf "$W"
  mkdir -p "$W"/{postfix,postfix-lib,log,mail,rspamd-db,rspamd-run,clamav-run,clamav-db}
  getent passwd psn-bench >/dev/null ||
    useradd --system --home-dir "$W/mail" --no-create-home --shell /usr/sbin/nologin psn-bench
  local uid gid user
  uid="$(id -u psn-bench)" gid="$(id -g psn-bench)"
  chown psn-bench:psn-bench "$W/mail"

  # Postfix: Debian's main.cf and master.cf, a second instance on 127.0.0.1:2525, no chroot.
  cp /etc/postfix/main.cf /etc/postfix/master.cf "$PCONF/"
  grep -v '^#' "$ROOT/bench/native/postfix-main.cf" | sed "s|@W@|$W|g" |
    while IFS= read -r line; do [ -z "$line" ] || postconf -c "$PCONF" -e "$line"; done
  postconf -c "$PCONF" -MX smtp/inet
  postconf -c "$PCONF" -M "2525/inet=2525 inet n - n - - smtpd"
  postconf -c "$PCONF" -F '*/*/chroot=n'
  : > "$PCONF/vmailbox"
  : > "$W/dovecot-users"
  for user in $(mailboxes native.test | tr , ' '); do
    echo "$user ${user%@*}/" >> "$PCONF/vmailbox"
    echo "$user:{PLAIN}$MAIL_BENCH_PASSWORD:$uid:$gid::$W/mail/${user%@*}" >> "$W/dovecot-users"
  done
  chmod 0640 "$W/dovecot-users" && chgrp dovecot "$W/dovecot-users"
  postmap "$PCONF/vmailbox"
  mkdir -p "$W/postfix-spool"
  postfix -c "$PCONF" set-permissions create-missing 2>/dev/null
  postfix -c "$PCONF" check
  # Dovecot: a copy of Debian's /etc/dovecot, passwd-file instead of system users, local.conf.
  cp -a /etc/dovecot "$W/dovecot"
  sed -i -e 's/^!include auth-system.conf.ext/#&/' \
    -e 's/^#!include auth-passwdfile.conf.ext/!include auth-passwdfile.conf.ext/' \
    "$W/dovecot/conf.d/10-auth.conf"
  sed -i "s|/etc/dovecot/users|$W/dovecot-users|" "$W/dovecot/conf.d/auth-passwdfile.conf.ext"
  # ssl = no (local.conf); the package's certificate may not exist (made only with ssl-cert).
  sed -i 's/^ssl_\(cert\|key\) = </#&/' "$W/dovecot/conf.d/10-ssl.conf"
  render "$ROOT/bench/native/dovecot-local.conf" "$W/dovecot/local.conf"
  (in_cgroup dovecot dovecot -c "$W/dovecot/dovecot.conf")
  (in_cgroup postfix postfix -c "$PCONF" start 2>/dev/null)
  wait_port 127.0.0.1 2525 && wait_port 127.0.0.1 10143
}

native_filters_on() {
  # clamd with the PSN image tests' signature database, Rspamd with Debian's configuration.
  sed '/^#/d' "$ROOT/bench/native/clamd.conf" | sed "s|@W@|$W|g" > "$W/clamd.overrides"
  awk 'NR==FNR { key[$1] = $0; next } !($1 in key) { print } END { for (k in key) print key[k] }' \
    "$W/clamd.overrides" /etc/clamav/clamd.conf > "$W/clamd.conf"
  cp "$ROOT"/tests/images/fixtures/clamav/db/* "$W/clamav-db/"
  chown -R clamav:clamav "$W/clamav-db" "$W/clamav-run"
  touch "$W/clamd.log" && chown clamav "$W/clamd.log"
  in_cgroup clamd clamd --config-file="$W/clamd.conf" > "$W/log/clamd.out" 2>&1 &
  echo $! > "$W/clamd.pid"
  mkdir -p "$W/rspamd-local/local.d"
  render "$ROOT/bench/native/rspamd/local.d/antivirus.conf" "$W/rspamd-local/local.d/antivirus.conf"
  for _ in $(seq 60); do [ -S "$W/clamav-run/clamd.ctl" ] && break; sleep 1; done
  native_rspamd_start
  grep -v '^#' "$ROOT/bench/native/postfix-filters.cf" |
    while IFS= read -r line; do [ -z "$line" ] || postconf -c "$PCONF" -e "$line"; done
  postfix -c "$PCONF" reload 2>/dev/null
}

native_rspamd_start() {
  chown -R _rspamd:_rspamd "$W/rspamd-local" "$W/rspamd-db" "$W/rspamd-run" "$W/log"
  (in_cgroup rspamd rspamd -u _rspamd -g _rspamd --var="LOCAL_CONFDIR=$W/rspamd-local" \
    --var="DBDIR=$W/rspamd-db" --var="RUNDIR=$W/rspamd-run" --var="LOGDIR=$W/log")
  wait_port 127.0.0.1 11332 && wait_port 127.0.0.1 11334
}

native_rspamd_offline() {
  # PSN's offline settings (images/rspamd/local.d/*.conf, options.inc): no DNS blocklists, fuzzy
  # hashes or maps from the internet. Debian's defaults query them, which is what an installation
  # without internet access pays for in DNS timeouts.
  local file _
  kill "$(cat "$W/rspamd-run/rspamd.pid")"
  for _ in $(seq 30); do (exec 3<>/dev/tcp/127.0.0.1/11332) 2>/dev/null || break; sleep 1; done
  for file in "$ROOT"/images/rspamd/local.d/*.conf "$ROOT/images/rspamd/local.d/options.inc"; do
    cp "$file" "$W/rspamd-local/local.d/"
  done
  native_rspamd_start
}

native_stop() {
  if [ -f "$PCONF/main.cf" ]; then postfix -c "$PCONF" stop 2>/dev/null || true; fi
  if [ -f "$W/dovecot/dovecot.conf" ]; then doveadm -c "$W/dovecot/dovecot.conf" stop 2>/dev/null || true; fi
  local pidfile
  for pidfile in "$W/rspamd-run/rspamd.pid" "$W/clamd.pid"; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  rm -f "$W/rspamd-run/rspamd.pid" "$W/clamd.pid"
  sleep 1
  rmdir "$CG"/psn-mailbench/* "$CG/psn-mailbench" 2>/dev/null || true # once their processes are gone
}

wait_port() { # wait_port HOST PORT: up to 60 s
  local _
  for _ in $(seq 120); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.5
  done
  log "nothing listens on $1:$2"
  return 1
}

hs_helper_ticks() { # CPU ticks of every Rspamd's hs_helper on this machine (the demo's included)
  local pid total=0
  for pid in $(pgrep -f '^rspamd: hs_helper' || true); do
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}

warm_up() { # warm_up SMTP IMAP [--starttls] USERS: a first load, then Rspamd's regexps compiled
  local before _
  log "warm-up: $WARMUP messages"
  python3 "$ROOT/bench/mailload.py" load --messages "$WARMUP" --connections "$CONNECTIONS" \
    --smtp "$1" --imap "$2" "${@:3}" > /dev/null
  # Rspamd compiles its regular expressions into Hyperscan databases in the background after a
  # start (minutes the first time on 2 busy cores) and scans with PCRE until then.
  for _ in $(seq 100); do
    before="$(hs_helper_ticks)"
    sleep 3
    [ "$before" = "$(hs_helper_ticks)" ] && return
  done
}

native_scanned() { rspamc -h 127.0.0.1:11334 stat 2>/dev/null | awk '/^Messages scanned:/ {print $3}'; }

line_count() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

run_native() { # run_native CASE[@ROUND]
  local case="$1" lines rlines scanned=""
  warm_up 127.0.0.1:2525 127.0.0.1:10143 --users "$(mailboxes native.test)"
  lines="$(line_count "$W/postfix.log")" rlines="$(line_count "$W/log/rspamd.log")"
  [ "${case%@*}" = native ] || scanned="$(native_scanned)"
  log "$case: $MESSAGES messages over $CONNECTIONS connections"
  uptime > "$RESULTS/$case.uptime"
  # shellcheck disable=SC2046 # one NAME=CGROUP word each
  cpu_snapshot $(native_cgroups) > "$W/cpu.before"
  "${LOAD[@]}" --smtp 127.0.0.1:2525 --imap 127.0.0.1:10143 \
    --users "$(mailboxes native.test)" > "$RESULTS/$case.json"
  sleep 1
  # shellcheck disable=SC2046
  cpu_snapshot $(native_cgroups) > "$W/cpu.after"
  cpu_delta "$W/cpu.before" "$W/cpu.after" > "$RESULTS/$case.cpu"
  tail -n +"$((lines + 1))" "$W/postfix.log" > "$RESULTS/$case.postfix.log"
  if [ "${case%@*}" != native ]; then
    echo $(( $(native_scanned) - scanned )) > "$RESULTS/$case.scanned"
    tail -n +"$((rlines + 1))" "$W/log/rspamd.log" > "$RESULTS/$case.rspamd.log"
  fi
  python3 "$ROOT/bench/mailload.py" probe --smtp 127.0.0.1:2525 \
    --users "$(mailboxes native.test)" > "$RESULTS/$case.probe.json"
}

# ---------------------------------------------------------------- PSN: an emulated server
server() { docker exec "$SERVER" "$@"; }
server_task() { server docker ps -q --filter "label=com.docker.swarm.service.name=$1" | head -n1; }
inventory_value() { # inventory_value KEY...: a value of the inventory's vars
  "$ROOT/.venv/bin/python" - "$INVENTORY" "$@" <<'PY'
import sys
from pathlib import Path
from psn.inventory import load_inventory
print(load_inventory(Path(sys.argv[1])).var(*sys.argv[2:]))
PY
}
mail_address() { # the address of the inventory's mail host
  "$ROOT/.venv/bin/python" - "$INVENTORY" <<'PY'
import sys
from pathlib import Path
from psn.inventory import as_text, load_inventory
inv = load_inventory(Path(sys.argv[1]))
host = next(iter(inv.hosts("mail")))
print(as_text(inv.host_vars(host).get("ansible_host")) or host)
PY
}

psn_users() { # psn_users DOMAIN: the benchmark mailboxes in the directory, password reset
  local domain="$1" base ldap user
  base="$(echo "$domain" | sed 's/^/dc=/; s/\./,dc=/g')"
  ldap="$(server_task psn-ldap_ldap)"
  # The first line is cn=Manager's password, written to a 0600 file in the container (never an
  # argument); the rest is LDIF. $1/$f/$pw are the inner shell's.
  # shellcheck disable=SC2016
  {
    inventory_value passwords ds389_manager_user
    for user in $(mailboxes "$domain" | tr , ' '); do
      printf 'dn: uid=%s,ou=People,%s\nchangetype: add\n' "$user" "$base"
      printf 'objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n'
      printf 'objectClass: inetOrgPerson\nobjectClass: mailRecipient\n'
      printf 'uid: %s\ncn: %s\nsn: Bench\nmail: %s\n\n' "$user" "${user%@*}" "$user"
      printf 'dn: uid=%s,ou=People,%s\nchangetype: modify\nreplace: userPassword\n' "$user" "$base"
      printf 'userPassword: %s\n\n' "$MAIL_BENCH_PASSWORD"
    done
  } | docker exec -i "$SERVER" docker exec -i "$ldap" sh -c '
      IFS= read -r pw; f="$(mktemp)"; printf %s "$pw" > "$f"
      ldapmodify -c -x -H ldap://localhost:3389 -D "cn=Manager,$1" -y "$f"; rm -f "$f"' sh "$base" \
    2>&1 | grep -v -e '^$' -e '^modifying' -e '^adding' -e 'Already exists' >&2 || true
  # (-c: mailboxes of earlier runs already exist; their password is set again)
}

psn_scanned() {
  local task
  task="$(server_task psn-mail_rspamd)"
  [ -n "$task" ] || return 0
  server docker exec "$task" rspamc stat 2>/dev/null | awk '/^Messages scanned:/ {print $3}'
}

psn_running() { # a running server with a mail stack
  docker inspect -f '{{.State.Running}}' "$SERVER" 2>/dev/null | grep -q true &&
    [ -n "$(server_task psn-mail_postfix)" ]
}

psn_deploy_mail() { # psn_deploy_mail ARGS...: ./deploy_psn.sh INVENTORY -t mail ARGS
  log "deploying the mail role of $INVENTORY ${*:-as it is}"
  "$ROOT/deploy_psn.sh" deploy "$INVENTORY" --certs-dir "$CERTS_DIR" \
    --log-dir "$BENCH_DIR/deploy-logs" -t mail -e precheck__hardware=warn "$@" \
    > "$BENCH_DIR/deploy-logs/last.out" 2>&1 ||
    { tail -n 30 "$BENCH_DIR/deploy-logs/last.out" >&2; return 1; }
}

run_psn() { # run_psn CASE[@ROUND]: the server's mail stack as deployed, psn or psn-filtered
  local case="$1" address domain scanned="" since
  address="$(mail_address)"
  domain="$(inventory_value setup external_domain)"
  psn_users "$domain"
  warm_up "$address:25" "$address:143" --starttls --users "$(mailboxes "$domain")"
  scanned="$(psn_scanned)"
  log "$case: $MESSAGES messages over $CONNECTIONS connections to $address"
  uptime > "$RESULTS/$case.uptime"
  since="$(server date -u +%Y-%m-%dT%H:%M:%SZ)"
  local groups=() service id
  for service in mail_postfix mail_dovecot mail_rspamd mail_clamav redis_redis ldap_ldap; do
    id="$(server docker ps -q --no-trunc \
      --filter "label=com.docker.swarm.service.name=psn-$service" | head -n1)"
    [ -z "$id" ] || groups+=("${service#*_}=docker/$id") # (not deployed without filters)
  done
  cpu_snapshot "${groups[@]}" > "$RESULTS/$case.cpu.before"
  "${LOAD[@]}" --smtp "$address:25" --imap "$address:143" --starttls \
    --users "$(mailboxes "$domain")" > "$RESULTS/$case.json"
  sleep 1
  cpu_snapshot "${groups[@]}" > "$RESULTS/$case.cpu.after"
  cpu_delta "$RESULTS/$case.cpu.before" "$RESULTS/$case.cpu.after" > "$RESULTS/$case.cpu"
  server docker logs --since "$since" "$(server_task psn-mail_postfix)" > "$RESULTS/$case.postfix.log" 2>&1
  if [ -n "$scanned" ]; then
    echo $(( $(psn_scanned) - scanned )) > "$RESULTS/$case.scanned"
    server docker logs --since "$since" "$(server_task psn-mail_rspamd)" > "$RESULTS/$case.rspamd.log" 2>&1
  fi
  python3 "$ROOT/bench/mailload.py" probe --smtp "$address:25" --users "$(mailboxes "$domain")" \
    > "$RESULTS/$case.probe.json"
}

psn_note() { # what the PSN figures were measured on, once per run
  local dirty=""
  [ -z "$(git status --porcelain -- roles/mail images/postfix images/dovecot images/rspamd)" ] ||
    dirty=" with uncommitted changes"
  echo "PSN: $SERVER, its mail role as of $(git log -1 --format='%h %cs' -- roles/mail)$dirty." \
    >> "$RESULTS/notes"
}

round_name() { # round_name CASE ROUND: CASE, or CASE@ROUND when there are several rounds
  if [ "$ROUNDS" -gt 1 ]; then echo "$1@$2"; else echo "$1"; fi
}

run_unfiltered_rounds() { # native and PSN without filters, alternately, ROUNDS times
  local psn="" filtered="" restore="" failed="" round
  if psn_running; then
    [ -z "$(server_task psn-mail_rspamd)" ] || filtered=1
    if [ -n "$filtered" ] && has_case psn-unfiltered; then psn=1 restore=1; fi
    if [ -z "$filtered" ] && has_case psn; then psn=1; fi
  elif has_case psn || has_case psn-unfiltered; then
    log "psn: no running server $SERVER with a mail stack (./deploy_psn.sh demo); skipped"
  fi
  [ -z "$psn" ] || psn_note
  if [ -n "$restore" ]; then
    mkdir -p "$BENCH_DIR/deploy-logs"
    psn_deploy_mail -e mail__rspamd_enabled=false -e mail__clamav_enabled=false || failed=1
  fi
  if [ -z "$psn" ] || [ -n "$failed" ]; then
    if has_case native; then run_native native; fi
  else
    # Alternated in one window, so that both sides see the same load from other work; the
    # report gives each side's median round.
    for round in $(seq 1 "$ROUNDS"); do
      if has_case native; then run_native "$(round_name native "$round")"; fi
      run_psn "$(round_name psn "$round")" || { failed=1; break; }
    done
  fi
  # Put the server back as it was whatever happens in between.
  [ -z "$restore" ] || psn_deploy_mail
  [ -z "$failed" ] || return 1
}

# ---------------------------------------------------------------- main
trap native_stop EXIT
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
if has_case native || has_case native-filtered || has_case native-filtered-offline; then
  native_install
  native_start
fi
run_unfiltered_rounds
if has_case native-filtered || has_case native-filtered-offline; then
  native_filters_on
  has_case native-filtered && run_native native-filtered
  if has_case native-filtered-offline; then
    native_rspamd_offline
    run_native native-filtered-offline
  fi
fi
native_stop
if has_case psn && psn_running && [ -n "$(server_task psn-mail_rspamd)" ]; then
  [ -f "$RESULTS/notes" ] || psn_note
  run_psn psn-filtered
fi

section="$(python3 "$ROOT/bench/mailload.py" report --results "$RESULTS")"
echo "$section"
if [ "$WRITE_DOCS" = 1 ]; then
  out=docs/benchmarks.md
  [ -f "$out" ] || printf '# Benchmarks\n\nEach section is written by the script it names; rerun it to refresh.\n' > "$out"
  python3 - "$out" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
pattern = re.compile(r"<!-- mail:start -->.*?<!-- mail:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w", encoding="utf-8").write(text)
PY
  log "results written into $out"
fi
