#!/bin/sh
# psn-ldap-replication: multi-supplier replication of this 389-ds instance with the other members
# of PSN_LDAP_MEMBERS, idempotent (the ldap role runs it with docker exec after every deployment).
# Runs as dirsrv over LDAPI (SASL EXTERNAL = Directory Manager). Secrets are read from files and
# only ever written to ldapmodify's stdin or to 0600 temporary files, never on a command line.
#
#   psn-ldap-replication setup        replication manager, supplier replica + changelog,
#                                     one agreement per other member (no initialisation)
#   psn-ldap-replication init PEER    total update of PEER from this server, only when PEER has
#                                     never been initialised (see init_peer); else does nothing
#   psn-ldap-replication status       replica generation, RUV and agreement states (read-only)
#
# Environment:
#   PSN_LDAP_SUFFIX                 base DN (e.g. dc=example,dc=com)             required
#   PSN_LDAP_MEMBERS                the members' host names in order ("ldap1 ldap2"); this
#                                   server is the one named like its host name, its replica id
#                                   its position (1, 2, ...): the same on every run
#   PSN_LDAP_REPLICA_PROTOCOL       LDAP (port 3389, default: the psn-db overlay, IPsec with
#                                   swarm_network_encryption) | StartTLS | LDAPS (3636; both
#                                   need the members' names in the servers' certificates)
#   PSN_LDAP_REPLICATION_PASSWORD_FILE  default $PSN_SECRETS_DIR/ldap_replication_password
#   PSN_LDAP_DM_PASSWORD_FILE       default $PSN_SECRETS_DIR/ldap_dm_password (init reads the
#                                   peer's RUV as cn=Directory Manager: same secret everywhere)
#   PSN_LDAP_CHANGELOG_MAXAGE       changelog retention (default 7d): a member down longer
#                                   than this must be re-initialised
#   PSN_LDAP_REPLICA_FORCE_INIT=1   init PEER even if it holds replicated data of its own
# Output: one "CHANGED: ..." line per change, "ok: ..." otherwise; exit 1 on error.
set -eu
PSN_SECRETS_DIR="${PSN_SECRETS_DIR:-/run/secrets}"
URI='ldapi://%2fdata%2frun%2fslapd-localhost.socket'
SUFFIX="${PSN_LDAP_SUFFIX:?PSN_LDAP_SUFFIX is not set}"
BACKEND=userRoot
PROTO="${PSN_LDAP_REPLICA_PROTOCOL:-LDAP}"
MAXAGE="${PSN_LDAP_CHANGELOG_MAXAGE:-7d}"
MGR='cn=replication manager,cn=config'
REPL_PWFILE="${PSN_LDAP_REPLICATION_PASSWORD_FILE:-$PSN_SECRETS_DIR/ldap_replication_password}"
DM_PWFILE="${PSN_LDAP_DM_PASSWORD_FILE:-$PSN_SECRETS_DIR/ldap_dm_password}"
CL_DN="cn=changelog,cn=$BACKEND,cn=ldbm database,cn=plugins,cn=config"
TMP=''
trap '[ -z "$TMP" ] || rm -rf "$TMP"' EXIT

log() { printf '%s\n' "$*"; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }
changed() { printf 'CHANGED: %s\n' "$*"; }
q() { ldapsearch -Q -LLL -o ldif-wrap=no -Y EXTERNAL -H "$URI" "$@"; }
m() { ldapmodify -Q -Y EXTERNAL -H "$URI" >/dev/null; }
# attr DN NAME: the values of NAME on DN (base search), one per line; nothing when missing.
attr() { q -b "$1" -s base '(objectClass=*)' "$2" 2>/dev/null | sed -n "s/^$2: //Ip"; }
exists() { q -b "$1" -s base dn >/dev/null 2>&1; }
secret() { [ -r "$1" ] || die "cannot read $1"; v="$(head -n 1 "$1" | tr -d '\r\n')"
    [ -n "$v" ] || die "$1 is empty"; printf '%s' "$v"; }
tmpdir() { [ -n "$TMP" ] || { TMP="$(mktemp -d)"; chmod 0700 "$TMP"; }; }

