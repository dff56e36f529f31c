"""The role order and the role tags of a deployment, read from `playbooks/site.yml` (never from a
list in Python)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from psn.errors import IntegrityError, Problem

SITE_PLAYBOOK = "playbooks/site.yml"


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
