#!/bin/sh
# Healthy when etcd serves a read through its v3 API (`etcdctl endpoint health`).
# PSN_HEALTH_ENDPOINT overrides the endpoint; ETCDCTL_CACERT/CERT/KEY (paths) add TLS.
exec etcdctl --command-timeout=4s --endpoints="${PSN_HEALTH_ENDPOINT:-http://127.0.0.1:2379}" \
    endpoint health
