#!/bin/sh
# Healthy when the registry answers its API root /v2/ (200, or 401 when auth is on),
# over TLS when configured, else plain HTTP.
port="${PSN_REGISTRY_PORT:-5001}"
for url in "https://127.0.0.1:$port/v2/" "http://127.0.0.1:$port/v2/"; do
    code="$(curl -ks -o /dev/null -m 4 -w '%{http_code}' "$url")" || continue
    case "$code" in
        200 | 401) exit 0 ;;
    esac
done
echo "registry /v2/ does not answer 200/401 on port $port" >&2
exit 1
