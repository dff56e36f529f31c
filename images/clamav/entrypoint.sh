#!/bin/sh
# psn/clamav entrypoint.
#   clamd     (default) the scanning daemon on TCP 3310, in the foreground
#   freshclam the signature updater, as a daemon in the foreground
#   other     run as given (e.g. clamdscan, sigtool)
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

mode="${1:-clamd}"
[ "$#" -gt 0 ] && shift
case "$mode" in
    clamd)
        if [ -z "$(find /var/lib/clamav -maxdepth 1 -type f \( -name '*.cvd' -o -name '*.cld' \
            -o -name '*.hdb' -o -name '*.hsb' -o -name '*.ndb' -o -name '*.ldb' \) 2>/dev/null)" ]; then
            psn_log "no signature database in /var/lib/clamav yet: clamd cannot start without one"
        fi
        exec clamd --foreground --config-file=/etc/clamav/clamd.conf "$@"
        ;;
    freshclam)
        exec freshclam --daemon --foreground --stdout --config-file=/etc/clamav/freshclam.conf "$@"
        ;;
    *)
        exec "$mode" "$@"
        ;;
esac
