"""The settings of a service: /etc/psnweb/config.json and the secrets under /run/secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

CONFIG_PATH = Path(os.environ.get("PSN_CONFIG", "/etc/psnweb/config.json"))
SECRETS_DIR = Path(os.environ.get("PSN_SECRETS_DIR", "/run/secrets"))


class ConfigError(Exception):
    """The configuration or a secret is missing or unreadable."""


def load_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    """The service's JSON settings."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def secret(name: str) -> str:
    """The value of the Docker secret `name` (trailing newline removed)."""
    path = SECRETS_DIR / name
    try:
        return path.read_text("utf-8").rstrip("\n")
    except OSError as exc:
        raise ConfigError(f"secret {name}: {exc}") from exc
