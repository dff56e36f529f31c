"""Fixtures of the psn/psnapi tests: the image (built on demand like test_smoke's), a lab that
runs its services, each with a config.json and secret files mounted, on a private Docker network
with port 8080 published on 127.0.0.1, and the PSN API over a real psn/ldap directory provisioned
from the ldap role's own description (schema, ACIs, tree, accounts).

Environment (as test_smoke.py): PSN_IMAGE_VERSION, PSN_SMOKE_BUILD=0, PSN_SMOKE_TIMEOUT.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.nativetypes import NativeEnvironment

import psn
from psn import images
from psn.errors import ImageBuildError

ROOT = Path(__file__).resolve().parents[2]
VERSION = os.environ.get("PSN_IMAGE_VERSION") or psn.__version__
BUILD = os.environ.get("PSN_SMOKE_BUILD", "1") != "0"
HEALTH_TIMEOUT = float(os.environ.get("PSN_SMOKE_TIMEOUT", "240"))


def run_docker(*args: str, input: bytes | None = None, timeout: float = 300, check: bool = True):
    """`docker ARGS`; AssertionError with its output when it fails and `check`."""
    res = subprocess.run(
        ["docker", *args], input=input, capture_output=True, timeout=timeout, check=False
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({res.returncode}):\n"
            f"{res.stdout.decode(errors='replace')}\n{res.stderr.decode(errors='replace')}"
        )
    return res


def psn_image(name: str) -> str:
    """The tag of psn/<name>:<version>, built (from the layer cache) unless PSN_SMOKE_BUILD=0."""
    if not images.engine_answers():
        pytest.skip("no Docker engine answers (start one with: bash .ci/docker-engine.sh)")
    tag = images.image_tag(name, VERSION)
    if BUILD:
        try:
            images.build_images(ROOT, VERSION, only=[name])
        except ImageBuildError as exc:
            pytest.fail(f"building {tag} failed: {exc.title}\n{exc.output}", pytrace=False)
    elif not images.image_exists(tag):
        pytest.skip(f"{tag} is not built and PSN_SMOKE_BUILD=0")
    return tag


@pytest.fixture(scope="session")
def psnapi_image() -> str:
    return psn_image("psnapi")


class PsnwebLab:
    """Containers on one private network, removed (with their volumes) by close()."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.network = f"psn-web-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []
        run_docker("network", "create", self.network)

    def run(
        self,
        tag: str,
        alias: str,
        *command: str,
        config: dict[str, Any] | None = None,
        secrets: dict[str, str] | None = None,
        publish: str | None = "8080",
        extra: list[str] | None = None,
    ) -> str:
        """Start `tag` as `alias`; `config` becomes /etc/psnweb/config.json, each secret a
        read-only file in /run/secrets. Returns the container id."""
        d = self.tmp / alias
        d.mkdir(parents=True, exist_ok=True)
        args = ["run", "-d", "--name", f"{self.network}-{alias}", "--network", self.network]
        args += ["--network-alias", alias, "--health-interval", "1s"]
        if config is not None:
            path = d / "config.json"
            path.write_text(json.dumps(config), encoding="utf-8")
            path.chmod(0o644)
            args += ["-v", f"{path}:/etc/psnweb/config.json:ro"]
        for name, value in (secrets or {}).items():
            path = d / f"secret-{name}"
            path.write_text(value, encoding="utf-8")
            path.chmod(0o444)
            args += ["-v", f"{path}:/run/secrets/{name}:ro"]
        if publish:
            args += ["-p", f"127.0.0.1::{publish}"]
        cid = run_docker(*args, *(extra or []), tag, *command).stdout.decode().strip()
        self.ids.append(cid)
        return cid

    def wait_healthy(self, cid: str, timeout: float = HEALTH_TIMEOUT) -> None:
        """Wait for the container's HEALTHCHECK; fail with its logs when it never passes."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
            state = run_docker("inspect", "-f", fmt, cid).stdout.decode().strip()
            if state == "running healthy" or not state.startswith("running"):
                break
            time.sleep(1)
        if state != "running healthy":
            logs = run_docker("logs", "--tail", "60", cid, check=False)
            pytest.fail(
                f"container {cid[:12]} not healthy (state {state!r}) after {timeout:.0f}s\n"
                f"logs:\n{(logs.stdout + logs.stderr).decode(errors='replace')}",
                pytrace=False,
            )

    def url(self, cid: str, port: str = "8080") -> str:
        """http://127.0.0.1:<published port> of the container's `port`."""
        mapping = run_docker("port", cid, port).stdout.decode().splitlines()[0]
        return f"http://127.0.0.1:{int(mapping.rsplit(':', 1)[1])}"

    def close(self) -> None:
        for cid in self.ids:
            run_docker("rm", "-f", "-v", cid, check=False)
        run_docker("network", "rm", self.network, check=False)


@pytest.fixture(scope="module")
def psnweb_lab(tmp_path_factory: pytest.TempPathFactory):
    lab = PsnwebLab(tmp_path_factory.mktemp("psnweb"))
    yield lab
    lab.close()


