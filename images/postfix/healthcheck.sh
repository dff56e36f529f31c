#!/bin/bash
# Healthy when Postfix greets with a 220 SMTP banner on port 25 (then QUIT).
exec 3<>"/dev/tcp/127.0.0.1/${PSN_SMTP_PORT:-25}" || exit 1
read -r -t 5 banner <&3 || exit 1
printf 'QUIT\r\n' >&3
exec 3>&-
[[ "$banner" == 220* ]] || { echo "unexpected banner: $banner" >&2; exit 1; }
