"""The replication state of the clustered data stores, for `deploy_psn status`.

Each server runs playbooks/files/replication-state.sh for the members it holds and answers with
one section per member ("### <store> <member>", then what the member said: etcdctl's endpoint
status and member list, Patroni's /cluster, Redis' INFO replication, Sentinel's master entry,
389-ds' replication agreements, Dovecot's replicator queue).
Every member is judged from its own answer, so each ✗ names the server it concerns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

# Stores in the order shown, with their names for people.
STORES = {
    "etcd": "etcd",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "sentinel": "Redis Sentinel",
    "ldap": "389-ds",
    "dovecot": "Dovecot",
}
# A replica further behind than this is reported (Patroni's lag is in bytes of WAL).
MAX_LAG_BYTES = 16 * 1024 * 1024
SECTION = "### "


@dataclass
class MemberState:
    """One member of a replicated store, as it answered on its server."""

    store: str
    host: str
    member: str
    state: str = ""
    problems: list[str] = field(default_factory=list)
    # The primary this member names (Redis and its Sentinels), for the cross-check.
    primary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def sections(text: str) -> dict[tuple[str, str], str]:
    """(store, member) -> the member's answer ("" when its container is not running)."""
    found: dict[tuple[str, str], list[str]] = {}
    current: list[str] | None = None
    for line in text.replace("\r", "").splitlines():
        if line.startswith(SECTION):
            store, _, member = line.removeprefix(SECTION).partition(" ")
            current = found.setdefault((store, member.strip()), [])
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines).strip() for key, lines in found.items()}


def _json_lines(text: str) -> list[object]:
    """The JSON documents of `text`, one per line (other lines skipped)."""
    docs = []
    for line in text.splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            continue
    return docs


def _etcd(state: MemberState, answer: str, expected: Mapping[str, str]) -> None:
    docs = _json_lines(answer)
    statuses = [d for d in docs if isinstance(d, list)]
    lists = [d for d in docs if isinstance(d, dict) and "members" in d]
    if not statuses or not lists:
        state.problems.append(f"no answer from etcdctl: {answer[:200]}")
        return
    members = {m.get("ID"): m.get("name", "") for m in lists[0]["members"]}
    leader = statuses[0][0].get("Status", {}).get("leader", 0)
    missing = sorted(set(expected.values()) - set(members.values()))
    state.state = f"{len(members)} members, leader {members.get(leader) or '-'}"
    if not leader:
        state.problems.append("no leader: this member is not in a quorum")
    if missing:
        state.problems.append(f"not in the member list: {', '.join(missing)}")
    if "" in members.values():
        state.problems.append("a member in the list has not started")
    errors = statuses[0][0].get("Status", {}).get("errors")
    if errors:
        state.problems.append("; ".join(errors))


def _postgres(state: MemberState, answer: str, expected: Mapping[str, str]) -> None:
    docs = [d for d in _json_lines(answer) if isinstance(d, dict) and "members" in d]
    if not docs:
        state.problems.append(f"no answer from Patroni: {answer[:200]}")
        return
    members = {m["name"]: m for m in docs[0]["members"]}
    leaders = sorted(name for name, m in members.items() if m.get("role") == "leader")
    own = members.get(state.member)
    if len(leaders) != 1:
        state.problems.append(f"{len(leaders)} leaders ({', '.join(leaders) or 'none'})")
    missing = sorted(set(expected.values()) - set(members))
    if missing:
        state.problems.append(f"not in the cluster: {', '.join(missing)}")
    if own is None:
        state.state = "-"
        return
    state.state = own.get("role", "?")
    if own.get("state") not in ("running", "streaming"):
        state.problems.append(f"state {own.get('state')}")
    if own.get("role") != "leader":
        lag = own.get("lag")
        state.state += f", lag {lag} B" if isinstance(lag, int) else f", lag {lag}"
        if not isinstance(lag, int) or lag > MAX_LAG_BYTES:
            state.problems.append(f"replication lag {lag} (more than {MAX_LAG_BYTES} B)")


def _key_values(answer: str, separator: str | None) -> dict[str, str]:
    """INFO's "key:value" lines, or the alternating key and value lines of a SENTINEL reply."""
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    if separator is None:
        return dict(zip(lines[::2], lines[1::2], strict=False))
    return dict(line.split(separator, 1) for line in lines if separator in line)


def _redis(state: MemberState, answer: str, expected: Mapping[str, str]) -> None:
    info = _key_values(answer, ":")
    role = info.get("role")
    if role == "master":
        replicas, wanted = int(info.get("connected_slaves", 0)), len(expected) - 1
        state.state, state.primary = f"primary, {replicas} replica(s)", state.member
        if replicas < wanted:
            state.problems.append(f"{replicas} of {wanted} replicas connected")
    elif role == "slave":
        state.primary = info.get("master_host", "")
        state.state = f"replica of {state.primary}"
        if info.get("master_link_status") != "up":
            state.problems.append(f"link to {state.primary} is {info.get('master_link_status')}")
    else:
        state.problems.append(f"no answer from Redis: {answer[:200]}")


