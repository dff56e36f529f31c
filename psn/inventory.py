"""Loading the operator's inventory with line numbers, and reading typed values out of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from psn.errors import InputError, Problem

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})

# Group names in the guide's nesting (§4.2.3.1): group → parent group (None: child of `all`).
GROUP_PARENTS: dict[str, str | None] = {
    "infra": None,
    "docker_registry": "infra",
    "db": None,
    "etcd": "db",
    "redis": "db",
    "postgres": "db",
    "ldap": "db",
    "frontend": None,
    "proxy": "frontend",
    "backend": None,
    "mail": None,
    "syslog": None,
    "monitoring": None,
}
PARENT_GROUPS = frozenset(p for p in GROUP_PARENTS.values() if p)
HOST_GROUPS = tuple(g for g in GROUP_PARENTS if g not in PARENT_GROUPS)

KeyPath = tuple[str | int, ...]


@cache
def inventory_schema() -> dict[str, Any]:
    """The JSON Schema shipped in `psn/schema/inventory.schema.json`."""
    text = resources.files("psn").joinpath("schema/inventory.schema.json").read_text("utf-8")
    return json.loads(text)


def dotted(path: KeyPath) -> str:
    """`all.vars.passwords.redis_user`; list indexes as `[3]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def to_bool(value: object) -> bool | None:
    """An operator's yes/no value ("True", true, "false", ...) as a bool; None when not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def as_text(value: object) -> str:
    """A scalar as stripped text; None and empty become ''."""
    return "" if value is None else str(value).strip()


def _secret_paths(schema: dict[str, Any], node: dict[str, Any], path: KeyPath) -> Iterator[KeyPath]:
    if "$ref" in node:
        target = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        if target.get("x-psn-secret"):
            yield path
            return
        node = target
    for key, child in node.get("properties", {}).items():
        yield from _secret_paths(schema, child, (*path, key))


@cache
def secret_paths() -> frozenset[KeyPath]:
    """Paths (under `all.vars`) of every secret value, read from the schema's `x-psn-secret`."""
    schema = inventory_schema()
    vars_schema = schema["properties"]["all"]["properties"]["vars"]
    return frozenset(_secret_paths(schema, vars_schema, ("all", "vars")))


def is_secret(path: KeyPath) -> bool:
    """True when the value at `path` must never be shown."""
    return tuple(path) in secret_paths()


@dataclass
class Inventory:
    """An inventory file as loaded: the round-trip document keeps comments and line numbers."""

    path: Path
    doc: CommentedMap

    @property
    def vars(self) -> dict[str, Any]:
        """`all.vars`, or an empty mapping when absent or malformed."""
        found = self.get(("all", "vars"))
        return found if isinstance(found, dict) else {}

    def get(self, path: KeyPath, default: Any = None) -> Any:
        """The value at `path`, or `default` when any step is missing or not a container."""
        node: Any = self.doc
        for part in path:
            if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)
            ):
                node = node[part]
            else:
                return default
        return node

    def var(self, *path: str) -> Any:
        """A value under `all.vars`."""
        return self.get(("all", "vars", *path))

    def line_of(self, path: KeyPath) -> int | None:
        """1-based line of the deepest existing key along `path`."""
        node: Any = self.doc
        line: int | None = None
        for part in path:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
            else:
                break
            node = node[part]
        return line

    def group_path(self, group: str) -> KeyPath:
        """Where a group lives in the guide's layout, e.g. `all.children.db.children.etcd`."""
        parent = GROUP_PARENTS.get(group)
        if parent is None:
            return ("all", "children", group)
        return (*self.group_path(parent), "children", group)

    def hosts(self, group: str) -> dict[str, dict[str, Any]]:
        """Hosts of a group with their variables ({} for a host without variables)."""
        found = self.get((*self.group_path(group), "hosts"))
        if not isinstance(found, dict):
            return {}
        return {str(h): (v if isinstance(v, dict) else {}) for h, v in found.items()}

    def host_vars(self, host: str) -> dict[str, Any]:
        """A host's variables merged from `all.hosts` and every group it is listed in, as
        Ansible sees them."""
        listed = self.get(("all", "hosts", host))
        merged: dict[str, Any] = dict(listed) if isinstance(listed, dict) else {}
        for group in HOST_GROUPS:
            merged.update(self.hosts(group).get(host, {}))
        return merged

    def has_group(self, group: str) -> bool:
        """True when the group is written in the inventory, even without hosts."""
        *parent, name = self.group_path(group)
        container = self.get(tuple(parent))
        return isinstance(container, dict) and name in container

    def secret_values(self) -> list[str]:
        """Every non-empty secret of the inventory, for masking logs."""
        values = (as_text(self.get(path)) for path in secret_paths())
        return sorted({v for v in values if v}, key=len, reverse=True)

    @property
    def external_domain(self) -> str:
        """`setup.external_domain`, lower-cased."""
        return as_text(self.var("setup", "external_domain")).lower()

    @property
    def domain_module(self) -> str:
        """`setup.domain_module`."""
        return as_text(self.var("setup", "domain_module"))


def yaml_round_trip() -> YAML:
    """A ruamel YAML instance that keeps comments, order and quoting."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_inventory(path: Path) -> Inventory:
    """Read an inventory file; a missing file or bad YAML raises InputError with the line."""
    if not path.is_file():
        raise InputError(
            "Cannot read the inventory",
            [
                Problem(
                    f"no such file: {path}",
                    fix="copy inventory/hosts.yml, fill it in and pass its path",
                    file=str(path),
                )
            ],
        )
    try:
        doc = yaml_round_trip().load(path.read_text("utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        raise InputError(
            "The inventory is not valid YAML",
            [
                Problem(
                    f"{problem}" + (f" ({exc.context})" if exc.context else ""),
                    fix="correct the YAML syntax at that line (indentation with spaces, "
                    "a colon after every key, quotes around values with special characters)",
                    file=str(path),
                    line=mark.line + 1 if mark else None,
                )
            ],
        ) from None
    except UnicodeDecodeError:
        raise InputError(
            "The inventory is not UTF-8 text",
            [Problem("cannot decode the file as UTF-8", fix="save it as UTF-8", file=str(path))],
        ) from None
    if not isinstance(doc, CommentedMap):
        raise InputError(
            "The inventory has no content",
            [
                Problem(
                    "the file must be a YAML mapping starting with `all:`",
                    fix="start from a copy of inventory/hosts.yml",
                    file=str(path),
                    line=1,
                )
            ],
        )
    return Inventory(path=path, doc=doc)
