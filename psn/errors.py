"""Typed errors and the problem records they carry.

Library code raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MASK = "********"


@dataclass(frozen=True)
class Problem:
    """One finding about the operator's input: where it is, what is wrong, how to fix it."""

    message: str
    fix: str = ""
    path: str = ""
    file: str | None = None
    line: int | None = None
    value: str | None = None  # shown to the operator; secrets already masked
    severity: Literal["error", "warning"] = "error"

    @property
    def location(self) -> str:
        """`file:line`, `file` or empty, for the first column of a report."""
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""

    def render(self) -> str:
        """A plain-text, single-paragraph rendering (used in logs and tests)."""
        head = " ".join(p for p in (self.location, self.path) if p)
        text = f"{head}: {self.message}" if head else self.message
        if self.value is not None:
            text += f" (found: {self.value!r})"
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class PsnError(Exception):
    """Base of every error the CLI reports without a traceback."""

    exit_code = 1

    def __init__(self, title: str, problems: list[Problem] | None = None) -> None:
        super().__init__(title)
        self.title = title
        self.problems = problems or []


class InputError(PsnError):
    """The operator's input (inventory, certificates, arguments) is wrong; nothing was changed."""

    exit_code = 2


class IntegrityError(PsnError):
    """The installer's own files do not match the distribution manifest."""

    exit_code = 3


class DeployError(PsnError):
    """An Ansible run failed on a server."""

    exit_code = 4


class ImageBuildError(PsnError):
    """Building, finding or saving a container image failed; `image` names it, `output` holds
    the last lines of the build output."""

    exit_code = 5

    def __init__(
        self,
        title: str,
        problems: list[Problem] | None = None,
        *,
        image: str = "",
        output: str = "",
    ) -> None:
        super().__init__(title, problems)
        self.image = image
        self.output = output


class DegradedError(PsnError):
    """The servers answer, but a service of the suite does not run as deployed."""

    exit_code = 6


class ApiError(PsnError):
    """The PSN API refused a request or could not be reached; `status` is its HTTP status (0:
    no answer)."""

    exit_code = 7

    def __init__(self, title: str, status: int = 0) -> None:
        super().__init__(title)
        self.status = status