def _sentinel(
    state: MemberState, answer: str, members: Mapping[str, str], sentinels: Mapping[str, str]
) -> None:
    seen = _key_values(answer, None)
    if "flags" not in seen:
        state.problems.append(f"no answer from Sentinel: {answer[:200]}")
        return
    state.primary = seen.get("ip", "")
    state.state = f"primary {state.primary}"
    flags = seen["flags"].split(",")
    if "s_down" in flags or "o_down" in flags:
        state.problems.append(f"sees the primary {state.primary} down ({seen['flags']})")
    replicas, others = int(seen.get("num-slaves", 0)), int(seen.get("num-other-sentinels", 0))
    if replicas < len(members) - 1:
        state.problems.append(f"knows {replicas} of {len(members) - 1} replicas")
    if others < len(sentinels) - 1:
        state.problems.append(f"sees {others} of {len(sentinels) - 1} other Sentinels")


def _ldap(state: MemberState, answer: str, expected: Mapping[str, str]) -> None:
    """A supplier needs an agreement to every other member whose last session succeeded
    ("Error (0) ..."; a refused or failing session has another code)."""
    if "dn: " not in answer:
        state.problems.append(f"no answer from 389-ds: {answer[:200]}")
        return
    agreements: dict[str, str] = {}
    for entry in answer.split("\n\n"):
        attrs = dict(line.split(": ", 1) for line in entry.splitlines() if ": " in line)
        if "nsDS5ReplicaHost" in attrs:
            agreements[attrs["nsDS5ReplicaHost"]] = attrs.get("nsds5replicaLastUpdateStatus", "")
    peers = sorted(set(expected.values()) - {state.member})
    state.state = "supplier, to " + ", ".join(peers)
    for peer in peers:
        if peer not in agreements:
            state.problems.append(f"no replication agreement to {peer}")
            continue
        code = re.match(r"Error \((-?\d+)\)", agreements[peer])
        if not code or code.group(1) != "0":
            state.problems.append(f"to {peer}: {agreements[peer] or 'no status'}")


# Dovecot's replicator counts (`doveadm replicator status`): users waiting for a sync, and users
# whose last sync with the peer failed (retried later).
DSYNC_QUEUED = ("Queued 'sync' requests", "Queued 'high' requests", "Queued 'low' requests")
DSYNC_FAILED = ("Queued 'failed' requests", "Waiting 'failed' requests")


def _dovecot(state: MemberState, answer: str, expected: Mapping[str, str]) -> None:
    """A member's replicator must know the users and have no failed syncs with its peer."""
    counts: dict[str, int] = {}
    for line in answer.splitlines():
        match = re.match(r"(.+?)\s+(\d+)$", line.strip())
        if match:
            counts[match.group(1)] = int(match.group(2))
    if "Total number of known users" not in counts:
        state.problems.append(f"no answer from Dovecot's replicator: {answer[:200]}")
        return
    peers = ", ".join(sorted(set(expected.values()) - {state.member}))
    queued = sum(counts.get(key, 0) for key in DSYNC_QUEUED)
    state.state = f"dsync to {peers}, {queued} queued"
    failed = sum(counts.get(key, 0) for key in DSYNC_FAILED)
    if failed:
        state.problems.append(f"{failed} user(s) failed to sync with {peers}")
    if counts["Total number of known users"] == 0:
        state.problems.append("the replicator knows no users (the directory's iteration failed)")


def _cross_check(states: list[MemberState]) -> None:
    """Redis members and Sentinels must name one primary."""
    named = {s.primary for s in states if s.store == "sentinel" and s.primary}
    for s in states:
        if s.store == "sentinel" and len(named) > 1:
            s.problems.append(f"the Sentinels name different primaries: {', '.join(sorted(named))}")
        if s.store == "redis" and len(named) == 1 and s.primary and s.primary not in named:
            s.problems.append(f"follows {s.primary}, the Sentinels name {next(iter(named))}")


def judge(
    members: Mapping[str, Mapping[str, str]], answers: Mapping[str, str | None]
) -> list[MemberState]:
    """One state per member of every store with several (`members`: store -> host -> member,
    as group_vars' psn_*_members), from each server's answer (None: it did not answer)."""
    members = {store: members.get(store) or {} for store in STORES}
    judges: dict[str, Callable[[MemberState, str], None]] = {
        "etcd": lambda s, a: _etcd(s, a, members["etcd"]),
        "postgres": lambda s, a: _postgres(s, a, members["postgres"]),
        "redis": lambda s, a: _redis(s, a, members["redis"]),
        "sentinel": lambda s, a: _sentinel(s, a, members["redis"], members["sentinel"]),
        "ldap": lambda s, a: _ldap(s, a, members["ldap"]),
        "dovecot": lambda s, a: _dovecot(s, a, members["dovecot"]),
    }
    states = []
    for store, host, member in _replicated(members):
        state = MemberState(store, host, member)
        states.append(state)
        text = answers.get(host)
        if text is None:
            state.problems.append("the server did not answer")
            continue
        answer = sections(text).get((store, member), "")
        if not answer:
            state.problems.append("not running on this server")
            continue
        judges[store](state, answer)
    _cross_check(states)
    return states


def _replicated(members: Mapping[str, Mapping[str, str]]) -> Iterator[tuple[str, str, str]]:
    for store in STORES:
        hosts = members.get(store) or {}
        if len(hosts) > 1:
            for host, member in hosts.items():
                yield store, host, member
