"""Which server manages PSN's swarm for a run, and which swarm nodes a replaced server left
behind: the decisions of the swarm role (filters `psn_swarm_leader`, `psn_stale_swarm_nodes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psn.stack import HOST_LABEL


def swarm_leader(
    hosts: Sequence[str], engines: Mapping[str, Mapping[str, Any]], label: str, installation: str
) -> str:
    """The first of `hosts` whose engine is a manager of this installation's swarm, else the
    first host (which then creates the swarm).

    `engines` maps a host of this run to its engine's `Swarm` info (`docker info`): a host
    missing there (left out by --limit) is not chosen. The first host is not always the one:
    a replaced first server has an engine in no swarm, and would otherwise create a second
    swarm beside the one the other servers still form.
    """
    for host in hosts:
        swarm = engines.get(host) or {}
        labels = ((swarm.get("Cluster") or {}).get("Spec") or {}).get("Labels") or {}
        if (
            swarm.get("LocalNodeState") == "active"
            and swarm.get("ControlAvailable")
            and labels.get(label) == installation
        ):
            return host
    return hosts[0]


def stale_nodes(nodes: Iterable[Mapping[str, Any]], node_ids: Mapping[str, str]) -> list[dict]:
    """The nodes that a replaced server left: down, labelled with a host of `node_ids` (host →
    the node ID of its engine now, "" when not in the swarm yet) but with another ID.

    `nodes` are the swarm's nodes as the engine API gives them. Each result names the node's
    `id`, its `host` and whether it is a `manager` (which must be demoted before its removal:
    a manager that never comes back counts against the quorum).
    """
    stale = []
    for node in nodes:
        host = ((node.get("Spec") or {}).get("Labels") or {}).get(HOST_LABEL)
        if host not in node_ids or node.get("ID") == node_ids[host]:
            continue
        if (node.get("Status") or {}).get("State") != "down":
            continue
        manager = (node.get("Spec") or {}).get("Role") == "manager"
        stale.append({"id": node["ID"], "host": host, "manager": manager})
    return stale
