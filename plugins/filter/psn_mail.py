"""Filter choosing the mail host whose DKIM key of each domain all mail hosts use (psn/dkim.py).

`ansible_play_hosts | psn_dkim_holders(keys_by_host, domains)`: domain -> host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psn.dkim import key_holders


class FilterModule:
    """psn_dkim_holders."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"psn_dkim_holders": key_holders}
