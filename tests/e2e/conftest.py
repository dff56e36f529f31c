"""End-to-end fixtures: emulated Debian 12 servers (psn/emulated.py) created and removed per run.

`emulated_servers(n)` starts n fresh servers on a private Docker network of their own and
returns an `EmulatedLab`; everything is removed at the end of the session (keep it for
debugging with PSN_KEEP_SERVERS=1). Tests using it are marked `e2e` and skipped when no Docker
engine answers (start one with `bash .ci/docker-engine.sh`). Run only the fast tests with
`pytest -m "not e2e"`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from e2e_helpers import EmulatedLab

from psn import emulated

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test on emulated servers (needs a Docker engine; minutes, not seconds)",
    )


@pytest.fixture(scope="session")
def emulated_image() -> str:
    """The emulated-server image, built (or taken from the layer cache) once per session."""
    if not emulated.engine_answers():
        pytest.skip("no Docker engine answers: start one with `bash .ci/docker-engine.sh`")
    return emulated.build_image(ROOT)


@pytest.fixture(scope="session")
def emulated_servers(
    emulated_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., EmulatedLab]]:
    """Factory: `emulated_servers(n, prefix="psn")` starts n servers psn1..psnN on a new network."""
    state_dir = tmp_path_factory.mktemp("emulated-state")
    networks: list[str] = []

    def start(n: int, *, prefix: str = "psn") -> EmulatedLab:
        network = f"psn-e2e-{os.getpid()}-{len(networks)}"
        networks.append(network)
        names = [f"{prefix}{i}" for i in range(1, n + 1)]
        servers = emulated.start_servers(names, network, state_dir=state_dir, image=emulated_image)
        return EmulatedLab(servers, state_dir, network)

    yield start
    if os.environ.get("PSN_KEEP_SERVERS") != "1":
        for network in networks:
            emulated.stop_servers(network)
