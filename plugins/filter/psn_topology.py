"""Filter giving the groups whose host count this release cannot deploy (psn/topology.py).

`groups | psn_topology_problems` (every group) or `groups | psn_topology_problems(['etcd'])`:
a list of "what; fix" texts, empty when the counts are deployable. The precheck role refuses a
run with any; each clustered role checks its own group with the same rules, so no role refuses
a count that `deploy_psn validate` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from psn.topology import count_problems


def psn_topology_problems(
    groups: Mapping[str, Collection[str]], only: Iterable[str] | None = None
) -> list[str]:
    """One "message; fix" text per group with a host count this release cannot deploy."""
    return [f"{p.message}; {p.fix}" for p in count_problems(groups, only)]


class FilterModule:
    """psn_topology_problems."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"psn_topology_problems": psn_topology_problems}