case "$PROTO" in
    LDAPS) PORT=3636 TRANSPORT=SSL SCHEME=ldaps ;;
    StartTLS) PORT=3389 TRANSPORT=TLS SCHEME=ldap ;;
    LDAP) PORT=3389 TRANSPORT=LDAP SCHEME=ldap ;;
    *) die "PSN_LDAP_REPLICA_PROTOCOL must be LDAPS, StartTLS or LDAP" ;;
esac
# The CA the server trusts (entrypoint installs the secret ldap_tls_ca there) for our own clients.
[ -r /data/tls/ca/ca.crt ] && export LDAPTLS_CACERT=/data/tls/ca/ca.crt

# Wait for psn-ldap-setup (DM password, suffix) as the healthcheck does.
i=0
until [ -f /tmp/psn-ldap-ready ] && q -b '' -s base vendorName >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 300 ] || die "the server is not ready"; sleep 1
done

MT_DN="$(q -b 'cn=mapping tree,cn=config' -s one "(cn=$SUFFIX)" dn | sed -n 's/^dn: //p')"
[ -n "$MT_DN" ] || die "no mapping tree entry for $SUFFIX (suffix not created?)"
REPLICA_DN="cn=replica,$MT_DN"

# ruv_local: the database RUV of this server (nsds50ruv values).
ruv_local() { attr "$REPLICA_DN" nsds50ruv; }
generation() { sed -n 's/^{replicageneration} //p'; }

setup_manager() {
    pw="$(secret "$REPL_PWFILE")"
    if ! exists "$MGR"; then
        printf 'dn: %s\nchangetype: add\nobjectClass: top\nobjectClass: netscapeServer\nobjectClass: nsAccount\ncn: replication manager\nuserPassword: %s\n' \
            "$MGR" "$pw" | m || die "cannot add $MGR"
        changed "added $MGR"
        return
    fi
    tmpdir; printf '%s' "$pw" >"$TMP/pw"
    if ldapwhoami -x -H ldap://127.0.0.1:3389 -D "$MGR" -y "$TMP/pw" >/dev/null 2>&1; then
        log "ok: $MGR exists, its password is the secret's"
    else
        printf 'dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n' "$MGR" "$pw" |
            m || die "cannot set the password of $MGR"
        changed "$MGR: set userPassword"
    fi
}

# This member's replica id (its position in PSN_LDAP_MEMBERS) and the other members.
ME="$(hostname)"
RID=''
PEERS=''
n=0
for member in ${PSN_LDAP_MEMBERS:?PSN_LDAP_MEMBERS is not set}; do
    n=$((n + 1))
    if [ "$member" = "$ME" ]; then RID=$n; else PEERS="$PEERS $member"; fi
done
[ -n "$RID" ] || die "this host name ($ME) is not one of PSN_LDAP_MEMBERS ($PSN_LDAP_MEMBERS)"

