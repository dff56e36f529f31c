"""Shared fixtures: a valid inventory made from the shipped template, and certificates for it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from psn.certs import generate_self_signed
from psn.genpwd import fill_secrets
from psn.names import certificate_names, default_domain

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "inventory" / "hosts.yml"


@pytest.fixture(scope="module")
def certs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """certificates/ with a self-signed set for the template's domain (one per test module: the
    end-to-end modules add the installation-internal CA to it)."""
    root = tmp_path_factory.mktemp("certificates")
    generate_self_signed(
        root / default_domain("example.com"), certificate_names("example.com", "{service}.{domain}")
    )
    return root


@pytest.fixture
def valid_inventory(tmp_path: Path) -> Path:
    """A copy of inventory/hosts.yml with every secret generated: passes validation."""
    path = tmp_path / "hosts.yml"
    shutil.copy(TEMPLATE, path)
    fill_secrets(path)
    return path
