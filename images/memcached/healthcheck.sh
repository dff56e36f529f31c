#!/bin/bash
# Healthy when memcached answers the `version` command of its text protocol.
exec 3<>"/dev/tcp/127.0.0.1/${PSN_MEMCACHED_PORT:-11211}" || exit 1
printf 'version\r\n' >&3
read -r -t 4 reply <&3 || exit 1
exec 3>&-
[[ "$reply" == VERSION* ]]
