#!/bin/bash
# clamd: healthy when it answers PONG to PING over its TCP protocol.
# freshclam: healthy while the updater runs (it has no protocol of its own).
if ! pgrep -x clamd >/dev/null 2>&1 && pgrep -x freshclam >/dev/null 2>&1; then
    exit 0
fi
exec 3<>"/dev/tcp/127.0.0.1/${PSN_CLAMD_PORT:-3310}" || exit 1
printf 'zPING\0' >&3
IFS= read -r -d '' -t 5 reply <&3 || [ -n "$reply" ] || exit 1
exec 3>&-
[ "$reply" = PONG ]
