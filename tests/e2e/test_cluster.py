"""The cluster topology on three emulated Debian 12 servers, deployed with ./deploy_psn.sh.

All three servers are Swarm managers; server 1 carries every standalone role and the registry, the
etcd group has all three (guide §5.2: psn-etcd_etcd1..etcd3), the postgres group servers 1 and 2
(psn-postgres_postgres1/2 under Patroni, psn-postgres_haproxy on both), the redis group servers 1
and 2 (psn-redis_redis1/2) with a Sentinel on each etcd host, the ldap group servers 1 and 2
(psn-ldap_ldap1/2, two-way 389-ds suppliers), the mail group servers 1 and 2 (Postfix, Rspamd and
ClamAV on both, psn-mail_dovecot1/2 replicating by dsync), the backend and proxy groups all three
(SOGo, the PSN API, autoconfig, the frontends and nginx on each). A small image archive stands in
for the distribution's. After the first run: the registry answers over TLS of the
installation-internal CA and the other servers pull from it (nothing pushed, a second registry run
unpacks nothing, a foreign image under a tag is replaced, a missing or old-format archive is
refused before anything is copied); one etcd member per server, pinned to its host, peers on TLS
refusing a peer without a certificate of the internal CA; Patroni has a leader and a synchronous
replica and the PSN user writes through HAProxy; Redis has a primary, a replica and three
Sentinels; an entry added on either 389-ds supplier is read on the other; both mail hosts run
Postfix, Rspamd and ClamAV and sign with one DKIM key; a mail accepted on port 25 of either is read
on both Dovecot members; a webmail login works through each server's proxy; `verify` passes;
`status` shows every replicated member in sync. Then the drills: server 3 loses power under SMTP
load and etcd keeps taking writes, webmail logins and mail go on through the others, the returning
member catches up by itself and every accepted mail is on both Dovecot members, once; the server of
Redis' and PostgreSQL's primaries loses power under SMTP load on both mail hosts: both take writes
again within 30 s with no acknowledged row lost, the surviving 389-ds supplier takes a user created
through the PSN API and answers as "ldap", the surviving mail host accepts mail within 60 s,
webmail logins work through a surviving proxy within 60 s, `status` names the lost server, and the
old primaries return as replicas, the lost supplier with the entry written meanwhile, the other
Dovecot takes no delivery once the first opened LMTP again, and every accepted mail is on both
Dovecot members, once; a run afterwards restarts nothing
(the only re-run: after the drills it finds more to re-place than one straight after the first run
would). Opt-in (PSN_E2E_ALL_DRILLS=1, bench/cluster.sh; beyond CI's time budget): the primary
drill again on the other server of the pair (where it left the primaries, with the second Dovecot
member), so that each server loses power once; last, server 3 dies for good and a new, empty
server under its name and address takes its place in the swarm, etcd and the Sentinels with one
run.
"""

from __future__ import annotations

import datetime
import imaplib
import json
import os
import re
import shlex
import smtplib
import ssl
import tarfile
import threading
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from e2e_helpers import (
    DOMAIN,
    VERSION,
    deploy,
    deploy_psn,
    image_archive,
    newest_log,
    print_summary,
    recap,
    summary_rows,
    write_inventory,
)

from psn import emulated, images
from psn.api_client import ApiClient, tls_context
from psn.inventory import load_inventory
from psn.names import default_domain
from psn.verify import CheckFailed, WebSession, sogo_login, target_of

pytestmark = pytest.mark.e2e

ARCHIVE_IMAGES = (
    *("registry", "etcd", "patroni", "haproxy", "redis", "ldap"),
    *("postfix", "dovecot", "rspamd", "clamav"),
    *("sogo", "memcached", "psnapi", "web", "proxy", "syslog-ng"),
)
ROLES = ("common", "sysctl", "timezone", "chrony", "swarm", "certificates", "docker_registry")
CLUSTERED = ("etcd", "postgres", "redis", "ldap", "syslog", "mail", "backend", "frontend", "proxy")
TAGS = ",".join((*ROLES, *CLUSTERED))
# ClamAV's databases: the image tests' own (the public mirror is unreachable).
CLAMAV_TEST_DB = Path(__file__).parents[1] / "images" / "fixtures" / "clamav" / "db"
MEMBERS = ("etcd1", "etcd2", "etcd3")
PEER_PORT = 2380
ENDPOINTS = ",".join(f"http://{m}:2379" for m in MEMBERS)
RECOVERY_TIMEOUT = 180  # seconds for a server that lost power to run its member again
REGISTRY = "psn-private-registry:5001"
CERTS_D_CA = f"/etc/docker/certs.d/{REGISTRY}/ca.crt"
MANIFEST_PUT = re.compile(r'"PUT /v2/psn/[^ ]+/manifests/')
PG_MEMBERS = ("postgres1", "postgres2")
PG_WRITES_BACK = 30  # seconds until writes work again after the primary's server died (issue 16)
REDIS_MEMBERS = ("redis1", "redis2")
SENTINELS = ("redis-sentinel1", "redis-sentinel2", "redis-sentinel3")
REDIS_WRITES_BACK = 30  # seconds until Redis takes writes again after its primary's server died
LDAP_MEMBERS = ("ldap1", "ldap2")
LDAPI = "ldapi://%2fdata%2frun%2fslapd-localhost.socket"  # SASL EXTERNAL: Directory Manager
DOVECOT_MEMBERS = ("dovecot1", "dovecot2")
LDAP_REPLICATED = 10  # seconds for a write on one 389-ds supplier to be read on the other
MAIL_BACK = 60  # seconds until a surviving mail host accepts mail after a server died (issue 16)
MAIL_REPLICATED_BACK = 300  # seconds for both Dovecot members to hold every accepted mail
LOAD_AFTER_POWER_ON = 60  # seconds the SMTP load goes on after the lost server is powered on
WEBMAIL_BACK = 60  # seconds until webmail logins work through a surviving proxy (issue 16)
# The web tier's services, one task on every backend/frontend host (mode every_host).
WEB_SERVICES = (
    *("psn-backend_sogo", "psn-backend_psnapi", "psn-backend_autoconfig"),
    *("psn-frontend_web_mail", "psn-frontend_web_admin", "psn-nginx-proxy_nginx"),
)


# The drills' figures by name, written as JSON to $PSN_BENCH_FIGURES at the module's end
# (bench/cluster.sh turns them into docs/benchmarks.md's cluster section).
FIGURES: dict[str, float | int | str] = {}
# The drills CI leaves out for its time budget; bench/cluster.sh runs them (PSN_E2E_ALL_DRILLS=1).
ALL_DRILLS = pytest.mark.skipif(
    os.environ.get("PSN_E2E_ALL_DRILLS") != "1",
    reason="runs with PSN_E2E_ALL_DRILLS=1 (bench/cluster.sh): beyond CI's 75-minute budget",
)


def measured(name: str, value: float | int, line: str) -> None:
    """Print `line` in the test output and keep `value` as the figure `name` (a drill run
    twice: both, in order)."""
    FIGURES[name] = f"{FIGURES[name]}, {value}" if name in FIGURES else value
    print(line)


