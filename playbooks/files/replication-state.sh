#!/bin/sh
# Read-only: the replication state of the data store members this server runs, for
# `deploy_psn status` (psn/replication.py reads it). Arguments: <store>=<member> for each
# (stores: etcd, postgres, redis, sentinel, ldap, dovecot). Per member a line "### <store> <member>", then what
# the member answered; nothing when its container is not running here.
set -u
for arg in "$@"; do
    store="${arg%%=*}"
    member="${arg#*=}"
    echo "### $store $member"
    case "$store" in
        sentinel) service="psn-redis_$member" ;;
        dovecot) service="psn-mail_$member" ;;
        *) service="psn-${store}_$member" ;;
    esac
    cid="$(docker ps -q --filter "label=com.docker.swarm.service.name=$service" \
        --filter status=running | head -n 1)"
    [ -n "$cid" ] || continue
    case "$store" in
        etcd)
            docker exec "$cid" sh -c 'etcdctl --command-timeout=5s endpoint status -w json;
                etcdctl --command-timeout=5s member list -w json' 2>&1
            ;;
        postgres)
            docker exec "$cid" curl -sS -m 5 http://127.0.0.1:8008/cluster 2>&1
            ;;
        redis)
            # The password reaches redis-cli through its environment inside the container only.
            docker exec "$cid" sh -c 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" \
                exec redis-cli -p "${PSN_REDIS_PORT:-6379}" INFO replication' 2>&1
            ;;
        sentinel)
            docker exec "$cid" sh -c 'exec redis-cli -p "${PSN_REDIS_SENTINEL_PORT:-26379}" \
                SENTINEL master "${PSN_REDIS_MASTER_NAME:-psn}"' 2>&1
            ;;
        ldap)
            # Over the instance's LDAPI socket: the container's user binds as Directory Manager.
            docker exec "$cid" ldapsearch -Q -LLL -o ldif-wrap=no -o nettimeout=5 -Y EXTERNAL \
                -H ldapi://%2fdata%2frun%2fslapd-localhost.socket -b 'cn=mapping tree,cn=config' \
                '(objectClass=nsds5replicationagreement)' nsDS5ReplicaHost \
                nsds5replicaLastUpdateStatus 2>&1
            ;;
        dovecot)
            docker exec "$cid" doveadm replicator status 2>&1
            ;;
    esac
    echo
done
