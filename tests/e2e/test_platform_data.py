"""The data services (etcd, postgres, redis, ldap, syslog) on one emulated Debian 12 server.

The template inventory with the server in every group (syslog included), passwords from genpwd
and a self-signed certificate set; `./deploy_psn.sh` deploys the platform from scratch: the base
roles, the registry (loaded from a small archive of the images these stacks need) and the five
data stacks. Then: each service answers over its protocol with the configured password, the
directory has its tree, accounts and access rules and the guide's backup line works, no secret
value shows in the deploy log, a service spec, a stack file or a container's environment, a
second run changes nothing (no service's UpdatedAt moves), and `-t ldap` updates the ldap stack
only.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from e2e_helpers import (
    DOMAIN,
    VERSION,
    deploy,
    deploy_psn,
    image_archive,
    recap,
    summary_rows,
    updated_at,
    write_inventory,
)

pytestmark = pytest.mark.e2e

ARCHIVE_IMAGES = ("registry", "etcd", "postgres", "redis", "ldap", "syslog-ng")
BASE_ROLES = ("common", "sysctl", "timezone", "chrony", "swarm", "certificates", "docker_registry")
DATA_ROLES = ("etcd", "postgres", "redis", "ldap", "syslog")
SERVICES = {
    "psn-etcd_etcd": "etcd",
    "psn-postgres_postgres": "postgres",
    "psn-redis_redis": "redis",
    "psn-ldap_ldap": "ldap",
    "psn-syslog_ng_syslog-ng": "syslog_ng",
}


def with_syslog(doc) -> None:
    """The optional syslog group on the server too."""
    [server] = doc["all"]["hosts"]
    doc["all"]["children"]["syslog"] = {"hosts": {server: None}}


def deploy_from(
    archive: Path, inventory: Path, certs_root: Path, log_dir: Path, tags: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """Deploy with the registry loaded from `archive`."""
    return deploy(
        inventory, certs_root, log_dir, tags, "-e", f"docker_registry__archive={archive}", *extra
    )


def secrets_of(inventory: Path) -> dict[str, str]:
    """Every password and key of the inventory that has a value."""
    doc = yaml.safe_load(inventory.read_text())["all"]["vars"]
    values = {f"passwords.{k}": v for k, v in doc["passwords"].items()}
    values |= {f"secure.{k}": v for k, v in doc["secure"].items()}
    return {k: str(v) for k, v in values.items() if v and len(str(v)) >= 8}


def task_container(lab, service: str) -> str:
    [server] = lab.servers
    cid = lab.ssh(
        server,
        f"docker ps -q --filter label=com.docker.swarm.service.name={service}"
        " --filter status=running",
    ).strip()
    assert cid, f"no running container of {service}"
    return cid


def in_task(lab, service: str, script: str, *, check: bool = False) -> str:
    """Run a shell script in the service's task container on the server; stdout and stderr."""
    [server] = lab.servers
    command = f"docker exec -i {task_container(lab, service)} sh -c {shlex.quote(script)} 2>&1"
    return lab.ssh(server, command, check=check)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """The images the data stacks and the registry need, built when missing, in one archive."""
    return image_archive(tmp_path_factory.mktemp("archive"), ARCHIVE_IMAGES)


@pytest.fixture(scope="module")
def lab(emulated_servers):
    started = time.monotonic()
    lab = emulated_servers(1, prefix="data")
    print(f"\nemulated server up in {time.monotonic() - started:.1f}s")
    return lab


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def first_run(lab, archive, certs_root, workdir):
    inventory = write_inventory(workdir / "hosts.yml", lab, with_syslog)
    started = time.monotonic()
    tags = ",".join(BASE_ROLES + DATA_ROLES)
    res = deploy_from(archive, inventory, certs_root, workdir / "run1", tags)
    print(f"\nfirst run ({tags}): {time.monotonic() - started:.0f}s")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert set(DATA_ROLES) <= set(rows), res.stderr
    return inventory


