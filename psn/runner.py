"""Run Ansible through ansible-runner with a masked log; the summary of the run comes back.

This is the only module that talks to ansible-runner. The arguments are checked by
psn/ansible_args.py, the role order read by psn/site.py, the events counted by
psn/run_events.py and shown by psn/run_display.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import ansible_runner
from rich.console import Console

from psn import hostkeys
from psn.ansible_args import ASKED_PASSWORDS, normalise_args, resume_command
from psn.errors import MASK, InputError, IntegrityError, Problem, PsnError
from psn.inventory import load_inventory
from psn.run_display import Progress, duration
from psn.run_events import Collector, Failure, RunSummary
from psn.site import SITE_PLAYBOOK, read_site

# --- masking ------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


class Masker:
    """Replaces every secret value by `********`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants = set()
        for secret in secrets:
            if secret:
                # Ansible prints values inside JSON, so escaped forms must go too.
                variants |= {secret, json.dumps(secret)[1:-1]}
                variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """`text` with the secrets masked."""
        return self._pattern.sub(MASK, text) if self._pattern else text


def _clean(text: str) -> str:
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")


# --- running ------------------------------------------------------------------------------------


@contextmanager
def _open_log(path: Path) -> Iterator[IO[str]]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # an older log of the same name may have looser permissions
    with os.fdopen(fd, "a", encoding="utf-8") as log:
        yield log


class _Cancel:
    """ansible-runner's cancel check, set by Ctrl-C or SIGTERM while a run lasts.

    ansible-runner's own handlers SIGKILL ansible-playbook at once, which leaves its workers
    (each in its own session) running tasks; they also stay installed after the run. Here the
    first signal asks Ansible to stop as on Ctrl-C in a terminal; a second one, or a stop that
    takes longer than GRACE seconds, lets ansible-runner kill it.
    """

    GRACE = 10.0

    def __init__(self) -> None:
        self.signals = 0
        self._deadline: float | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Cancel:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, _number: int, _frame: object) -> None:
        self.signals += 1

    def __call__(self) -> bool:
        """True when ansible-runner must kill Ansible; polled about once a second."""
        if not self.signals:
            return False
        if self._deadline is None:
            self._deadline = time.monotonic() + self.GRACE
            for pid in _children("ansible-playbook"):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
        return self.signals > 1 or time.monotonic() > self._deadline


