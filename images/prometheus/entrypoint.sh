#!/bin/sh
# psn/prometheus: Prometheus in the foreground. Basic auth (guide: mon_user/mon_user_hash)
# and TLS come from a web configuration: /etc/prometheus/web.yml when mounted, or
# /etc/prometheus/templates.d/web.yml with @@secret:NAME@@ placeholders (e.g. the bcrypt hash)
# rendered into /run/psn/prometheus/web.yml.
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

[ "${1:-prometheus}" = prometheus ] || exec "$@"
[ "$#" -gt 0 ] && shift
umask 077
web=""
if [ -f /etc/prometheus/templates.d/web.yml ]; then
    psn_render /etc/prometheus/templates.d/web.yml /run/psn/prometheus/web.yml
    web=/run/psn/prometheus/web.yml
elif [ -f /etc/prometheus/web.yml ]; then
    web=/etc/prometheus/web.yml
fi
set -- --config.file=/etc/prometheus/prometheus.yml \
    --storage.tsdb.path=/var/lib/prometheus/metrics2 \
    --web.console.libraries=/usr/share/prometheus/console_libraries \
    --web.console.templates=/etc/prometheus/consoles "$@"
[ -n "$web" ] && set -- --web.config.file="$web" "$@"
exec prometheus "$@"
