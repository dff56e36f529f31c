"""Form values: what a form shows, from an API object or from what the user posted, and the
changes a posted form makes."""

from __future__ import annotations

import re
from typing import Any


def split_list(text: str) -> list[str]:
    """Addresses typed one a line (or separated by commas/spaces), lower-cased, in order, once."""
    items: list[str] = []
    for item in re.split(r"[\s,;]+", text.strip().lower()):
        if item and item not in items:
            items.append(item)
    return items


def quota_input(size: int) -> str:
    """A quota in bytes as the shortest input form the API accepts (1073741824 → "1G")."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def user_values(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": user["address"],
        "display_name": user.get("display_name") or "",
        "given_name": user.get("given_name") or "",
        "surname": user.get("surname") or "",
        "quota": quota_input(int(user.get("quota") or 0)),
        "aliases": "\n".join(user.get("aliases") or []),
        "enabled": bool(user.get("enabled")),
        "tenant_admin": bool(user.get("tenant_admin")),
    }


def posted_user(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        k: form.get(k, "").strip()
        for k in ("address", "display_name", "given_name", "surname", "quota", "aliases")
    }
    values["address"] = values["address"].lower()
    values["enabled"] = form.get("enabled") == "on"
    values["tenant_admin"] = form.get("tenant_admin") == "on"
    return values


def user_changes(user: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body turning `user` into the posted `values` (only what differs)."""
    old = user_values(user)
    changes: dict[str, Any] = {}
    for key in ("display_name", "enabled", "tenant_admin"):
        if values[key] != old[key]:
            changes[key] = values[key]
    for key in ("given_name", "surname"):
        if values[key] != old[key]:
            changes[key] = values[key] or None  # null removes the attribute
    if values["quota"] and values["quota"] != old["quota"]:
        changes["quota"] = values["quota"]
    if split_list(values["aliases"]) != split_list(old["aliases"]):
        changes["aliases"] = split_list(values["aliases"])
    return changes


def group_values(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": group["address"],
        "name": group.get("name") or "",
        "description": group.get("description") or "",
        "members": "\n".join(group.get("members") or []),
        "aliases": "\n".join(group.get("aliases") or []),
    }


def posted_group(form: dict[str, str]) -> dict[str, Any]:
    values = {
        k: form.get(k, "").strip() for k in ("address", "name", "description", "members", "aliases")
    }
    values["address"] = values["address"].lower()
    return values
