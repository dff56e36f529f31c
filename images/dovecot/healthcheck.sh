#!/bin/bash
# Healthy when Dovecot greets with an IMAP "* OK" banner on port 143 (then LOGOUT).
exec 3<>"/dev/tcp/127.0.0.1/${PSN_IMAP_PORT:-143}" || exit 1
read -r -t 5 banner <&3 || exit 1
printf 'a LOGOUT\r\n' >&3
exec 3>&-
[[ "$banner" == "* OK"* ]] || { echo "unexpected banner: $banner" >&2; exit 1; }
