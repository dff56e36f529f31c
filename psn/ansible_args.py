"""The operator's Ansible arguments: validated, in canonical spelling, and the arguments that
resume a failed run."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from psn.errors import InputError, Problem
from psn.site import SiteRole

DEPLOY_COMMAND = "./deploy_psn.sh"

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