@pytest.fixture(scope="module", autouse=True)
def bench_figures():
    yield
    if out := os.environ.get("PSN_BENCH_FIGURES"):
        Path(out).write_text(json.dumps(FIGURES, indent=2) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return image_archive(tmp_path_factory.mktemp("archive"), ARCHIVE_IMAGES)


@pytest.fixture(scope="module")
def lab(emulated_servers):
    started = time.monotonic()
    lab = emulated_servers(3, prefix="node")
    print(f"\n3 emulated servers up in {time.monotonic() - started:.1f}s")
    return lab


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cluster")


def cluster_inventory(path: Path, lab) -> Path:
    """The template inventory with server 1 in every group, all three in etcd, proxy and
    backend, 1 and 2 in postgres, redis, ldap and mail, syslog on server 3."""

    def cluster(doc) -> None:
        db = doc["all"]["children"]["db"]["children"]
        db["etcd"]["hosts"] = {s.name: {"volume_device_etcd": "False"} for s in lab.servers}
        db["postgres"]["hosts"] = {
            s.name: {"volume_device_postgres": "False"} for s in lab.servers[:2]
        }
        db["redis"]["hosts"] = {s.name: None for s in lab.servers[:2]}
        db["ldap"]["hosts"] = {s.name: None for s in lab.servers[:2]}
        doc["all"]["children"]["mail"]["hosts"] = {s.name: None for s in lab.servers[:2]}
        doc["all"]["children"]["backend"]["hosts"] = {s.name: None for s in lab.servers}
        proxy = doc["all"]["children"]["frontend"]["children"]["proxy"]
        proxy["hosts"] = {s.name: None for s in lab.servers}
        doc["all"]["children"]["syslog"] = {"hosts": {lab.servers[2].name: None}}

    return write_inventory(path, lab, cluster)


def run(inventory: Path, certs_root: Path, log_dir: Path, archive: Path):
    return deploy(
        inventory,
        certs_root,
        log_dir,
        TAGS,
        *("-e", f"docker_registry__archive={archive}"),
        *("-e", f"mail__clamav_databases_dir={CLAMAV_TEST_DB}"),
    )


@pytest.fixture(scope="module")
def first_run(lab, archive, certs_root, workdir):
    inventory = cluster_inventory(workdir / "hosts.yml", lab)
    started = time.monotonic()
    res = run(inventory, certs_root, workdir / "run1", archive)
    seconds = time.monotonic() - started
    print_summary(f"first run ({TAGS})", res, seconds)
    FIGURES["first_run_s"] = round(seconds)
    assert res.returncode == 0, res.stdout + res.stderr
    return inventory


def container(lab, server, service: str) -> str:
    """The running container of `service` on `server`."""
    cid = lab.ssh(
        server,
        f"docker ps -q --filter label=com.docker.swarm.service.name={service}"
        " --filter status=running",
    ).strip()
    assert cid, f"no running container of {service} on {server.name}"
    return cid


def etcdctl(lab, member: str, args: str, *, server=None) -> str:
    """`etcdctl <args>` in the member's container, on the server that runs it."""
    server = server or lab.servers[MEMBERS.index(member)]
    cid = container(lab, server, f"psn-etcd_{member}")
    return lab.ssh(
        server, f"docker exec {cid} etcdctl --command-timeout=5s {args} 2>&1", check=False
    ).strip()


def service_updates(lab) -> dict[str, str]:
    """Service name -> UpdatedAt of every service of the swarm."""
    out = lab.ssh(
        lab.servers[0],
        "docker service ls -q | xargs -r docker service inspect "
        "--format '{{.Spec.Name}} {{.UpdatedAt}}'",
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def installer_id(name: str) -> str:
    """The image ID of psn/<name>:<version> on this (the installer) machine."""
    tag = images.image_tag(name, VERSION)
    return images.image_ids([tag])[tag]


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


def swarm_nodes(lab, fields: str) -> list[tuple[str, ...]]:
    """`fields` (Go template fields of `docker node inspect`, space-separated) of every node,
    seen from server 1: one tuple per node, sorted."""
    out = lab.ssh(
        lab.servers[0], f"docker node ls -q | xargs docker node inspect --format '{fields}'"
    )
    return sorted(tuple(line.split()) for line in out.splitlines())


def test_every_server_is_a_manager_with_its_host_label(lab, first_run):
    nodes = swarm_nodes(
        lab, '{{.Description.Hostname}} {{.Spec.Role}} {{index .Spec.Labels "psn-host"}}'
    )
    assert nodes == [(s.name, "manager", s.name) for s in lab.servers]


def test_one_member_per_server_each_pinned_to_its_host(lab, first_run):
    for member, server in zip(MEMBERS, lab.servers, strict=True):
        out = lab.ssh(
            lab.servers[0],
            f"docker service ps psn-etcd_{member} --filter desired-state=running "
            "--format '{{.Node}} {{.CurrentState}}'",
        )
        assert out.split()[0:2] == [server.name, "Running"], out
    services = service_updates(lab)
    assert "psn-etcd_etcd" not in services
    assert {f"psn-etcd_{m}" for m in MEMBERS} <= set(services)


def test_the_members_form_one_cluster_with_tls_peers(lab, first_run):
    members = json.loads(etcdctl(lab, "etcd1", "member list -w json"))["members"]
    peers = {m["name"]: m["peerURLs"] for m in members}
    assert peers == {
        member: [f"https://{server.address}:{PEER_PORT}"]
        for member, server in zip(MEMBERS, lab.servers, strict=True)
    }
    health = etcdctl(lab, "etcd1", f"--endpoints={ENDPOINTS} endpoint health")
    assert health.count("is healthy") == 3, health


def test_a_write_on_one_member_is_read_on_another(lab, first_run):
    assert etcdctl(lab, "etcd1", "put /psn/e2e/written-on etcd1") == "OK"
    assert etcdctl(lab, "etcd3", "get --print-value-only /psn/e2e/written-on") == "etcd1"


PEER_PROBE = """
import socket, ssl, sys
address, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile="/root/e2e-peer/ca.crt")
context.check_hostname = False
if cert != "-":
    context.load_cert_chain(cert, key)
try:
    with socket.create_connection((address, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            tls.sendall(b"GET /members HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            print(tls.recv(65536).decode(errors="replace") or "refused")
except (ssl.SSLError, ConnectionError) as error:
    print("refused", error)
"""


def test_the_peer_port_wants_a_certificate_of_the_internal_ca(lab, first_run, certs_root):
    """From server 1 to member 2's peer port: server 1's member certificate gets an answer;
    no certificate, or one of another CA (the operator's), gets none."""
    domain_dir = certs_root / default_domain(DOMAIN)
    files = {
        "ca.crt": domain_dir / "internal" / "ca.crt",
        "member.crt": domain_dir / "internal" / "etcd-peer-node1.crt",
        "member.key": domain_dir / "internal" / "etcd-peer-node1.key",
        "other.crt": domain_dir / "server.crt",
        "other.key": domain_dir / "server.nopass.key",
    }
    first, address = lab.servers[0], lab.servers[1].address
    copy = "; ".join(
        f"printf %s {shlex.quote(path.read_text())} > /root/e2e-peer/{name}"
        for name, path in files.items()
    )
    lab.ssh(first, f"install -d -m 0700 /root/e2e-peer; {copy}")
    try:

        def probe(cert: str, key: str) -> str:
            return lab.ssh(
                first,
                f"python3 -c {shlex.quote(PEER_PROBE)} {address} {PEER_PORT} {cert} {key}",
                check=False,
            )

        member = probe("/root/e2e-peer/member.crt", "/root/e2e-peer/member.key")
        assert member.startswith("HTTP/1.1 200") and "etcd2" in member, member
        assert probe("-", "-").startswith("refused")
        assert probe("/root/e2e-peer/other.crt", "/root/e2e-peer/other.key").startswith("refused")
    finally:
        lab.ssh(first, "rm -rf /root/e2e-peer", check=False)


GONE = ": No such file or directory"  # grep's message for a file deleted while it searched


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
            server,
            f"grep -rlF '{key_line}' /etc /opt /root /tmp /var/tmp 2>&1; echo rc=$?",
            check=False,
        ).splitlines()
        # Exit 2 with "No such file or directory" only: a file went away during the search.
        assert found[-1] in ("rc=1", "rc=2"), found
        assert not [line for line in found[:-1] if not line.endswith(GONE)], found
        daemon = json.loads(lab.ssh(server, "cat /etc/docker/daemon.json"))
        assert "insecure-registries" not in daemon


def test_registry_runs_as_a_plain_container_with_tls(lab, first_run):
    first = lab.servers[0]
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


def test_server_two_reaches_the_registry_over_verified_tls(lab, first_run):
    first, second = lab.servers[:2]
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
    first, second = lab.servers[:2]
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


def test_a_registry_run_unpacks_nothing(lab, first_run, certs_root, workdir, archive):
    started = time.monotonic()
    res = registry_run(first_run, certs_root, workdir / "registry-run2", archive)
    print_summary("second run (docker_registry)", res, time.monotonic() - started)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert "docker_registry" in rows, res.stderr
    assert {role: row["changed"] for role, row in rows.items()} == dict.fromkeys(rows, 0)
    totals = recap(workdir / "registry-run2")
    assert totals["changed"] == 0 and totals["failed"] == 0 and totals["ok"] > 0
    assert "restored from the archive in this run: none" in newest_log(workdir / "registry-run2")


def test_a_foreign_image_under_a_tag_is_replaced(lab, first_run, certs_root, workdir, archive):
    """The registry holds another image under psn/etcd:<v>: the next run restores etcd's tag."""
    second = lab.servers[1]
    etcd, wrong = f"{REGISTRY}/psn/etcd:{VERSION}", f"{REGISTRY}/psn/registry:{VERSION}"
    lab.ssh(second, f"docker pull -q {wrong} && docker tag {wrong} {etcd} && docker push -q {etcd}")
    res = registry_run(first_run, certs_root, workdir / "registry-run3", archive)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"restored from the archive in this run: psn/etcd:{VERSION}." in newest_log(
        workdir / "registry-run3"
    )
    lab.ssh(second, f"docker rmi -f {etcd} >/dev/null && docker pull -q {etcd}")
    pulled = lab.ssh(second, f"docker image inspect -f '{{{{.Id}}}}' {etcd}").strip()
    assert pulled == installer_id("etcd")


def test_missing_archive_is_refused_with_the_fix(lab, first_run, certs_root, workdir):
    missing = workdir / "nowhere" / f"psn-images-{VERSION}.tar"
    res = registry_run(first_run, certs_root, workdir / "registry-run4", missing)
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert str(missing) in message and "images build" in message and "images save" in message


def test_an_archive_of_another_format_is_refused_before_copying(
    lab, first_run, certs_root, workdir
):
    """A plain `docker save` archive (the format of earlier releases) stops the run with the fix,
    before anything is copied to the registry host."""
    first = lab.servers[0]
    plain = workdir / f"psn-images-{VERSION}.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(Path(__file__), arcname="manifest.json")
    before = lab.ssh(first, "ls /opt/poseidon/registry/archive/")
    res = registry_run(first_run, certs_root, workdir / "registry-run5", plain)
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert str(plain) in message and "images.json" in message and "images save" in message
    assert lab.ssh(first, "ls /opt/poseidon/registry/archive/") == before


def wait_for(what: str, check, timeout: float, interval: float = 2) -> float:
    """Seconds from now to the start of the first check() that is true (when the thing
    checked worked, not when the check's own round trip ended); fails naming `what` after
    `timeout`."""
    started = time.monotonic()
    while True:
        attempt = time.monotonic()
        if check():
            return attempt - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def test_writes_go_on_when_a_server_loses_power_and_its_member_catches_up(
    lab, first_run, certs_root
):
    """Server 3 (an etcd member, a Sentinel, the web tier, the syslog host) loses power under
    SMTP load on both mail hosts: etcd takes writes, a webmail login works through server 1's
    proxy, mail goes on being accepted, and the returning member catches up by itself; every
    accepted mail is on both Dovecot members afterwards."""
    lost = lab.servers[2]
    load = SmtpLoad(lab.servers[:2], f"e2e-load3-{int(time.time())}")
    load.start()
    wait_for("the first mails of the load to be accepted", lambda: len(load.acked) >= 4, 60)
    etc = emulated.power_off(lost)
    lost_at = time.monotonic()
    try:
        # The first write may wait for a new raft leader when etcd3 led.
        seconds = wait_for(
            f"a write through etcd1 after {lost.name} lost power",
            lambda: etcdctl(lab, "etcd1", "put /psn/e2e/while-down yes") == "OK",
            30,
        )
        measured(
            "etcd_writes_back_s",
            round(seconds),
            f"\netcd took writes {seconds:.0f}s after {lost.name} lost power",
        )
        assert_webmail_back(first_run, certs_root, lab.servers[0], lost_at, "etcd_webmail_back_s")
        assert etcdctl(lab, "etcd2", "get --print-value-only /psn/e2e/while-down") == "yes"
    except BaseException:
        load.finish()
        raise
    finally:
        emulated.power_on(lost, etc, lab.state_dir)
    powered_on = time.monotonic()
    load.finish()
    accepted = [t for _, t, _ in load.acked if lost_at < t < powered_on]
    assert accepted, f"no mail accepted while {lost.name} was off"
    print(f"{len(accepted)} mails accepted while {lost.name} was off")
    assert accepted[0] - lost_at <= MAIL_BACK
    assert_every_acked_mail_on_both_members(lab, certs_root, first_run, load, powered_on)
    seconds = wait_for(
        f"psn-etcd_etcd3 on {lost.name} to serve the write made while it was down",
        lambda: etcdctl_quiet(lab, "etcd3", "get --print-value-only /psn/e2e/while-down") == "yes",
        RECOVERY_TIMEOUT,
    )
    measured(
        "etcd_caught_up_s",
        round(seconds),
        f"etcd3 caught up {seconds:.0f}s after {lost.name} was powered on again",
    )
    seconds = wait_for(
        "all three members to answer healthy over the overlay network",
        lambda: (
            etcdctl(lab, "etcd1", f"--endpoints={ENDPOINTS} endpoint health").count("is healthy")
            == 3
        ),
        RECOVERY_TIMEOUT,
    )
    print(f"all three members healthy over the overlay {seconds:.0f}s later")

    def sentinel_sees_the_primary() -> bool:
        try:
            lines = sentinel(lab, lost, "master", "psn")
        except AssertionError:
            return False  # its container is not running yet
        return dict(zip(lines[::2], lines[1::2], strict=False)).get("flags") == "master"

    # Right after the boot it may still find the primary unreachable over the overlay.
    seconds = wait_for(
        f"the Sentinel on {lost.name} to see the Redis primary up",
        sentinel_sees_the_primary,
        RECOVERY_TIMEOUT,
    )
    print(f"the Sentinel on {lost.name} sees the primary up {seconds:.0f}s later")


def patroni_cluster(lab, server) -> dict[str, dict]:
    """Patroni's /cluster as seen by the member on `server`: member name -> its entry."""
    cid = container(lab, server, f"psn-postgres_{PG_MEMBERS[lab.servers.index(server)]}")
    out = lab.ssh(server, f"docker exec {cid} curl -fsS -m 5 http://127.0.0.1:8008/cluster")
    return {m["name"]: m for m in json.loads(out)["members"]}


# psql as the PSN user through HAProxy, from a member's container on psn-db; the password comes
# from the container's Docker secret into a throwaway .pgpass, never onto a command line.
PSQL_VIA_HAPROXY = (
    "f=$(mktemp) && printf '*:*:*:psn:%s\\n' \"$(cat /run/secrets/postgres_db_password)\" >$f"
    " && PGPASSFILE=$f PGCONNECT_TIMEOUT=3 psql -h haproxy -U psn -d psnapi -XtAq"
    " -v ON_ERROR_STOP=1 -c {sql}; rc=$?; rm -f $f; exit $rc"
)


def shell_in(lab, server, service: str, script: str) -> tuple[int, str]:
    """`sh -c script` in the running container of `service` on `server`: exit code and output."""
    cid = container(lab, server, service)
    res = emulated.ssh_run(
        server,
        lab.state_dir,
        f"docker exec {cid} sh -c {shlex.quote(script)} 2>&1",
        check=False,
        timeout=30,
    )
    return res.returncode, res.stdout.strip()


def psql(lab, server, sql: str) -> tuple[int, str]:
    """Run `sql` through HAProxy from the Patroni member on `server`: exit code and output."""
    member = PG_MEMBERS[lab.servers.index(server)]
    return shell_in(
        lab, server, f"psn-postgres_{member}", PSQL_VIA_HAPROXY.format(sql=shlex.quote(sql))
    )


def test_patroni_has_a_leader_and_a_synchronous_replica(lab, first_run):
    def formed() -> bool:
        members = patroni_cluster(lab, lab.servers[0])
        roles = sorted(m["role"] for m in members.values())
        return roles == ["leader", "sync_standby"] and all(
            m["state"] in ("running", "streaming") for m in members.values()
        )

    wait_for("Patroni to show a leader and a streaming synchronous replica", formed, 60)
    members = patroni_cluster(lab, lab.servers[0])
    assert set(members) == set(PG_MEMBERS)
    for name, server in zip(PG_MEMBERS, lab.servers, strict=False):
        assert members[name]["host"] == server.address


def test_the_psn_user_writes_through_haproxy(lab, first_run):
    code, out = psql(lab, lab.servers[1], "CREATE TABLE IF NOT EXISTS acked (id int PRIMARY KEY)")
    assert code == 0, out
    code, out = psql(lab, lab.servers[1], "SELECT pg_is_in_recovery()")
    assert (code, out) == (0, "f")


def sentinel(lab, server, *args: str) -> list[str]:
    """`SENTINEL <args>` asked of the Sentinel on `server`: the reply's lines."""
    cid = container(lab, server, f"psn-redis_{SENTINELS[lab.servers.index(server)]}")
    command = " ".join(("redis-cli --raw -p 26379 SENTINEL", *args))
    return lab.ssh(server, f"docker exec {cid} {command} 2>&1", check=False).splitlines()


def redis_primary(lab, server) -> str:
    """The Redis member the Sentinel on `server` names as the primary ("" without an answer)."""
    return next(iter(sentinel(lab, server, "get-master-addr-by-name", "psn")), "")


# redis-cli with the password from the member container's Docker secret (REDISCLI_AUTH of that
# one process), to another member by its name on psn-db.
REDIS_CLI = (
    'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" exec redis-cli --raw -h {host} {cmd}'
)


def redis(lab, server, host: str, cmd: str) -> str:
    """`cmd` sent to member `host` from the Redis member on `server`: the reply."""
    member = REDIS_MEMBERS[lab.servers.index(server)]
    return shell_in(lab, server, f"psn-redis_{member}", REDIS_CLI.format(host=host, cmd=cmd))[1]


def test_redis_has_a_primary_a_replica_and_three_sentinels(lab, first_run):
    for server in lab.servers:
        assert redis_primary(lab, server) == "redis1", server.name
    lines = sentinel(lab, lab.servers[2], "master", "psn")
    seen = dict(zip(lines[::2], lines[1::2], strict=True))
    assert (seen["flags"], seen["num-slaves"], seen["num-other-sentinels"], seen["quorum"]) == (
        "master",
        "1",
        "2",
        "2",
    ), seen
    second = lab.servers[1]
    assert redis(lab, second, "redis2", "ROLE").splitlines()[:2] == ["slave", "redis1"]
    assert redis(lab, second, "redis1", "SET psn:e2e:written-on redis1") == "OK"
    wait_for(
        "redis2 to have the write made on redis1",
        lambda: redis(lab, second, "redis2", "GET psn:e2e:written-on") == "redis1",
        10,
    )
    assert "READONLY" in redis(lab, second, "redis2", "SET psn:e2e:written-on redis2")


def ldap_shell(lab, member: str, script: str, server=None) -> tuple[int, str]:
    """`script` in the 389-ds member's container ($LDAPBASE is the base DN there)."""
    return shell_in(
        lab, server or lab.servers[LDAP_MEMBERS.index(member)], f"psn-ldap_{member}", script
    )


def ldap_add_person(lab, member: str, uid: str, server=None) -> None:
    ldif = (
        f"dn: uid={uid},ou=People,$LDAPBASE\\nobjectClass: inetOrgPerson\\ncn: {uid}\\nsn: e2e\\n"
    )
    code, out = ldap_shell(
        lab, member, f'printf "{ldif}" | ldapadd -Q -Y EXTERNAL -H {LDAPI}', server
    )
    assert code == 0, out


def ldap_has_person(lab, member: str, uid: str) -> bool:
    code, out = ldap_shell(
        lab, member, f"ldapsearch -Q -LLL -Y EXTERNAL -H {LDAPI} '(uid={uid})' dn"
    )
    return code == 0 and f"uid={uid}," in out


def test_the_directory_pair_replicates_both_ways(lab, first_run):
    """Both 389-ds members are suppliers: an entry added on either is read on the other within
    seconds; the provisioned tree came to ldap2 by replication (cn=Manager binds there); both
    answer to the clients' name "ldap"."""
    for origin, other in (LDAP_MEMBERS, reversed(LDAP_MEMBERS)):
        uid = f"e2e-from-{origin}-{int(time.time())}"
        ldap_add_person(lab, origin, uid)
        seconds = wait_for(
            f"the entry added on {origin} to be read on {other}",
            lambda uid=uid, other=other: ldap_has_person(lab, other, uid),
            LDAP_REPLICATED,
            interval=0.2,
        )
        print(f"\n{origin} -> {other}: {seconds:.1f}s")
    password = yaml.safe_load(first_run.read_text())["all"]["vars"]["passwords"][
        "ds389_manager_user"
    ]
    code, out = ldap_shell(
        lab,
        "ldap2",
        "ldapwhoami -x -H ldap://127.0.0.1:3389 -D cn=Manager,$LDAPBASE"
        f" -w {shlex.quote(password)}",
    )
    assert code == 0 and "dn: cn=manager" in out.lower(), out
    code, out = ldap_shell(lab, "ldap1", "getent ahostsv4 ldap | awk '{print $1}' | sort -u")
    assert code == 0 and len(out.split()) == 2, f"ldap resolves to {out!r}, not both members"


def test_postfix_rspamd_and_clamav_run_on_both_mail_hosts_with_one_dkim_key(lab, first_run):
    for service in ("postfix", "rspamd", "clamav"):
        for server in lab.servers[:2]:
            container(lab, server, f"psn-mail_{service}")
    keys = {
        lab.ssh(server, f"sha256sum /opt/poseidon/dkim/{DOMAIN}.psn.key").split()[0]
        for server in lab.servers[:2]
    }
    assert len(keys) == 1, "the mail hosts sign with different DKIM keys"


def admin_password(inventory: Path) -> str:
    return yaml.safe_load(inventory.read_text())["all"]["vars"]["passwords"][
        "default_tenant_admin_user"
    ]


def admin_imap(server, certs_root: Path, password: str) -> imaplib.IMAP4_SSL:
    """An IMAPS session of the tenant's administrator on the Dovecot of `server`, logged in (use
    it in a `with`)."""
    tls = ssl.create_default_context(cafile=certs_root / DOMAIN / "ca.crt")
    tls.check_hostname = False
    imap = imaplib.IMAP4_SSL(server.address, 993, ssl_context=tls, timeout=20)
    try:
        imap.login(f"admin@{DOMAIN}", password)
    except BaseException:
        imap.shutdown()
        raise
    return imap


def imap_message_ids(server, certs_root: Path, password: str, prefix: str) -> list[str]:
    """Message-IDs starting with `prefix` in the INBOX of the tenant's administrator, as the
    Dovecot of `server` holds it (a Message-ID twice is a duplicate)."""
    with admin_imap(server, certs_root, password) as imap:
        _, count = imap.select("INBOX", readonly=True)
        if count[0] == b"0":
            return []
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    found = []
    for item in data:
        if isinstance(item, tuple):
            value = item[1].decode().partition(":")[2].strip()
            if value.startswith(f"<{prefix}"):
                found.append(value)
    return found


def delivery_trails(server, certs_root: Path, password: str, message_id: str) -> list[str]:
    """Per copy of `message_id` in the INBOX on `server`: who took it with which queue or LMTP
    ID (the `by ... id ...` parts of its Received headers): two copies with one LMTP ID were
    copied twice by dsync, two LMTP IDs mean two deliveries."""
    with admin_imap(server, certs_root, password) as imap:
        imap.select("INBOX", readonly=True)
        _, [numbers] = imap.search(None, "HEADER", "Message-ID", message_id)
        trails = []
        for number in numbers.split():
            _, data = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (RECEIVED)])")
            received = " ".join(data[0][1].decode().split())
            hops = re.findall(r"by (\S+)(?: \([^)]*\))? with (\w+) id ([\w.-]+)", received)
            trails.append(" <- ".join(f"{by} {how} {qid}" for by, how, qid in hops))
    return trails


