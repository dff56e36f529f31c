"""Filters of the swarm role's decisions (psn/swarm.py).

`swarm__hosts | psn_swarm_leader(engines, label, installation)`: the host that manages the swarm.
`nodes | psn_stale_swarm_nodes(node_ids)`: the nodes replaced servers left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psn.swarm import stale_nodes, swarm_leader


class FilterModule:
    """psn_swarm_leader, psn_stale_swarm_nodes."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"psn_swarm_leader": swarm_leader, "psn_stale_swarm_nodes": stale_nodes}
