"""Run Ansible through ansible-runner: live progress, a masked log and a summary of the run.

This is the only module that talks to ansible-runner. The role order and the role tags come
from `playbooks/site.yml`, never from a list in Python.
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
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import ansible_runner
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from psn import hostkeys
from psn.errors import MASK, InputError, IntegrityError, Problem, PsnError
from psn.inventory import load_inventory

SITE_PLAYBOOK = "playbooks/site.yml"
DEPLOY_COMMAND = "./deploy_psn.sh"

# --- the role order -------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteRole:
    """One role as `playbooks/site.yml` imports it: its tags and the plays of its playbook."""

    name: str
    tags: tuple[str, ...]
    plays: tuple[str, ...]


def read_site(root: Path) -> tuple[SiteRole, ...]:
    """The roles of the deployment in the order `playbooks/site.yml` runs them."""
    site = root / SITE_PLAYBOOK
    entries = _load_yaml(site)
    if not isinstance(entries, list):
        raise _site_error(site, "is not a list of `import_playbook` entries")
    roles: list[SiteRole] = []
    for number, entry in enumerate(entries, start=1):
        target = None
        if isinstance(entry, dict):
            target = entry.get("ansible.builtin.import_playbook", entry.get("import_playbook"))
        if not isinstance(target, str):
            raise _site_error(site, f"entry {number} does not import a playbook")
        name = Path(target).stem
        tags = _as_list(entry.get("tags", []))
        if name not in tags:
            raise _site_error(site, f"the import of {target} is not tagged {name!r}")
        plays = _load_yaml(site.parent / target)
        if not isinstance(plays, list):
            raise _site_error(site.parent / target, "is not a list of plays")
        names = tuple(str(p["name"]) for p in plays if isinstance(p, dict) and "name" in p)
        roles.append(SiteRole(name, tuple(tags), names))
    for what, values in (
        ("role", [r.name for r in roles]),
        ("play name", [p for r in roles for p in r.plays]),
    ):
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise _site_error(site, f"{what}s must be unique, found twice: {', '.join(duplicates)}")
    return tuple(roles)


def role_order(root: Path) -> list[str]:
    """Role names in deployment order."""
    return [role.name for role in read_site(root)]


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise _site_error(path, f"cannot be read: {exc}") from exc


def _site_error(path: Path, message: str) -> IntegrityError:
    return IntegrityError(
        "The installer's playbooks are broken",
        [Problem(message=f"{path.name} {message}", file=str(path), fix="Restore the file.")],
    )


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or []]


# --- the operator's Ansible arguments ---------------------------------------------------------

_VALUE_OPTIONS = {
    "-t": "-t",
    "--tags": "-t",
    "--skip-tags": "--skip-tags",
    "-l": "--limit",
    "--limit": "--limit",
    "-e": "-e",
    "--extra-vars": "-e",
    "--start-at-task": "--start-at-task",
    "-f": "--forks",
    "--forks": "--forks",
    "-u": "--user",
    "--user": "--user",
    "--private-key": "--private-key",
    "--key-file": "--private-key",
    "-T": "--timeout",
    "--timeout": "--timeout",
    "--vault-id": "--vault-id",
    "--vault-password-file": "--vault-password-file",
    "--vault-pass-file": "--vault-password-file",
}
_FLAG_OPTIONS = {
    "-k": "--ask-pass",
    "--ask-pass": "--ask-pass",
    "-K": "--ask-become-pass",
    "--ask-become-pass": "--ask-become-pass",
    "-C": "--check",
    "--check": "--check",
    "-D": "--diff",
    "--diff": "--diff",
    "--flush-cache": "--flush-cache",
    "--force-handlers": "--force-handlers",
    "--list-hosts": "--list-hosts",
    "--list-tags": "--list-tags",
    "--list-tasks": "--list-tasks",
    "--syntax-check": "--syntax-check",
}
# Options that make ansible-playbook prompt: what to ask the operator, and the prompt to answer.
ASKED_PASSWORDS = {
    "--ask-pass": ("SSH password", r"^SSH password:\s*?$"),
    "--ask-become-pass": ("BECOME password (sudo)", r"^BECOME password.*:\s*?$"),
}
# Comma-separated lists that operators split with spaces: the guide itself writes `-t nginx, mail`.
_LIST_OPTIONS = {"-t", "--skip-tags", "--limit"}
_VERBOSE = re.compile(r"-v+")


@dataclass(frozen=True)
class AnsibleArgs:
    """The operator's pass-through arguments, validated and in canonical spelling."""

    tags: tuple[str, ...] = ()
    skip_tags: tuple[str, ...] = ()
    verbosity: int = 0
    options: tuple[tuple[str, str | None], ...] = ()  # the other options, in the given order

    def to_list(self) -> list[str]:
        """The arguments for ansible-playbook."""
        out: list[str] = []
        if self.tags:
            out += ["-t", ",".join(self.tags)]
        if self.skip_tags:
            out += ["--skip-tags", ",".join(self.skip_tags)]
        for option, value in self.options:
            out += [option] if value is None else [option, value]
        if self.verbosity:
            out.append("-" + "v" * self.verbosity)
        return out

    @property
    def asked_passwords(self) -> list[str]:
        """The prompting options given (--ask-pass, --ask-become-pass), in ASKED_PASSWORDS order."""
        given = {option for option, _ in self.options}
        return [option for option in ASKED_PASSWORDS if option in given]

    @property
    def cmdline(self) -> str:
        """The arguments as one shell-quoted string."""
        return shlex.join(self.to_list())