def dsync_copies(lab, server, message_id: str) -> list[str]:
    """Per copy of `message_id` in the INBOX of the Dovecot on `server`: its UID, GUID, save
    date and flags (two copies with one GUID were saved twice, two GUIDs were not recognised as
    one mail)."""
    member = DOVECOT_MEMBERS[lab.servers.index(server)]
    command = (
        f"doveadm fetch -u admin@{DOMAIN} 'uid guid date.saved flags' mailbox INBOX"
        f" header Message-ID {shlex.quote(message_id)}"
    )
    cid = container(lab, server, f"psn-mail_{member}")
    out = lab.ssh(server, f"docker exec {cid} {command} 2>&1", check=False)
    return [" ".join(line.split()) for line in out.splitlines() if line.strip()]


def send_mail(server, message_id: str, subject: str, timeout: float = 60) -> None:
    """One mail for the tenant's administrator over port 25 of `server`; raises unless Postfix
    answered 250 at the end of DATA."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "someone@sender.test", f"admin@{DOMAIN}", subject
    msg["Message-ID"] = message_id
    msg.set_content("Sent through the cluster by the PSN end-to-end test.\n")
    with smtplib.SMTP(server.address, 25, timeout=timeout) as smtp:
        smtp.ehlo("mx.sender.test")
        refused = smtp.send_message(msg)
    assert refused == {}, refused


def test_mail_reaches_both_dovecot_members_through_the_directory_pair(lab, first_run, certs_root):
    """Postfix on each mail host asks the directory by the name both 389-ds members answer to
    and Rspamd's Redis through the Sentinels, and delivers to its own Dovecot: a mail accepted on
    port 25 of either host is read over IMAPS on both, dsync having copied it."""
    password = admin_password(first_run)
    for origin in lab.servers[:2]:
        prefix = f"e2e-pair-{origin.name}-{int(time.time())}"
        started = time.monotonic()
        send_mail(origin, f"<{prefix}@sender.test>", f"e2e cluster mail via {origin.name}")
        for reader in lab.servers[:2]:
            seconds = wait_for(
                f"the mail sent to {origin.name} in the INBOX on {reader.name}",
                lambda r=reader, p=prefix: imap_message_ids(r, certs_root, password, p) != [],
                60,
            )
            print(f"\nport 25 of {origin.name} -> IMAPS of {reader.name}: {seconds:.1f}s")
        print(f"both members hold it {time.monotonic() - started:.1f}s after the 250")


def webmail_login(inventory: Path, certs_root: Path, server) -> str:
    """One webmail login of the tenant's administrator through the proxy of `server`, as the
    login page posts it: "" when SOGo let them in, else what answered (10 s at most)."""
    target = replace(target_of(load_inventory(inventory), certs_root), web_address=server.address)
    web = WebSession(target, timeout=10)
    try:
        code, _ = sogo_login(target, web)
    except CheckFailed as failure:
        return str(failure)
    return "" if code == 200 and web.logged_in else f"HTTP {code}"


def test_the_web_tier_runs_on_every_server_and_logs_in_through_each_proxy(
    lab, first_run, certs_root
):
    """SOGo, the PSN API, autoconfig, the frontends and nginx run a task on each of the three
    servers (memcached one, moved by Swarm), and a webmail login works through each proxy."""
    for server in lab.servers:
        for service in WEB_SERVICES:
            container(lab, server, service)
    memcached = lab.ssh(lab.servers[0], "docker service ls --format '{{.Name}} {{.Replicas}}'")
    assert "psn-backend_memcached 1/1" in memcached, memcached
    for server in lab.servers:
        seconds = wait_for_webmail(first_run, certs_root, server, 90)
        print(f"\nwebmail login through {server.name}: ok after {seconds:.1f}s")


def test_every_servers_task_logs_reach_the_syslog_host(lab, first_run):
    """A relay on each server ships its tasks' logs to syslog-ng on server 3: the proxies' access
    lines of the web tier's logins are there under each server's name."""
    syslog_host = lab.servers[2]
    for server in lab.servers:
        host = lab.ssh(server, "hostname").strip()
        shipped = f"/opt/poseidon/logs/{host}/psn-nginx-proxy_nginx.log"
        wait_for(
            f"{shipped} on {syslog_host.name} to hold the proxy's lines of {server.name}",
            lambda path=shipped: "POST /SOGo/connect" in lab.ssh(syslog_host, f"cat {path} || :"),
            60,
        )


def test_verify_passes_on_the_cluster(first_run, certs_root, workdir):
    """The guide's acceptance check (§4.3.2) through the first proxy and mail host."""
    started = time.monotonic()
    res = deploy_psn("verify", first_run, certs_root, workdir / "verify")
    print(f"\nverify: {time.monotonic() - started:.0f}s\n{res.stdout}")
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^✓ all \d+ checks passed", res.stdout, re.MULTILINE), res.stdout


