"""How many hosts each inventory group may have in this release: one home for `validate`, the
precheck role and the roles' own checks (the `psn_topology_problems` filter), so that every
topology `validate` accepts is one the roles deploy, and every one they cannot is refused before
anything changes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class HostCount:
    """Allowed host counts of a group, and why other counts are not."""

    allowed: tuple[int, ...]
    why: str

    def describe(self) -> str:
        counts = [str(n) for n in self.allowed]
        return counts[0] if len(counts) == 1 else f"{', '.join(counts[:-1])} or {counts[-1]}"


# Groups not listed here take any number of hosts (proxy: nginx runs on each; frontend: its
# services move to another frontend host when one fails). An empty required group is the
# validator's own rule.
HOST_COUNTS: dict[str, HostCount] = {
    "docker_registry": HostCount((1,), "the private registry is not clustered"),
    "etcd": HostCount((1, 3), "etcd keeps a quorum through one loss with 3 members"),
    "postgres": HostCount((1, 2), "PostgreSQL runs alone or as a Patroni primary/replica pair"),
    "redis": HostCount((1,), "this release runs Redis without replica and Sentinel"),
    "ldap": HostCount((1,), "this release runs 389-ds without replication"),
    "mail": HostCount((1,), "this release runs Dovecot without dsync replication"),
    "backend": HostCount((1,), "this release runs SOGo and the PSN API on one host"),
    "syslog": HostCount((1,), "the central log directory lives on one host"),
}


@dataclass(frozen=True)
class CountProblem:
    """A group whose host count this release cannot deploy."""

    group: str
    hosts: tuple[str, ...]
    rule: HostCount

    @property
    def message(self) -> str:
        return (
            f"group `{self.group}` has {len(self.hosts)} hosts; allowed: {self.rule.describe()}, "
            f"as {self.rule.why}"
        )

    @property
    def fix(self) -> str:
        count = self.rule.describe()
        return f"keep {count} {'host' if count == '1' else 'hosts'} under `{self.group}.hosts`"


def count_problems(
    hosts_by_group: Mapping[str, Collection[str]], only: Iterable[str] | None = None
) -> list[CountProblem]:
    """Groups of `hosts_by_group` (Ansible's `groups`) with a host count not allowed; a group
    without hosts is not a problem here. `only` limits the check to some groups."""
    wanted = set(HOST_COUNTS) if only is None else set(only) & set(HOST_COUNTS)
    problems = []
    for group in sorted(wanted):
        hosts = tuple(hosts_by_group.get(group) or ())
        rule = HOST_COUNTS[group]
        if hosts and len(hosts) not in rule.allowed:
            problems.append(CountProblem(group, hosts, rule))
    return problems
