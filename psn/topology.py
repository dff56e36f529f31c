"""How many hosts each inventory group may have in this release, and what a replicated group
needs of another: one home for `validate` and the precheck role (the `psn_topology_problems`
filter), so that every topology `validate` accepts is one the roles deploy, and every one they
cannot is refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class HostCount:
    """Allowed host counts of a group, and why other counts are not."""

    allowed: tuple[int, ...]
    why: str

    def describe(self) -> str:
        counts = [str(n) for n in self.allowed]
        return counts[0] if len(counts) == 1 else f"{', '.join(counts[:-1])} or {counts[-1]}"


# Groups not listed here take any number of hosts (proxy: nginx runs on each; frontend and
# backend: their stateless services run on each, memcached moves to another backend host when
# its own fails). An empty required group is the validator's own rule.
HOST_COUNTS: dict[str, HostCount] = {
    "docker_registry": HostCount((1,), "the private registry is not clustered"),
    "etcd": HostCount((1, 3), "etcd keeps a quorum through one loss with 3 members"),
    "postgres": HostCount((1, 2), "PostgreSQL runs alone or as a Patroni primary/replica pair"),
    "redis": HostCount((1, 2, 3), "Redis runs alone or as a primary with replicas under Sentinel"),
    "ldap": HostCount((1, 2), "389-ds runs alone or as a pair of two-way suppliers"),
    "mail": HostCount((1, 2), "Dovecot runs alone or as a pair replicating by dsync"),
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


@dataclass(frozen=True)
class Needs:
    """A group that, once replicated (more than one host), needs `count` hosts in `other`."""

    other: str
    count: int
    why: str


# What a replicated group relies on to survive the loss of one server.
NEEDS: dict[str, Needs] = {
    "postgres": Needs(
        "etcd", 3, "Patroni keeps its leader lock in etcd: losing a lone etcd host stops writes"
    ),
    "redis": Needs(
        "etcd", 3, "Redis' Sentinels run on the etcd hosts and need 2 of 3 to elect a new primary"
    ),
}


@dataclass(frozen=True)
class NeedsProblem:
    """A replicated group whose other group has too few hosts."""

    group: str
    hosts: tuple[str, ...]
    needs: Needs
    found: int

    @property
    def message(self) -> str:
        n = self.needs
        return (
            f"group `{self.group}` has {len(self.hosts)} hosts, which needs {n.count} hosts in "
            f"group `{n.other}` (found {self.found}), as {n.why}"
        )

    @property
    def fix(self) -> str:
        return (
            f"list {self.needs.count} hosts under `{self.needs.other}.hosts`, or keep 1 host "
            f"under `{self.group}.hosts`"
        )


def topology_problems(
    hosts_by_group: Mapping[str, Collection[str]],
) -> list[CountProblem | NeedsProblem]:
    """Groups of `hosts_by_group` (Ansible's `groups`) with a host count not allowed, then
    replicated groups missing what they rely on; a group without hosts is not a problem here."""
    problems: list[CountProblem | NeedsProblem] = []
    for group, rule in sorted(HOST_COUNTS.items()):
        hosts = tuple(hosts_by_group.get(group) or ())
        if hosts and len(hosts) not in rule.allowed:
            problems.append(CountProblem(group, hosts, rule))
    for group, needs in sorted(NEEDS.items()):
        hosts = tuple(hosts_by_group.get(group) or ())
        found = len(hosts_by_group.get(needs.other) or ())
        if len(hosts) > 1 and found != needs.count:
            problems.append(NeedsProblem(group, hosts, needs, found))
    return problems
