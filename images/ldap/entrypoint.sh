#!/bin/sh
# psn/ldap: 389-ds via `dscontainer -r` (creates the instance in /data on first start).
# TLS (LDAPS on 3636): the secrets ldap_tls_cert, ldap_tls_key and ldap_tls_ca (PEM), when
# mounted, are installed as /data/tls/server.crt, server.key and ca/ca.crt, which dscontainer
# imports into the server's certificate database at every start; without them the server keeps
# the self-signed certificate it made for itself.
# psn-ldap-setup runs beside it: once LDAPI answers it sets the Directory Manager password
# from the secret file and creates $PSN_LDAP_SUFFIX if given; the container is healthy only
# after that. A failed setup stops the container (the orchestrator restarts it).
set -eu
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

pwfile="${PSN_LDAP_DM_PASSWORD_FILE:-$PSN_SECRETS_DIR/ldap_dm_password}"
[ -r "$pwfile" ] || psn_die "no Directory Manager password: mount it as $pwfile"
rm -f /tmp/psn-ldap-ready
# The database cache is sized at every start from the memory the container may use
# (nsslapd-cache-autosize), but the size of the previous start is kept in dse.ldif and refused
# as "too large" when the memory limit went down: drop it so that it is computed afresh.
if [ -f /data/config/dse.ldif ]; then
    sed -i '/^nsslapd-dbcachesize: /d' /data/config/dse.ldif
fi
if [ -r "$PSN_SECRETS_DIR/ldap_tls_cert" ] && [ -r "$PSN_SECRETS_DIR/ldap_tls_key" ] &&
    [ -r "$PSN_SECRETS_DIR/ldap_tls_ca" ]; then
    install -d -m 0700 /data/tls /data/tls/ca
    install -m 0600 "$PSN_SECRETS_DIR/ldap_tls_key" /data/tls/server.key
    install -m 0644 "$PSN_SECRETS_DIR/ldap_tls_cert" /data/tls/server.crt
    install -m 0644 "$PSN_SECRETS_DIR/ldap_tls_ca" /data/tls/ca/ca.crt
    psn_log "TLS certificate installed from the secrets ldap_tls_*"
fi
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
/usr/local/bin/psn-ldap-setup &
exec /usr/libexec/dirsrv/dscontainer -r
