#!/bin/sh
# psn/rspamd: the controller password from the secret file, secret-bearing templates, then
# Rspamd in the foreground.
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

pwfile="${PSN_RSPAMD_PASSWORD_FILE:-$PSN_SECRETS_DIR/rspamd_controller_password}"
umask 077
if [ -r "$pwfile" ]; then
    password="$(head -n 1 "$pwfile" | tr -d '\r\n')"
else
    # No secret: an unguessable password; only secure_ip (loopback) may use the controller.
    psn_log "WARNING: no $pwfile: the controller accepts commands from loopback only"
    password="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
fi
# The plain password in a 0600 file of the container (like the secret it comes from): rspamd
# accepts plain passwords, and `rspamadm pw` would need it on a command line or a TTY.
password="$(printf '%s' "$password" | sed 's/[\\"]/\\&/g')"
printf 'password = "%s";\nenable_password = "%s";\n' "$password" "$password" \
    >/run/rspamd/controller-password.inc
# Files with @@secret:NAME@@ placeholders (e.g. the Redis password) go in
# /etc/rspamd/templates.d/; local.d includes them from /run/rspamd/psn/<file>.
psn_render_dir /etc/rspamd/templates.d /run/rspamd/psn
# Rspamd resolves its upstreams (Redis, clamd) once, at start: a name that does not resolve yet
# (a Swarm service without a running task) silently disables the module that uses it. Wait for
# the names in PSN_RSPAMD_WAIT_FOR, then fail so that the orchestrator starts us again.
for host in ${PSN_RSPAMD_WAIT_FOR:-}; do
    tries=0
    until getent hosts "$host" >/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -le 60 ] || psn_die "$host does not resolve after 120 s"
        sleep 2
    done
done
exec "$@"
