"""`deploy_psn genpwd`: fill every empty password and key of an inventory, keeping its form."""

from __future__ import annotations

import os
import secrets
import string
import tempfile
from pathlib import Path

from passlib.hash import apr_md5_crypt
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from psn.errors import InputError, Problem
from psn.inventory import as_text, inventory_schema, load_inventory, yaml_round_trip

# Letters and digits only: they pass the guide's rules and need no quoting in any consumer
# (shell, URL, LDIF, connection strings); 24 of them carry ~142 bits.
ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 24
KEY_LENGTH = 48


def random_secret(length: int) -> str:
    """A random string of letters and digits with at least one of each class."""
    while True:
        value = "".join(secrets.choice(ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in value)
            and any(c.isupper() for c in value)
            and any(c.isdigit() for c in value)
        ):
            return value


# The monitoring access of the guide's inventory: filled when the inventory has the key, never
# added (the monitoring role is not part of this release).
OPTIONAL_KEYS = frozenset({"mon_user", "mon_user_hash"})


def _section_keys(section: str) -> list[str]:
    vars_schema = inventory_schema()["properties"]["all"]["properties"]["vars"]
    return list(vars_schema["properties"][section]["properties"])


def _fill(mapping: CommentedMap, key: str, value: str) -> None:
    mapping[key] = DoubleQuotedScalarString(value)


def fill_secrets(path: Path) -> list[str]:
    """Fill empty `passwords.*`, `secure.*` and the address book salt; derive `mon_user_hash`.

    Values already set are never changed. Comments, order and quoting are kept; the file ends
    up mode 0600. Returns the dotted names that were filled (never the values).
    """
    inv = load_inventory(path)
    variables = inv.get(("all", "vars"))
    if not isinstance(variables, CommentedMap):
        raise InputError(
            "Nothing to fill",
            [
                Problem(
                    "the inventory has no `all.vars` mapping",
                    fix="start from a copy of inventory/hosts.yml",
                    file=str(path),
                    path="all.vars",
                )
            ],
        )
    filled: list[str] = []
    wanted = {
        "passwords": (_section_keys("passwords"), PASSWORD_LENGTH),
        "secure": (_section_keys("secure"), KEY_LENGTH),
    }
    for section, (keys, length) in wanted.items():
        if variables.get(section) is None:
            variables[section] = CommentedMap()
        mapping = variables[section]
        if not isinstance(mapping, CommentedMap):
            raise InputError(
                "Cannot fill passwords",
                [
                    Problem(
                        f"`{section}` is not a mapping",
                        fix="write it as in inventory/hosts.yml",
                        file=str(path),
                        line=inv.line_of(("all", "vars", section)),
                        path=f"all.vars.{section}",
                    )
                ],
            )
        for key in keys:
            if key in OPTIONAL_KEYS and key not in mapping:
                continue
            if key != "mon_user_hash" and not as_text(mapping.get(key)):
                _fill(mapping, key, random_secret(length))
                filled.append(f"{section}.{key}")
    passwords = variables["passwords"]
    if "mon_user" in passwords and not as_text(passwords.get("mon_user_hash")):
        _fill(passwords, "mon_user_hash", apr_md5_crypt.hash(as_text(passwords["mon_user"])))
        filled.append("passwords.mon_user_hash")
    setup = variables.get("setup")
    if isinstance(setup, CommentedMap) and not as_text(setup.get("autoconfig_auth_salt")):
        _fill(setup, "autoconfig_auth_salt", random_secret(PASSWORD_LENGTH))
        filled.append("setup.autoconfig_auth_salt")
    if filled:
        _write_private(path, _document_header(path.read_text("utf-8")), inv.doc)
    else:
        path.chmod(0o600)
    return filled


def _document_header(text: str) -> str:
    """Comment lines up to and including a leading `---`, which ruamel does not round-trip."""
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.strip() == "---":
            return "".join(lines[: number + 1])
        if line.strip() and not line.lstrip().startswith("#"):
            break
    return ""


def _write_private(path: Path, header: str, doc: CommentedMap) -> None:
    """Replace `path` atomically with a 0600 file; secrets never exist in a readable file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(header)
            yaml_round_trip().dump(doc, handle)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
