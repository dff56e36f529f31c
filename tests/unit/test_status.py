"""`deploy_psn status` judging what the status playbook collected (psn.status.evaluate)."""

from __future__ import annotations

import base64

import pytest
from rich.console import Console

from psn import status
from psn.errors import DegradedError

STACKS = {
    "/opt/poseidon/psn-etcd-stack.yml": (
        "version: '3.8'\nservices:\n  etcd:\n    deploy:\n      mode: replicated\n"
        "      replicas: 1\n"
    ),
    "/opt/poseidon/psn-ldap-stack.yml": (
        "services:\n  ldap:\n    deploy: {mode: replicated, replicas: 1}\n"
    ),
    "/opt/poseidon/psn-monitoring-stack.yml": (
        "services:\n  node-exporter:\n    deploy: {mode: global}\n"
    ),
}


def report(**changes):
    base = {
        "manager": "mail1",
        "stacks": STACKS,
        "services": [
            "psn-etcd_etcd\treplicated\t1/1",
            "psn-ldap_ldap\treplicated\t1/1",
            "psn-monitoring_node-exporter\tglobal\t2/2",
        ],
        "updates": [
            "psn-etcd_etcd\t",
            "psn-ldap_ldap\tcompleted",
            "psn-monitoring_node-exporter\t",
        ],
        "containers": {
            "mail1": [
                "psn-etcd_etcd\tUp 3 minutes (healthy)",
                "psn-ldap_ldap\tUp 2 minutes (healthy)",
                "psn-monitoring_node-exporter\tUp 3 minutes",
            ],
            "mail2": ["psn-monitoring_node-exporter\tUp 3 minutes"],
        },
    }
    return base | changes


def by_name(statuses):
    return {s.name: s for s in statuses}


def test_everything_running_is_ok():
    statuses = status.evaluate(report())
    assert [s.name for s in statuses] == [
        "psn-etcd_etcd",
        "psn-ldap_ldap",
        "psn-monitoring_node-exporter",
    ]
    assert all(s.ok for s in statuses), [s.problems for s in statuses]
    assert by_name(statuses)["psn-ldap_ldap"].health == {"healthy": 1}
    assert by_name(statuses)["psn-monitoring_node-exporter"].health == {"no check": 2}
    status.verdict(status.judge(report()))  # does not raise


def test_missing_and_short_services_are_degraded():
    statuses = by_name(
        status.evaluate(
            report(
                services=[
                    "psn-etcd_etcd\treplicated\t0/1",
                    "psn-monitoring_node-exporter\tglobal\t1/2",
                ]
            )
        )
    )
    assert statuses["psn-ldap_ldap"].problems == ["not deployed"]
    assert statuses["psn-etcd_etcd"].problems == ["0 of 1 replicas running"]
    assert statuses["psn-monitoring_node-exporter"].problems == ["1 of 2 replicas running"]
    with pytest.raises(DegradedError, match="3 of 3 services degraded"):
        status.verdict(status.Report(list(statuses.values()), []))


def test_scaled_paused_and_unhealthy_are_reported():
    statuses = by_name(
        status.evaluate(
            report(
                services=[
                    "psn-etcd_etcd\treplicated\t0/0",
                    "psn-ldap_ldap\treplicated\t1/1",
                    "psn-monitoring_node-exporter\tglobal\t2/2",
                ],
                updates=["psn-ldap_ldap\tpaused"],
                containers={
                    "mail1": ["psn-ldap_ldap\tUp 1 minute (unhealthy)"],
                    "mail2": ["psn-monitoring_node-exporter\tUp 3 minutes (health: starting)"],
                },
            )
        )
    )
    assert statuses["psn-etcd_etcd"].problems == [
        "scaled to 0, the stack file says 1",
        "0 of 0 replicas running",
    ]
    assert statuses["psn-ldap_ldap"].problems == ["update paused", "1 container(s) unhealthy"]
    assert statuses["psn-monitoring_node-exporter"].health == {"starting": 1}
    assert statuses["psn-monitoring_node-exporter"].ok


def test_a_server_that_did_not_answer_makes_everything_uncertain():
    statuses = status.evaluate(report(containers={"mail1": [], "mail2": None}))
    assert all("mail2 did not answer" in s.problems for s in statuses)


def test_nothing_deployed_is_not_healthy():
    with pytest.raises(DegradedError, match="No PSN stack is deployed"):
        status.verdict(status.judge(report(stacks={}, services=[])))


def answer(*, manager: bool, stacks: dict[str, str], services: list[str]) -> dict:
    """One server's answer to playbooks/status.yml (stack files base64, as slurp reads them)."""
    return {
        "manager": manager,
        "stacks": {path: base64.b64encode(text.encode()).decode() for path, text in stacks.items()},
        "services": services,
        "updates": [],
        "containers": [],
        "replication": None,
    }


def test_the_services_come_from_the_first_manager_holding_stack_files():
    etcd = {"/opt/poseidon/psn-etcd-stack.yml": STACKS["/opt/poseidon/psn-etcd-stack.yml"]}
    collected = {
        "answers": {
            "node1": answer(manager=False, stacks=STACKS, services=[]),  # a worker
            "node2": answer(manager=True, stacks={}, services=["new\treplicated\t1/1"]),
            "node3": answer(manager=True, stacks=etcd, services=["psn-etcd_etcd\treplicated\t1/1"]),
            "node4": {"manager": False, "containers": None},  # did not answer
        },
        "replicated": {},
    }
    report = status.assemble(collected)
    assert report["manager"] == "node3"
    assert report["stacks"] == etcd
    assert report["services"] == ["psn-etcd_etcd\treplicated\t1/1"]
    assert report["containers"] == {"node1": [], "node2": [], "node3": [], "node4": None}
    del collected["answers"]["node3"]
    assert status.assemble(collected)["manager"] == "node2"  # no manager holds stack files


def test_no_manager_answering_leaves_nothing_to_compare():
    collected = {"answers": {"node1": {"manager": False, "containers": None}}}
    report = status.assemble(collected)
    assert report["manager"] == "" and report["stacks"] == {} and report["services"] == []
    with pytest.raises(DegradedError, match="No PSN stack is deployed"):
        status.verdict(status.judge(report))


def test_table_names_each_problem():
    console = Console(record=True, width=200)
    status.render(status.judge(report(services=["psn-etcd_etcd\treplicated\t0/1"])), console)
    text = console.export_text()
    assert "psn-etcd_etcd" in text and "0/1 (expected 1)" in text
    assert "✗ 0 of 1 replicas running" in text
    assert "✗ not deployed" in text
