"""The platform's base roles, deployed with ./deploy_psn.sh onto one emulated Debian 12 server.

common, sysctl, timezone, chrony, swarm and certificates: the result is checked on the server,
then a second run must change nothing. A broken inventory must stop before any server is
touched, and a server that already belongs to another swarm must be refused.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest
from e2e_helpers import DOMAIN, deploy, recap, summary_rows, write_inventory

from psn.names import default_domain

pytestmark = pytest.mark.e2e

ROLES = ("common", "sysctl", "timezone", "chrony", "swarm", "certificates")
NETWORKS = ("psn-db", "psn-backend", "psn-frontend", "psn-mail")
# The template puts its one host into every group of the guide.
GROUPS = (
    *("infra", "docker_registry", "db", "etcd", "redis", "postgres", "ldap"),
    *("frontend", "proxy", "backend", "mail"),
)
CERTS = {"ca.crt": "644", "server.crt": "644", "server.nopass.key": "600"}


def write_inventory_with(path: Path, lab, **passwords: str) -> Path:
    """The template inventory with these passwords set (genpwd fills the others)."""

    def set_passwords(doc) -> None:
        for key, value in passwords.items():
            doc["all"]["vars"]["passwords"][key] = value

    return write_inventory(path, lab, set_passwords)


def deploy_roles(
    inventory: Path, certs_root: Path, log_dir: Path, tags: str = ",".join(ROLES)
) -> subprocess.CompletedProcess[str]:
    return deploy(inventory, certs_root, log_dir, tags)


@pytest.fixture(scope="module")
def lab(emulated_servers):
    started = time.monotonic()
    lab = emulated_servers(1)
    print(f"\nemulated server up and reachable over SSH in {time.monotonic() - started:.1f}s")
    return lab


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("platform")


@pytest.fixture(scope="module")
def first_run(lab, certs_root, workdir):
    inventory = write_inventory(workdir / "hosts.yml", lab)
    started = time.monotonic()
    res = deploy_roles(inventory, certs_root, workdir / "run1")
    print(f"\nfirst run of the base roles: {time.monotonic() - started:.0f}s")
    assert res.returncode == 0, res.stdout + res.stderr
    return inventory, res


def test_docker_engine_answers(lab, first_run):
    [server] = lab.servers
    info = json.loads(lab.ssh(server, "docker info --format '{{json .}}'"))
    assert info["ServerVersion"]
    assert info["Driver"] == "overlay2"
    daemon = json.loads(lab.ssh(server, "cat /etc/docker/daemon.json"))
    assert daemon["live-restore"] is False
    assert daemon["log-driver"] == "json-file" and daemon["log-opts"]["max-size"]
    assert "insecure-registries" not in daemon
    modules = "import docker, yaml, jsondiff"
    assert lab.ssh(server, f"python3 -c '{modules}' && echo ok").strip() == "ok"
    assert lab.ssh(server, "command -v rsync").strip()


def test_swarm_is_active_with_labels_and_networks(lab, first_run):
    [server] = lab.servers
    state = lab.ssh(
        server, "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'"
    )
    assert state.split() == ["active", "true"]
    labels = json.loads(
        lab.ssh(server, "docker node inspect self --format '{{json .Spec.Labels}}'")
    )
    assert {group: "true" for group in GROUPS}.items() <= labels.items()
    cluster = json.loads(
        lab.ssh(server, "docker info --format '{{json .Swarm.Cluster.Spec.Labels}}'")
    )
    assert cluster == {"io.psn.installation": DOMAIN}
    for name in NETWORKS:
        net = json.loads(
            lab.ssh(server, f"docker network inspect {name} --format '{{{{json .}}}}'")
        )
        assert (net["Driver"], net["Scope"], net["Attachable"]) == ("overlay", "swarm", True)
        assert "encrypted" not in (net["Options"] or {})  # swarm_network_encryption: "False"


def test_certificates_are_installed_with_their_modes(lab, first_run, certs_root):
    [server] = lab.servers
    source = certs_root / default_domain(DOMAIN)
    listing = lab.ssh(server, "stat -c '%n %a %U' /opt/poseidon/certificates/*")
    found = {Path(n).name: (mode, owner) for n, mode, owner in map(str.split, listing.splitlines())}
    assert found == {name: (mode, "root") for name, mode in CERTS.items()}  # never ca.key
    for name in CERTS:
        remote = lab.ssh(server, f"sha256sum /opt/poseidon/certificates/{name}").split()[0]
        assert remote == hashlib.sha256((source / name).read_bytes()).hexdigest()
    # Docker trusts the registry through the installation's internal CA, not the operator's.
    registry_ca = lab.ssh(server, "cat '/etc/docker/certs.d/psn-private-registry:5001/ca.crt'")
    assert registry_ca == (source / "internal" / "ca.crt").read_text()
    trusted = lab.ssh(server, "cat /etc/ssl/certs/ca-certificates.crt")
    ca_body = "".join((source / "ca.crt").read_text().split("\n")[1:-2])
    assert ca_body in trusted.replace("\n", "")


def test_time_zone_chrony_and_kernel_settings(lab, first_run):
    [server] = lab.servers
    assert lab.ssh(server, "readlink -f /etc/localtime").strip().endswith("/Etc/UTC")
    assert lab.ssh(server, "systemctl is-active chrony").strip() == "active"
    fact = json.loads(lab.ssh(server, "cat /etc/ansible/facts.d/psn_chrony.fact"))
    assert fact["clock_control"] is False  # the emulated servers run without CAP_SYS_TIME
    assert lab.ssh(server, "cat /proc/sys/net/core/somaxconn").strip() == "4096"
    assert "net.core.somaxconn=4096" in lab.ssh(server, "cat /etc/sysctl.d/90-psn.conf")


def test_second_run_changes_nothing(lab, first_run, certs_root, workdir):
    inventory, _ = first_run
    started = time.monotonic()
    res = deploy_roles(inventory, certs_root, workdir / "run2")
    print(f"\nsecond run of the base roles: {time.monotonic() - started:.0f}s")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert set(ROLES) <= set(rows), res.stderr  # and precheck, which runs on every run
    assert {role: row["changed"] for role, row in rows.items()} == dict.fromkeys(rows, 0)
    totals = recap(workdir / "run2")
    assert totals["changed"] == 0 and totals["failed"] == 0 and totals["ok"] > 0


def test_broken_inventory_changes_nothing(emulated_servers, certs_root, tmp_path):
    fresh = emulated_servers(1, prefix="fresh")
    [server] = fresh.servers
    logins = fresh.exec(server, "journalctl", "-u", "ssh", "-o", "cat").stdout.count("Accepted")
    inventory = write_inventory_with(tmp_path / "hosts.yml", fresh, redis_user="pa$$word1")

    res = deploy_roles(inventory, certs_root, tmp_path / "logs")

    assert res.returncode == 2, res.stdout + res.stderr
    assert "passwords.redis_user" in res.stderr
    assert fresh.exec(server, "dpkg-query", "-W", "docker.io").returncode != 0
    assert fresh.exec(server, "test", "-e", "/opt/poseidon").returncode != 0
    after = fresh.exec(server, "journalctl", "-u", "ssh", "-o", "cat").stdout.count("Accepted")
    assert after == logins  # nobody logged in: no SSH session was even opened


def test_server_of_another_swarm_is_refused(lab, first_run, certs_root, workdir):
    """Runs last: it replaces the server's swarm by a foreign one."""
    inventory, _ = first_run
    [server] = lab.servers
    lab.ssh(
        server, f"docker swarm leave --force && docker swarm init --advertise-addr {server.address}"
    )
    cluster_id = lab.ssh(server, "docker info --format '{{.Swarm.Cluster.ID}}'").strip()

    res = deploy_roles(inventory, certs_root, workdir / "foreign", tags="swarm")

    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert f"{server.name} already belongs to another Docker swarm" in message
    assert cluster_id in message and "docker swarm leave --force" in message