def test_every_data_service_runs_by_the_runtime_rules(lab, first_run):
    [server] = lab.servers
    listing = lab.ssh(server, "docker service ls --format '{{.Name}} {{.Replicas}}'")
    replicas = dict(line.split() for line in listing.splitlines())
    for service in SERVICES:
        assert replicas.get(service) == "1/1", listing
    for service, stack in SERVICES.items():
        spec = json.loads(lab.ssh(server, f"docker service inspect {service}"))[0]["Spec"]
        container = spec["TaskTemplate"]["ContainerSpec"]
        assert container["Image"].startswith("psn-private-registry:5001/psn/"), container["Image"]
        assert f":{VERSION}" in container["Image"]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
        assert all(p["PublishMode"] == "host" for p in spec["EndpointSpec"].get("Ports") or [])
        assert spec["Labels"]["io.psn.config-hash"] == container["Labels"]["io.psn.config-hash"]
        group = {"syslog_ng": "syslog"}.get(stack, stack)
        constraints = spec["TaskTemplate"]["Placement"]["Constraints"]
        assert f"node.labels.{group} == true" in constraints
        # The guide's command works by hand on the stack file the role wrote.
        stack_file = f"/opt/poseidon/psn-{stack}-stack.yml"
        assert f"docker stack deploy -c {stack_file} psn-{stack}" in lab.ssh(
            server, f"cat {stack_file}"
        )
    # Config files: owned by the images' users, read-only in the containers.
    modes = lab.ssh(
        server,
        "stat -c '%n %a %u' /opt/poseidon/etcd/etcd.conf.yml /opt/poseidon/postgres/pg_hba.conf "
        "/opt/poseidon/redis/redis.conf",
    )
    assert modes.split("\n")[:3] == [
        "/opt/poseidon/etcd/etcd.conf.yml 440 902",
        "/opt/poseidon/postgres/pg_hba.conf 440 903",
        "/opt/poseidon/redis/redis.conf 440 904",
    ]


def test_postgres_answers_as_the_db_user(lab, first_run):
    password = secrets_of(first_run)["passwords.postgres_db_user"]
    query = "psql -h 127.0.0.1 -U psn -d {db} -XtAc 'SELECT 1'"
    for db in ("sogo", "psnapi"):
        out = in_task(lab, "psn-postgres_postgres", f"PGPASSWORD={password} " + query.format(db=db))
        assert out.strip() == "1", out
    refused = in_task(lab, "psn-postgres_postgres", "PGPASSWORD=wrong " + query.format(db="sogo"))
    assert "password authentication failed" in refused
    owners = in_task(
        lab,
        "psn-postgres_postgres",
        "psql -U postgres -XtAc \"SELECT datname || ':' || pg_get_userbyid(datdba) "
        "FROM pg_database WHERE datname IN ('sogo', 'psnapi') ORDER BY 1\"",
    )
    assert owners.split() == ["psnapi:psn", "sogo:psn"]


def test_etcd_put_and_get(lab, first_run):
    out = in_task(
        lab, "psn-etcd_etcd", "etcdctl put psn/e2e hello && etcdctl get --print-value-only psn/e2e"
    )
    assert out.split() == ["OK", "hello"], out


def test_redis_wants_the_password(lab, first_run):
    password = secrets_of(first_run)["passwords.redis_user"]
    assert "NOAUTH" in in_task(lab, "psn-redis_redis", "redis-cli ping")
    assert (
        in_task(lab, "psn-redis_redis", f"REDISCLI_AUTH={password} redis-cli ping").strip()
        == "PONG"
    )
    wrong = in_task(lab, "psn-redis_redis", "REDISCLI_AUTH=wrong redis-cli ping")
    assert "WRONGPASS" in wrong or "invalid" in wrong.lower(), wrong


def test_syslog_writes_the_log_tree(lab, first_run):
    [server] = lab.servers
    # RFC 3164 on port 514 (logger speaks RFC 5424 to the network by default).
    send = "logger --rfc3164 --tcp -n 127.0.0.1 -P 514 -t psn-e2e 'hello from the e2e test'"
    lab.ssh(server, send)
    deadline = time.monotonic() + 30
    found = ""
    while time.monotonic() < deadline and "hello from the e2e test" not in found:
        time.sleep(1)
        found = lab.ssh(server, "cat /opt/poseidon/logs/*/psn-e2e.log 2>/dev/null || true")
    assert "hello from the e2e test" in found


