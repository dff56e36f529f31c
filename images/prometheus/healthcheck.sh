#!/bin/sh
# Healthy when Prometheus answers /-/ready over HTTP: 200, or 401 when basic auth guards it.
code="$(curl -ks -o /dev/null -m 4 -w '%{http_code}' "http://127.0.0.1:9090/-/ready")"
case "$code" in
    200 | 401) exit 0 ;;
esac
code="$(curl -ks -o /dev/null -m 4 -w '%{http_code}' "https://127.0.0.1:9090/-/ready")"
case "$code" in
    200 | 401) exit 0 ;;
esac
echo "prometheus /-/ready answered $code" >&2
exit 1
