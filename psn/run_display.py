"""What a run shows on the console: live progress while it runs, the summary after."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from psn.run_events import Counts, Failure, RoleSummary, RunSummary


class Progress:
    """Live progress on a terminal; one plain line per task elsewhere (CI logs)."""

    def __init__(self, console: Console, totals: Counts, mask: Callable[[str], str]) -> None:
        self._console = console
        self._totals = totals
        self._mask = mask
        self._started = time.monotonic()
        self._play = self._task = self._host = ""
        self._live = (
            Live(self, console=console, transient=True, refresh_per_second=4)
            if console.is_terminal
            else None
        )

    def __enter__(self) -> Progress:
        if self._live:
            self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live:
            self._live.stop()

    def __rich__(self) -> Text:
        t = self._totals
        return Text.assemble(
            (f"{self._clock()} ", "dim"),
            (self._play or "Starting Ansible", "bold"),
            " | ",
            self._task,
            (f" [{self._host}]" if self._host else "", "cyan"),
            "   ",
            (f"ok={t.ok} ", "green"),
            (f"changed={t.changed} ", "yellow"),
            (f"failed={t.failed} ", "red" if t.failed else ""),
            (f"skipped={t.skipped} ", "dim"),
            (f"unreachable={t.unreachable}", "red" if t.unreachable else ""),
        )

    def update(self, event: dict[str, Any], failure: Failure | None) -> None:
        """Show what one event changed."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self._play = self._mask(str(data.get("name", "")))
            self._task = self._host = ""
            if self._live:
                self._console.print(Text(f"▶ {self._play}", style="bold"))
        elif kind == "playbook_on_task_start":
            self._task = self._mask(str(data.get("name") or data.get("task", "")))
            self._host = ""
            if not self._live:
                line = f"[{self._clock()}] {self._play} | {self._task}"
                self._console.print(line, markup=False, highlight=False)
        elif kind == "runner_on_start":
            self._host = str(data.get("host", ""))
        if failure:
            label = "UNREACHABLE" if failure.unreachable else "FAILED"
            first_line = failure.message.splitlines()[0] if failure.message else ""
            line = f"  {label} {failure.host}: {failure.task}: {first_line}"
            self._console.print(Text(line, style="red"))

    def _clock(self) -> str:
        return duration(timedelta(seconds=time.monotonic() - self._started))


def duration(value: timedelta) -> str:
    return str(timedelta(seconds=int(value.total_seconds())))


def _render_services(roles: Sequence[RoleSummary], check: bool, console: Console) -> None:
    """The services the run updated or removed; with --check, those a run would (a plan)."""
    changes = [(s, "update", r.name) for r in roles for s in r.updated]
    changes += [(s, "remove", r.name) for r in roles for s in r.removed]
    if check:
        head = "Services a run would change (--check: nothing was changed):"
        if not changes:
            console.print(Text("--check: no service would change.", style="bold"))
            return
    elif changes:
        head = "Services changed:"
    else:
        return
    console.print(Text(head, style="bold"))
    for service, what, role in changes:
        console.print(Text(f"  {what:<6} {service}  (role {role})"))


def render_summary(summary: RunSummary, console: Console) -> None:
    """Print the per-role table, then what failed and how to resume."""
    table = Table(title="Deployment summary", title_justify="left")
    table.add_column("Role")
    for column in ("Hosts", "OK", "Changed", "Failed", "Unreachable", "Duration"):
        table.add_column(column, justify="right")
    selected = [role for role in summary.roles if role.selected]
    for role in selected:
        c = role.counts
        table.add_row(
            role.name,
            str(len(role.hosts)),
            str(c.ok),
            Text(str(c.changed), style="yellow" if c.changed else ""),
            Text(str(c.failed), style="bold red" if c.failed else ""),
            Text(str(c.unreachable), style="bold red" if c.unreachable else ""),
            duration(role.duration),
        )
    if selected:
        console.print(table)
    _render_services(selected, summary.check, console)
    elapsed = duration(summary.elapsed)
    if summary.succeeded:
        console.print(Text(f"Finished successfully in {elapsed}.", style="bold green"))
        if not selected:
            console.print(
                Text("No task ran: check the -t/--limit arguments and the inventory groups.")
            )
    else:
        outcome = "Canceled" if summary.status == "canceled" else "FAILED"
        console.print(
            Text(
                f"{outcome} ({summary.status}, rc={summary.rc}) after {elapsed}.", style="bold red"
            )
        )
        for f in summary.failures:
            what = "unreachable" if f.unreachable else "failed"
            console.print(Text(f"{f.role} / {f.task} {what} on {f.host}:", style="bold red"))
            console.print(Text(f.message))
        if not summary.failures and summary.output_tail:
            console.print(Text("\n".join(summary.output_tail[-10:])))
        if summary.resume_command:
            console.print(Text("After fixing the cause, resume with:"))
            console.print(Text(f"  {summary.resume_command}", style="bold"))
    console.print(Text(f"Full log: {summary.log_path}", style="dim"))
