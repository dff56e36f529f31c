"""End-to-end fixtures: emulated Debian 12 servers (psn/emulated.py) created and removed per run.

`emulated_servers(n)` starts n fresh servers on a private Docker network of their own and
returns an `EmulatedLab`; everything is removed at the end of the session (keep it for
debugging with PSN_KEEP_SERVERS=1). Tests using it are marked `e2e` and skipped when no Docker
engine answers (start one with `bash .ci/docker-engine.sh`). Run only the fast tests with
`pytest -m "not e2e"`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_helpers import DOMAIN, VERSION, deploy_psn, print_summary, write_inventory

from psn import emulated, images
from psn.certs import generate_self_signed
from psn.names import certificate_names, default_domain

ROOT = Path(__file__).resolve().parents[2]
# ClamAV's signatures for tests and the demo: EICAR and a few test patterns (no mirror here).
CLAMAV_TEST_DB = ROOT / "tests" / "images" / "fixtures" / "clamav" / "db"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end test on emulated servers (needs a Docker engine; minutes, not seconds)",
    )


@dataclass
class EmulatedLab:
    """Servers of one private network, with the state (SSH key, known_hosts) to reach them."""

    servers: list[emulated.Server]
    state_dir: Path
    network: str

    def hostvars(self, server: emulated.Server) -> dict[str, str]:
        """Inventory host variables for Ansible over SSH (host key checking on)."""
        return emulated.hostvars(server, self.state_dir)

    def ssh(self, server: emulated.Server, command: str, *, check: bool = True) -> str:
        """Run a shell command on the server over SSH; its stdout."""
        return emulated.ssh_run(server, self.state_dir, command, check=check).stdout

    def exec(self, server: emulated.Server, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the server's container (docker exec), not failing on its exit."""
        return emulated.exec_on(server, argv, check=False)


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


@dataclass
class SuiteDeployment:
    """The whole suite (every role of site.yml) deployed once per session onto one server.

    Modules that test the running suite share it instead of deploying their own; a test that
    changes something puts it back, so that the final re-run still finds nothing to change.
    """

    lab: EmulatedLab
    inventory: Path
    certs_root: Path
    workdir: Path
    archive: Path
    first_run_seconds: float

    @property
    def server(self) -> emulated.Server:
        return self.lab.servers[0]

    def deploy(self, log_name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The guide's `./deploy_psn.sh <inventory> [args]` with the distribution's archive."""
        return deploy_psn(
            "deploy", self.inventory, self.certs_root, self.workdir / log_name,
            "-e", "precheck__hardware=warn", "-e", f"docker_registry__archive={self.archive}",
            "-e", f"mail__clamav_databases_dir={CLAMAV_TEST_DB}", *args,
        )  # fmt: skip


@pytest.fixture(scope="session")
def suite(
    emulated_servers: Callable[..., EmulatedLab], tmp_path_factory: pytest.TempPathFactory
) -> SuiteDeployment:
    """Every role on one fresh emulated server, deployed with `./deploy_psn.sh <inventory>`."""
    workdir = tmp_path_factory.mktemp("suite")
    certs_root = workdir / "certificates"
    generate_self_signed(
        certs_root / default_domain(DOMAIN), certificate_names(DOMAIN, "{service}.{domain}")
    )
    lab = emulated_servers(1, prefix="suite")
    deployment = SuiteDeployment(
        lab=lab,
        inventory=write_inventory(workdir / "hosts.yml", lab),
        certs_root=certs_root,
        workdir=workdir,
        archive=images.ensure_archive(ROOT, VERSION),
        first_run_seconds=0.0,
    )
    started = time.monotonic()
    res = deployment.deploy("run1")
    deployment.first_run_seconds = time.monotonic() - started
    print_summary("suite: first run (every role)", res, deployment.first_run_seconds)
    assert res.returncode == 0, res.stdout + res.stderr
    return deployment
