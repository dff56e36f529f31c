"""`deploy_psn status` judging the replicated data stores member by member (psn/replication.py),
from what replication-state.sh printed on three emulated servers of tests/e2e/test_cluster.py
(etcd on all three, Patroni, Redis, 389-ds and Dovecot on 1 and 2, Sentinels on all three)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from psn import replication, status
from psn.errors import DegradedError

FIXTURES = Path(__file__).parent / "fixtures" / "replication"
MEMBERS = {
    "etcd": {"node1": "etcd1", "node2": "etcd2", "node3": "etcd3"},
    "postgres": {"node1": "postgres1", "node2": "postgres2"},
    "redis": {"node1": "redis1", "node2": "redis2"},
    "sentinel": {
        "node1": "redis-sentinel1",
        "node2": "redis-sentinel2",
        "node3": "redis-sentinel3",
    },
    "ldap": {"node1": "ldap1", "node2": "ldap2"},
    "dovecot": {"node1": "dovecot1", "node2": "dovecot2"},
}


def answers() -> dict[str, str | None]:
    return {host: (FIXTURES / f"{host}.txt").read_text() for host in ("node1", "node2", "node3")}


def states(found: dict[str, str | None]) -> dict[tuple[str, str], replication.MemberState]:
    return {(s.store, s.host): s for s in replication.judge(MEMBERS, found)}


def test_a_healthy_cluster_is_in_sync():
    found = states(answers())
    assert len(found) == 14
    assert all(s.ok for s in found.values()), {k: s.problems for k, s in found.items()}
    assert found["etcd", "node1"].state == "3 members, leader etcd3"
    assert found["postgres", "node2"].state == "leader"
    assert found["postgres", "node1"].state == "sync_standby, lag 0 B"
    assert found["redis", "node1"].state == "primary, 1 replica(s)"
    assert found["redis", "node2"].state == "replica of redis1"
    assert found["sentinel", "node3"].state == "primary redis1"
    assert found["ldap", "node2"].state == "supplier, to ldap1"
    assert found["dovecot", "node1"].state == "dsync to dovecot2, 0 queued"


def test_a_server_that_does_not_answer_is_named_for_each_of_its_members():
    found = answers()
    found["node3"] = None
    bad = {k: s.problems for k, s in states(found).items() if not s.ok}
    assert bad == {
        ("etcd", "node3"): ["the server did not answer"],
        ("sentinel", "node3"): ["the server did not answer"],
    }


def test_what_the_survivors_see_when_a_server_is_lost():
    """Server 1 lost: etcd still has a leader, but Redis' replica has lost its link, Patroni
    and the Sentinels miss a member."""
    found = answers()
    found["node1"] = "### etcd etcd1\n### postgres postgres1\n### redis redis1\n"
    node2 = found["node2"]
    assert node2 is not None
    node2 = node2.replace("master_link_status:up", "master_link_status:down")
    node2 = node2.replace("num-other-sentinels\n2", "num-other-sentinels\n1")
    node2 = node2.replace(
        '"role": "sync_standby", "state": "running"', '"role": "replica", "state": "stopped"'
    )
    found["node2"] = node2
    bad = {k: s.problems for k, s in states(found).items() if not s.ok}
    assert bad[("etcd", "node1")] == ["not running on this server"]
    assert bad[("sentinel", "node1")] == ["not running on this server"]
    assert bad[("redis", "node2")] == ["link to redis1 is down"]
    assert bad[("sentinel", "node2")] == ["sees 1 of 2 other Sentinels"]
    assert ("postgres", "node2") not in bad  # postgres2 leads; postgres1's state is its own
    assert ("etcd", "node2") not in bad


def test_no_leader_lag_and_split_primaries_are_reported():
    found = answers()
    node1, node2, node3 = found["node1"], found["node2"], found["node3"]
    assert node1 and node2 and node3
    found["node1"] = node1.replace('"leader":12613219473665159228', '"leader":0').replace(
        '"lag": 0', f'"lag": {replication.MAX_LAG_BYTES + 1}'
    )
    # Sentinel 3 names another primary; redis2 was promoted on its own.
    found["node3"] = node3.replace("ip\nredis1", "ip\nredis2")
    found["node2"] = node2.replace("role:slave", "role:master")
    bad = {k: s.problems for k, s in states(found).items() if not s.ok}
    assert bad[("etcd", "node1")] == ["no leader: this member is not in a quorum"]
    assert bad[("postgres", "node1")] == [
        f"replication lag {replication.MAX_LAG_BYTES + 1} (more than {replication.MAX_LAG_BYTES} B)"
    ]
    assert "the Sentinels name different primaries: redis1, redis2" in bad[("sentinel", "node3")]
    assert bad[("redis", "node2")][0] == "0 of 1 replicas connected"


def test_a_failing_or_missing_389ds_agreement_is_reported():
    found = answers()
    node1, node2 = found["node1"], found["node2"]
    assert node1 and node2
    found["node1"] = node1.replace(
        "Error (0) Replica acquired successfully: Incremental update succeeded",
        "Error (-1) Problem connecting to replica - LDAP error: Can't contact LDAP server",
    )
    found["node2"] = node2.replace("nsDS5ReplicaHost: ldap1", "nsDS5ReplicaHost: ldap3")
    bad = {k: s.problems for k, s in states(found).items() if not s.ok}
    assert bad[("ldap", "node1")] == [
        "to ldap2: Error (-1) Problem connecting to replica - LDAP error: Can't contact LDAP server"
    ]
    assert bad[("ldap", "node2")] == ["no replication agreement to ldap1"]


def test_failed_dsyncs_and_a_replicator_without_users_are_reported():
    found = answers()
    node1, node2 = found["node1"], found["node2"]
    assert node1 and node2
    found["node1"] = node1.replace(
        "Waiting 'failed' requests     0", "Waiting 'failed' requests     3"
    )
    found["node2"] = node2.replace(
        "Total number of known users   1", "Total number of known users   0"
    )
    bad = {k: s.problems for k, s in states(found).items() if not s.ok}
    assert bad[("dovecot", "node1")] == ["3 user(s) failed to sync with dovecot2"]
    assert bad[("dovecot", "node2")] == [
        "the replicator knows no users (the directory's iteration failed)"
    ]


def test_a_standalone_store_is_not_judged():
    assert replication.judge({"etcd": {"node1": "etcd"}, "redis": {"node1": "redis"}}, {}) == []


def test_status_shows_the_replication_table_and_fails_naming_the_member():
    report = status.Report([], replication.judge(MEMBERS, {**answers(), "node3": None}))
    console = Console(record=True, width=200)
    status.render(report, console)
    text = console.export_text()
    assert "Replication" in text and "leader etcd3" in text
    assert "node3" in text and "✗ the server did not answer" in text
    degraded = status.Report([status.ServiceStatus("psn-etcd_etcd1", "1")], report.replication)
    with pytest.raises(DegradedError) as err:
        status.verdict(degraded)
    assert str(err.value) == "replication degraded: etcd3 on node3, redis-sentinel3 on node3"