def _children(command: str) -> list[int]:
    """Our child processes whose command line mentions `command` (Linux /proc)."""
    me = str(os.getpid())
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = stat_file.read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (stat_file.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == me and command.encode() in cmdline:
            found.append(int(stat_file.parent.name))
    return found


def _private_dir() -> tempfile.TemporaryDirectory[str]:
    """ansible-runner's private data dir: 0700, deleted after the run."""
    private = tempfile.TemporaryDirectory(prefix="psn-run-")
    env = Path(private.name) / "env"
    env.mkdir()
    # ansible-runner reads these only from this file. Its stdout copy would hold unmasked
    # output; a short pexpect timeout makes a cancel take effect within a second.
    settings = {"suppress_output_file": True, "pexpect_timeout": 1}
    (env / "settings").write_text(json.dumps(settings), encoding="utf-8")
    return private


def ansible_environment(root: Path) -> dict[str, str]:
    """The environment ansible-runner gives Ansible: our ansible.cfg, our venv, host key checks
    on, and the strategy (Mitogen unless PSN_MITOGEN=0)."""
    env = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        # ansible-runner starts ansible-playbook from PATH, which may not hold our venv.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    # ansible-runner turns host key checking off unless the environment sets it.
    env["ANSIBLE_HOST_KEY_CHECKING"] = os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")
    env.update(_strategy_environment())
    return env


def _strategy_environment() -> dict[str, str]:
    """Mitogen's linear strategy (as psn/ansible_strategy/psn_linear.py, which checks host keys as
    Ansible's ssh does), unless PSN_MITOGEN=0 or ANSIBLE_STRATEGY chooses another.

    Mitogen keeps one Python interpreter per server for the whole run instead of starting one
    per task over SSH: a run with nothing to change takes a third of the time (docs/benchmarks.md).
    """
    if os.environ.get("PSN_MITOGEN", "1") == "0" or "ANSIBLE_STRATEGY" in os.environ:
        return {}
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        raise IntegrityError(
            "Mitogen for Ansible is missing from the installer's Python environment",
            [
                Problem(
                    message="The Python package `mitogen` (a dependency in pyproject.toml) "
                    "is not installed.",
                    fix="reinstall the environment: rm -rf .venv && ./deploy_psn.sh --help; "
                    "or run with PSN_MITOGEN=0 to use Ansible's own, slower strategy.",
                )
            ],
        )
    return {
        "ANSIBLE_STRATEGY_PLUGINS": str(Path(__file__).parent / "ansible_strategy"),
        "ANSIBLE_STRATEGY": "psn_linear",
    }


def _explain_host_key(failure: Failure, inventory: Path) -> Failure:
    """An unreachable host whose SSH host key was refused: its fingerprints and the fix."""
    if not failure.unreachable or not hostkeys.HOST_KEY_FAILURE.search(failure.message):
        return failure
    try:
        host_vars = load_inventory(inventory).host_vars(failure.host)
        port = int(host_vars.get("ansible_port") or 22)
    except (PsnError, ValueError):
        host_vars, port = {}, 22
    address = str(host_vars.get("ansible_host") or failure.host)
    return replace(
        failure, message=f"{failure.message}\n{hostkeys.advice(failure.host, address, port)}"
    )


def run_playbook(
    root: Path,
    inventory: Path,
    ansible_args: list[str],
    *,
    secrets: list[str],
    log_path: Path,
    console: Console,
    playbook: str = SITE_PLAYBOOK,
    extravars: dict[str, Any] | None = None,
    command_options: Sequence[str] = (),
    passwords: Mapping[str, str] | None = None,
) -> RunSummary:
    """Run `playbook` of the project in `root` against `inventory`; log masked output to `log_path`.

    `extravars` are the installer's own variables (never on a command line); `command_options`
    the installer options to repeat in the resume command; `passwords` the answers to the
    prompts of -k/-K (option → password, masked like the secrets). Raises InputError for bad
    arguments, a missing inventory or an unanswered -k/-K, before anything runs; a failed run is
    reported in the summary.
    """
    args = normalise_args(ansible_args)
    if not inventory.is_file():
        raise InputError(
            "Inventory not found",
            [Problem(message="The inventory file does not exist.", file=str(inventory))],
        )
    passwords = passwords or {}
    unanswered = [option for option in args.asked_passwords if not passwords.get(option)]
    if unanswered:
        raise InputError(
            f"No password for {', '.join(unanswered)}",
            [
                Problem(
                    message=f"{', '.join(unanswered)} asks for a password and none was given.",
                    fix="run from a terminal (deploy_psn asks for it), or put it in the "
                    "inventory (ansible_password / ansible_become_password, vault-encrypted)",
                )
            ],
        )
    prompts = {ASKED_PASSWORDS[o][1]: passwords[o] for o in args.asked_passwords}
    site = read_site(root)
    mask = Masker([*secrets, *prompts.values()])
    collector = Collector(site, mask)
    started = time.monotonic()
    with (
        _open_log(log_path) as log,
        _private_dir() as private_dir,
        _Cancel() as cancel,
        Progress(console, collector.totals, mask) as progress,
    ):
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        command = shlex.join(["ansible-playbook", playbook, "-i", str(inventory), *args.to_list()])
        log.write(mask(f"# {stamp} {command}\n"))

        def on_event(event: dict[str, Any]) -> bool:
            text = mask(_clean(str(event.get("stdout") or "")))
            if text:
                log.write(text + "\n")
                log.flush()
            progress.update(event, collector.handle(event, text))
            return False  # ansible-runner would otherwise store the unmasked event on disk

        result = ansible_runner.run(
            private_data_dir=private_dir,
            project_dir=str(root),
            playbook=playbook,
            inventory=str(inventory.resolve()),
            cmdline=args.cmdline or None,
            extravars=extravars or {},
            envvars=ansible_environment(root),
            quiet=True,
            suppress_env_files=True,
            passwords=prompts,
            event_handler=on_event,
            cancel_callback=cancel,
        )
        failures = [_explain_host_key(f, inventory) for f in collector.final_failures()]
        # Without a failed task (Ctrl-C, a crash) the run resumes from the role it was in.
        stopped_in = {f.role for f in failures} or {collector.current}
        first_failed = next((r.name for r in site if r.name in stopped_in), None)
        summary = RunSummary(
            status="canceled" if cancel.signals else str(result.status),
            rc=int(result.rc if result.rc is not None else -1),
            elapsed=timedelta(seconds=time.monotonic() - started),
            log_path=log_path,
            roles=list(collector.roles.values()),
            hosts=collector.hosts or {},
            failures=failures,
            output_tail=list(collector.tail),
            check=any(option == "--check" for option, _ in args.options),
        )
        if first_failed and not summary.succeeded:
            summary.resume_command = mask(
                resume_command(inventory, args, first_failed, site, command_options)
            )
        log.write(
            f"# finished: {summary.status} (rc={summary.rc}) in {duration(summary.elapsed)}\n"
        )
        if summary.resume_command:
            log.write(f"# resume with: {summary.resume_command}\n")
    return summary
