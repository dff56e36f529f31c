#!/bin/sh
# psn/dovecot: render secret-bearing templates, check the configuration, run Dovecot in the
# foreground.
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

umask 027
psn_render_dir /etc/dovecot/templates.d /run/psn/dovecot
if [ -d /run/psn/dovecot ]; then
    chgrp -R dovecot /run/psn/dovecot
    chmod 0750 /run/psn/dovecot
fi
# On a dsync pair (PSN_DOVECOT_PAIR_NAME: the name both members answer to) LMTP stays closed
# until this member caught up with its peer (images/dovecot/catch-up.sh).
if [ -n "${PSN_DOVECOT_PAIR_NAME:-}" ] && [ "$1" = dovecot ]; then
    install -d -m 0755 /run/psn/dovecot-hold
    # Forget the replicator's saved dsync states (written on docker stop, kept until the container
    # is removed): with a state, the first sync is incremental and dsync skips every mailbox that
    # did not change on this side, so nothing the peer took meanwhile comes over. Without it, the
    # replicator's first sync of each user is a full one (doveadm replicator replicate -f is not).
    rm -f "$(doveconf -h state_dir)/replicator.db"
    printf 'service lmtp {\n  inet_listener lmtp {\n    port = 0\n  }\n}\n' \
        >/run/psn/dovecot-hold/lmtp.conf
    # In a subshell, so that tini reaps it, not the Dovecot master (which logs unknown PIDs).
    (/usr/local/bin/psn-catch-up /run/psn/dovecot-hold/lmtp.conf &)
fi
doveconf -n >/dev/null || psn_die "the Dovecot configuration is invalid (see above)"
exec "$@"
