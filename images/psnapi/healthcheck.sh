#!/bin/sh
# Healthy when the service answers its own health page (the API's also checks the directory).
code="$(curl -s -o /dev/null -m 8 -w '%{http_code}' "http://127.0.0.1:8080/health")"
[ "$code" = 200 ] && exit 0
echo "the service answered HTTP $code on /health" >&2
exit 1
