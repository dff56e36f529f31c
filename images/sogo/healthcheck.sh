#!/bin/sh
# Healthy when sogod answers HTTP on its port: the login page (200) or a redirect to it.
code="$(curl -s -o /dev/null -m 8 -w '%{http_code}' "http://127.0.0.1:${PSN_SOGO_PORT:-20000}/SOGo/")"
case "$code" in
    200 | 302) exit 0 ;;
esac
echo "sogod answered HTTP $code on /SOGo/" >&2
exit 1
