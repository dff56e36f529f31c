#!/bin/sh
# Configure a running psn/ldap instance over LDAPI (SASL EXTERNAL as the server's own user):
#   - cn=Directory Manager's password := the secret (every start, so rotation works);
#   - $PSN_LDAP_SUFFIX (e.g. dc=example,dc=com), when set and missing: backend userRoot
#     with the suffix entry.
# Then marks the container ready (/tmp/psn-ldap-ready), or stops it on failure.
set -u
# shellcheck source=../base/rootfs/usr/local/lib/psn/lib.sh
. /usr/local/lib/psn/lib.sh

uri='ldapi://%2fdata%2frun%2fslapd-localhost.socket'
pwfile="${PSN_LDAP_DM_PASSWORD_FILE:-$PSN_SECRETS_DIR/ldap_dm_password}"
timeout="${PSN_LDAP_SETUP_TIMEOUT:-300}"

fail() {
    psn_log "ERROR: $*; stopping the container"
    kill -TERM 1
    exit 1
}

# dscontainer runs a temporary server while it creates a new instance, then writes
# /data/config/container.inf and starts the real one (ns-slapd ... -d LEVEL): wait for both.
final_server_runs() {
    [ -f /data/config/container.inf ] || return 1
    for cmdline in /proc/[0-9]*/cmdline; do
        case "$(tr '\0' ' ' <"$cmdline" 2>/dev/null)" in
            *ns-slapd*" -d "*) return 0 ;;
        esac
    done
    return 1
}

i=0
until final_server_runs &&
    ldapwhoami -Q -Y EXTERNAL -H "$uri" 2>/dev/null | grep -qi 'cn=directory manager'; do
    i=$((i + 1))
    [ "$i" -lt "$timeout" ] || fail "LDAPI did not answer within ${timeout}s"
    sleep 1
done

password="$(head -n 1 "$pwfile" | tr -d '\r\n')"
[ -n "$password" ] || fail "the Directory Manager password in $pwfile is empty"
printf 'dn: cn=config\nchangetype: modify\nreplace: nsslapd-rootpw\nnsslapd-rootpw: %s\n' \
    "$password" | ldapmodify -Q -Y EXTERNAL -H "$uri" >/dev/null ||
    fail "could not set the Directory Manager password"
psn_log "Directory Manager password set from $pwfile"

if [ -n "${PSN_LDAP_SUFFIX:-}" ]; then
    if ldapsearch -Q -Y EXTERNAL -H "$uri" -b "$PSN_LDAP_SUFFIX" -s base dn >/dev/null 2>&1; then
        psn_log "suffix $PSN_LDAP_SUFFIX exists"
    else
        psn_log "creating suffix $PSN_LDAP_SUFFIX (backend ${PSN_LDAP_BACKEND:-userRoot})"
        dsconf localhost backend create --suffix "$PSN_LDAP_SUFFIX" \
            --be-name "${PSN_LDAP_BACKEND:-userRoot}" --create-suffix >&2 ||
            fail "could not create the suffix $PSN_LDAP_SUFFIX"
    fi
fi
touch /tmp/psn-ldap-ready
psn_log "ready"