BASE_DN = "dc=example,dc=com"
ADMIN_DN = f"uid=admin@{DOMAIN},ou=People,{BASE_DN}"
MANAGER_DN = f"cn=Manager,{BASE_DN}"


def ldap_whoami(lab, dn: str, password: str) -> str:
    return in_task(
        lab, "psn-ldap_ldap", f"ldapwhoami -x -D {shlex.quote(dn)} -w {shlex.quote(password)}"
    )


def test_syslog_ng_accepts_its_rendered_configuration(lab, first_run):
    """The configuration the syslog role rendered, checked by syslog-ng itself."""
    [server] = lab.servers
    out = lab.ssh(
        server,
        "docker exec $(docker ps -qf name=psn-syslog_ng_syslog-ng) syslog-ng --syntax-only "
        "&& echo syntax-ok",
    )
    assert out.strip().endswith("syntax-ok"), out


def test_ldap_binds_admin_of_the_default_tenant(lab, first_run):
    passwords = secrets_of(first_run)
    assert "uid=admin@example.com" in ldap_whoami(
        lab, ADMIN_DN, passwords["passwords.default_tenant_admin_user"]
    )
    assert "Invalid credentials" in ldap_whoami(lab, ADMIN_DN, "wrong-password")
    # The guide's §6.1 backup line (with cn= for its dn= typo), as an operator types it.
    manager = passwords["passwords.ds389_manager_user"]
    backup = in_task(
        lab, "psn-ldap_ldap", f"ldapsearch -xD {MANAGER_DN} -w {shlex.quote(manager)} '*'"
    )
    for dn in (
        ADMIN_DN,
        f"cn=default,ou=Tenants,{BASE_DN}",
        f"cn={DOMAIN},ou=Domains,{BASE_DN}",
        f"uid=system,ou=Services,{BASE_DN}",
    ):
        assert f"dn: {dn}" in backup, backup
    assert "result: 0 Success" in backup
    # cn=Directory Manager has the same password.
    assert "cn=directory manager" in ldap_whoami(lab, "cn=Directory Manager", manager).lower()


def test_ldap_access_rules(lab, first_run):
    """Services read users without their passwords; users see only themselves; anonymous nothing."""
    passwords = secrets_of(first_run)
    search = (
        "ldapsearch -LLL -x -D {dn} -w {pw} '(mail=admin@example.com)' mail mailQuota userPassword"
    )
    anonymous = in_task(lab, "psn-ldap_ldap", "ldapsearch -LLL -x '(objectClass=*)' dn")
    assert "dn:" not in anonymous and "Anonymous access is not allowed" in anonymous, anonymous
    # The service accounts' passwords are derived (group_vars): read the container's secret.
    mail_pw = in_task(lab, "psn-ldap_ldap", "cat /run/secrets/ldap_mail_password").strip()
    found = in_task(
        lab, "psn-ldap_ldap", search.format(dn=f"uid=mail,ou=Services,{BASE_DN}", pw=mail_pw)
    )
    assert "mail: admin@example.com" in found and "mailQuota: 1073741824" in found, found
    assert "userPassword" not in found
    admin_pw = passwords["passwords.default_tenant_admin_user"]
    own = in_task(
        lab,
        "psn-ldap_ldap",
        f"ldapsearch -LLL -x -D {ADMIN_DN} -w {shlex.quote(admin_pw)} '(mail=*)' dn",
    )
    assert own.split() == ["dn:", ADMIN_DN], own