# --- the PSN API over a provisioned directory ------------------------------------------------

DOMAIN = "psn.test"
BASE_DN = "dc=psn,dc=test"


def ldap_role_description(base_dn: str, domain: str) -> dict[str, Any]:
    """{"schema", "entries"} as roles/ldap feeds psn-ldap-provision, rendered from the role's
    defaults (their Jinja expressions are plain variables and filters of Jinja itself)."""
    raw = yaml.safe_load((ROOT / "roles" / "ldap" / "defaults" / "main.yml").read_text())
    values = {
        k: v for k, v in raw.items() if k not in ("ldap__services", "ldap__service_passwords")
    }
    values.update(ldap__base_dn=base_dn, ldap__domain=domain)
    env = NativeEnvironment(undefined=StrictUndefined)

    def render(value: Any) -> Any:
        if isinstance(value, str) and "{{" in value:
            return env.from_string(value).render(values)
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return value

    # Until nothing changes: values refer to other values (entries → acis → base DN).
    for _ in range(10):
        rendered = {}
        for key, value in values.items():
            try:
                rendered[key] = render(value)
            except TemplateError:  # refers to a value not rendered yet, or one not needed here
                rendered[key] = value
        if rendered == values:
            break
        values = rendered
    description = {"schema": values["ldap__schema"], "entries": values["ldap__entries"]}
    assert "{{" not in json.dumps(description), "unrendered values in the ldap role's defaults"
    return description


@dataclass(frozen=True)
class PsnapiService:
    """A running API: its URL from the host, its name on the lab network and the logins."""

    url: str
    internal_url: str
    admin_name: str
    admin_password: str
    domain: str
    tenant_admin: str
    tenant_admin_password: str
    ldap: str  # the directory's container


# A DKIM record as the mail role writes it, longer than one TXT character-string.
DKIM_RECORD = "v=DKIM1; k=rsa; p=" + "A" * 300


@pytest.fixture(scope="module")
def psnapi_service(psnapi_image, psnweb_lab) -> Iterator[PsnapiService]:
    """psn/ldap provisioned like the ldap role does (domain psn.test, admin@psn.test the default
    tenant's administrator) and the API (`psnweb api`) bound to it as uid=psnapi. Afterwards the
    API's log must hold no password and no traceback."""
    pw = {name: f"Pw-{name[:6]}-{secrets.token_hex(6)}" for name in ("dm", "svc", "admin", "user")}
    ldap_secrets = {
        "ldap_dm_password": pw["dm"],
        "ldap_mail_password": secrets.token_hex(12),
        "ldap_groupware_password": secrets.token_hex(12),
        "ldap_psnapi_password": pw["svc"],
        "ldap_system_password": secrets.token_hex(12),
        "ldap_default_admin_password": pw["user"],
    }
    ldap = psnweb_lab.run(
        psn_image("ldap"),
        "ldap",
        secrets=ldap_secrets,
        publish=None,
        extra=["-e", f"PSN_LDAP_SUFFIX={BASE_DN}"],
    )
    psnweb_lab.wait_healthy(ldap)
    description = json.dumps(ldap_role_description(BASE_DN, DOMAIN)).encode()
    run_docker("exec", "-i", ldap, "psn-ldap-provision", input=description)

    hosts = {k: f"{k}.{DOMAIN}" for k in ("mail", "imap", "smtp", "autoconfig", "psnapi")}
    config = {
        "ldap": {
            "uri": "ldap://ldap:3389",
            "base_dn": BASE_DN,
            "bind_dn": f"uid=psnapi,ou=Services,{BASE_DN}",
            "password_secret": "psnapi_ldap_password",
        },
        "admin": {"name": "psnapi", "password_secret": "psnapi_admin_password"},
        "token": {"key_secret": "psnapi_jwt_key", "ttl": 600},
        "default_tenant": "default",
        "external_domain": DOMAIN,
        "hosts": hosts,
        "dns": {"mx": hosts["smtp"], "dkim_selector": "psn", "dkim": {DOMAIN: DKIM_RECORD}},
    }
    api_secrets = {
        "psnapi_ldap_password": pw["svc"],
        "psnapi_admin_password": pw["admin"],
        "psnapi_jwt_key": secrets.token_hex(32),
    }
    api = psnweb_lab.run(psnapi_image, "psnapi", "api", config=config, secrets=api_secrets)
    psnweb_lab.wait_healthy(api)
    yield PsnapiService(
        url=psnweb_lab.url(api),
        internal_url="http://psnapi:8080",
        admin_name="psnapi",
        admin_password=pw["admin"],
        domain=DOMAIN,
        tenant_admin=f"admin@{DOMAIN}",
        tenant_admin_password=pw["user"],
        ldap=ldap,
    )
    logs = run_docker("logs", api, check=False)
    output = (logs.stdout + logs.stderr).decode(errors="replace")
    for secret in (pw["admin"], pw["user"], pw["svc"]):
        assert secret not in output, "a password reached the API's log"
    assert "Traceback" not in output, f"the API failed on a request:\n{output[-4000:]}"
