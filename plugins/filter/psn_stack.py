"""Filters of the stack role's per-host services (psn/stack.py), so that the role's templates and
the psn_stack action name members by one rule.

`stack__services | psn_per_host(groups)`: the service map with each `per_host` service made one
service per host of its group (etcd1..etcd3). `groups['etcd'] | psn_members('etcd')`: the
member name of each host, for the templates of such a service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psn.stack import expand_per_host, member_names


def psn_per_host(
    services: Mapping[str, Any], groups: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The service map with its per_host services expanded."""
    return expand_per_host(services, groups)


def psn_members(hosts: Sequence[str], name: str) -> dict[str, str]:
    """Host -> service (member) name of a per_host service `name` on these hosts."""
    return member_names(name, list(hosts))


class FilterModule:
    """psn_per_host, psn_members."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"psn_per_host": psn_per_host, "psn_members": psn_members}
