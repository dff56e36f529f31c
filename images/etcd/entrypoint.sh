#!/bin/sh
# psn/etcd: etcd in the foreground. Configuration: /etc/etcd/etcd.conf.yml when mounted
# (TLS keys referenced from /run/secrets), else ETCD_* variables (the image sets the data
# directory and listen URL; the advertised URL defaults to this container's address) and any
# arguments given (`docker run psn/etcd --name etcd1 ...`).
set -eu
conf="${PSN_ETCD_CONFIG:-/etc/etcd/etcd.conf.yml}"
if [ -f "$conf" ]; then
    exec etcd --config-file "$conf" "$@"
fi
# Clients (Patroni, etcdctl with --discovery) use the advertised URL: default to this
# container's address, not loopback.
if [ -z "${ETCD_ADVERTISE_CLIENT_URLS:-}" ]; then
    ETCD_ADVERTISE_CLIENT_URLS="http://$(hostname -i | cut -d ' ' -f 1):2379"
    export ETCD_ADVERTISE_CLIENT_URLS
fi
exec etcd "$@"
