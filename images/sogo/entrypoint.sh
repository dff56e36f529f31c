#!/bin/sh
# psn/sogo: SOGo in the foreground (sogod -WONoDetach YES, log on stdout).
# Configuration: /etc/sogo/sogo.conf bind-mounted, or /etc/sogo/templates.d/sogo.conf with
# @@secret:NAME@@ placeholders (database and LDAP bind passwords) rendered into
# /etc/sogo/sogo.conf at start. sogo.conf is a plist: no `#` comments.
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

umask 027
if [ -f /etc/sogo/templates.d/sogo.conf ]; then
    psn_render /etc/sogo/templates.d/sogo.conf /etc/sogo/sogo.conf
fi
exec "$@"
