"""Test `is psn_hostname`: a fully qualified DNS name, as `validate` checks it (psn/names.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psn.names import is_valid_hostname


def psn_hostname(value: object) -> bool:
    """True for a fully qualified host or domain name (LDH labels, at least two)."""
    return isinstance(value, str) and is_valid_hostname(value)


class TestModule:
    """psn_hostname."""

    def tests(self) -> dict[str, Callable[..., Any]]:
        return {"psn_hostname": psn_hostname}
