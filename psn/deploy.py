"""`deploy_psn deploy`: local checks first, then the playbooks through the runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from psn import __version__, run_display, run_events, runner, site
from psn.console import render_problems, summary_line
from psn.errors import DeployError, InputError, Problem
from psn.inventory import Inventory
from psn.names import default_domain
from psn.validate import check_installation


def log_path_for(log_dir: Path) -> Path:
    """`deploy_psn_<DATE>.log` (guide §4.3.1) in `log_dir`, which is created when missing."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir / f"deploy_psn_{datetime.now():%Y-%m-%d_%H-%M-%S}.log"


def preflight(inventory: Path, root: Path, certs_root: Path) -> tuple[Inventory, list[Problem]]:
    """Every local check; raises InputError listing all problems when any is an error.

    Returns the inventory and the warnings, which do not stop a deployment.
    """
    inv, problems = check_installation(inventory, root, certs_root)
    errors, _, summary = summary_line(problems)
    if errors:
        raise InputError(f"Check failed: {summary}. Nothing was changed on any server.", problems)
    return inv, problems


@dataclass(frozen=True)
class Servers:
    """What every command over an inventory's servers works with: the installer, the inventory,
    the operator's Ansible arguments, the certificates, where the log goes, and the console."""

    root: Path
    inventory: Path
    ansible_args: list[str]
    certs_root: Path
    log_dir: Path
    console: Console


def run_checked(
    servers: Servers,
    *,
    playbook: str,
    extravars: dict[str, str] | None = None,
    command_options: Sequence[str] = (),
    passwords: Mapping[str, str] | None = None,
) -> run_events.RunSummary:
    """Check locally (warnings shown, errors raised as InputError), then run `playbook` with the
    installer's own variables plus `extravars`; returns the run's summary, failed or not.
    `command_options` are the command's own options, repeated in the resume command;
    `passwords` answer -k/-K (runner.run_playbook)."""
    inv, warnings = preflight(servers.inventory, servers.root, servers.certs_root)
    render_problems(servers.console, warnings)
    cert_dir = servers.certs_root / default_domain(inv.external_domain)
    return runner.run_playbook(
        servers.root,
        servers.inventory,
        servers.ansible_args,
        secrets=inv.secret_values(),
        log_path=log_path_for(servers.log_dir),
        console=servers.console,
        playbook=playbook,
        # The installer's own facts; image tags follow the installer's version.
        extravars={
            "psn_certificates_dir": str(cert_dir.resolve()),
            "psn_version": __version__,
            **(extravars or {}),
        },
        command_options=command_options,
        passwords=passwords,
    )


def deploy(
    servers: Servers,
    *,
    playbook: str = site.SITE_PLAYBOOK,
    command_options: Sequence[str] = (),
    passwords: Mapping[str, str] | None = None,
) -> run_events.RunSummary:
    """Check locally, then run `playbook` (run_checked); raises DeployError when the run failed."""
    summary = run_checked(
        servers, playbook=playbook, command_options=command_options, passwords=passwords
    )
    run_display.render_summary(summary, servers.console)
    if not summary.succeeded:
        raise DeployError(f"Run {summary.status}; full log: {summary.log_path}")
    return summary
