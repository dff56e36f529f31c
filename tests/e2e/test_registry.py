"""The docker_registry role on two emulated Debian 12 servers, deployed with ./deploy_psn.sh.

Server 1 carries every role (and so the registry), server 2 is a second proxy host. A small image
archive (psn/registry and psn/etcd, built here when missing, saved as `images save` does) stands
in for the distribution's. After the first run the registry answers over TLS signed by the
installation-internal CA, server 2 pulls an image from it with Docker verifying that certificate
(no insecure-registries) and gets the installer's image, nothing was pushed (the archive's
storage was unpacked), and a second run with the same archive changes nothing.
"""

from __future__ import annotations

import json
import re
import shlex
import tarfile
import time
from pathlib import Path

import pytest
from e2e_helpers import (
    DOMAIN,
    VERSION,
    deploy,
    image_archive,
    newest_log,
    print_summary,
    recap,
    summary_rows,
    write_inventory,
)

from psn import images
from psn.names import default_domain

pytestmark = pytest.mark.e2e

REGISTRY = "psn-private-registry:5001"
ARCHIVE_IMAGES = ("registry", "etcd")
ROLES = ("common", "swarm", "certificates", "docker_registry")
CERTS_D_CA = f"/etc/docker/certs.d/{REGISTRY}/ca.crt"
MANIFEST_PUT = re.compile(r'"PUT /v2/psn/[^ ]+/manifests/')


def installer_id(name: str) -> str:
    """The image ID of psn/<name>:<version> on this (the installer) machine."""
    tag = images.image_tag(name, VERSION)
    return images.image_ids([tag])[tag]


