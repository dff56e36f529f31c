#!/bin/sh
# psn/dovecot on a dsync pair: keep LMTP closed until this member has caught up with its peer.
# Started by the entrypoint before Dovecot, while the include below keeps LMTP's listener off;
# Postfix meanwhile delivers to the other member (its next nexthop). Mail delivered into one
# mailbox on both members between two syncs is merged by dsync with duplicate copies, so the
# member that returns takes deliveries only once it holds what the other took meanwhile.
# Opens LMTP after a full sync of every user with the peer, at once when the peer cannot be
# reached (a first start, both members down), or after PSN_DOVECOT_CATCH_UP_TIMEOUT seconds.
set -u
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

hold="$1"
pair="$PSN_DOVECOT_PAIR_NAME"
timeout="${PSN_DOVECOT_CATCH_UP_TIMEOUT:-300}"
started=$(date +%s)

open_lmtp() {
    rm -f "$hold"
    doveadm reload || psn_log "doveadm reload failed: LMTP opens when Dovecot reads its configuration"
    psn_log "LMTP open: $*"
    exit 0
}

left() {
    echo $(( timeout - ($(date +%s) - started) ))
}

# This member's address among those the pair's name resolves to: Swarm's DNS names a task only
# once it is healthy, and until then neither can the peer push what it takes (its syncs fail,
# then wait 5 minutes) nor Postfix deliver here. The sync that counts starts after that.
reachable() {
    for address in $(getent ahostsv4 "$pair" | awk '{print $1}'); do
        case " $(hostname -I) " in *" $address "*) return 0 ;; esac
    done
    return 1
}

# doveadm sync -A lists the users through the running Dovecot's auth-userdb socket (before the
# master runs, 2.3.19's doveadm panics), and a reload before the master runs would be lost.
until [ -S /run/dovecot/auth-userdb ] && doveadm replicator status >/dev/null 2>&1; do
    [ "$(left)" -gt 0 ] || open_lmtp "timed out after ${timeout}s waiting for Dovecot"
    sleep 1
done
until reachable; do
    [ "$(left)" -gt 0 ] || open_lmtp "timed out after ${timeout}s: $pair does not name this member"
    sleep 1
done
# A full sync (-f) of every user with mail_replica (-d), as the replicator runs dsync: an
# incremental one would skip each mailbox that did not change on this side.
limit=$(left)  # `timeout 0` would mean no limit at all
[ "$limit" -gt 0 ] || open_lmtp "timed out after ${timeout}s before the sync"
timeout -k 10 "$limit" doveadm sync -A -d -f -N -l 30 -U
status=$?
case "$status" in
    0) open_lmtp "every user synced with the peer" ;;
    124 | 137) open_lmtp "timed out after ${timeout}s in the sync" ;;
esac
open_lmtp "the sync with the peer failed (exit $status); the other member's mail comes by dsync later"
