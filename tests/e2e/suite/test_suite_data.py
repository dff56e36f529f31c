"""The data services (etcd, postgres, redis, ldap, syslog) of the suite's one server.

Each answers over its protocol with the configured password; the directory has its tree,
accounts and access rules and the guide's backup line works; no secret value shows in the deploy
logs, a service spec, a stack file, a configuration file, a container's environment or a
service's log; `status` names a degraded service; a stack waited for at the end fails the run
naming its role; `-t ldap` updates the ldap stack only; an image pushed again under its version
is rolled out by the next run.
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
    deploy_psn,
    in_task,
    recap,
    summary_rows,
    task_container,
    updated_at,
)

pytestmark = pytest.mark.e2e

SERVICES = {
    "psn-etcd_etcd": "etcd",
    "psn-postgres_postgres": "postgres",
    "psn-redis_redis": "redis",
    "psn-ldap_ldap": "ldap",
    "psn-syslog_ng_syslog-ng": "syslog_ng",
}


def secrets_of(inventory: Path) -> dict[str, str]:
    """Every password and key of the inventory that has a value."""
    doc = yaml.safe_load(inventory.read_text())["all"]["vars"]
    values = {f"passwords.{k}": v for k, v in doc["passwords"].items()}
    values |= {f"secure.{k}": v for k, v in doc["secure"].items()}
    return {k: str(v) for k, v in values.items() if v and len(str(v)) >= 8}


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


def test_every_task_log_reaches_the_syslog_host(lab, first_run):
    """The relay ships the log lines of the server's Swarm tasks to syslog-ng: one file per
    server and service, each line at the time the engine took it and with its container's ID
    in place of a PID; the logging services' own lines stay out (they would come back round)."""
    [server] = lab.servers
    host = lab.ssh(server, "hostname").strip()
    container = task_container(lab, "psn-redis_redis")
    engine = lab.ssh(server, f"docker logs --timestamps {container} 2>&1 | head -n 1").strip()
    stamp, _, line = engine.partition(" ")
    line = line.strip()
    shipped = f"/opt/poseidon/logs/{host}/psn-redis_redis.log"
    deadline = time.monotonic() + 60
    found = ""
    while time.monotonic() < deadline and line not in found:
        time.sleep(2)
        found = lab.ssh(server, f"cat {shipped} 2>/dev/null || true")
    assert line in found, f"{shipped} has no line {line!r} of the engine's log: {found[-500:]}"
    entry = next(e for e in found.splitlines() if line in e)
    assert entry.startswith(stamp[:19]), (entry, stamp)  # the engine's time, to the second
    assert f" psn-redis_redis[{container[:12]}]: " in entry, entry
    files = lab.ssh(server, f"ls /opt/poseidon/logs/{host}/").split()
    assert not [f for f in files if f.startswith("psn-syslog_ng_")], files


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


# Every rendered configuration file (maildirs and database files have other names).
CONFIG_FILES = (
    "find /opt/poseidon -type f -size -1M \\( -name '*.conf' -o -name '*.cf' -o -name '*.yml'"
    " -o -name '*.ext' -o -name '*.json' -o -name '*.ini' -o -name '*.inc' \\) -exec cat {} +"
)


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
        "config files": lab.ssh(server, CONFIG_FILES),
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
    assert re.search(r"all \d+ services run every replica", res.stdout), res.stdout
    [server] = lab.servers
    lab.ssh(server, "docker service scale --detach psn-redis_redis=0")
    try:
        res = psn_status(first_run, certs_root, workdir / "status")
        assert res.returncode == 6, res.stdout + res.stderr
        assert "scaled to 0, the stack file says 1" in res.stdout
        assert "services degraded: psn-redis_redis" in res.stderr
    finally:
        lab.ssh(server, "docker service scale psn-redis_redis=1")


def test_a_stack_waited_for_at_the_end_fails_the_run_naming_its_role(suite, lab):
    """Redis is waited for after the last role (stack__wait_at_end): a Redis that cannot start
    fails the run there, naming the service and `-t redis`; deploying it again mends it."""
    [server] = lab.servers
    res = suite.deploy("broken", "-t", "redis", "-e", "redis__maxmemory=lots")
    assert res.returncode == 4, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert "psn-redis_redis is not running healthy" in message, message
    assert "-t redis" in message, message
    res = suite.deploy("mended", "-t", "redis")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "stack_wait" in summary_rows(res.stderr), res.stderr
    listing = lab.ssh(server, "docker service ls --format '{{.Name}} {{.Replicas}}'")
    assert "psn-redis_redis 1/1" in listing, listing


def ldap_memory_limit(lab) -> int:
    [server] = lab.servers
    spec = json.loads(lab.ssh(server, "docker service inspect psn-ldap_ldap"))[0]["Spec"]
    return spec["TaskTemplate"]["Resources"].get("Limits", {}).get("MemoryBytes", 0)


def deploy_ldap_only(suite, lab, log_name: str, *args: str) -> None:
    """`-t ldap` (guide §6.2 reinstalls with it): only the ldap stack's service is updated."""
    before = updated_at(lab)
    res = suite.deploy(log_name, "-t", "ldap", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert set(summary_rows(res.stderr)) == {"precheck", "ldap"}, res.stderr
    after = updated_at(lab)
    assert after.pop("psn-ldap_ldap") != before.pop("psn-ldap_ldap")
    assert after == before


def test_ldap_tag_touches_only_the_ldap_stack(suite, lab, first_run):
    """A changed memory limit with `-t ldap`, then the inventory's own value back."""
    default = ldap_memory_limit(lab)
    deploy_ldap_only(suite, lab, "ldap-768M", "-e", "ldap__memory_limit=768M")
    assert ldap_memory_limit(lab) == 768 * 1024 * 1024
    # The directory kept its data across the restart.
    password = secrets_of(first_run)["passwords.default_tenant_admin_user"]
    assert "uid=admin@example.com" in ldap_whoami(lab, ADMIN_DN, password)
    deploy_ldap_only(suite, lab, "ldap-back")
    assert ldap_memory_limit(lab) == default


def test_an_image_pushed_again_under_its_version_is_rolled_out(suite, lab):
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
    res = suite.deploy("run-hotfix", "-t", "redis")
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
    res = suite.deploy("run-hotfix2", "-t", "redis")
    assert res.returncode == 0 and recap(suite.workdir / "run-hotfix2")["changed"] == 0, res.stdout
    assert updated_at(lab) == after