def write_two_server_inventory(path: Path, lab) -> Path:
    """The template inventory: server 1 in every group, server 2 a second proxy host."""

    def add_second(doc) -> None:
        doc["all"]["children"]["frontend"]["children"]["proxy"]["hosts"][lab.servers[1].name] = None

    return write_inventory(path, lab, add_second)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A small image archive: psn/registry and psn/etcd of this version (built when missing)."""
    return image_archive(tmp_path_factory.mktemp("archive"), ARCHIVE_IMAGES)


@pytest.fixture(scope="module")
def lab(emulated_servers):
    started = time.monotonic()
    lab = emulated_servers(2, prefix="reg")
    print(f"\n2 emulated servers up in {time.monotonic() - started:.1f}s")
    return lab


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="module")
def first_run(lab, archive, certs_root, workdir):
    inventory = write_two_server_inventory(workdir / "hosts.yml", lab)
    started = time.monotonic()
    res = deploy(
        inventory,
        certs_root,
        workdir / "run1",
        ",".join(ROLES),
        "-e",
        f"docker_registry__archive={archive}",
    )
    print_summary(f"first run ({', '.join(ROLES)})", res, time.monotonic() - started)
    assert res.returncode == 0, res.stdout + res.stderr
    return inventory


def registry_run(inventory: Path, certs_root: Path, log_dir: Path, archive: Path):
    """`./deploy_psn.sh <inventory> -t docker_registry` with the registry loaded from `archive`."""
    return deploy(
        inventory,
        certs_root,
        log_dir,
        "docker_registry",
        "-e",
        f"docker_registry__archive={archive}",
    )


def internal_dir(certs_root: Path) -> Path:
    return certs_root / default_domain(DOMAIN) / "internal"


def test_internal_ca_stays_on_the_installer(lab, first_run, certs_root):
    internal = internal_dir(certs_root)
    assert (internal / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (internal / "psn-private-registry.key").stat().st_mode & 0o777 == 0o600
    ca_pem = (internal / "ca.crt").read_text()
    operator_ca = (certs_root / default_domain(DOMAIN) / "ca.crt").read_text()
    assert ca_pem != operator_ca
    key_line = (internal / "ca.key").read_text().splitlines()[1]
    for server in lab.servers:
        # Docker and the system trust the internal CA; no CA key is anywhere on a server.
        assert lab.ssh(server, f"cat '{CERTS_D_CA}'") == ca_pem
        trusted = lab.ssh(server, "cat /etc/ssl/certs/ca-certificates.crt").replace("\n", "")
        assert "".join(ca_pem.splitlines()[1:-1]) in trusted
        found = lab.ssh(
            server, f"grep -rlF '{key_line}' /etc /opt /root /tmp /var/tmp; echo rc=$?", check=False
        )
        assert found.strip() == "rc=1", found
        daemon = json.loads(lab.ssh(server, "cat /etc/docker/daemon.json"))
        assert "insecure-registries" not in daemon


def test_registry_runs_as_a_plain_container_with_tls(lab, first_run):
    first, _ = lab.servers
    info = json.loads(lab.ssh(first, "docker inspect psn-private-registry"))[0]
    assert info["Config"]["Image"] == f"psn/registry:{VERSION}"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert "com.docker.swarm.service.id" not in info["Config"]["Labels"]
    assert info["HostConfig"]["PortBindings"]["5001/tcp"][0]["HostPort"] == "5001"
    assert not any("KEY" in e.upper() and "=" in e for e in info["Config"]["Env"])
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/var/lib/docker-registry"]["Type"] == "volume"
    for path in ("/run/secrets/registry.key", "/run/secrets/registry.crt"):
        assert mounts[path]["RW"] is False
    assert (
        mounts["/etc/docker/registry/config.yml"]["Source"] == "/opt/poseidon/registry/config.yml"
    )
    modes = lab.ssh(first, "stat -c '%n %a %u' /opt/poseidon/registry/tls/*").split("\n")
    assert sorted(filter(None, modes)) == [
        "/opt/poseidon/registry/tls/registry.crt 640 901",
        "/opt/poseidon/registry/tls/registry.key 600 901",
    ]
    # The image's own healthcheck passes over TLS (its first probe comes after 30 s).
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline:
        state = lab.ssh(
            first, "docker inspect -f '{{.State.Health.Status}}' psn-private-registry"
        ).strip()
        if state == "healthy":
            break
        time.sleep(3)
    assert state == "healthy"


def https_get(lab, server, url: str, cafile: str | None = None) -> str:
    """GET `url` from `server` with Python (the servers have no curl): "<status> <body>" or the
    TLS error. Without `cafile` the system trust store verifies the certificate."""
    script = (
        "import ssl, sys, urllib.request\n"
        "ctx = ssl.create_default_context(cafile=sys.argv[2] or None)\n"
        "try:\n"
        "    r = urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10)\n"
        "    print(r.status, r.read().decode())\n"
        "except Exception as exc:\n"
        "    print('error', exc)\n"
    )
    return lab.ssh(server, f"python3 -c {shlex.quote(script)} {url} '{cafile or ''}'").strip()


def test_server_two_reaches_the_registry_over_verified_tls(lab, first_run):
    first, second = lab.servers
    hosts = lab.ssh(second, "getent hosts psn-private-registry").split()
    assert hosts[0] == first.address
    # The system trust store holds the internal CA; Docker's certs.d too.
    assert https_get(lab, second, f"https://{REGISTRY}/v2/") == "200 {}"
    catalog = https_get(lab, second, f"https://{REGISTRY}/v2/_catalog", CERTS_D_CA)
    assert catalog.startswith("200 ")
    # The operator's CA did not sign the registry's certificate: verification is really on.
    refused = https_get(lab, second, f"https://{REGISTRY}/v2/", "/opt/poseidon/certificates/ca.crt")
    assert refused.startswith("error") and "CERTIFICATE_VERIFY_FAILED" in refused, refused


def test_server_two_pulls_an_image(lab, first_run):
    first, second = lab.servers
    image = f"{REGISTRY}/psn/etcd:{VERSION}"
    lab.ssh(second, f"docker pull -q {image}")
    pulled = lab.ssh(second, f"docker image inspect -f '{{{{.Id}}}}' {image}").strip()
    assert pulled == installer_id("etcd")
    # Only the registry's own image was loaded on its host; the others were never pushed there.
    assert lab.ssh(first, "docker images -q psn/etcd").strip() == ""
    assert not MANIFEST_PUT.findall(lab.ssh(first, "docker logs psn-private-registry 2>&1"))
    status, body = https_get(lab, second, f"https://{REGISTRY}/v2/_catalog").split(" ", 1)
    assert status == "200"
    assert {"psn/etcd", "psn/registry"} <= set(json.loads(body)["repositories"])


def test_second_run_unpacks_nothing(lab, first_run, certs_root, workdir, archive):
    started = time.monotonic()
    res = registry_run(first_run, certs_root, workdir / "run2", archive)
    print_summary("second run (docker_registry)", res, time.monotonic() - started)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert "docker_registry" in rows, res.stderr
    assert {role: row["changed"] for role, row in rows.items()} == dict.fromkeys(rows, 0)
    totals = recap(workdir / "run2")
    assert totals["changed"] == 0 and totals["failed"] == 0 and totals["ok"] > 0
    assert "restored from the archive in this run: none" in newest_log(workdir / "run2")


def test_a_foreign_image_under_a_tag_is_replaced(lab, first_run, certs_root, workdir, archive):
    """The registry holds another image under psn/etcd:<v>: the next run restores etcd's tag."""
    _, second = lab.servers
    etcd, wrong = f"{REGISTRY}/psn/etcd:{VERSION}", f"{REGISTRY}/psn/registry:{VERSION}"
    lab.ssh(second, f"docker pull -q {wrong} && docker tag {wrong} {etcd} && docker push -q {etcd}")
    res = registry_run(first_run, certs_root, workdir / "run3", archive)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"restored from the archive in this run: psn/etcd:{VERSION}." in newest_log(
        workdir / "run3"
    )
    lab.ssh(second, f"docker rmi -f {etcd} >/dev/null && docker pull -q {etcd}")
    pulled = lab.ssh(second, f"docker image inspect -f '{{{{.Id}}}}' {etcd}").strip()
    assert pulled == installer_id("etcd")


def test_missing_archive_is_refused_with_the_fix(lab, first_run, certs_root, workdir):
    missing = workdir / "nowhere" / f"psn-images-{VERSION}.tar"
    res = registry_run(first_run, certs_root, workdir / "run4", missing)
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert str(missing) in message and "images build" in message and "images save" in message


def test_an_archive_of_another_format_is_refused_before_copying(
    lab, first_run, certs_root, workdir
):
    """A plain `docker save` archive (the format of earlier releases) stops the run with the fix,
    before anything is copied to the registry host."""
    first, _ = lab.servers
    plain = workdir / f"psn-images-{VERSION}.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(Path(__file__), arcname="manifest.json")
    before = lab.ssh(first, "ls /opt/poseidon/registry/archive/")
    res = registry_run(first_run, certs_root, workdir / "run5", plain)
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert str(plain) in message and "images.json" in message and "images save" in message
    assert lab.ssh(first, "ls /opt/poseidon/registry/archive/") == before
