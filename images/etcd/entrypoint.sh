#!/bin/sh
# psn/etcd: etcd in the foreground. Configuration: /etc/etcd/etcd.conf.yml when mounted
# (TLS keys referenced from /run/secrets), else ETCD_* variables (the image sets the data
# directory and listen URL; the advertised URL defaults to this container's address) and any
# arguments given (`docker run psn/etcd --name etcd1 ...`).
set -eu
conf="${PSN_ETCD_CONFIG:-/etc/etcd/etcd.conf.yml}"

# The value of a top-level key of the configuration file.
conf_value() {
    sed -n "s/^$1: *//p" "$conf" | head -n 1
}

# A member of a cluster that starts with an empty data directory while the other members answer
# is a replacement (a new server, a lost volume): the cluster still lists the old member, which
# a start with `initial-cluster-state: new` cannot take over ("member has already been
# bootstrapped"). It is removed and added again, and this member joins with `existing`. On a
# first deployment no member answers yet (or this one is listed but never started): the
# configuration is used as it is.
rejoin_config() {
    data_dir=$(conf_value data-dir)
    name=$(conf_value name)
    peer_url=$(conf_value initial-advertise-peer-urls)
    client_port=$(conf_value advertise-client-urls | sed 's/.*://')
    marker="$data_dir/psn-member-added"
    if [ -d "$data_dir/member" ]; then
        rm -f "$marker"
        return 0
    fi
    endpoints=$(conf_value initial-cluster | tr ',' '\n' | sed 's/=.*//' | grep -vx "$name" \
        | sed "s|.*|http://&:$client_port|" | paste -sd, -)
    if [ ! -f "$marker" ]; then
        members=$(etcdctl --endpoints="$endpoints" --command-timeout=5s member list 2>/dev/null) \
            || return 0
        # "<id>, <status>, <name>, <peer URLs>, <client URLs>, <is learner>": a member that
        # never ran has no client URLs (etcd 3.4 lists it as started, with its name).
        mine=$(printf '%s\n' "$members" | awk -F', ' -v url="$peer_url" '$4 == url')
        if [ -n "$mine" ] && [ -z "$(printf '%s\n' "$mine" | awk -F', ' '{ print $5 }')" ]; then
            return 0
        fi
        if [ -n "$mine" ]; then
            echo "psn-etcd: $name has no data but the cluster knows it: replacing the member" >&2
            etcdctl --endpoints="$endpoints" --command-timeout=5s member remove "${mine%%,*}" >&2
        fi
        # A leader refuses a change of members for a few seconds after the last one.
        tries=0
        until added=$(etcdctl --endpoints="$endpoints" --command-timeout=5s \
            member add "$name" --peer-urls="$peer_url"); do
            tries=$((tries + 1))
            [ "$tries" -lt 10 ] || exit 1
            sleep 3
        done
        printf '%s\n' "$added" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' >"$marker"
    fi
    # etcd reads nothing but the file once --config-file is given: a copy with the join settings.
    joined=/tmp/etcd.conf.yml
    sed -e 's/^initial-cluster-state:.*/initial-cluster-state: existing/' \
        -e "s|^initial-cluster:.*|initial-cluster: $(cat "$marker")|" "$conf" >"$joined"
    conf=$joined
    echo "psn-etcd: $name joins the existing cluster as a new member" >&2
}

if [ -f "$conf" ]; then
    case "$(conf_value initial-cluster)" in
        *,*) rejoin_config ;;
    esac
    exec etcd --config-file "$conf" "$@"
fi
# Clients (Patroni, etcdctl with --discovery) use the advertised URL: default to this
# container's address, not loopback.
if [ -z "${ETCD_ADVERTISE_CLIENT_URLS:-}" ]; then
    ETCD_ADVERTISE_CLIENT_URLS="http://$(hostname -i | cut -d ' ' -f 1):2379"
    export ETCD_ADVERTISE_CLIENT_URLS
fi
exec etcd "$@"