def test_ldaps_serves_the_operators_certificate(lab, first_run, certs_root):
    """LDAPS on the host's port 636 (guide Table 8) with the operator's certificate."""
    [server] = lab.servers
    context = ssl.create_default_context(cafile=certs_root / DOMAIN / "ca.crt")
    context.check_hostname = False
    with (
        socket.create_connection((server.address, 636), timeout=10) as sock,
        context.wrap_socket(sock) as tls,
    ):
        served = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
    expected = (certs_root / DOMAIN / "server.crt").read_text()
    assert served.split("-----END CERTIFICATE-----")[0] in expected


def test_no_secret_value_leaks(lab, first_run, workdir, certs_root):
    [server] = lab.servers
    secrets = secrets_of(first_run)
    # Derived secrets too: the directory's service account passwords and the TLS key.
    for name in ("ldap_mail_password", "ldap_groupware_password"):
        secrets[name] = in_task(lab, "psn-ldap_ldap", f"cat /run/secrets/{name}").strip()
    key_lines = (certs_root / DOMAIN / "server.nopass.key").read_text().splitlines()
    secrets["server.nopass.key"] = max(key_lines, key=len)
    places = {
        "deploy logs": "\n".join(p.read_text() for p in workdir.rglob("deploy_psn_*.log")),
        "service specs": lab.ssh(server, "docker service ls -q | xargs docker service inspect"),
        "stack files": lab.ssh(server, "cat /opt/poseidon/psn-*-stack.yml"),
        "config files": lab.ssh(server, "cat /opt/poseidon/*/*.conf /opt/poseidon/*/*.yml"),
        "container environments": lab.ssh(
            server, "docker ps -q | xargs docker inspect --format '{{json .Config.Env}}'"
        ),
        "service logs": lab.ssh(
            server, "for s in $(docker service ls -q); do docker service logs $s 2>&1; done"
        ),
    }
    for place, text in places.items():
        leaked = [name for name, value in secrets.items() if value in text]
        assert not leaked, f"{', '.join(leaked)} found in the {place}"
    # Secrets reach the containers as files only, named after a hash of their value.
    names = lab.ssh(server, "docker secret ls --format '{{.Name}}'").split()
    assert {n.rsplit("_", 1)[0] for n in names} >= {
        "psn-postgres_postgres_password",
        "psn-postgres_postgres_db_password",
        "psn-redis_redis_password",
        "psn-ldap_ldap_dm_password",
        "psn-ldap_ldap_tls_key",
    }
    mounts = in_task(lab, "psn-postgres_postgres", "ls /run/secrets")
    assert mounts.split() == ["postgres_db_password", "postgres_password"]


def test_second_run_changes_nothing(lab, first_run, certs_root, workdir, archive):
    before = updated_at(lab)
    started = time.monotonic()
    tags = ",".join(BASE_ROLES + DATA_ROLES)
    res = deploy_from(archive, first_run, certs_root, workdir / "run2", tags)
    print(f"\nsecond run: {time.monotonic() - started:.0f}s")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert set(DATA_ROLES) <= set(rows), res.stderr
    assert {role: row["changed"] for role, row in rows.items()} == dict.fromkeys(rows, 0)
    totals = recap(workdir / "run2")
    assert totals["changed"] == 0 and totals["failed"] == 0 and totals["ok"] > 0
    assert updated_at(lab) == before


def psn_status(
    inventory: Path, certs_root: Path, log_dir: Path
) -> subprocess.CompletedProcess[str]:
    return deploy_psn("status", inventory, certs_root, log_dir)


def test_status_is_green_then_names_a_degraded_service(lab, first_run, certs_root, workdir):
    res = psn_status(first_run, certs_root, workdir / "status")
    assert res.returncode == 0, res.stdout + res.stderr
    for service in SERVICES:
        assert re.search(rf"{service}\s.*1/1 \(expected 1\).*✓ ok", res.stdout), res.stdout
    assert "healthy" in res.stdout
    assert f"all {len(SERVICES)} services run every replica" in res.stdout
    [server] = lab.servers
    lab.ssh(server, "docker service scale --detach psn-redis_redis=0")
    try:
        res = psn_status(first_run, certs_root, workdir / "status")
        assert res.returncode == 6, res.stdout + res.stderr
        assert "scaled to 0, the stack file says 1" in res.stdout
        assert "services degraded: psn-redis_redis" in res.stderr
    finally:
        lab.ssh(server, "docker service scale psn-redis_redis=1")


