"""Filter giving the groups whose host count this release cannot deploy (psn/topology.py).

`groups | psn_topology_problems`: a list of "what; fix" texts, empty when the topology is
deployable. The precheck role refuses a run with any, as `deploy_psn validate` does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from psn.topology import topology_problems


def psn_topology_problems(groups: Mapping[str, Collection[str]]) -> list[str]:
    """One "message; fix" text per group this release cannot deploy as listed."""
    return [f"{p.message}; {p.fix}" for p in topology_problems(groups)]


class FilterModule:
    """psn_topology_problems."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"psn_topology_problems": psn_topology_problems}