def psn_api(inventory: Path, certs_root: Path, server) -> ApiClient:
    """The PSN API as its global administrator, through the proxy of `server`."""
    password = yaml.safe_load(inventory.read_text())["all"]["vars"]["passwords"]
    context = tls_context(certs_root / DOMAIN / "ca.crt")
    return ApiClient(
        f"https://psnapi.{DOMAIN}", "psnapi", password["psnapi_admin_user"], context, server.address
    )


def assert_webmail_back(inventory: Path, certs_root: Path, server, lost_at: float, figure: str):
    """A webmail login through the proxy of `server` works within WEBMAIL_BACK seconds of
    `lost_at` (time.monotonic() of a power loss); the seconds are kept as `figure` (waits a
    minute longer, so that a late login is measured, not only timed out)."""
    back = time.monotonic() - lost_at
    back += wait_for_webmail(inventory, certs_root, server, WEBMAIL_BACK + 60)
    measured(
        figure, round(back, 1), f"webmail login through {server.name} {back:.1f}s after the loss"
    )
    assert back <= WEBMAIL_BACK


def wait_for_webmail(inventory: Path, certs_root: Path, server, timeout: float) -> float:
    """Seconds until a webmail login through the proxy of `server` worked (`wait_for`); a
    failure names the last answer."""
    answers = [""]

    def logged_in() -> bool:
        answers[0] = webmail_login(inventory, certs_root, server)
        return answers[0] == ""

    try:
        return wait_for(f"a webmail login through the proxy of {server.name}", logged_in, timeout)
    except pytest.fail.Exception:
        print(f"last answer to the webmail login through {server.name}: {answers[0]}")
        raise


