"""Rendering of problems and results for a terminal (rich), shared by every command."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from psn.errors import Problem


def make_console(stderr: bool = False) -> Console:
    """A console that degrades to plain text when not on a terminal (CI, pipes)."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def render_problems(console: Console, problems: list[Problem]) -> None:
    """One block per problem: location and key, what is wrong, the value, how to fix it."""
    for problem in problems:
        style, mark = ("red", "✗") if problem.severity == "error" else ("yellow", "!")
        head = "  ".join(escape(p) for p in (problem.location, problem.path) if p)
        console.print(f"[{style}]{mark}[/] [bold]{head}[/]" if head else f"[{style}]{mark}[/]")
        console.print(f"    {escape(problem.message)}")
        if problem.value is not None:
            console.print(f"    found: {escape(repr(problem.value))}")
        if problem.fix:
            console.print(f"    [cyan]fix:[/] {escape(problem.fix)}")


def summary_line(problems: list[Problem]) -> tuple[int, int, str]:
    """(errors, warnings, "N errors, M warnings")."""
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    plural = lambda n, w: f"{n} {w}{'' if n == 1 else 's'}"  # noqa: E731
    return errors, warnings, f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
