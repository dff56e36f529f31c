"""Smoke tests of the PSN images: start each with a minimal configuration, wait for its own
HEALTHCHECK to report healthy, then talk to it over its real protocol from the host (ports
published on 127.0.0.1 only) or from a second container on a private Docker network.

Images are built on demand through psn.images (the layer cache makes that quick once built);
nothing is pulled from any registry. Environment:
  PSN_IMAGE_VERSION  tag to test (default: the psn package version)
  PSN_SMOKE_BUILD=0  do not build: skip the tests of images that are missing
  PSN_SMOKE_TIMEOUT  seconds to wait for a container to become healthy (default 240)
"""

from __future__ import annotations

import base64
import io
import json
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import HEALTH_TIMEOUT, ROOT, psn_image
from conftest import run_docker as docker

from psn import images
from psn.errors import ImageBuildError

FIXTURES = Path(__file__).resolve().parent / "fixtures"

pytestmark = pytest.mark.skipif(
    not images.engine_answers(),
    reason="no Docker engine answers (start one with: bash .ci/docker-engine.sh)",
)

# Images whose main process must not run as root, and the user it runs as.
NON_ROOT = {
    "registry": "docker-registry",
    "etcd": "etcd",
    "postgres": "postgres",
    "redis": "redis",
    "ldap": "dirsrv",
}


def out(res) -> str:
    return res.stdout.decode(errors="replace").strip()


# --- fixtures -------------------------------------------------------------------------------

_built: dict[str, str] = {}


@pytest.fixture(scope="session")
def image():
    """image(name) -> tag of psn/<name>:<version>, built (from cache) when needed."""

    def get(name: str) -> str:
        if name not in _built:
            _built[name] = psn_image(name)
        return _built[name]

    return get


@pytest.fixture(scope="module")
def network():
    name = f"psn-smoke-{uuid.uuid4().hex[:8]}"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


