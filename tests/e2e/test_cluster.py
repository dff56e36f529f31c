"""The cluster topology on three emulated Debian 12 servers, deployed with ./deploy_psn.sh.

All three servers are Swarm managers; server 1 carries every standalone role and the registry,
the etcd group has all three (guide §5.2: psn-etcd_etcd1..etcd3) and the postgres group servers 1
and 2 (psn-postgres_postgres1/2 under Patroni, psn-postgres_haproxy on both). A small image
archive stands in for the distribution's. After the first run: one etcd member per server, each
pinned to its host, forming one cluster whose peers talk TLS with certificates of the
installation-internal CA and refuse a peer without one; a write on one member is read on another;
Patroni has a leader and a synchronous replica and the PSN user writes through HAProxy; a second
run restarts nothing. Then the drills: a server loses power and etcd keeps taking writes, the
returning member catching up by itself; the primary's server loses power and writes through
HAProxy work again within 30 s with no acknowledged row lost, the old primary returning as a
replica; a run afterwards restarts nothing.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from e2e_helpers import DOMAIN, deploy, image_archive, print_summary, write_inventory

from psn import emulated
from psn.names import default_domain

pytestmark = pytest.mark.e2e

ARCHIVE_IMAGES = ("registry", "etcd", "patroni", "haproxy")
ROLES = ("common", "sysctl", "timezone", "chrony", "swarm", "certificates", "docker_registry")
TAGS = ",".join((*ROLES, "etcd", "postgres"))
MEMBERS = ("etcd1", "etcd2", "etcd3")
PEER_PORT = 2380
ENDPOINTS = ",".join(f"http://{m}:2379" for m in MEMBERS)
RECOVERY_TIMEOUT = 180  # seconds for a server that lost power to run its member again
PG_MEMBERS = ("postgres1", "postgres2")
PG_WRITES_BACK = 30  # seconds until writes work again after the primary's server died (issue 16)


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
    """The template inventory with server 1 in every group, all three in etcd, 1 and 2 in
    postgres."""

    def cluster(doc) -> None:
        db = doc["all"]["children"]["db"]["children"]
        db["etcd"]["hosts"] = {s.name: {"volume_device_etcd": "False"} for s in lab.servers}
        db["postgres"]["hosts"] = {
            s.name: {"volume_device_postgres": "False"} for s in lab.servers[:2]
        }

    return write_inventory(path, lab, cluster)


def run(inventory: Path, certs_root: Path, log_dir: Path, archive: Path):
    return deploy(inventory, certs_root, log_dir, TAGS, "-e", f"docker_registry__archive={archive}")


@pytest.fixture(scope="module")
def first_run(lab, archive, certs_root, workdir):
    inventory = cluster_inventory(workdir / "hosts.yml", lab)
    started = time.monotonic()
    res = run(inventory, certs_root, workdir / "run1", archive)
    print_summary(f"first run ({TAGS})", res, time.monotonic() - started)
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


def test_every_server_is_a_manager_with_its_host_label(lab, first_run):
    out = lab.ssh(
        lab.servers[0],
        "docker node ls -q | xargs docker node inspect --format "
        "'{{.Description.Hostname}} {{.Spec.Role}} {{index .Spec.Labels \"psn-host\"}}'",
    )
    nodes = sorted(tuple(line.split()) for line in out.splitlines())
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


def test_second_run_restarts_nothing(lab, first_run, certs_root, workdir, archive):
    before = service_updates(lab)
    res = run(first_run, certs_root, workdir / "run2", archive)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Services changed" not in res.stderr, res.stderr
    assert service_updates(lab) == before


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


def test_writes_go_on_when_a_server_loses_power_and_its_member_catches_up(lab, first_run):
    lost = lab.servers[2]
    etc = emulated.power_off(lost)
    try:
        # The first write may wait for a new raft leader when etcd3 led.
        seconds = wait_for(
            f"a write through etcd1 after {lost.name} lost power",
            lambda: etcdctl(lab, "etcd1", "put /psn/e2e/while-down yes") == "OK",
            30,
        )
        print(f"\netcd took writes {seconds:.0f}s after {lost.name} lost power")
        assert etcdctl(lab, "etcd2", "get --print-value-only /psn/e2e/while-down") == "yes"
    finally:
        emulated.power_on(lost, etc, lab.state_dir)
    seconds = wait_for(
        f"psn-etcd_etcd3 on {lost.name} to serve the write made while it was down",
        lambda: etcdctl_quiet(lab, "etcd3", "get --print-value-only /psn/e2e/while-down") == "yes",
        RECOVERY_TIMEOUT,
    )
    print(f"etcd3 caught up {seconds:.0f}s after {lost.name} was powered on again")
    seconds = wait_for(
        "all three members to answer healthy over the overlay network",
        lambda: (
            etcdctl(lab, "etcd1", f"--endpoints={ENDPOINTS} endpoint health").count("is healthy")
            == 3
        ),
        RECOVERY_TIMEOUT,
    )
    print(f"all three members healthy over the overlay {seconds:.0f}s later")


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


def psql(lab, server, sql: str) -> tuple[int, str]:
    """Run `sql` through HAProxy from the Patroni member on `server`: exit code and output."""
    cid = container(lab, server, f"psn-postgres_{PG_MEMBERS[lab.servers.index(server)]}")
    script = PSQL_VIA_HAPROXY.format(sql=shlex.quote(sql))
    res = emulated.ssh_run(
        server,
        lab.state_dir,
        f"docker exec {cid} sh -c {shlex.quote(script)} 2>&1",
        check=False,
        timeout=30,
    )
    return res.returncode, res.stdout.strip()


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


def test_writes_come_back_within_30_s_when_the_primary_loses_power(lab, first_run):
    members = patroni_cluster(lab, lab.servers[0])
    [leader] = [name for name, m in members.items() if m["role"] == "leader"]
    lost = lab.servers[PG_MEMBERS.index(leader)]
    survivor = lab.servers[1 - PG_MEMBERS.index(leader)]
    for i in range(1, 51):
        assert psql(lab, survivor, f"INSERT INTO acked VALUES ({i})") == (0, ""), i
    etc = emulated.power_off(lost)
    try:
        seconds = wait_for(
            f"a write through HAProxy on {survivor.name} after {lost.name} (primary) lost power",
            lambda: (
                psql(lab, survivor, "INSERT INTO acked VALUES (51) ON CONFLICT DO NOTHING")[0] == 0
            ),
            PG_WRITES_BACK + 60,
            interval=0.5,
        )
        print(f"\nwrites back {seconds:.0f}s after the primary's server lost power")
        assert seconds <= PG_WRITES_BACK
        for i in range(52, 101):
            assert psql(lab, survivor, f"INSERT INTO acked VALUES ({i})") == (0, ""), i
    finally:
        emulated.power_on(lost, etc, lab.state_dir)
    assert psql(lab, survivor, "SELECT count(*), min(id), max(id) FROM acked") == (0, "100|1|100")

    def rejoined() -> bool:
        try:
            found = patroni_cluster(lab, survivor)
        except (AssertionError, emulated.EmulationError, ValueError):
            return False
        return found.get(leader, {}).get("role") in ("replica", "sync_standby") and found[
            leader
        ].get("state") in ("running", "streaming")

    seconds = wait_for(f"{leader} on {lost.name} to return as a replica", rejoined, 180)
    print(f"{leader} streaming again as a replica {seconds:.0f}s after power-on")


def test_a_run_after_the_server_came_back_restarts_nothing(
    lab, first_run, certs_root, workdir, archive
):
    before = service_updates(lab)
    res = run(first_run, certs_root, workdir / "run3", archive)
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
