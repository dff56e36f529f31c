#!/bin/sh
# psn/postgres: PostgreSQL 15 in the foreground.
#
# First start (empty $PGDATA): initdb with the superuser password read from the secret file
# ($PSN_POSTGRES_PASSWORD_FILE, default /run/secrets/postgres_password), scram-sha-256 for
# TCP clients, then *.sql / *.sh from /docker-entrypoint-initdb.d run once against a server
# that listens on the Unix socket only (scripts may read their own secrets from /run/secrets).
# Configuration: /etc/postgresql/postgresql.conf and /etc/postgresql/pg_hba.conf when mounted,
# else the files initdb wrote in $PGDATA (listening on all addresses).
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

: "${PGDATA:=/var/lib/postgresql/data}"
pwfile="${PSN_POSTGRES_PASSWORD_FILE:-$PSN_SECRETS_DIR/postgres_password}"
[ "${1:-postgres}" = postgres ] || exec "$@"
[ "$#" -gt 0 ] && shift

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    [ -r "$pwfile" ] || psn_die "no superuser password: mount it as $pwfile"
    psn_log "initialising a new cluster in $PGDATA"
    # initdb reads the whole file; give it the first line only.
    tmp="$(mktemp)"
    head -n 1 "$pwfile" | tr -d '\r\n' >"$tmp"
    initdb -D "$PGDATA" --username=postgres --pwfile="$tmp" --encoding=UTF8 \
        --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    rm -f "$tmp"
    {
        echo "listen_addresses = '*'"
        echo "unix_socket_directories = '/var/run/postgresql'"
        echo "password_encryption = scram-sha-256"
        echo "logging_collector = off"
    } >>"$PGDATA/postgresql.conf"
    {
        echo "host all all 0.0.0.0/0 scram-sha-256"
        echo "host all all ::/0 scram-sha-256"
    } >>"$PGDATA/pg_hba.conf"
    if [ -n "$(ls -A /docker-entrypoint-initdb.d 2>/dev/null)" ]; then
        pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
                *.sql) psn_log "running $f"
                    psql -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d postgres -f "$f" ;;
                *.sh) psn_log "running $f"
                    sh "$f" ;;
                *) psn_log "ignoring $f" ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
fi

set -- -D "$PGDATA" "$@"
[ -f /etc/postgresql/postgresql.conf ] && set -- "$@" -c config_file=/etc/postgresql/postgresql.conf \
    -c data_directory="$PGDATA"
[ -f /etc/postgresql/pg_hba.conf ] && set -- "$@" -c hba_file=/etc/postgresql/pg_hba.conf
exec postgres "$@"
