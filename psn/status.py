"""`deploy_psn status`: the guide's `docker service ls | grep psn` check, judged.

Expected services are those of the stack files the last deployment wrote on every server
(/opt/poseidon/psn-<stack>-stack.yml), read from the first manager that answered; each is
compared with the swarm: desired and running replicas, an update in progress or paused, and the
health of its containers on every server.
The data stores that run on several hosts are judged member by member (psn/replication.py).
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from psn import replication, run_display
from psn.deploy import Servers, run_checked
from psn.errors import DegradedError, DeployError

STATUS_PLAYBOOK = "playbooks/status.yml"
# Update states of a service that need the operator (docker service inspect .UpdateStatus).
BAD_UPDATE_STATES = {"paused", "rollback_started", "rollback_paused", "rollback_completed"}


@dataclass
class ServiceStatus:
    """One expected service as the swarm runs it."""

    name: str
    expected: str  # replicas the stack file asks for, or "global"
    running: int | None = None  # None: the service does not exist
    desired: int | None = None
    update: str = ""
    health: dict[str, int] = field(default_factory=dict)  # healthy/unhealthy/starting -> count
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Report:
    """The services and the replicated data store members, judged."""

    services: list[ServiceStatus]
    replication: list[replication.MemberState]


def expected_services(stacks: Mapping[str, str]) -> dict[str, str]:
    """Service name -> expected replicas ("global" for global services), from the stack files."""
    expected = {}
    for path, text in stacks.items():
        stack = Path(path).name.removesuffix("-stack.yml")
        doc = yaml.safe_load(text) or {}
        for name, spec in (doc.get("services") or {}).items():
            deploy = (spec or {}).get("deploy") or {}
            replicas = (
                "global" if deploy.get("mode") == "global" else str(deploy.get("replicas", 1))
            )
            expected[f"{stack}_{name}"] = replicas
    return expected


def _health(status: str) -> str:
    """Health of a container from its `docker ps` status text."""
    for word in ("unhealthy", "health: starting", "healthy"):
        if f"({word})" in status:
            return word.removeprefix("health: ")
    return "no check"


def evaluate(report: Mapping[str, Any]) -> list[ServiceStatus]:
    """Judge the state the status playbook collected."""
    actual = {}
    for line in report.get("services", []):
        name, _mode, replicas = line.split("\t")
        running, _, desired = replicas.split()[0].partition("/")
        actual[name] = (int(running), int(desired))
    updates = dict(line.split("\t", 1) for line in report.get("updates", []) if "\t" in line)
    statuses = []
    for name, expected in sorted(expected_services(report.get("stacks", {})).items()):
        status = ServiceStatus(name, expected)
        statuses.append(status)
        if name not in actual:
            status.problems.append("not deployed")
            continue
        status.running, status.desired = actual[name]
        status.update = updates.get(name, "")
        if expected != "global" and status.desired != int(expected):
            status.problems.append(f"scaled to {status.desired}, the stack file says {expected}")
        if status.running < status.desired or status.desired == 0:
            status.problems.append(f"{status.running} of {status.desired} replicas running")
        if status.update in BAD_UPDATE_STATES:
            status.problems.append(f"update {status.update.replace('_', ' ')}")
    by_name = {s.name: s for s in statuses}
    for host, lines in sorted(report.get("containers", {}).items()):
        if lines is None:
            for status in statuses:
                status.problems.append(f"{host} did not answer")
            continue
        for line in lines:
            service, _, text = line.partition("\t")
            if service in by_name:
                health = _health(text)
                by_name[service].health[health] = by_name[service].health.get(health, 0) + 1
    for status in statuses:
        if status.health.get("unhealthy"):
            status.problems.append(f"{status.health['unhealthy']} container(s) unhealthy")
    return statuses


def assemble(collected: Mapping[str, Any]) -> dict[str, Any]:
    """The report to judge, from what every server answered (playbooks/status.yml).

    Services and stack files come from the first server that answered as a manager, one that
    holds stack files first (a manager added since the last deployment has none), so that any
    one lost server, the first included, leaves a report; containers and replication state come
    from every server (None: it did not answer).
    """
    answers: Mapping[str, Mapping[str, Any]] = collected.get("answers") or {}
    managers = [host for host, answer in answers.items() if answer.get("manager")]
    manager = next((h for h in managers if answers[h].get("stacks")), None) or next(
        iter(managers), ""
    )
    chosen = answers.get(manager, {})
    return {
        "manager": manager,
        "stacks": {
            path: base64.b64decode(content).decode("utf-8")
            for path, content in sorted((chosen.get("stacks") or {}).items())
        },
        "services": chosen.get("services", []),
        "updates": chosen.get("updates", []),
        "containers": {host: answer.get("containers") for host, answer in answers.items()},
        "replicated": collected.get("replicated") or {},
        "replication": {host: answer.get("replication") for host, answer in answers.items()},
    }


def judge(report: Mapping[str, Any]) -> Report:
    """Judge everything the status playbook collected."""
    return Report(
        evaluate(report),
        replication.judge(report.get("replicated") or {}, report.get("replication") or {}),
    )


def collect(servers: Servers) -> Report:
    """Run the read-only status playbook against the inventory's servers and judge the result.

    Raises InputError for a bad inventory (nothing runs) and DeployError when the servers could
    not be asked.
    """
    with tempfile.TemporaryDirectory(prefix="psn-status-") as tmp:
        report_path = Path(tmp) / "status.json"
        summary = run_checked(
            servers, playbook=STATUS_PLAYBOOK, extravars={"psn_status_file": str(report_path)}
        )
        if not summary.succeeded or not report_path.is_file():
            run_display.render_summary(summary, servers.console)
            raise DeployError(f"Could not read the state of the servers; log: {summary.log_path}")
        collected = json.loads(report_path.read_text("utf-8"))
    return judge(assemble(collected))


def render(report: Report, console: Console) -> None:
    """The table of services, then the one of the replicated members (when there are any)."""
    table = Table(title="PSN services", title_justify="left")
    for column in ("service", "replicas", "health", "state"):
        table.add_column(column)
    for s in report.services:
        replicas = "-" if s.running is None else f"{s.running}/{s.desired}"
        if s.expected != "global":
            replicas += f" (expected {s.expected})"
        health = ", ".join(f"{n} {k}" for k, n in sorted(s.health.items())) or "-"
        table.add_row(s.name, replicas, health, _mark(s.ok, s.problems))
    console.print(table)
    if report.replication:
        table = Table(title="Replication", title_justify="left")
        for column in ("store", "server", "member", "role", "state"):
            table.add_column(column)
        for m in report.replication:
            table.add_row(
                replication.STORES[m.store],
                m.host,
                m.member,
                m.state or "-",
                _mark(m.ok, m.problems),
            )
        console.print(table)


def _mark(ok: bool, problems: list[str]) -> str:
    return "[green]✓ ok[/]" if ok else "[red]✗ " + "; ".join(problems) + "[/]"


def verdict(report: Report) -> None:
    """Raise DegradedError unless something is deployed, every service is fine and every
    replicated member is in sync."""
    statuses = report.services
    bad = [s.name for s in statuses if not s.ok]
    lagging = [f"{m.member} on {m.host}" for m in report.replication if not m.ok]
    if not statuses:
        raise DegradedError("No PSN stack is deployed (no /opt/poseidon/psn-*-stack.yml)")
    problems = []
    if bad:
        problems.append(f"{len(bad)} of {len(statuses)} services degraded: {', '.join(bad)}")
    if lagging:
        problems.append(f"replication degraded: {', '.join(lagging)}")
    if problems:
        raise DegradedError("; ".join(problems))


def summary(report: Report) -> str:
    """The line `status` ends with when all is well."""
    line = f"all {len(report.services)} services run every replica"
    if report.replication:
        line += f"; {len(report.replication)} replicated members in sync"
    return line
