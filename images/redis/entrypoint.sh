#!/bin/sh
# psn/redis entrypoint.
#   server   (default) redis-server with /etc/redis/redis.conf
#   sentinel redis-sentinel with a writable copy of /etc/redis/sentinel.conf
#   other    run as given (e.g. redis-cli)
# The password (requirepass, masterauth, sentinel auth-pass) comes from the secret file
# $PSN_REDIS_PASSWORD_FILE (default /run/secrets/redis_password); without it Redis runs
# without authentication and says so.
#
# Replication under Sentinel: PSN_REDIS_MEMBERS lists the members' host names (the first is the
# primary of a new installation), PSN_REDIS_SENTINELS the Sentinels' and PSN_REDIS_MASTER_NAME
# the name they watch. Each container announces its own host name. A starting member asks the
# Sentinels which member is the primary now (a failover may have moved it) and follows it;
# a Sentinel's new file gets that primary in place of @PSN_MASTER@ (and its own host name in
# place of @PSN_HOSTNAME@).
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

pwfile="${PSN_REDIS_PASSWORD_FILE:-$PSN_SECRETS_DIR/redis_password}"
runtime=/run/redis
port="${PSN_REDIS_PORT:-6379}"
sentinel_port="${PSN_REDIS_SENTINEL_PORT:-26379}"
members="${PSN_REDIS_MEMBERS:-}"
sentinels="${PSN_REDIS_SENTINELS:-}"
master_name="${PSN_REDIS_MASTER_NAME:-psn}"
mode="${1:-server}"
[ "$#" -gt 0 ] && shift
umask 077

secret=""
if [ -r "$pwfile" ]; then
    secret="$(head -n 1 "$pwfile" | tr -d '\r\n')"
fi
# Quoted for redis.conf: backslashes and double quotes escaped.
password="$(printf '%s' "$secret" | sed 's/[\\"]/\\&/g')"
[ -n "$password" ] || psn_log "WARNING: no $pwfile: Redis runs without authentication"

# The primary's host name: what a Sentinel answers; without one (a new installation, or every
# Sentinel down), a member that says it is a primary; else the first member.
current_master() {
    for sentinel in $sentinels; do
        found="$(timeout 3 redis-cli -h "$sentinel" -p "$sentinel_port" --raw \
            SENTINEL get-master-addr-by-name "$master_name" 2>/dev/null | head -n 1)" || true
        if [ -n "$found" ]; then
            echo "$found"
            return
        fi
    done
    for member in $members; do
        [ "$member" = "$(hostname)" ] && continue
        role="$(REDISCLI_AUTH="$secret" timeout 3 redis-cli --no-auth-warning -h "$member" \
            -p "$port" --raw ROLE 2>/dev/null | head -n 1)" || true
        if [ "$role" = master ]; then
            echo "$member"
            return
        fi
    done
    echo "${members%% *}"
}

case "$mode" in
    server)
        conf="${PSN_REDIS_CONFIG:-/etc/redis/redis.conf}"
        replicaof=""
        if [ -n "$members" ]; then
            master="$(current_master)"
            [ "$master" = "$(hostname)" ] || replicaof="$master"
            psn_log "primary: ${master}"
        fi
        {
            echo "include $conf"
            if [ -n "$password" ]; then
                echo "requirepass \"$password\""
                echo "masterauth \"$password\""
            fi
            if [ -n "$members" ]; then
                echo "replica-announce-ip $(hostname)"
                echo "replica-announce-port $port"
            fi
            [ -z "$replicaof" ] || echo "replicaof $replicaof $port"
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
            master=""
            if grep -q '@PSN_MASTER@' "$src"; then
                master="$(current_master)"
                psn_log "primary: ${master}"
            fi
            sed -e "s/@PSN_MASTER@/${master}/g" -e "s/@PSN_HOSTNAME@/$(hostname)/g" "$src" >"$dst"
            if [ -n "$password" ]; then
                awk '$1 == "sentinel" && $2 == "monitor" { print $3 }' "$src" | while read -r name; do
                    echo "sentinel auth-pass $name \"$password\"" >>"$dst"
                done
            fi
            echo "$sum" >"$dst.source-sha256"
        fi
        echo sentinel >"$runtime/mode"
        exec redis-sentinel "$dst" "$@"
        ;;
    *)
        exec "$mode" "$@"
        ;;
esac
