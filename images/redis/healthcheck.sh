#!/bin/sh
# Healthy when Redis (or Sentinel) answers PING with PONG over its protocol. The password is
# handed to redis-cli through REDISCLI_AUTH of this process only, never on a command line.
pwfile="${PSN_REDIS_PASSWORD_FILE:-/run/secrets/redis_password}"
if [ "$(cat /run/redis/mode 2>/dev/null)" = sentinel ]; then
    port="${PSN_REDIS_SENTINEL_PORT:-26379}"
else
    port="${PSN_REDIS_PORT:-6379}"
    if [ -r "$pwfile" ]; then
        REDISCLI_AUTH="$(head -n 1 "$pwfile" | tr -d '\r\n')"
        export REDISCLI_AUTH
    fi
fi
[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>&1)" = PONG ]
