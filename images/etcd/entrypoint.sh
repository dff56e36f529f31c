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

# The value of an indented key (peer-transport-security's files).
conf_nested() {
    sed -n "s/^ \{1,\}$1: *//p" "$conf" | head -n 1
}

# A member of a cluster that starts with an empty data directory while the other members know
# it as started is a replacement (a new server, a lost volume): a start with
# `initial-cluster-state: new` cannot take its place ("member has already been bootstrapped").
# It is removed and added again, and this member joins with `existing`. The others are asked
# on their peer URLs (the servers' addresses: they answer before the overlay network works on a
# server that just joined the swarm); on a first deployment none answers yet, or they list this
# member as never started: the configuration is used as it is.
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
    if [ ! -f "$marker" ]; then
        others=$(conf_value initial-cluster | tr ',' '\n' | grep -v "^$name=")
        # HTTP/1.1: the peer port serves etcd's gRPC on HTTP/2, which has no /members.
        set -- --http1.1 --max-time 5 -fsS
        if [ -n "$(conf_nested cert-file)" ]; then
            set -- "$@" --cacert "$(conf_nested trusted-ca-file)" \
                --cert "$(conf_nested cert-file)" --key "$(conf_nested key-file)"
        fi
        known=""
        for url in $(printf '%s\n' "$others" | sed 's/^[^=]*=//'); do
            known=$(curl "$@" "$url/members" 2>&1) && break
            echo "psn-etcd: $url/members: $known" >&2
            known=""
        done
        if [ -z "$known" ]; then
            echo "psn-etcd: no other member answers: $name starts as configured" >&2
            return 0
        fi
        # One JSON object per member: is this one listed as having run (with client URLs)?
        if ! printf '%s\n' "$known" | sed 's/},{/}\n{/g' | grep -F "\"$peer_url\"" \
            | grep -q '"clientURLs"'; then
            echo "psn-etcd: $name has not run in the others' cluster yet: starts as configured" >&2
            return 0
        fi
        echo "psn-etcd: $name has no data but the cluster knows it: replacing the member" >&2
        endpoints=$(printf '%s\n' "$others" | sed "s|=.*|:$client_port|; s|^|http://|" \
            | paste -sd, -)
        # Over the overlay network, which may need a moment on a server that just joined; a
        # leader also refuses a change of members for a few seconds after the last one.
        tries=0
        until mine=$(etcdctl --endpoints="$endpoints" --command-timeout=5s member list \
            | awk -F', ' -v url="$peer_url" '$4 == url { print $1 }') \
            && { [ -z "$mine" ] || etcdctl --endpoints="$endpoints" --command-timeout=5s \
                member remove "$mine" >&2; } \
            && added=$(etcdctl --endpoints="$endpoints" --command-timeout=5s \
                member add "$name" --peer-urls="$peer_url"); do
            tries=$((tries + 1))
            [ "$tries" -lt 40 ] || exit 1
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
