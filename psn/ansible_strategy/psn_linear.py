"""psn_linear: Mitogen's linear strategy, checking host keys the way Ansible's ssh does.

With host key checking on, Mitogen passes `-o StrictHostKeyChecking yes` ahead of the operator's
own ssh arguments, and ssh keeps the first value it reads: `ansible_ssh_common_args: -o
StrictHostKeyChecking=no` or a `StrictHostKeyChecking` line in ~/.ssh/config were ignored, while
Ansible's own ssh connection, which passes nothing in that case, honours them. Here Mitogen
passes nothing either, so ssh decides from the operator's arguments, ~/.ssh/config and
known_hosts; an unknown key still fails (Mitogen runs ssh with BatchMode, so ssh cannot ask).
With checking off (ansible_host_key_checking: false, ANSIBLE_HOST_KEY_CHECKING=False) Mitogen's
own behaviour is kept.
"""

from __future__ import annotations

from typing import Any

import ansible_mitogen.loaders
import ansible_mitogen.strategy
import mitogen.ssh

_mitogen_boot_command = mitogen.ssh.Connection.get_boot_command


def _boot_command(self: mitogen.ssh.Connection) -> list[str]:
    """Mitogen's ssh command, without its StrictHostKeyChecking when checking is on."""
    if self.options.check_host_keys != "enforce":
        return _mitogen_boot_command(self)
    self.options.check_host_keys = "ssh"  # none of Mitogen's modes: it adds no option
    try:
        return _mitogen_boot_command(self)
    finally:
        self.options.check_host_keys = "enforce"


mitogen.ssh.Connection.get_boot_command = _boot_command

Base: Any = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):
    """Mitogen's linear strategy (ansible_mitogen.plugins.strategy.mitogen_linear)."""
