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
doveconf -n >/dev/null || psn_die "the Dovecot configuration is invalid (see above)"
exec "$@"
