"""Fixtures of the modules that test the running suite: ONE deployment of every role onto one
emulated server per session (`suite`), and what the tests read from it. The modules run in name
order: test_suite.py (verify, SRV, DKIM, the re-run that must restart nothing), then
test_suite_admin.py, test_suite_data.py (whose last tests redeploy the directory and Redis), then
test_suite_mail.py, then test_suite_web.py, whose last test replaces the proxy's certificate.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from e2e_helpers import (
    DOMAIN,
    ROOT,
    VERSION,
    EmulatedLab,
    deploy_psn,
    print_summary,
    write_inventory,
)

from psn import emulated, images
from psn.certs import generate_self_signed
from psn.names import certificate_names, default_domain

# ClamAV's signatures for tests and the demo: EICAR and a few test patterns (no mirror here).
CLAMAV_TEST_DB = ROOT / "tests" / "images" / "fixtures" / "clamav" / "db"


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


def with_syslog(doc) -> None:
    """The guide's optional syslog group on the server too, so that every role is deployed."""
    [server] = doc["all"]["hosts"]
    doc["all"]["children"]["syslog"] = {"hosts": {server: None}}


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
        inventory=write_inventory(workdir / "hosts.yml", lab, with_syslog),
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


@pytest.fixture(scope="module")
def lab(suite: SuiteDeployment):
    return suite.lab


@pytest.fixture(scope="module")
def first_run(suite: SuiteDeployment) -> Path:
    """The inventory the suite was deployed with."""
    return suite.inventory


@pytest.fixture(scope="module")
def certs_root(suite: SuiteDeployment) -> Path:
    return suite.certs_root


@pytest.fixture(scope="module")
def workdir(suite: SuiteDeployment) -> Path:
    return suite.workdir


@pytest.fixture(scope="module")
def address(suite: SuiteDeployment) -> str:
    return suite.server.address


@pytest.fixture(scope="module")
def admin_password(first_run: Path) -> str:
    return yaml.safe_load(first_run.read_text())["all"]["vars"]["passwords"][
        "default_tenant_admin_user"
    ]
