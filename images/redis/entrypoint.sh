#!/bin/sh
# psn/redis entrypoint.
#   server   (default) redis-server with /etc/redis/redis.conf
#   sentinel redis-sentinel with a writable copy of /etc/redis/sentinel.conf
#   other    run as given (e.g. redis-cli)
# The password (requirepass, masterauth, sentinel auth-pass) comes from the secret file
# $PSN_REDIS_PASSWORD_FILE (default /run/secrets/redis_password); without it Redis runs
# without authentication and says so.
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

pwfile="${PSN_REDIS_PASSWORD_FILE:-$PSN_SECRETS_DIR/redis_password}"
runtime=/run/redis
mode="${1:-server}"
[ "$#" -gt 0 ] && shift
umask 077

password=""
if [ -r "$pwfile" ]; then
    password="$(head -n 1 "$pwfile" | tr -d '\r\n')"
fi
# Quoted for redis.conf: backslashes and double quotes escaped.
password="$(printf '%s' "$password" | sed 's/[\\"]/\\&/g')"
[ -n "$password" ] || psn_log "WARNING: no $pwfile: Redis runs without authentication"

case "$mode" in
    server)
        conf="${PSN_REDIS_CONFIG:-/etc/redis/redis.conf}"
        {
            echo "include $conf"
            if [ -n "$password" ]; then
                echo "requirepass \"$password\""
                echo "masterauth \"$password\""
            fi
        } >"$runtime/redis.conf"
        echo server >"$runtime/mode"
        exec redis-server "$runtime/redis.conf" "$@"
        ;;
    sentinel)
        src="${PSN_REDIS_SENTINEL_CONFIG:-/etc/redis/sentinel.conf}"
        dst=/var/lib/redis/sentinel.conf
        # Sentinel rewrites its file with what it learns (current master, replicas, epochs):
        # copy the mounted file only when it changed, so a restart keeps that state.
        sum="$(sha256sum "$src" | cut -d ' ' -f 1)"
        if [ ! -f "$dst" ] || [ "$(cat "$dst.source-sha256" 2>/dev/null)" != "$sum" ]; then
            cp "$src" "$dst"
            echo "$sum" >"$dst.source-sha256"
            if [ -n "$password" ]; then
                awk '$1 == "sentinel" && $2 == "monitor" { print $3 }' "$src" | while read -r name; do
                    echo "sentinel auth-pass $name \"$password\"" >>"$dst"
                done
            fi
        fi
        echo sentinel >"$runtime/mode"
        exec redis-sentinel "$dst" "$@"
        ;;
    *)
        exec "$mode" "$@"
        ;;
esac
