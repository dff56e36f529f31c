#!/bin/sh
# psn/patroni: Patroni in the foreground, reading a directory of YAML files (merged in order):
#   00-patroni.yml  the bind-mounted /etc/patroni/patroni.yml (no passwords in it)
#   99-secrets.yml  written here (0600) from the secret files:
#     $PSN_POSTGRES_PASSWORD_FILE    (default /run/secrets/postgres_password)     superuser
#     $PSN_REPLICATION_PASSWORD_FILE (default /run/secrets/replication_password)  replication
#     $PSN_PATRONI_API_PASSWORD_FILE (default /run/secrets/patroni_api_password)  REST API
#                                    (optional; user $PSN_PATRONI_API_USER, default patroni)
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

[ "${1:-patroni}" = patroni ] || exec "$@"
conf="${PSN_PATRONI_CONFIG:-/etc/patroni/patroni.yml}"
[ -f "$conf" ] || psn_die "no Patroni configuration: mount it as $conf"
su_file="${PSN_POSTGRES_PASSWORD_FILE:-$PSN_SECRETS_DIR/postgres_password}"
repl_file="${PSN_REPLICATION_PASSWORD_FILE:-$PSN_SECRETS_DIR/replication_password}"
api_file="${PSN_PATRONI_API_PASSWORD_FILE:-$PSN_SECRETS_DIR/patroni_api_password}"
[ -r "$su_file" ] || psn_die "no superuser password: mount it as $su_file"
[ -r "$repl_file" ] || psn_die "no replication password: mount it as $repl_file"

# A YAML double-quoted scalar (JSON escapes are valid YAML).
yq() { head -n 1 "$1" | tr -d '\r\n' | sed 's/[\\"]/\\&/g; s/^/"/; s/$/"/'; }

umask 077
dir=/run/patroni
rm -f "$dir"/*.yml
cp "$conf" "$dir/00-patroni.yml"
{
    echo "postgresql:"
    echo "  authentication:"
    echo "    superuser:"
    echo "      username: postgres"
    echo "      password: $(yq "$su_file")"
    echo "    replication:"
    echo "      username: ${PSN_REPLICATION_USER:-replicator}"
    echo "      password: $(yq "$repl_file")"
    if [ -r "$api_file" ]; then
        echo "restapi:"
        echo "  authentication:"
        echo "    username: ${PSN_PATRONI_API_USER:-patroni}"
        echo "    password: $(yq "$api_file")"
    fi
} >"$dir/99-secrets.yml"
exec patroni "$dir"