def replicated_rows(lab) -> list[tuple[str, str, str]]:
    """(store, server, member) of every row `status` shows in its replication table."""
    return [
        *(("etcd", s.name, m) for s, m in zip(lab.servers, MEMBERS, strict=True)),
        *(("PostgreSQL", s.name, m) for s, m in zip(lab.servers, PG_MEMBERS, strict=False)),
        *(("Redis", s.name, m) for s, m in zip(lab.servers, REDIS_MEMBERS, strict=False)),
        *(("Redis Sentinel", s.name, m) for s, m in zip(lab.servers, SENTINELS, strict=True)),
        *(("389-ds", s.name, m) for s, m in zip(lab.servers, LDAP_MEMBERS, strict=False)),
        *(("Dovecot", s.name, m) for s, m in zip(lab.servers, DOVECOT_MEMBERS, strict=False)),
    ]


def test_status_sees_every_replicated_member_in_sync(lab, first_run, certs_root, workdir):
    res = deploy_psn("status", first_run, certs_root, workdir / "status")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = replicated_rows(lab)
    for store, server, member in rows:
        assert re.search(rf"{store}\s.*\s{server}\s.*\s{member}\s.*✓ ok", res.stdout), (
            member,
            res.stdout,
        )
    assert "replica of redis1" in res.stdout
    assert f"{len(rows)} replicated members in sync" in res.stdout


