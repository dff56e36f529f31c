#!/bin/sh
# psn/postfix: render secret-bearing templates, check the configuration, run Postfix in the
# foreground (`postfix start-fg`: the master process stays the child of tini).
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

umask 027
psn_render_dir /etc/postfix/templates.d /run/psn/postfix
if [ -d /run/psn/postfix ]; then
    chgrp -R postfix /run/psn/postfix
    chmod 0750 /run/psn/postfix
fi
# Postfix copies these into its queue directory at start; keep them current.
[ -s /etc/aliases.db ] || newaliases
postfix check >&2 || psn_die "postfix check failed (see above)"
exec "$@"