setup_replica() {
    rid="$RID"
    if ! exists "$REPLICA_DN"; then
        printf '%s\n' "dn: $REPLICA_DN" 'changetype: add' 'objectClass: top' \
            'objectClass: nsds5replica' 'objectClass: extensibleObject' 'cn: replica' \
            "nsDS5ReplicaRoot: $SUFFIX" "nsDS5ReplicaId: $rid" 'nsDS5ReplicaType: 3' \
            'nsDS5Flags: 1' "nsDS5ReplicaBindDN: $MGR" | m || die "cannot enable replication"
        changed "enabled $SUFFIX as supplier, replica id $rid"
    else
        have="$(attr "$REPLICA_DN" nsDS5ReplicaId)"
        [ "$have" = "$rid" ] || die "$SUFFIX already has replica id $have, not $rid: a replica id \
cannot be changed in place (dsconf replication disable, enable, then re-initialise)"
        if [ "$(attr "$REPLICA_DN" nsDS5ReplicaType)" != 3 ] || [ "$(attr "$REPLICA_DN" nsDS5Flags)" != 1 ]; then
            die "$SUFFIX is a consumer or hub: promote it (dsconf localhost replication promote)"
        fi
        if attr "$REPLICA_DN" nsDS5ReplicaBindDN | grep -qixF "$MGR"; then
            log "ok: $SUFFIX is a supplier, replica id $rid, bind DN $MGR"
        else
            printf 'dn: %s\nchangetype: modify\nadd: nsDS5ReplicaBindDN\nnsDS5ReplicaBindDN: %s\n' \
                "$REPLICA_DN" "$MGR" | m || die "cannot add the replica bind DN"
            changed "$REPLICA_DN: added nsDS5ReplicaBindDN $MGR"
        fi
    fi
    # 2.x: the changelog lives in the backend (cn=changelog,cn=<backend>,...), created with the
    # supplier replica; only its trimming is ours.
    exists "$CL_DN" || die "no changelog $CL_DN after enabling the replica"
    if [ "$(attr "$CL_DN" nsslapd-changelogmaxage)" = "$MAXAGE" ]; then
        log "ok: changelog $CL_DN, max age $MAXAGE"
    else
        printf 'dn: %s\nchangetype: modify\nreplace: nsslapd-changelogmaxage\nnsslapd-changelogmaxage: %s\n' \
            "$CL_DN" "$MAXAGE" | m || die "cannot set the changelog max age"
        changed "$CL_DN: set nsslapd-changelogmaxage $MAXAGE"
    fi
}

setup_agreement() {
    peer="$1"; dn="cn=psn-to-$peer,$REPLICA_DN"
    pw="$(secret "$REPL_PWFILE")"
    # The credentials are stored encrypted (cannot be compared): a fingerprint of the agreement
    # and the password in `description` tells whether they are the secret's.
    fp="psn-credentials $(printf '%s\n%s' "$dn" "$pw" | sha256sum | cut -c1-64)"
    set -- "nsDS5ReplicaHost=$peer" "nsDS5ReplicaPort=$PORT" "nsDS5ReplicaTransportInfo=$TRANSPORT" \
        "nsDS5ReplicaBindDN=$MGR" "nsDS5ReplicaBindMethod=SIMPLE" "nsDS5ReplicaRoot=$SUFFIX"
    if ! exists "$dn"; then
        { printf '%s\n' "dn: $dn" 'changetype: add' 'objectClass: top' \
            'objectClass: nsds5replicationagreement' "cn: psn-to-$peer"
          for kv; do printf '%s: %s\n' "${kv%%=*}" "${kv#*=}"; done
          printf 'description: %s\nnsDS5ReplicaCredentials: %s\n' "$fp" "$pw"; } | m ||
            die "cannot add the agreement to $peer"
        changed "added agreement $dn ($PROTO $peer:$PORT)"
        return
    fi
    ldif=''; what=''
    for kv; do
        a="${kv%%=*}"; v="${kv#*=}"
        if [ "$(attr "$dn" "$a")" != "$v" ]; then
            ldif="${ldif}replace: $a
$a: $v
-
"; what="$what $a"
        fi
    done
    if [ "$(attr "$dn" description)" != "$fp" ]; then
        ldif="${ldif}replace: description
description: $fp
-
replace: nsDS5ReplicaCredentials
nsDS5ReplicaCredentials: $pw
-
"; what="$what nsDS5ReplicaCredentials"
    fi
    if [ -z "$what" ]; then
        log "ok: agreement $dn ($PROTO $peer:$PORT)"
    else
        printf 'dn: %s\nchangetype: modify\n%s' "$dn" "$ldif" | m || die "cannot update $dn"
        changed "$dn: set$what"
    fi
}