def patroni_switchover(lab, leader: str, candidate: str) -> None:
    """Make `candidate` the Patroni leader (patronictl in the leader's container)."""
    server = lab.servers[PG_MEMBERS.index(leader)]
    cid = container(lab, server, f"psn-postgres_{leader}")
    lab.ssh(
        server,
        f"docker exec {cid} patronictl -c /run/patroni switchover --leader {leader}"
        f" --candidate {candidate} --force",
    )

    def switched() -> bool:
        members = patroni_cluster(lab, lab.servers[0])
        return members.get(candidate, {}).get("role") == "leader" and members.get(leader, {}).get(
            "state"
        ) in ("running", "streaming")

    wait_for(f"{candidate} to lead the Patroni cluster", switched, 60)


class SmtpLoad:
    """Mail for the tenant's administrator over port 25 from `senders` sending servers at once,
    each spreading its mail over the mail hosts in turn as over two MX records of equal
    preference: after a failed attempt its next goes to the other host. Every attempt has its
    own Message-ID."""

    def __init__(self, servers, prefix: str, senders: int = 2, interval: float = 0.3) -> None:
        self.servers, self.prefix, self.interval = servers, prefix, interval
        self.acked: list[tuple[str, float, str]] = []  # Message-ID, when, server name
        self.failed: list[tuple[str, float, str, str]] = []  # ... and why
        self.halt = threading.Event()
        self.senders = [
            threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(senders)
        ]

    def start(self) -> None:
        for sender in self.senders:
            sender.start()

    def _send(self, sender: int) -> None:
        sent = 0
        while not self.halt.is_set():
            server = self.servers[(sender + sent) % len(self.servers)]
            sent += 1
            message_id = f"<{self.prefix}-{sender}-{sent}@sender.test>"
            try:
                send_mail(server, message_id, f"e2e load {sender}-{sent}", timeout=15)
            except (OSError, smtplib.SMTPException, AssertionError) as exc:
                why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                self.failed.append((message_id, time.monotonic(), server.name, why))
            else:
                self.acked.append((message_id, time.monotonic(), server.name))
            self.halt.wait(self.interval)

    def finish(self) -> None:
        self.halt.set()
        for sender in self.senders:
            sender.join(60)
        assert not any(s.is_alive() for s in self.senders), "the SMTP load did not stop in 60 s"


def writes_back(lost, checks: dict, timeout: float) -> dict[str, float]:
    """Seconds from now to the start of the first attempt that worked, per store; `checks` are
    tried in turn every half second until each has worked once."""
    started, back = time.monotonic(), {}
    while len(back) < len(checks):
        for store, check in checks.items():
            attempt = time.monotonic()
            if store not in back and check():
                back[store] = round(attempt - started, 1)
        if time.monotonic() - started > timeout:
            waiting = ", ".join(sorted(set(checks) - set(back)))
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for writes to {waiting} "
                f"after {lost.name} lost power"
            )
        time.sleep(0.5)
    return back


LOST_IN_PRIMARY_DRILLS: list[str] = []  # the servers the primary drill powered off, in order


