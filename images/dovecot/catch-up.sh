#!/bin/sh
# psn/dovecot on a dsync pair: keep LMTP closed until this member has caught up with its peer.
# Started by the entrypoint before Dovecot, while the include below keeps LMTP's listener off;
# Postfix meanwhile delivers to the other member (its next nexthop). Mail delivered into one
# mailbox on both members between two syncs is merged by dsync with duplicate copies, so the
# member that returns takes deliveries only once it holds what the other took meanwhile.
# Opens LMTP when every user synced since this start, when the peer cannot be reached (a first
# start, both members down) or after PSN_DOVECOT_CATCH_UP_TIMEOUT seconds.
set -u
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

hold="$1"
timeout="${PSN_DOVECOT_CATCH_UP_TIMEOUT:-300}"
started=$(date +%s)

open_lmtp() {
    rm -f "$hold"
    doveadm reload && psn_log "LMTP open: $*"
    exit 0
}

until doveadm replicator status >/dev/null 2>&1; do
    [ $(( $(date +%s) - started )) -lt "$timeout" ] || open_lmtp "the replicator did not start"
    sleep 1
done
doveadm replicator replicate -f '*' >/dev/null
while sleep 2; do
    [ $(( $(date +%s) - started )) -lt "$timeout" ] || open_lmtp "timed out after ${timeout}s"
    # username priority "fast sync" "full sync" "success sync" failed: the times are ages.
    rows=$(doveadm replicator status '*' | tail -n +2)
    [ -n "$rows" ] || open_lmtp "no users to sync"
    # A failure counts only if that attempt (the "fast sync" age) was made since this start.
    age=$(( $(date +%s) - started ))
    if printf '%s\n' "$rows" | awk -v age="$age" '
        function secs(t, p) { split(t, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
        $NF == "y" && $(NF - 3) != "-" && secs($(NF - 3)) <= age {found=1} END {exit !found}'; then
        open_lmtp "the peer did not answer; the other member's mail comes by dsync later"
    fi
    # Every user's last successful sync is younger than this start.
    if printf '%s\n' "$rows" | awk -v age="$age" '
        function secs(t, p) { split(t, p, ":"); return p[1] * 3600 + p[2] * 60 + p[3] }
        $(NF - 1) == "-" || secs($(NF - 1)) > age {late=1} END {exit late}'; then
        open_lmtp "every user synced with the peer"
    fi
done