class Containers:
    """Starts containers for one test and removes them (with their volumes) afterwards."""

    def __init__(self, network: str, tmp_path: Path) -> None:
        self.network = network
        self.tmp = tmp_path
        self.ids: list[str] = []

    def secret_file(self, name: str, value: str) -> Path:
        """A secret as a file, like a Docker secret (mode 0444, no trailing newline)."""
        d = self.tmp / "secrets"
        d.mkdir(exist_ok=True)
        path = d / name
        path.write_text(value, encoding="utf-8")
        path.chmod(0o444)
        return path

    def run(
        self,
        tag: str,
        alias: str,
        *command: str,
        secrets: dict[str, str] | None = None,
        mounts: list[tuple[Path, str]] | None = None,
        env: dict[str, str] | None = None,
        ports: list[str] | None = None,
        extra: list[str] | None = None,
    ) -> str:
        args = [
            "run",
            "-d",
            "--name",
            f"{self.network}-{alias}",
            "--network",
            self.network,
            "--network-alias",
            alias,
            "--health-interval",
            "1s",
        ]
        for name, value in (secrets or {}).items():
            args += ["-v", f"{self.secret_file(name, value)}:/run/secrets/{name}:ro"]
        for src, dst in mounts or []:
            args += ["-v", f"{src}:{dst}"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        for port in ports or []:
            args += ["-p", f"127.0.0.1::{port}"]
        args += extra or []
        cid = out(docker(*args, tag, *command))
        self.ids.append(cid)
        return cid

    def client(self, tag: str, *args: str, entrypoint: str, user: str | None = None) -> str:
        """Run a one-shot client container on the test network; return its stdout."""
        cmd = ["run", "--rm", "--network", self.network, "--entrypoint", entrypoint]
        if user:
            cmd += ["--user", user]
        return out(docker(*cmd, tag, *args, timeout=120))

    def wait_healthy(self, cid: str, timeout: float = HEALTH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = out(
                docker(
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                    cid,
                )
            )
            if state == "running healthy":
                return
            if not state.startswith("running"):
                break
            time.sleep(1)
        logs = docker("logs", "--tail", "40", cid, check=False)
        health = out(docker("inspect", "-f", "{{json .State.Health}}", cid, check=False))
        pytest.fail(
            f"container {cid[:12]} not healthy (state: {state!r}) after {timeout:.0f}s\n"
            f"health: {health[-1500:]}\n"
            f"logs:\n{(logs.stdout + logs.stderr).decode(errors='replace')}",
            pytrace=False,
        )

    def port(self, cid: str, port: str) -> int:
        mapping = out(docker("port", cid, port)).splitlines()[0]
        return int(mapping.rsplit(":", 1)[1])

    def cleanup(self) -> None:
        for cid in self.ids:
            docker("rm", "-f", "-v", cid, check=False)


@pytest.fixture
def containers(network, tmp_path):
    c = Containers(network, tmp_path)
    yield c
    c.cleanup()


def http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10, context=context) as resp:
        return resp.status, resp.read()


# --- every image: hygiene -------------------------------------------------------------------


def _component_names() -> list[str]:
    try:
        return [c.name for c in images.build_order(images.discover(ROOT)) if c.name != "base"]
    except ImageBuildError:
        return []


@pytest.mark.parametrize("name", ["base", *_component_names()])
def test_image_hygiene(image, name):
    """Package versions recorded and labelled, no apt lists or .deb caches, no private keys,
    a HEALTHCHECK, tini as PID 1, and a non-root user where the service allows it."""
    tag = image(name)
    cfg = json.loads(out(docker("image", "inspect", "-f", "{{json .Config}}", tag)))
    assert cfg["Labels"].get("io.psn.packages") == "/usr/share/psn/packages.txt"
    listing = out(
        docker(
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "/bin/sh",
            tag,
            "-c",
            "cat /usr/share/psn/packages.txt; echo ==;"
            " ls -A /var/lib/apt/lists /var/cache/apt/archives 2>/dev/null | grep -v -e '^/' -e"
            " '^partial$' -e '^lock$' -e '^$' || true;"
            " echo ==; ls /usr/sbin/policy-rc.d 2>/dev/null || true;"
            " echo ==; find / -xdev -type f \\( -name '*.key' -o -path '/etc/ssl/private/*'"
            " -o -path '*/private/*.pem' \\) 2>/dev/null || true",
        )
    )
    packages, leftovers, policy, keys = (part.strip() for part in listing.split("=="))
    names = {line.split("\t")[0] for line in packages.splitlines()}
    assert {"base-files", "tini"} <= names
    assert leftovers == "", f"apt lists or caches left in {tag}: {leftovers}"
    assert policy == "", f"{tag} still carries policy-rc.d"
    assert keys == "", f"{tag} carries private keys: {keys}"
    if name == "base":
        return
    assert cfg.get("Healthcheck", {}).get("Test"), f"{tag} has no HEALTHCHECK"
    assert cfg["Entrypoint"][:2] == ["/usr/bin/tini", "--"], f"{tag}: PID 1 must be tini"
    if name in NON_ROOT:
        assert cfg.get("User") == NON_ROOT[name]


# --- per-image protocol tests ---------------------------------------------------------------


def test_registry_push_pull(image, containers):
    cid = containers.run(image("registry"), "registry", ports=["5001"])
    containers.wait_healthy(cid)
    port = containers.port(cid, "5001")
    status, _ = http_get(f"http://127.0.0.1:{port}/v2/")
    assert status == 200

    # A tiny image made here (one file), pushed, removed locally and pulled back.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"psn smoke\n"
        info = tarfile.TarInfo("smoke.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tiny = f"127.0.0.1:{port}/smoke/tiny:{uuid.uuid4().hex[:6]}"
    docker("import", "-", tiny, input=buf.getvalue())
    try:
        docker("push", tiny)
        docker("rmi", tiny)
        docker("pull", tiny)
        assert images.image_exists(tiny)
        _, body = http_get(f"http://127.0.0.1:{port}/v2/_catalog")
        assert "smoke/tiny" in json.loads(body)["repositories"]
    finally:
        docker("rmi", "-f", tiny, check=False)


def test_etcd_put_get(image, containers):
    tag = image("etcd")
    cid = containers.run(tag, "etcd", ports=["2379"])
    containers.wait_healthy(cid)
    # put from a second container with etcdctl, get from the host through the v3 HTTP gateway
    assert (
        containers.client(
            tag, "--endpoints=http://etcd:2379", "put", "psn/smoke", "hello", entrypoint="etcdctl"
        )
        == "OK"
    )
    port = containers.port(cid, "2379")
    key = base64.b64encode(b"psn/smoke").decode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v3/kv/range",
        data=json.dumps({"key": key}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        kvs = json.loads(resp.read())["kvs"]
    assert base64.b64decode(kvs[0]["value"]) == b"hello"


def test_postgres_sql(image, containers, tmp_path):
    tag = image("postgres")
    password = "Pg-smoke-" + uuid.uuid4().hex[:8]
    cid = containers.run(
        tag,
        "postgres",
        secrets={"postgres_password": password},
        mounts=[(FIXTURES / "postgres" / "initdb", "/docker-entrypoint-initdb.d:ro")],
    )
    containers.wait_healthy(cid)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:postgres:{password}\n")
    pgpass.chmod(0o600)
    query = ["-h", "postgres", "-U", "postgres", "-d", "smoke", "-XtAc"]
    sql = "SELECT string_agg(name, ',' ORDER BY id) FROM smoke_items"
    got = out(
        docker(
            "run", "--rm", "--network", containers.network, "--user", "0",
            "-v", f"{pgpass}:/tmp/pgpass:ro", "-e", "PGPASSFILE=/tmp/pgpass",
            "--entrypoint", "psql", tag, *query, sql,
        )
    )  # fmt: skip
    assert got == "mail,calendar"
    # a wrong password is refused (scram-sha-256 over TCP)
    pgpass.write_text("*:*:*:postgres:wrong\n")
    res = docker(
        "run", "--rm", "--network", containers.network, "--user", "0",
        "-v", f"{pgpass}:/tmp/pgpass:ro", "-e", "PGPASSFILE=/tmp/pgpass",
        "--entrypoint", "psql", tag, *query, "SELECT 1", check=False,
    )  # fmt: skip
    assert res.returncode != 0
    assert b"password authentication failed" in res.stderr


def _resp(sock: socket.socket, *args: str) -> bytes:
    """Send one Redis command (RESP array) and return the raw reply."""
    msg = f"*{len(args)}\r\n".encode()
    for a in args:
        b = a.encode()
        msg += b"$%d\r\n%s\r\n" % (len(b), b)
    sock.sendall(msg)
    data = sock.recv(65536)  # the reply starts (blocking, socket timeout applies)
    sock.settimeout(0.3)
    try:
        while chunk := sock.recv(65536):  # and may continue in further segments
            data += chunk
    except TimeoutError:
        pass
    finally:
        sock.settimeout(5)
    return data


def test_redis_ping_and_sentinel(image, containers):
    tag = image("redis")
    password = "Redis-smoke-" + uuid.uuid4().hex[:8]
    cid = containers.run(tag, "redis", secrets={"redis_password": password}, ports=["6379"])
    containers.wait_healthy(cid)
    with socket.create_connection(("127.0.0.1", containers.port(cid, "6379")), timeout=5) as s:
        assert _resp(s, "PING").startswith(b"-NOAUTH")
        assert _resp(s, "AUTH", password) == b"+OK\r\n"
        assert _resp(s, "PING") == b"+PONG\r\n"
        assert _resp(s, "SET", "psn:smoke", "hello") == b"+OK\r\n"
        assert _resp(s, "GET", "psn:smoke") == b"$5\r\nhello\r\n"

    # The same image as Sentinel, watching that master with the same password.
    sid = containers.run(
        tag,
        "sentinel",
        "sentinel",
        secrets={"redis_password": password},
        mounts=[(FIXTURES / "redis" / "sentinel.conf", "/etc/redis/sentinel.conf:ro")],
        ports=["26379"],
    )
    containers.wait_healthy(sid)
    deadline = time.monotonic() + 30
    flags = b""
    with socket.create_connection(("127.0.0.1", containers.port(sid, "26379")), timeout=5) as s:
        while time.monotonic() < deadline:
            reply = _resp(s, "SENTINEL", "MASTER", "mymaster")
            flags = reply.split(b"flags\r\n", 1)[-1].split(b"\r\n")[1]
            if flags == b"master":
                break
            time.sleep(1)
    assert flags == b"master", f"sentinel sees the master as {flags!r}"


# The environment the redis role gives members and Sentinels on several hosts.
REPLICATED_REDIS = {
    "PSN_REDIS_MEMBERS": "redis1 redis2",
    "PSN_REDIS_SENTINELS": "sentinel1",
    "PSN_REDIS_MASTER_NAME": "psn",
    "PSN_REDIS_PORT": "6379",
    "PSN_REDIS_SENTINEL_PORT": "26379",
}


def _redis_cli(cid: str, *args: str, check: bool = True) -> list[str]:
    """redis-cli in the container, with the password of its secret: the reply's lines (with
    `check` false, none while the server does not answer, e.g. just after a start)."""
    script = 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" exec redis-cli --raw "$@"'
    res = docker("exec", cid, "sh", "-c", script, "redis-cli", *args, check=check)
    return out(res).splitlines() if res.returncode == 0 else []


def _until(what: str, check, timeout: float = 30) -> None:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
    print(f"{what}: {time.monotonic() - started:.1f}s")


def test_redis_members_follow_the_sentinel_and_rspamd_finds_the_primary(
    image, containers, tmp_path
):
    """Members and a Sentinel as the redis role runs them on several hosts: the second member
    replicates the first, the Sentinel's file gets the primary, Rspamd asks the Sentinel; the
    primary stops, the replica is promoted and Rspamd writes to it; the old primary starts
    again as a replica."""
    tag, password = image("redis"), "Redis-smoke-" + uuid.uuid4().hex[:8]

    def start(alias: str, *command: str, mounts=None) -> str:
        return containers.run(
            tag,
            alias,
            *command,
            secrets={"redis_password": password},
            env=REPLICATED_REDIS,
            mounts=mounts,
            extra=["--hostname", alias],
        )

    first, second = start("redis1"), start("redis2")
    containers.wait_healthy(first)
    containers.wait_healthy(second)
    _until(
        "redis2 to replicate redis1",
        lambda: _redis_cli(second, "ROLE")[:4] == ["slave", "redis1", "6379", "connected"],
    )
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        "port 26379\ndir /var/lib/redis\nsentinel resolve-hostnames yes\n"
        "sentinel announce-hostnames yes\nsentinel announce-ip @PSN_HOSTNAME@\n"
        "sentinel monitor psn @PSN_MASTER@ 6379 1\n"
        "sentinel down-after-milliseconds psn 1000\nsentinel failover-timeout psn 5000\n"
    )
    sentinel = start("sentinel1", "sentinel", mounts=[(conf, "/etc/redis/sentinel.conf:ro")])
    containers.wait_healthy(sentinel)
    written = out(docker("exec", sentinel, "cat", "/var/lib/redis/sentinel.conf"))
    assert "sentinel monitor psn redis1 6379 1" in written
    assert 'sentinel announce-ip "sentinel1"' in written  # as Sentinel rewrites it
    _until(
        "the Sentinel to know the replica",
        lambda: "redis2" in _redis_cli(sentinel, "-p", "26379", "SENTINEL", "replicas", "psn"),
    )

    redis_conf = tmp_path / "redis.conf"
    redis_conf.write_text(
        'servers = "redis1:6379,redis2:6379";\nsentinels = "sentinel1:26379";\n'
        '.include "/run/rspamd/psn/redis-password.conf"\n'
    )
    template = tmp_path / "redis-password.conf"
    template.write_text('password = "@@secret:redis_password@@";\n')
    logging = tmp_path / "logging.inc"
    logging.write_text('type = "console";\nlevel = "info";\n')
    rspamd = containers.run(
        image("rspamd"),
        "rspamd",
        secrets={"rspamd_controller_password": "Rspamd-smoke-1", "redis_password": password},
        mounts=[
            (template, "/etc/rspamd/templates.d/redis-password.conf:ro"),
            (redis_conf, "/etc/rspamd/local.d/redis.conf:ro"),
            (logging, "/etc/rspamd/local.d/logging.inc:ro"),
        ],
        env={"PSN_RSPAMD_WAIT_FOR": "redis1 sentinel1"},
    )
    containers.wait_healthy(rspamd)

    def rspamd_writes_to(member: str) -> bool:
        logs = docker("logs", rspamd, check=False)
        text = (logs.stdout + logs.stderr).decode(errors="replace")
        return f"replace write servers with new list: {member}:6379" in text

    _until("Rspamd to take redis1 from the Sentinel", lambda: rspamd_writes_to("redis1"))

    docker("stop", "-t", "1", first)
    _until(
        "the Sentinel to promote redis2",
        lambda: (
            _redis_cli(sentinel, "-p", "26379", "SENTINEL", "get-master-addr-by-name", "psn")[:1]
            == ["redis2"]
        ),
    )
    assert _redis_cli(second, "SET", "psn:smoke", "after-failover") == ["OK"]

    # Rspamd 3.4 asks the Sentinels every minute (its sentinel_watch_time is not read from the
    # common redis section).
    _until("Rspamd to write to redis2", lambda: rspamd_writes_to("redis2"), 75)

    docker("start", first)
    _until(
        "redis1 to come back as redis2's replica",
        lambda: (
            _redis_cli(first, "ROLE", check=False)[:4] == ["slave", "redis2", "6379", "connected"]
        ),
    )
    _until(
        "redis1 to have the write made while it was stopped",
        lambda: _redis_cli(first, "GET", "psn:smoke", check=False) == ["after-failover"],
    )


def test_ldap_bind_and_search(image, containers, tmp_path):
    tag = image("ldap")
    password = "Dm-smoke-" + uuid.uuid4().hex[:8]
    cid = containers.run(
        tag,
        "ldap",
        secrets={"ldap_dm_password": password},
        env={"PSN_LDAP_SUFFIX": "dc=example,dc=com"},
        ports=["3389"],
    )
    containers.wait_healthy(cid)
    _load_people(containers, tag, containers.tmp / "secrets" / "ldap_dm_password")
    net = ["run", "--rm", "--network", containers.network]
    # the user binds with their own password and finds themself
    found = out(
        docker(
            *net, "--entrypoint", "ldapsearch", tag, "-x", "-LLL", "-H", "ldap://ldap:3389",
            "-D", "uid=alice,ou=people,dc=example,dc=com", "-w", "Alice-pw-123",
            "-b", "dc=example,dc=com", "(uid=alice)", "mail",
        )
    )  # fmt: skip
    assert "mail: alice@example.com" in found
    # a wrong Directory Manager password is refused (49 = invalid credentials)
    res = docker(
        *net, "--entrypoint", "ldapwhoami", tag, "-x", "-H", "ldap://ldap:3389",
        "-D", "cn=Directory Manager", "-w", "wrong", check=False,
    )  # fmt: skip
    assert res.returncode == 49


def test_ldap_starts_again_with_less_memory(image, containers):
    """The database cache sized for a larger memory limit must not stop the next start."""
    tag = image("ldap")
    volume = f"{containers.network}-ldap-data"
    data = ["-v", f"{volume}:/data"]
    secrets = {"ldap_dm_password": "Dm-smoke-" + uuid.uuid4().hex[:8]}
    try:
        first = containers.run(tag, "ldap-big", secrets=secrets, extra=data)
        containers.wait_healthy(first)
        docker("rm", "-f", first)
        second = containers.run(
            tag, "ldap-small", secrets=secrets, extra=[*data, "--memory", "512m"]
        )
        containers.wait_healthy(second)
    finally:
        docker(
            "rm",
            "-f",
            f"{containers.network}-ldap-big",
            f"{containers.network}-ldap-small",
            check=False,
        )
        docker("volume", "rm", volume, check=False)


def test_syslog_ng_receives(image, containers, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    cid = containers.run(
        image("syslog-ng"), "syslog", mounts=[(logs, "/var/log/psn")], ports=["514/tcp"]
    )
    containers.wait_healthy(cid)
    marker = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", containers.port(cid, "514/tcp")), timeout=5) as s:
        s.sendall(f"<14>Nov 27 12:00:00 smokehost smokeprog[42]: hello {marker}\n".encode())
    path = logs / "smokehost" / "smokeprog.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and marker in path.read_text():
            break
        time.sleep(0.5)
    assert path.exists() and marker in path.read_text()


def test_proxy_http_and_tls(image, containers, tmp_path):
    key, crt = tmp_path / "proxy.key", tmp_path / "proxy.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )  # fmt: skip
    cid = containers.run(
        image("proxy"),
        "proxy",
        secrets={"proxy.key": key.read_text(), "proxy.crt": crt.read_text()},
        mounts=[(FIXTURES / "proxy" / "conf.d", "/etc/nginx/conf.d:ro")],
        ports=["80", "443"],
    )
    containers.wait_healthy(cid)
    status, body = http_get(f"http://127.0.0.1:{containers.port(cid, '80')}/")
    assert (status, body) == (200, b"psn proxy ok\n")
    ctx = ssl.create_default_context(cafile=str(crt))
    https = f"https://localhost:{containers.port(cid, '443')}"
    assert http_get(f"{https}/", ctx) == (200, b"psn proxy tls ok\n")
    assert http_get(f"{https}/upstream/", ctx) == (200, b"ok\n")


def _memcached_version(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"version\r\n")
        return s.recv(1024)


def test_memcached_and_haproxy(image, containers):
    mc = containers.run(image("memcached"), "memcached", ports=["11211"])
    containers.wait_healthy(mc)
    assert _memcached_version(containers.port(mc, "11211")).startswith(b"VERSION 1.6")
    with socket.create_connection(("127.0.0.1", containers.port(mc, "11211")), timeout=5) as s:
        s.sendall(b"set psn 0 60 5\r\nhello\r\nget psn\r\n")
        time.sleep(0.3)
        assert b"VALUE psn 0 5\r\nhello\r\nEND" in s.recv(1024)

    # HAProxy in front of that memcached: the same protocol through the proxy.
    ha = containers.run(
        image("haproxy"),
        "haproxy",
        mounts=[(FIXTURES / "haproxy" / "haproxy.cfg", "/etc/haproxy/haproxy.cfg:ro")],
        ports=["8404", "11211"],
    )
    containers.wait_healthy(ha)
    status, body = http_get(f"http://127.0.0.1:{containers.port(ha, '8404')}/stats;csv")
    assert status == 200 and b"memcached,mc1" in body
    deadline = time.monotonic() + 20
    reply = b""
    while time.monotonic() < deadline:
        try:
            reply = _memcached_version(containers.port(ha, "11211"))
        except OSError:
            reply = b""
        if reply.startswith(b"VERSION"):
            break
        time.sleep(1)
    assert reply.startswith(b"VERSION 1.6")


def test_postfix_smtp(image, containers):
    import smtplib

    cid = containers.run(image("postfix"), "postfix", ports=["25"])
    containers.wait_healthy(cid)
    with smtplib.SMTP("127.0.0.1", containers.port(cid, "25"), timeout=10) as smtp:
        code, banner = smtp.ehlo("smoke.example.org")
        assert code == 250 and banner.startswith(b"localhost.localdomain")
        assert smtp.mail("sender@example.org")[0] == 250
        # not an open relay: the client is outside mynetworks
        code, msg = smtp.rcpt("someone@example.net")
        assert code == 554 and b"Relay access denied" in msg
        assert smtp.rcpt("postmaster@localhost")[0] == 250
    logs = docker("logs", cid)
    assert b"Relay access denied" in logs.stdout + logs.stderr  # maillog on stdout


def test_dovecot_lmtp_and_imap(image, containers):
    import imaplib
    import smtplib

    cid = containers.run(
        image("dovecot"),
        "dovecot",
        secrets={"dovecot_users": "alice@example.com:{PLAIN}Alice-pw-123\n"},
        mounts=[(FIXTURES / "dovecot" / "conf.d", "/etc/dovecot/conf.d:ro")],
        ports=["24", "143"],
    )
    containers.wait_healthy(cid)
    lmtp = smtplib.LMTP("127.0.0.1", containers.port(cid, "24"), timeout=10)
    try:
        refused = lmtp.sendmail(
            "bob@example.org",
            ["alice@example.com"],
            b"Subject: psn smoke\r\nFrom: bob@example.org\r\n\r\nhello alice\r\n",
        )
        assert refused == {}
    finally:
        lmtp.quit()
    imap = imaplib.IMAP4("127.0.0.1", containers.port(cid, "143"))
    try:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login("alice@example.com", "wrong")
        assert imap.login("alice@example.com", "Alice-pw-123")[0] == "OK"
        status, count = imap.select("INBOX")
        assert status == "OK" and count == [b"1"]
        _, data = imap.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: psn smoke" in data[0][1]
    finally:
        imap.logout()


EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _clamd_instream(port: int, data: bytes) -> bytes:
    import struct

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"zINSTREAM\0" + struct.pack(">I", len(data)) + data + struct.pack(">I", 0))
        return s.recv(4096).rstrip(b"\0")


def test_clamav_detects_eicar(image, containers):
    # A tiny self-made database (the EICAR test file's MD5) instead of the public one.
    cid = containers.run(
        image("clamav"),
        "clamav",
        mounts=[(FIXTURES / "clamav" / "db", "/var/lib/clamav:ro")],
        ports=["3310"],
    )
    containers.wait_healthy(cid)
    port = containers.port(cid, "3310")
    assert _clamd_instream(port, EICAR) == b"stream: PSN.Smoke.EICAR.UNOFFICIAL FOUND"
    assert _clamd_instream(port, b"just a clean message\n") == b"stream: OK"


GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def test_rspamd_scans_and_guards_controller(image, containers, tmp_path):
    password = "Rspamd-smoke-" + uuid.uuid4().hex[:8]
    template = tmp_path / "redis-password.conf"
    template.write_text('password = "@@secret:redis_password@@";\n')
    cid = containers.run(
        image("rspamd"),
        "rspamd",
        secrets={"rspamd_controller_password": password, "redis_password": "Redis-smoke-1"},
        mounts=[(template, "/etc/rspamd/templates.d/redis-password.conf:ro")],
        # Its own name: the entrypoint waits until the names of the upstreams resolve.
        env={"PSN_RSPAMD_WAIT_FOR": "rspamd"},
        ports=["11333", "11334"],
    )
    containers.wait_healthy(cid)
    rendered = out(docker("exec", cid, "cat", "/run/rspamd/psn/redis-password.conf"))
    assert rendered == 'password = "Redis-smoke-1";'
    msg = (
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: smoke\r\n"
        b"Message-ID: <smoke@example.org>\r\n\r\n" + GTUBE + b"\r\n"
    )
    req = urllib.request.Request(
        f"http://127.0.0.1:{containers.port(cid, '11333')}/checkv2", data=msg, method="POST"
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        result = json.loads(resp.read())
    assert result["action"] == "reject" and "GTUBE" in result["symbols"]
    stat = f"http://127.0.0.1:{containers.port(cid, '11334')}/stat"
    with urllib.request.urlopen(
        urllib.request.Request(stat, headers={"Password": password}), timeout=10
    ) as resp:
        assert resp.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(stat, headers={"Password": "q1"}), timeout=10)
    assert err.value.code == 401


def test_patroni_bootstraps_leader(image, containers):
    etcd = containers.run(image("etcd"), "etcd")
    containers.wait_healthy(etcd)
    password = "Pg-smoke-" + uuid.uuid4().hex[:8]
    tag = image("patroni")
    cid = containers.run(
        tag,
        "patroni",
        secrets={"postgres_password": password, "replication_password": "Repl-smoke-1"},
        mounts=[(FIXTURES / "patroni" / "patroni.yml", "/etc/patroni/patroni.yml:ro")],
        ports=["8008"],
    )
    containers.wait_healthy(cid)
    api = f"http://127.0.0.1:{containers.port(cid, '8008')}"
    deadline = time.monotonic() + 60
    members: list = []
    while time.monotonic() < deadline:
        _, body = http_get(f"{api}/cluster")
        members = json.loads(body)["members"]
        if members and members[0]["role"] == "leader" and members[0]["state"] == "running":
            break
        time.sleep(1)
    assert [(m["name"], m["role"]) for m in members] == [("pg1", "leader")]
    # SQL through the member's address, authenticated with the superuser secret
    pgpass = containers.tmp / "pgpass"
    pgpass.write_text(f"*:*:*:postgres:{password}\n")
    pgpass.chmod(0o600)
    got = out(
        docker(
            "run", "--rm", "--network", containers.network, "--user", "0",
            "-v", f"{pgpass}:/tmp/pgpass:ro", "-e", "PGPASSFILE=/tmp/pgpass",
            "--entrypoint", "psql", tag, "-h", "patroni", "-U", "postgres", "-d", "postgres",
            "-XtAc", "SELECT pg_is_in_recovery()",
        )
    )  # fmt: skip
    assert got == "f"


def _load_people(containers: Containers, tag: str, dm_password_file: Path) -> None:
    docker(
        "run", "--rm", "--network", containers.network,
        "-v", f"{dm_password_file}:/tmp/dm:ro", "-v", f"{FIXTURES / 'ldap'}:/fixtures:ro",
        "--entrypoint", "ldapmodify", tag, "-x", "-H", "ldap://ldap:3389",
        "-D", "cn=Directory Manager", "-y", "/tmp/dm", "-a", "-f", "/fixtures/people.ldif",
    )  # fmt: skip


def test_sogo_behind_web(image, containers):
    """SOGo with LDAP users, PostgreSQL and memcached, behind psn/web: static resources from
    nginx, the login page and a real login through the proxy."""
    dm, dbpw = "Dm-smoke-" + uuid.uuid4().hex[:6], "Sogo-db-" + uuid.uuid4().hex[:6]
    ldap = containers.run(
        image("ldap"),
        "ldap",
        secrets={"ldap_dm_password": dm},
        env={"PSN_LDAP_SUFFIX": "dc=example,dc=com"},
    )
    pg = containers.run(
        image("postgres"),
        "postgres",
        secrets={"postgres_password": "Pg-" + dbpw, "sogo_db_password": dbpw},
        mounts=[(FIXTURES / "sogo" / "initdb", "/docker-entrypoint-initdb.d:ro")],
    )
    mc = containers.run(image("memcached"), "memcached")
    for cid in (ldap, pg, mc):
        containers.wait_healthy(cid)
    _load_people(containers, image("ldap"), containers.tmp / "secrets" / "ldap_dm_password")

    sogo = containers.run(
        image("sogo"),
        "sogo",
        secrets={"sogo_db_password": dbpw, "ldap_dm_password": dm},
        mounts=[(FIXTURES / "sogo" / "templates.d", "/etc/sogo/templates.d:ro")],
    )
    web = containers.run(image("web"), "web", ports=["80"])
    containers.wait_healthy(sogo)
    containers.wait_healthy(web)
    base = f"http://127.0.0.1:{containers.port(web, '80')}"

    status, css = http_get(f"{base}/SOGo.woa/WebServerResources/css/icons.css")
    assert status == 200 and len(css) > 1000
    status, page = http_get(f"{base}/SOGo/")
    assert status == 200 and b"SOGo" in page

    def login(password: str) -> int:
        req = urllib.request.Request(
            f"{base}/SOGo/connect",
            data=json.dumps({"userName": "alice", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert login("Alice-pw-123") == 200
    assert login("wrong") == 403


def test_prometheus_basic_auth_and_query(image, containers):
    # bcrypt hash of "Mon-pw-123" (guide: mon_user / mon_user_hash)
    mon_hash = "$2b$12$vMjz5ZbwRO4q6B2n9u6.ReIuS2HtG4hpArMKxta6GQOdvSfMGjVBu"
    cid = containers.run(
        image("prometheus"),
        "prometheus",
        secrets={"prometheus_mon_hash": mon_hash},
        mounts=[(FIXTURES / "prometheus" / "templates.d", "/etc/prometheus/templates.d:ro")],
        ports=["9090"],
    )
    containers.wait_healthy(cid)
    url = f"http://127.0.0.1:{containers.port(cid, '9090')}/api/v1/query?query=up"
    with pytest.raises(urllib.error.HTTPError) as err:
        http_get(url)
    assert err.value.code == 401
    auth = base64.b64encode(b"monitor:Mon-pw-123").decode()
    deadline = time.monotonic() + 90
    result: list = []
    while time.monotonic() < deadline:
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            data = json.loads(resp.read())
        assert data["status"] == "success"
        result = data["data"]["result"]
        if result:
            break
        time.sleep(2)
    # Prometheus scraped itself (through its own basic auth: "up" may be 0, but it exists)
    assert result and result[0]["metric"]["job"] == "prometheus"


def test_glusterfs_volume_and_fuse_mount(image, containers):
    tag = image("glusterfs")
    # glusterd needs CAP_SYS_ADMIN for the trusted.* xattrs of its bricks
    cid = containers.run(tag, "gluster", extra=["--cap-add", "SYS_ADMIN", "--hostname", "gluster"])
    containers.wait_healthy(cid)
    gl = ["exec", cid, "gluster", "--mode=script"]
    docker(*gl, "volume", "create", "smoke", "gluster:/bricks/smoke", "force")
    docker(*gl, "volume", "start", "smoke")
    assert "Started" in out(docker(*gl, "volume", "info", "smoke"))
    marker = uuid.uuid4().hex
    got = out(
        docker(
            "run", "--rm", "--network", containers.network, "--cap-add", "SYS_ADMIN",
            "--device", "/dev/fuse", "--entrypoint", "sh", tag, "-c",
            f"mount -t glusterfs gluster:/smoke /mnt && echo {marker} > /mnt/f"
            " && cat /mnt/f && umount /mnt",
            timeout=120,
        )
    )  # fmt: skip
    assert got == marker
    assert out(docker("exec", cid, "cat", "/bricks/smoke/f")) == marker