@pytest.mark.parametrize("turn", ["first", pytest.param("again", marks=ALL_DRILLS)])
def test_writes_come_back_within_30_s_when_the_primary_loses_power(
    lab, first_run, certs_root, workdir, turn
):
    """The server of Redis' primary loses power with PostgreSQL's primary on it (Patroni is
    switched over there first: a forced Sentinel failover would hold back the next one for
    twice its failover timeout), one of the two 389-ds suppliers and one of the two mail hosts,
    under SMTP load on both mail hosts: the other supplier takes writes and the returning one
    receives them; the surviving mail host goes on accepting mail, and every mail that got its
    250 is in the INBOX of both Dovecot members once after the server came back, and webmail
    logins work through a surviving proxy within 60 s. `again` (PSN_E2E_ALL_DRILLS=1): the same
    on the other server of the pair, where the first turn left the primaries, with the second
    Dovecot member."""
    lost = lab.servers[REDIS_MEMBERS.index(redis_primary(lab, lab.servers[0]))]
    assert lost.name not in LOST_IN_PRIMARY_DRILLS, f"{lost.name} lost power in the first turn"
    LOST_IN_PRIMARY_DRILLS.append(lost.name)
    members = patroni_cluster(lab, lab.servers[0])
    [leader] = [name for name, m in members.items() if m["role"] == "leader"]
    if lab.servers[PG_MEMBERS.index(leader)] != lost:
        patroni_switchover(lab, leader, PG_MEMBERS[lab.servers.index(lost)])
        leader = PG_MEMBERS[lab.servers.index(lost)]
    survivor = lab.servers[1 - PG_MEMBERS.index(leader)]
    redis_lost = REDIS_MEMBERS[lab.servers.index(lost)]
    redis_survivor = REDIS_MEMBERS[lab.servers.index(survivor)]
    ldap_lost = LDAP_MEMBERS[lab.servers.index(lost)]
    ldap_survivor = LDAP_MEMBERS[lab.servers.index(survivor)]
    ldap_uid = f"e2e-while-down-{int(time.time())}@{DOMAIN}"
    base = 100 * len(LOST_IN_PRIMARY_DRILLS[1:])  # the rows of this turn: base+1 .. base+100
    for i in range(base + 1, base + 51):
        assert psql(lab, survivor, f"INSERT INTO acked VALUES ({i})") == (0, ""), i
    load = SmtpLoad(lab.servers[:2], f"e2e-load-{int(time.time())}")
    load.start()
    wait_for("the first mails of the load to be accepted", lambda: len(load.acked) >= 4, 60)
    etc = emulated.power_off(lost)
    lost_at = time.monotonic()
    try:
        back = writes_back(
            lost,
            {
                "PostgreSQL": lambda: (
                    psql(
                        lab,
                        survivor,
                        f"INSERT INTO acked VALUES ({base + 51}) ON CONFLICT DO NOTHING",
                    )[0]
                    == 0
                ),
                "Redis": lambda: (
                    redis_primary(lab, survivor) == redis_survivor
                    and redis(lab, survivor, redis_survivor, f"SET psn:e2e:while-down {turn}")
                    == "OK"
                ),
            },
            max(PG_WRITES_BACK, REDIS_WRITES_BACK) + 60,
        )
        measured(
            "pg_writes_back_s",
            back["PostgreSQL"],
            f"\nPostgreSQL took writes {back['PostgreSQL']}s after {lost.name} lost power",
        )
        measured(
            "redis_writes_back_s",
            back["Redis"],
            f"Redis took writes {back['Redis']}s after {lost.name} lost power",
        )
        assert back["PostgreSQL"] <= PG_WRITES_BACK
        assert back["Redis"] <= REDIS_WRITES_BACK
        assert_webmail_back(first_run, certs_root, survivor, lost_at, "webmail_back_s")
        for i in range(base + 52, base + 101):
            assert psql(lab, survivor, f"INSERT INTO acked VALUES ({i})") == (0, ""), i
        # The directory: a user created through the PSN API of a surviving proxy lands on the
        # surviving supplier; its clients' name still answers.
        psn_api(first_run, certs_root, survivor).request(
            "POST",
            "/users",
            {"address": ldap_uid, "display_name": "While down", "password": "While-down-1234"},
        )
        assert ldap_has_person(lab, ldap_survivor, ldap_uid)
        started = time.monotonic()
        code, out = ldap_shell(
            lab,
            ldap_survivor,
            "ldapsearch -x -LLL -o nettimeout=5 -H ldap://ldap:3389 -b '' -s base vendorName",
        )
        assert code == 0 and "vendorName" in out, out
        print(f"ldap://ldap answered in {time.monotonic() - started:.1f}s with {lost.name} down")
        res = deploy_psn("status", first_run, certs_root, workdir / "status-down")
        assert res.returncode == 6, res.stdout + res.stderr
        etcd_member = MEMBERS[lab.servers.index(lost)]
        assert re.search(rf"\s{lost.name}\s.*\s{etcd_member}\s.*did not answer", res.stdout)
        stderr = " ".join(res.stderr.split())
        assert f"replication degraded: {etcd_member} on {lost.name}" in stderr, stderr
    except BaseException:
        load.finish()
        raise
    finally:
        emulated.power_on(lost, etc, lab.state_dir)
    powered_on = time.monotonic()
    accepted_on_survivor = [t for _, t, name in load.acked if name == survivor.name and t > lost_at]
    refused = [why for _, t, name, why in load.failed if name == survivor.name and t > lost_at]
    assert accepted_on_survivor, (
        f"{survivor.name} accepted no mail after {lost.name} lost power; its answers: {refused[:5]}"
    )
    mail_back = accepted_on_survivor[0] - lost_at
    measured(
        "mail_back_s",
        round(mail_back, 1),
        f"mail accepted on {survivor.name} {mail_back:.1f}s after {lost.name} lost power",
    )
    assert mail_back <= MAIL_BACK
    rows = psql(lab, survivor, "SELECT count(*), min(id), max(id) FROM acked")
    assert rows == (0, f"{base + 100}|1|{base + 100}"), rows
    seconds = wait_for(
        f"{redis_lost} on {lost.name} to return as a replica with the write made while it was down",
        lambda: (
            redis(lab, survivor, redis_lost, "ROLE").splitlines()[:2] == ["slave", redis_survivor]
            and redis(lab, survivor, redis_lost, "GET psn:e2e:while-down") == turn
        ),
        RECOVERY_TIMEOUT,
    )
    measured(
        "redis_replica_s",
        round(seconds),
        f"{redis_lost} replicating again {seconds:.0f}s after power-on",
    )

    def rejoined() -> bool:
        try:
            found = patroni_cluster(lab, survivor)
        except (AssertionError, emulated.EmulationError, ValueError):
            return False
        return found.get(leader, {}).get("role") in ("replica", "sync_standby") and found[
            leader
        ].get("state") in ("running", "streaming")

    seconds = wait_for(f"{leader} on {lost.name} to return as a replica", rejoined, 180)
    measured(
        "pg_replica_s",
        round(seconds),
        f"{leader} streaming again as a replica {seconds:.0f}s after power-on",
    )

    def caught_up() -> bool:
        try:
            return ldap_has_person(lab, ldap_lost, ldap_uid)
        except (AssertionError, emulated.EmulationError):
            return False  # its container is not running yet

    seconds = wait_for(f"{ldap_lost} to receive the entry added while it was down", caught_up, 180)
    measured(
        "ldap_caught_up_s", round(seconds), f"{ldap_lost} caught up {seconds:.0f}s after power-on"
    )
    # The load goes on until the returning Dovecot takes deliveries again (after its catch-up).
    time.sleep(max(0.0, LOAD_AFTER_POWER_ON - (time.monotonic() - powered_on)))
    load.finish()
    assert_one_member_takes_deliveries(lab, lost, survivor, load.prefix)
    assert_every_acked_mail_on_both_members(lab, certs_root, first_run, load, powered_on)


def container_log(lab, server, service: str) -> list[tuple[datetime.datetime, str]]:
    """The log of the running container of `service` on `server`: (time, line) per line."""
    cid = container(lab, server, service)
    out = lab.ssh(server, f"docker logs -t {cid} 2>&1", check=False)
    lines = []
    for line in out.splitlines():
        stamp, _, text = line.partition(" ")
        # Docker's nanoseconds cut to the microseconds datetime takes.
        lines.append((datetime.datetime.fromisoformat(stamp[:26] + "+00:00"), text))
    return lines


def assert_one_member_takes_deliveries(lab, returned, other, prefix: str) -> None:
    """One Dovecot member takes the deliveries of the load (`prefix`) at a time: when the first
    member (on server 1) is back from a power loss of `returned`, the second (on `other`) takes
    none once the first opened LMTP after its catch-up (after a 2 s grace for those under way);
    when the second is back, it took none at all. Deliveries into one mailbox on both members
    at once have dsync merge UIDs given on both."""
    back, on = (f"psn-mail_{DOVECOT_MEMBERS[lab.servers.index(s)]}" for s in (returned, other))
    logs = {back: container_log(lab, returned, back), on: container_log(lab, other, on)}
    took = {
        member: [(at, line) for at, line in log if "saved mail to" in line and f"<{prefix}" in line]
        for member, log in logs.items()
    }
    # The member that stayed up took deliveries: else its log went unread.
    assert took[on], f"no delivery of the load in the log of {on}"
    if lab.servers.index(returned) == 1:
        measured(
            "deliveries_on_both_after_catch_up",
            len(took[back]),
            f"{back} took {len(took[back])} deliveries of the load",
        )
        assert not took[back], took[back][:5]
        return
    opened = [at for at, line in logs[back] if "LMTP open:" in line]
    assert opened, f"{back} on {returned.name} logged no 'LMTP open' after its power-on"
    late = [
        f"{at:%H:%M:%S.%f} {line}"
        for at, line in took[on]
        if at > opened[-1] + datetime.timedelta(seconds=2)
    ]
    measured(
        "deliveries_on_both_after_catch_up",
        len(late),
        f"{on} took {len(took[on]) - len(late)} deliveries of the load, then {len(late)} after"
        f" {back} opened LMTP at {opened[-1]:%H:%M:%S}",
    )
    assert not late, late[:5]