# init PEER: a total update of PEER from this server, only when PEER was never initialised.
# PEER's database RUV says: the same {replicageneration} as ours = already initialised (or the
# origin of our data): nothing to do. A different generation and no RUV element but its own
# replica id = it never took part in a replication topology (its data is what it made itself,
# e.g. the provisioned tree of a new server): initialised now. A different generation and
# elements of other replicas = it holds replicated data of a topology of its own (e.g. this
# server was rebuilt empty): refused, PSN_LDAP_REPLICA_FORCE_INIT=1 overrides. (Its own element
# may carry CSNs: the keep-alive entry, cn=repl keep alive <rid>, is written by the server.)
init_peer() {
    peer="$1"; dn="cn=psn-to-$peer,$REPLICA_DN"
    exists "$dn" || die "no agreement to $peer: run setup first"
    ours="$(ruv_local | generation)"
    [ -n "$ours" ] || die "this server has no replica generation: run setup first"
    tmpdir; secret "$DM_PWFILE" >"$TMP/dm"
    zz=''; if [ "$PROTO" = StartTLS ]; then zz=-ZZ; fi
    theirs_ruv="$(ldapsearch -x -LLL -o ldif-wrap=no -o nettimeout=10 ${zz:+"$zz"} -H "$SCHEME://$peer:$PORT" \
        -D 'cn=Directory Manager' -y "$TMP/dm" -b "$REPLICA_DN" -s base nsds50ruv nsDS5ReplicaId \
        2>"$TMP/err")" ||
        die "cannot read the RUV of $peer: $(cat "$TMP/err") (replication set up there?)"
    theirs="$(printf '%s\n' "$theirs_ruv" | sed -n 's/^nsds50ruv: //p' | generation)"
    [ -n "$theirs" ] || die "$peer has no replica generation: run setup on $peer first"
    if [ "$theirs" = "$ours" ]; then
        log "ok: $peer is initialised (replica generation $ours)"
        return
    fi
    their_rid="$(printf '%s\n' "$theirs_ruv" | sed -n 's/^nsDS5ReplicaId: //Ip')"
    others="$(printf '%s\n' "$theirs_ruv" | sed -n 's/^nsds50ruv: {replica \([0-9]*\) .*/\1/p' |
        grep -vx "$their_rid" | tr '\n' ' ' | sed 's/ $//')" || true
    if [ -n "$others" ]; then
        [ "${PSN_LDAP_REPLICA_FORCE_INIT:-0}" = 1 ] ||
            die "$peer (generation $theirs, ours is $ours) holds data replicated from replica ids \
$others: not overwriting it (PSN_LDAP_REPLICA_FORCE_INIT=1 to initialise it from this server)"
    fi
    # The peer may be held by another supplier's session ("replica busy"): a few attempts.
    try=1
    while :; do
        printf 'dn: %s\nchangetype: modify\nreplace: nsds5BeginReplicaRefresh\nnsds5BeginReplicaRefresh: start\n' \
            "$dn" | m || die "cannot start the initialisation of $peer"
        i=0
        while [ "$(attr "$dn" nsds5BeginReplicaRefresh)" = start ] ||
            [ "$(attr "$dn" nsds5replicaUpdateInProgress)" = TRUE ]; do
            i=$((i + 1)); [ "$i" -lt 600 ] || die "the initialisation of $peer takes over 600s"; sleep 1
        done
        status="$(attr "$dn" nsds5replicaLastInitStatus)"
        case "$status" in
            *"Total update succeeded"*|*"successfully initialized"*) break ;;
            *busy*) [ "$try" -lt 5 ] || die "the initialisation of $peer failed: $status"
                log "retrying the initialisation of $peer in ${try}0s: $status"
                sleep "${try}0"; try=$((try + 1)) ;;
            *) die "the initialisation of $peer failed: $status" ;;
        esac
    done
    changed "initialised $peer from this server (attempt $try, ${i}s): $status"
}

status() {
    log "replica: $REPLICA_DN"
    ruv_local | sed 's/^/  ruv: /'
    q -b "$REPLICA_DN" -s one '(objectClass=nsds5replicationagreement)' nsDS5ReplicaHost \
        nsDS5ReplicaPort nsDS5ReplicaTransportInfo nsds5replicaLastUpdateStatus \
        nsds5replicaLastInitStatus nsds5replicaLastUpdateEnd | sed 's/^/  /'
}

case "${1:-}" in
    setup)
        setup_manager
        setup_replica
        for peer in $PEERS; do setup_agreement "$peer"; done ;;
    init) [ -n "${2:-}" ] || die "usage: $0 init PEER"; init_peer "$2" ;;
    status) status ;;
    *) die "usage: $0 setup | init PEER | status" ;;
esac
