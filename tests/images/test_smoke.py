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
import os
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import psn
from psn import images
from psn.errors import ImageBuildError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
VERSION = os.environ.get("PSN_IMAGE_VERSION") or psn.__version__
BUILD = os.environ.get("PSN_SMOKE_BUILD", "1") != "0"
HEALTH_TIMEOUT = float(os.environ.get("PSN_SMOKE_TIMEOUT", "240"))

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


def docker(*args: str, input: bytes | None = None, timeout: float = 300, check: bool = True):
    res = subprocess.run(
        ["docker", *args], input=input, capture_output=True, timeout=timeout, check=False
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({res.returncode}):\n"
            f"{res.stdout.decode(errors='replace')}\n{res.stderr.decode(errors='replace')}"
        )
    return res


def out(res) -> str:
    return res.stdout.decode(errors="replace").strip()


# --- fixtures -------------------------------------------------------------------------------

_built: dict[str, str] = {}


@pytest.fixture(scope="session")
def image():
    """image(name) -> tag of psn/<name>:<version>, built (from cache) when needed."""

    def get(name: str) -> str:
        if name in _built:
            return _built[name]
        tag = images.image_tag(name, VERSION)
        if BUILD:
            try:
                images.build_images(ROOT, VERSION, only=[name])
            except ImageBuildError as exc:
                pytest.fail(f"building {tag} failed: {exc.title}\n{exc.output}", pytrace=False)
        elif not images.image_exists(tag):
            pytest.skip(f"{tag} is not built and PSN_SMOKE_BUILD=0")
        _built[name] = tag
        return tag

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
    """Package versions recorded and labelled, no apt lists or .deb caches, a HEALTHCHECK,
    tini as PID 1, and a non-root user where the service allows it."""
    tag = image(name) if name != "base" else _base_tag(image)
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
            " echo ==; ls /usr/sbin/policy-rc.d 2>/dev/null || true",
        )
    )
    packages, leftovers, policy = (part.strip() for part in listing.split("=="))
    names = {line.split("\t")[0] for line in packages.splitlines()}
    assert {"base-files", "tini"} <= names
    assert leftovers == "", f"apt lists or caches left in {tag}: {leftovers}"
    assert policy == "", f"{tag} still carries policy-rc.d"
    if name == "base":
        return
    assert cfg.get("Healthcheck", {}).get("Test"), f"{tag} has no HEALTHCHECK"
    assert cfg["Entrypoint"][:2] == ["/usr/bin/tini", "--"], f"{tag}: PID 1 must be tini"
    if name in NON_ROOT:
        assert cfg.get("User") == NON_ROOT[name]


def _base_tag(image) -> str:
    tag = images.image_tag("base", VERSION)
    if not images.image_exists(tag):
        image("registry")  # any build makes the base first
    return tag


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
    time.sleep(0.2)
    return sock.recv(65536)


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
    secret = containers.tmp / "secrets" / "ldap_dm_password"
    net = ["run", "--rm", "--network", containers.network]
    dm = ["-x", "-H", "ldap://ldap:3389", "-D", "cn=Directory Manager", "-y", "/tmp/dm"]
    docker(
        *net, "-v", f"{secret}:/tmp/dm:ro", "-v", f"{FIXTURES / 'ldap'}:/fixtures:ro",
        "--entrypoint", "ldapmodify", tag, *dm, "-a", "-f", "/fixtures/people.ldif",
    )  # fmt: skip
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