def assert_every_acked_mail_on_both_members(
    lab, certs_root, inventory, load, powered_on: float
) -> None:
    """Every mail of `load` that got its 250 is in the INBOX on both Dovecot members, once: how
    many are there twice is printed (split at `powered_on`) before it fails."""
    password = admin_password(inventory)
    acked = {mid for mid, _, _ in load.acked}
    before = {mid for mid, when, _ in load.acked if when < powered_on}
    measured(
        "mails_accepted",
        len(acked),
        f"SMTP load: {len(acked)} mails accepted, {len(load.failed)} attempts failed",
    )
    found: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}

    def complete() -> bool:
        for server in lab.servers[:2]:
            try:
                found[server.name] = imap_message_ids(server, certs_root, password, load.prefix)
            except (OSError, imaplib.IMAP4.error) as exc:
                missing[server.name] = [f"no IMAP answer: {exc}"]
                return False
            missing[server.name] = sorted(acked - set(found[server.name]))
        return not any(missing.values())

    try:
        seconds = wait_for(
            "every accepted mail of the load in the INBOX on both Dovecot members",
            complete,
            MAIL_REPLICATED_BACK,
        )
    except pytest.fail.Exception:
        print({name: f"{len(ids)} missing, e.g. {ids[:3]}" for name, ids in missing.items()})
        raise
    print(f"both Dovecot members hold every accepted mail {seconds:.0f}s after the load stopped")
    twice = {}
    for name, ids in found.items():
        twice[name] = sorted({mid for mid in ids if ids.count(mid) > 1})
        FIGURES["mails_twice"] = max(FIGURES.get("mails_twice", 0), len(twice[name]))
        after = [mid for mid in twice[name] if mid not in before]
        print(
            f"{name}: {len(twice[name])} of {len(acked)} accepted mails there twice"
            f" ({len(after)} of them accepted after the power-on)"
        )
    for server in lab.servers[:2]:
        if twice[server.name]:
            # Who took each copy (one LMTP ID: one delivery copied by dsync) and how each
            # Dovecot holds it (one GUID twice: saved twice; two GUIDs: not seen as one mail).
            trails = {
                mid: delivery_trails(server, certs_root, password, mid)
                for mid in twice[server.name][:3]
            }
            copies = {
                f"{mid} on {member.name}": dsync_copies(lab, member, mid)
                for mid in twice[server.name][:3]
                for member in lab.servers[:2]
            }
            pytest.fail(
                f"{len(twice[server.name])} of {len(acked)} accepted mails twice on"
                f" {server.name}; the Received trail of each copy: {trails};"
                f" the copies as each Dovecot holds them: {copies}"
            )


def test_a_run_after_the_server_came_back_restarts_nothing(
    lab, first_run, certs_root, workdir, archive
):
    before = service_updates(lab)
    started = time.monotonic()
    res = run(first_run, certs_root, workdir / "run-after-drills", archive)
    seconds = time.monotonic() - started
    print_summary("run after the drills", res, seconds)
    FIGURES["rerun_s"] = round(seconds)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Services changed" not in res.stderr, res.stderr
    assert service_updates(lab) == before


def etcdctl_quiet(lab, member: str, args: str) -> str:
    """etcdctl, or "" while the member's container or its server is not up yet."""
    server = lab.servers[MEMBERS.index(member)]
    script = (
        f"cid=$(docker ps -q --filter label=com.docker.swarm.service.name=psn-etcd_{member}"
        " --filter status=running); "
        f'[ -n "$cid" ] && docker exec $cid etcdctl --command-timeout=3s {args} 2>&1'
    )
    result = emulated.ssh_run(server, lab.state_dir, script, check=False, timeout=20)
    return result.stdout.strip() if result.returncode == 0 else ""


NODE_STATES = (
    "{{.Description.Hostname}} {{.Spec.Role}} {{.Status.State}}"
    " {{if .ManagerStatus}}{{.ManagerStatus.Reachability}}{{end}}"
)  # for swarm_nodes: (host name, role, state, manager reachability)


@ALL_DRILLS
def test_a_new_server_in_place_of_a_dead_one_takes_its_place_everywhere(
    lab, first_run, certs_root, workdir, archive
):
    """Server 3 dies for good and a new, empty server gets its name and address: one run of
    ./deploy_psn.sh makes it a manager of the swarm (the old node demoted and removed, or the
    managers would lose their quorum at the next loss), replaces its etcd member (the new one
    with every key), brings its Sentinel in (three usable, no ghost of the old one) and gives
    it its tasks again; `status` is green. Opt-in (PSN_E2E_ALL_DRILLS=1, set by
    bench/cluster.sh): its run took 453 s in CI, beyond the 75-minute budget."""
    gone = lab.servers[2]
    member = MEMBERS[2]
    assert etcdctl(lab, "etcd1", "put /psn/e2e/before-replacement yes") == "OK"
    listed = json.loads(etcdctl(lab, "etcd1", "member list -w json"))["members"]
    old_id = next(m["ID"] for m in listed if m["name"] == member)
    emulated.power_off(gone)
    wait_for(
        f"the swarm to see {gone.name} down",
        lambda: (gone.name, "manager", "down", "unreachable") in swarm_nodes(lab, NODE_STATES),
        60,
    )
    started = time.monotonic()
    emulated.replace_server(gone, lab.servers, lab.state_dir)
    print(f"\na new {gone.name} booted in {time.monotonic() - started:.0f}s")
    started = time.monotonic()
    res = run(first_run, certs_root, workdir / "run-replaced", archive)
    seconds = time.monotonic() - started
    print_summary("run with the new server", res, seconds)
    FIGURES["replacement_run_s"] = round(seconds)
    assert res.returncode == 0, res.stdout + res.stderr
    nodes = swarm_nodes(lab, NODE_STATES)
    assert nodes == [(s.name, "manager", "ready", "reachable") for s in lab.servers], nodes
    members = json.loads(etcdctl(lab, "etcd1", "member list -w json"))["members"]
    assert sorted(m.get("name", "") for m in members) == list(MEMBERS), members
    new_id = next(m["ID"] for m in members if m["name"] == member)
    assert new_id != old_id
    assert etcdctl(lab, member, "get --print-value-only /psn/e2e/before-replacement") == "yes"
    quorum = " ".join(sentinel(lab, gone, "ckquorum", "psn"))
    assert quorum.startswith("OK 3 usable Sentinels"), quorum
    for service in WEB_SERVICES:
        container(lab, gone, service)
    # Green once every store is in sync: a Dovecot member that failed one sync (the other
    # member busy) shows it until the replicator's retry, 5 minutes later.
    answers = []

    def status_green() -> bool:
        answers[:] = [deploy_psn("status", first_run, certs_root, workdir / "status-replaced")]
        return answers[0].returncode == 0

    try:
        seconds = wait_for("`status` to be green with the new server", status_green, 330, 30)
    except pytest.fail.Exception:
        print(answers[0].stdout + answers[0].stderr)
        raise
    print(f"status green {seconds:.0f}s after the run")
