"""Offline servers: the common role installs from the distribution's apt repository only.

The repository is built (or reused) in offline/apt/ as `deploy_psn dist build --offline` does.
One emulated Debian 12 server gets its Debian mirror made unreachable (/etc/hosts entries to
the loopback address) before anything is deployed; `./deploy_psn.sh -t common` with
`offline: "True"` must still install the Docker engine, leave the local repository as apt's only
source and change nothing on a second run. Without the repository the run stops early with the
fix; `offline: "False"` gives the server its own sources back; a swarm the server joined outside
PSN is refused. The wheels of the installer must build a virtualenv with no package index.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e_helpers import ROOT, deploy, recap, write_inventory

from psn import __version__, images, offline

pytestmark = pytest.mark.e2e

MIRRORS = ("deb.debian.org", "security.debian.org")
BLOCK_MARK = "# psn-e2e: no mirror"
REPO_ON_SERVER = "/opt/poseidon/offline/apt"
APT_CONF = "/etc/apt/apt.conf.d/00psn-offline"


def write_offline_inventory(path: Path, lab, offline_flag: str) -> Path:
    """The template inventory with `offline` set."""

    def set_offline(doc) -> None:
        doc["all"]["vars"]["offline"] = offline_flag

    return write_inventory(path, lab, set_offline)


def deploy_common(inventory: Path, certs_root: Path, log_dir: Path, *extra: str):
    """`./deploy_psn.sh deploy -t common` as an operator runs it; output captured."""
    started = time.monotonic()
    res = deploy(inventory, certs_root, log_dir, "common", *extra)
    print(f"\n{log_dir.name}: deploy -t common in {time.monotonic() - started:.0f}s")
    return res


def apt_sources(lab, server) -> set[str]:
    """The archive URIs apt reads on the server (from `apt-cache policy`)."""
    policy = lab.ssh(server, "apt-cache policy")
    return set(re.findall(r"^\s+\d+\s+((?:https?|file):\S+)", policy, re.MULTILINE))


@pytest.fixture(scope="module")
def repo():
    """offline/apt/ of this tree, built as `dist build --offline` builds it (or reused)."""
    if not images.engine_answers():
        pytest.skip("no Docker engine answers: start one with `bash .ci/docker-engine.sh`")
    result = offline.build_apt_repo(ROOT, __version__, progress=print)
    how = "reused" if result.cached else f"built, {result.downloaded} packages downloaded"
    print(
        f"\noffline/apt: {result.packages} packages, {result.size / 1e6:.0f} MB, {how} "
        f"in {result.seconds:.0f}s {result.note}"
    )
    return result


@pytest.fixture(scope="module")
def lab(emulated_servers, repo):
    lab = emulated_servers(1, prefix="offline")
    [server] = lab.servers
    loopback = ("127.0.0.1", "::1")
    lines = "".join(f"{ip}\t{name} {BLOCK_MARK}\n" for name in MIRRORS for ip in loopback)
    lab.exec(server, "sh", "-c", 'printf "%s" "$1" >>/etc/hosts', "sh", lines)
    return lab


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("offline")


@pytest.fixture(scope="module")
def first_run(lab, certs_root, workdir):
    [server] = lab.servers
    # The premise: this server cannot reach Debian's mirror.
    assert lab.exec(server, "getent", "hosts", "deb.debian.org").stdout.split()[0] in (
        "127.0.0.1",
        "::1",
    )
    update = lab.exec(server, "apt-get", "update", "-q", "--error-on=any")
    assert update.returncode != 0, update.stdout
    inventory = write_offline_inventory(workdir / "hosts.yml", lab, "True")
    res = deploy_common(inventory, certs_root, workdir / "run1")
    assert res.returncode == 0, res.stdout + res.stderr
    return inventory


def test_docker_engine_comes_from_the_local_repository(lab, first_run):
    [server] = lab.servers
    status = lab.ssh(server, "dpkg-query -W -f '${db:Status-Abbrev}' docker.io python3-docker")
    assert status.split() == ["ii", "ii"]
    assert lab.ssh(server, "docker info --format '{{.ServerVersion}}'").strip()
    modules = "import docker, yaml, jsondiff"
    assert lab.ssh(server, f"python3 -c '{modules}' && echo ok").strip() == "ok"
    assert lab.ssh(server, "command -v rsync").strip()
    policy = lab.ssh(server, "apt-cache policy docker.io")
    assert f"file:{REPO_ON_SERVER}" in policy


def test_the_local_repository_is_the_only_apt_source(lab, first_run):
    [server] = lab.servers
    assert apt_sources(lab, server) == {f"file:{REPO_ON_SERVER}"}
    # The system's own sources are untouched on disk, only ignored.
    assert lab.exec(server, "test", "-s", "/etc/apt/sources.list.d/debian.sources").returncode == 0
    assert lab.exec(server, "test", "-f", APT_CONF).returncode == 0
    check = f"cd {REPO_ON_SERVER} && sha256sum --check --quiet SHA256SUMS && echo ok"
    assert lab.ssh(server, check).strip() == "ok"


def test_second_run_changes_nothing(first_run, certs_root, workdir):
    res = deploy_common(first_run, certs_root, workdir / "run2")
    assert res.returncode == 0, res.stdout + res.stderr
    totals = recap(workdir / "run2")
    assert totals["changed"] == 0 and totals["failed"] == 0 and totals["ok"] > 0


def test_a_distribution_without_the_repository_stops_early(lab, first_run, certs_root, workdir):
    res = deploy_common(
        first_run, certs_root, workdir / "missing", "-e", "common__offline_source=/nonexistent"
    )
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert "/nonexistent/SHA256SUMS does not exist" in message
    assert "dist build --offline" in message


def test_offline_false_gives_apt_its_sources_back(lab, first_run, certs_root, workdir):
    """Runs last: the mirror becomes reachable again."""
    [server] = lab.servers
    # /etc/hosts is a bind mount: rewrite it in place (sed -i would replace the file).
    unblock = f'grep -v "{BLOCK_MARK}" /etc/hosts >/tmp/hosts && cat /tmp/hosts >/etc/hosts'
    assert lab.exec(server, "sh", "-c", unblock).returncode == 0
    inventory = write_offline_inventory(workdir / "online.yml", lab, "False")
    res = deploy_common(inventory, certs_root, workdir / "online")
    assert res.returncode == 0, res.stdout + res.stderr
    assert lab.exec(server, "test", "-e", APT_CONF).returncode != 0
    assert lab.exec(server, "test", "-e", "/opt/poseidon/offline").returncode != 0
    sources = apt_sources(lab, server)
    assert any("deb.debian.org" in uri for uri in sources), sources
    assert not any(uri.startswith("file:") for uri in sources), sources


def test_server_of_another_swarm_is_refused(lab, first_run, certs_root, workdir):
    """Runs after the other tests of the server: it puts the server into a swarm of its own."""
    [server] = lab.servers
    lab.ssh(server, f"docker swarm init --advertise-addr {server.address} >/dev/null")
    cluster_id = lab.ssh(server, "docker info --format '{{.Swarm.Cluster.ID}}'").strip()

    res = deploy(first_run, certs_root, workdir / "foreign", "swarm")

    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert f"{server.name} already belongs to another Docker swarm" in message
    assert cluster_id in message and "docker swarm leave --force" in message


def test_wheels_build_the_virtualenv_without_an_index(tmp_path):
    """The wheels of `dist build --offline` install the installer with pip's index off."""
    result = offline.build_wheels(ROOT, out_dir=tmp_path / "wheels")
    print(f"\nwheels: {result.wheels} files, {result.size / 1e6:.0f} MB in {result.seconds:.0f}s")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no configured index or find-links may help
    res = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(tmp_path / "wheels"),
            "--editable",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    version = subprocess.run(
        [str(venv / "bin" / "deploy_psn"), "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in version.stdout
