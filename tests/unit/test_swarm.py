"""The swarm role's decisions (psn/swarm.py): which server manages the swarm in a run, and
which nodes a replaced server left behind."""

from __future__ import annotations

from psn.swarm import stale_nodes, swarm_leader

LABEL, INSTALLATION = "io.psn.installation", "example.com"
HOSTS = ["node1", "node2", "node3"]


def engine(state: str = "active", manager: bool = True, installation: str = INSTALLATION) -> dict:
    """The `Swarm` part of `docker info` of an engine."""
    return {
        "LocalNodeState": state,
        "ControlAvailable": manager,
        "Cluster": {"Spec": {"Labels": {LABEL: installation}}} if state == "active" else None,
    }


def node(node_id: str, host: str, state: str = "ready", role: str = "manager") -> dict:
    """A node as the engine API lists it."""
    return {
        "ID": node_id,
        "Spec": {"Labels": {"psn-host": host, "etcd": "true"}, "Role": role},
        "Status": {"State": state},
    }


def test_the_first_host_leads_a_new_installation():
    engines = {h: engine("inactive", False) for h in HOSTS}
    assert swarm_leader(HOSTS, engines, LABEL, INSTALLATION) == "node1"


def test_the_first_host_leads_when_it_manages_the_swarm():
    engines = {h: engine() for h in HOSTS}
    assert swarm_leader(HOSTS, engines, LABEL, INSTALLATION) == "node1"


def test_a_replaced_first_host_joins_the_swarm_of_the_others():
    engines = {"node1": engine("inactive", False), "node2": engine(), "node3": engine()}
    assert swarm_leader(HOSTS, engines, LABEL, INSTALLATION) == "node2"


def test_workers_hosts_left_out_and_foreign_swarms_do_not_lead():
    engines = {
        "node1": engine(installation="another"),
        "node2": engine(manager=False),
        "node3": engine(),
    }
    assert swarm_leader(HOSTS, engines, LABEL, INSTALLATION) == "node3"
    # node3 left out of the run (--limit): nobody leads but the first host, which is refused
    # later as a member of another swarm.
    del engines["node3"]
    assert swarm_leader(HOSTS, engines, LABEL, INSTALLATION) == "node1"


def test_the_down_node_of_a_replaced_server_is_stale():
    nodes = [node("a1", "node1"), node("b2", "node2"), node("c3", "node3", "down")]
    # The new node3 has not joined yet, or has joined as d4: the old c3 goes either way.
    for new_id in ("", "d4"):
        found = stale_nodes(nodes, {"node1": "a1", "node2": "b2", "node3": new_id})
        assert found == [{"id": "c3", "host": "node3", "manager": True}]


def test_live_down_unknown_and_unlabelled_nodes_are_kept():
    nodes = [
        node("a1", "node1"),
        node("b2", "node2", "down"),  # the same node, powered off: it comes back
        node("c3", "node3"),  # another ID but ready: not ours to remove
        node("e5", "node5", "down", "worker"),  # a host not in this run
        {"ID": "f6", "Spec": {"Labels": {}}, "Status": {"State": "down"}},
    ]
    assert stale_nodes(nodes, {"node1": "a1", "node2": "b2", "node3": "d4"}) == []


def test_a_stale_worker_is_not_demoted():
    nodes = [node("c3", "node3", "down", "worker")]
    assert stale_nodes(nodes, {"node3": "d4"}) == [{"id": "c3", "host": "node3", "manager": False}]
