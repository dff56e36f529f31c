#!/bin/sh
# Healthy when both the controller (11334) and the scanner (11333) answer /ping with pong.
for port in 11334 11333; do
    curl -fsS -m 4 "http://127.0.0.1:$port/ping" | grep -q '^pong' || {
        echo "rspamd does not answer /ping on $port" >&2
        exit 1
    }
done
