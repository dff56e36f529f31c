"""Fixtures of the psn/psnapi tests: the image (built on demand like test_smoke's) and a lab
that runs its services, each with a config.json and secret files mounted, on a private Docker
network with port 8080 published on 127.0.0.1.

Environment (as test_smoke.py): PSN_IMAGE_VERSION, PSN_SMOKE_BUILD=0, PSN_SMOKE_TIMEOUT.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

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
