#!/bin/sh
# Healthy when setup has finished and the server answers an LDAP search of the root DSE
# on its LDAP port.
[ -f /tmp/psn-ldap-ready ] || { echo "setup not finished" >&2; exit 1; }
ldapsearch -x -LLL -o nettimeout=5 -H "ldap://127.0.0.1:${PSN_LDAP_PORT:-3389}" -b '' -s base \
    '(objectClass=*)' vendorName | grep -q '^vendorName:'