def normalise_args(args: Sequence[str]) -> AnsibleArgs:
    """Validate pass-through arguments; join split lists (`-t nginx, mail` → `-t nginx,mail`)."""
    tags: list[str] = []
    skip_tags: list[str] = []
    options: list[tuple[str, str | None]] = []
    verbosity = 0
    tokens = list(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if _VERBOSE.fullmatch(token) or token == "--verbose":
            verbosity += 1 if token == "--verbose" else len(token) - 1
            continue
        name, value = _split_option(token)
        if name in _FLAG_OPTIONS and value is None:
            options.append((_FLAG_OPTIONS[name], None))
            continue
        if name not in _VALUE_OPTIONS:
            raise _argument_error(token)
        canonical = _VALUE_OPTIONS[name]
        if value is None:
            if i == len(tokens):
                raise _argument_error(token, f"The option {token} needs a value.")
            value = tokens[i]
            i += 1
        if canonical not in _LIST_OPTIONS:
            options.append((canonical, value))
            continue
        while i < len(tokens) and (
            tokens[i].lstrip().startswith(",")
            or (value.rstrip().endswith(",") and not tokens[i].startswith("-"))
        ):
            value += tokens[i]
            i += 1
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            raise _argument_error(token, f"The option {token} needs a value.")
        if canonical == "-t":
            tags += items
        elif canonical == "--skip-tags":
            skip_tags += items
        else:
            options.append((canonical, ",".join(items)))
    return AnsibleArgs(tuple(tags), tuple(skip_tags), verbosity, tuple(options))


def _split_option(token: str) -> tuple[str, str | None]:
    if token.startswith("--"):
        name, sep, value = token.partition("=")
        return name, value if sep else None
    if len(token) > 2 and token[:2] in _VALUE_OPTIONS:
        return token[:2], token[2:]
    return token, None


def _argument_error(token: str, message: str = "") -> InputError:
    if not message:
        message = (
            f"The option {token} is not supported by deploy_psn.sh."
            if token.startswith("-")
            else f"Unexpected argument {token!r}: only the inventory goes before the options."
        )
    supported = sorted({*_VALUE_OPTIONS, *_FLAG_OPTIONS, "-v", "--verbose"})
    return InputError(
        "Invalid Ansible arguments",
        [Problem(message=message, value=token, fix="Supported options: " + ", ".join(supported))],
    )


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


# --- the summary of a run -----------------------------------------------------------------------


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


def resume_args(args: AnsibleArgs, failed_role: str, site: Sequence[SiteRole]) -> AnsibleArgs:
    """The arguments that re-run `failed_role` and every later role the operator selected."""
    names = [role.name for role in site]
    later = site[names.index(failed_role) :]
    selected = set(args.tags)
    if not selected or "all" in selected:
        tags = [role.name for role in later]
    else:
        tags = [r.name for r in later if r.name == failed_role or selected & set(r.tags)]
        # Tags that name no role (task-level ones) stay as the operator gave them.
        known = {tag for role in site for tag in role.tags}
        tags += [tag for tag in args.tags if tag not in known]
    options = tuple(o for o in args.options if o[0] != "--start-at-task")
    return replace(args, tags=tuple(tags), options=options)


def resume_command(
    inventory: Path,
    args: AnsibleArgs,
    failed_role: str,
    site: Sequence[SiteRole],
    command_options: Sequence[str] = (),
) -> str:
    """The deploy_psn.sh command line that resumes from `failed_role`.

    `command_options` are the installer's own options of the failed run (e.g. `--certs-dir`).
    """
    resumed = resume_args(args, failed_role, site)
    return shlex.join([DEPLOY_COMMAND, str(inventory), *command_options, *resumed.to_list()])


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


class _Collector:
    """Turns ansible-runner events into the figures of a RunSummary."""

    def __init__(self, site: Sequence[SiteRole], mask: Masker) -> None:
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


# --- progress on the console --------------------------------------------------------------------


class _Progress:
    """Live progress on a terminal; one plain line per task elsewhere (CI logs)."""

    def __init__(self, console: Console, totals: Counts, mask: Masker) -> None:
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

    def __enter__(self) -> _Progress:
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
        return _duration(timedelta(seconds=time.monotonic() - self._started))


def _duration(value: timedelta) -> str:
    return str(timedelta(seconds=int(value.total_seconds())))


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
    collector = _Collector(site, mask)
    started = time.monotonic()
    with (
        _open_log(log_path) as log,
        _private_dir() as private_dir,
        _Cancel() as cancel,
        _Progress(console, collector.totals, mask) as progress,
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
            f"# finished: {summary.status} (rc={summary.rc}) in {_duration(summary.elapsed)}\n"
        )
        if summary.resume_command:
            log.write(f"# resume with: {summary.resume_command}\n")
    return summary


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
            _duration(role.duration),
        )
    if selected:
        console.print(table)
    _render_services(selected, summary.check, console)
    elapsed = _duration(summary.elapsed)
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
