"""The base roles (common, sysctl, timezone, chrony, swarm, certificates) on the suite's server.

The Docker engine and its settings, the swarm with its labels and networks, the certificates
with their modes, the time zone, chrony and the kernel settings, as the roles left them; the
suite's re-run (test_suite.py) shows that they change nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from e2e_helpers import DOMAIN

from psn.names import default_domain

pytestmark = pytest.mark.e2e

NETWORKS = ("psn-db", "psn-backend", "psn-frontend", "psn-mail")
# The template puts its one host into every group of the guide.
GROUPS = (
    *("infra", "docker_registry", "db", "etcd", "redis", "postgres", "ldap"),
    *("frontend", "proxy", "backend", "mail", "syslog"),
)
CERTS = {"ca.crt": "644", "server.crt": "644", "server.nopass.key": "600"}


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
