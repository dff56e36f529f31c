#!/bin/sh
# psn/ldap: 389-ds via `dscontainer -r` (creates the instance in /data on first start).
# psn-ldap-setup runs beside it: once LDAPI answers it sets the Directory Manager password
# from the secret file and creates $PSN_LDAP_SUFFIX if given; the container is healthy only
# after that. A failed setup stops the container (the orchestrator restarts it).
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

pwfile="${PSN_LDAP_DM_PASSWORD_FILE:-$PSN_SECRETS_DIR/ldap_dm_password}"
[ -r "$pwfile" ] || psn_die "no Directory Manager password: mount it as $pwfile"
rm -f /tmp/psn-ldap-ready
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
/usr/local/bin/psn-ldap-setup &
exec /usr/libexec/dirsrv/dscontainer -r
