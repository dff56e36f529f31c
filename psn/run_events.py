"""ansible-runner's events turned into the figures of a run: counts per role and host, failures,
the services psn_stack changed."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from psn.site import SiteRole


@dataclass
class Counts:
    """Task results, counted the way Ansible's recap counts them (`ok` includes `changed`)."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0
    ignored: int = 0


@dataclass
class RoleSummary:
    """What one role did: on which hosts, how many results of each kind, for how long."""

    name: str
    hosts: set[str] = field(default_factory=set)
    counts: Counts = field(default_factory=Counts)
    started: datetime | None = None
    ended: datetime | None = None
    tasks: int = 0  # tasks started, housekeeping (facts, argument specs) not counted
    updated: list[str] = field(default_factory=list)  # services psn_stack deployed (or would)
    removed: list[str] = field(default_factory=list)  # services psn_stack removed (or would)

    @property
    def selected(self) -> bool:
        """False when tags left the role out and only housekeeping ran."""
        return self.tasks > 0 or bool(self.counts.failed or self.counts.unreachable)

    @property
    def duration(self) -> timedelta:
        """From the first task's start to the last result."""
        if self.started is None or self.ended is None:
            return timedelta(0)
        return self.ended - self.started


@dataclass(frozen=True)
class Failure:
    """A task that failed on a host (or a host that was unreachable); the message is masked."""

    role: str
    task: str
    host: str
    message: str
    unreachable: bool = False


@dataclass
class RunSummary:
    """The outcome of one Ansible run."""

    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    elapsed: timedelta
    log_path: Path
    roles: list[RoleSummary]
    hosts: dict[str, Counts]
    failures: list[Failure]
    resume_command: str | None = None
    output_tail: list[str] = field(default_factory=list)  # for errors outside any task
    check: bool = False  # --check: nothing was changed, the services are what a run would do

    @property
    def succeeded(self) -> bool:
        """True when Ansible finished and reported no failure."""
        return self.status == "successful" and self.rc == 0


# Tasks Ansible adds to every play whatever the tags; a role that ran only these was not selected.
_HOUSEKEEPING_ACTIONS = frozenset(
    {
        "gather_facts",
        "ansible.builtin.gather_facts",
        "setup",
        "ansible.builtin.setup",
        "validate_argument_spec",
        "ansible.builtin.validate_argument_spec",
    }
)

_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


class Collector:
    """Turns ansible-runner events into the figures of a RunSummary."""

    def __init__(self, site: Sequence[SiteRole], mask: Callable[[str], str]) -> None:
        self._play_roles = {play: role.name for role in site for play in role.plays}
        self._mask = mask
        self.roles: dict[str, RoleSummary] = {}
        self.failures: list[Failure] = []
        self.hosts: dict[str, Counts] | None = None
        self.totals = Counts()
        self.tail: deque[str] = deque(maxlen=20)
        self.current: str | None = None  # the role of the latest task

    def role_of(self, data: dict[str, Any]) -> str:
        """The site role an event belongs to; plays outside site.yml go by role or play name."""
        play = data.get("play") or ""
        return self._play_roles.get(play) or data.get("role") or play

    def handle(self, event: dict[str, Any], text: str) -> Failure | None:
        """Count one event; return the failure it reports, if any."""
        if text.strip():
            self.tail.extend(line for line in text.splitlines() if line.strip())
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        created = _parse_time(event.get("created"))
        if kind == "playbook_on_task_start":
            role = self._role(self.role_of(data))
            role.started = role.started or created
            role.tasks += data.get("task_action") not in _HOUSEKEEPING_ACTIONS
            self.current = role.name
        elif kind in _RESULTS:
            return self._result(_RESULTS[kind], data, created)
        elif kind == "playbook_on_stats":
            self.hosts = _host_stats(data)
        return None

    def _role(self, name: str) -> RoleSummary:
        return self.roles.setdefault(name, RoleSummary(name))

    def _result(
        self, result: str, data: dict[str, Any], created: datetime | None
    ) -> Failure | None:
        role = self._role(self.role_of(data))
        role.started = role.started or created
        role.ended = created or role.ended
        host = str(data.get("host", ""))
        role.hosts.add(host)
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        if result == "failed" and data.get("ignore_errors"):
            result = "ignored"
        for counts in (role.counts, self.totals):
            setattr(counts, result, getattr(counts, result) + 1)
            if result == "ok" and res.get("changed"):
                counts.changed += 1
        if result == "ok" and str(data.get("task_action", "")).endswith("psn_stack"):
            role.updated += [str(s) for s in res.get("deploy") or []]
            role.removed += [str(s) for s in res.get("remove") or []]
        if result not in ("failed", "unreachable"):
            return None
        failure = Failure(
            role=role.name,
            task=self._mask(str(data.get("task", ""))),
            host=host,
            message=self._mask(_failure_message(res)),
            unreachable=result == "unreachable",
        )
        self.failures.append(failure)
        return failure

    def final_failures(self) -> list[Failure]:
        """Failures of hosts that ended failed (a rescued failure is not one)."""
        if self.hosts is None:
            return list(self.failures)
        return [
            f
            for f in self.failures
            if (c := self.hosts.get(f.host)) is not None and (c.failed or c.unreachable)
        ]


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _host_stats(data: dict[str, Any]) -> dict[str, Counts]:
    keys = {"ok": "ok", "changed": "changed", "failures": "failed", "skipped": "skipped"}
    keys |= {"dark": "unreachable", "ignored": "ignored"}
    hosts: dict[str, Counts] = {}
    for stat in (*keys, "processed"):
        for host, value in (data.get(stat) or {}).items():
            counts = hosts.setdefault(host, Counts())
            if stat in keys:
                setattr(counts, keys[stat], value)
    return hosts


def _failure_message(res: dict[str, Any]) -> str:
    results = res.get("results")
    if isinstance(results, list):  # a loop: the failed items say what went wrong
        items = [_failure_message(r) for r in results if isinstance(r, dict) and r.get("failed")]
        if items:
            return "\n".join(items)
    parts = [str(res[key]).strip() for key in ("msg", "stderr", "module_stderr") if res.get(key)]
    return "\n".join(dict.fromkeys(parts)) or "(no message)"