def test_a_stack_waited_for_at_the_end_fails_the_run_naming_its_role(
    lab, first_run, certs_root, workdir, archive
):
    """Redis is waited for after the last role (stack__wait_at_end): a Redis that cannot start
    fails the run there, naming the service and `-t redis`; deploying it again mends it."""
    [server] = lab.servers
    res = deploy_from(
        archive, first_run, certs_root, workdir / "broken", "redis", "-e", "redis__maxmemory=lots"
    )
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert "psn-redis_redis is not running healthy" in message, message
    assert "-t redis" in message, message
    res = deploy_from(archive, first_run, certs_root, workdir / "mended", "redis")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stack_wait" in summary_rows(res.stderr), res.stderr
    listing = lab.ssh(server, "docker service ls --format '{{.Name}} {{.Replicas}}'")
    assert "psn-redis_redis 1/1" in listing, listing


def test_ldap_tag_touches_only_the_ldap_stack(lab, first_run, certs_root, workdir, archive):
    """Runs last: it changes the directory's memory limit (guide §6.2 reinstalls with -t ldap)."""
    [server] = lab.servers
    before = updated_at(lab)
    res = deploy_from(
        archive, first_run, certs_root, workdir / "run3", "ldap", "-e", "ldap__memory_limit=768M"
    )
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert set(rows) == {"precheck", "ldap"}, res.stderr
    after = updated_at(lab)
    assert after["psn-ldap_ldap"] != before["psn-ldap_ldap"]
    assert {k: v for k, v in after.items() if k != "psn-ldap_ldap"} == {
        k: v for k, v in before.items() if k != "psn-ldap_ldap"
    }
    spec = json.loads(lab.ssh(server, "docker service inspect psn-ldap_ldap"))[0]["Spec"]
    assert spec["TaskTemplate"]["Resources"]["Limits"]["MemoryBytes"] == 768 * 1024 * 1024
    # The directory kept its data across the restart.
    password = secrets_of(first_run)["passwords.default_tenant_admin_user"]
    assert "uid=admin@example.com" in ldap_whoami(lab, ADMIN_DN, password)


def test_an_image_pushed_again_under_its_version_is_rolled_out(
    lab, first_run, certs_root, workdir, archive
):
    """A hotfix image pushed to the registry under the same version (stack files pin digests):
    `-t redis` rolls psn-redis_redis onto it, and only it; another run then changes nothing."""
    [server] = lab.servers
    image = f"psn-private-registry:5001/psn/redis:{VERSION}"
    lab.ssh(
        server,
        f"set -e; docker pull -q {image} >/dev/null; "
        f"printf 'FROM {image}\\nLABEL io.psn.e2e-hotfix=1\\n' | docker build -q -t {image} - "
        f">/dev/null; docker push -q {image} >/dev/null",
    )
    before = updated_at(lab)
    res = deploy_from(archive, first_run, certs_root, workdir / "run-hotfix", "redis")
    assert res.returncode == 0, res.stdout + res.stderr
    after = updated_at(lab)
    assert after["psn-redis_redis"] != before["psn-redis_redis"]
    assert {k: v for k, v in after.items() if k != "psn-redis_redis"} == {
        k: v for k, v in before.items() if k != "psn-redis_redis"
    }
    inspect = "docker service inspect -f '{{.Spec.TaskTemplate.ContainerSpec.Image}}'"
    spec = lab.ssh(server, f"{inspect} psn-redis_redis")
    pushed = lab.ssh(server, f"docker image inspect -f '{{{{index .RepoDigests 0}}}}' {image}")
    assert spec.strip().endswith(pushed.strip().split("@")[1]), (spec, pushed)
    res = deploy_from(archive, first_run, certs_root, workdir / "run-hotfix2", "redis")
    assert res.returncode == 0 and recap(workdir / "run-hotfix2")["changed"] == 0, res.stdout
    assert updated_at(lab) == after
