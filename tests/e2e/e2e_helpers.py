"""What the end-to-end modules share: the operator's inventory and commands, and their output.

Each module deploys with the real `./deploy_psn.sh` onto its own emulated servers; these helpers
write the template inventory for them, run the installer as an operator would, and read the
deployment summary and log back.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from psn import __version__, emulated, images
from psn.genpwd import fill_secrets
from psn.inventory import yaml_round_trip

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_HOST = "host.example.com"
DOMAIN = "example.com"
VERSION = __version__
COLUMNS = ("hosts", "ok", "changed", "failed", "unreachable")


@dataclass
class EmulatedLab:
    """Servers of one private network, with the state (SSH key, known_hosts) to reach them."""

    servers: list[emulated.Server]
    state_dir: Path
    network: str

    def hostvars(self, server: emulated.Server) -> dict[str, str]:
        """Inventory host variables for Ansible over SSH (host key checking on)."""
        return emulated.hostvars(server, self.state_dir)

    def ssh(self, server: emulated.Server, command: str, *, check: bool = True) -> str:
        """Run a shell command on the server over SSH; its stdout."""
        return emulated.ssh_run(server, self.state_dir, command, check=check).stdout

    def exec(self, server: emulated.Server, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the server's container (docker exec), not failing on its exit."""
        return emulated.exec_on(server, argv, check=False)


def write_inventory(path: Path, lab, edit: Callable[[Any], None] | None = None) -> Path:
    """inventory/hosts.yml with the lab's first server in every group, every server's SSH
    settings as host variables, `edit(document)` applied, then genpwd's passwords."""
    first = lab.servers[0]
    yaml_rt = yaml_round_trip()
    text = (ROOT / "inventory" / "hosts.yml").read_text("utf-8")
    doc = yaml_rt.load(text.replace(f"{TEMPLATE_HOST}:", f"{first.name}:"))
    doc["all"]["hosts"] = {server.name: lab.hostvars(server) for server in lab.servers}
    if edit:
        edit(doc)
    with path.open("w", encoding="utf-8") as handle:
        yaml_rt.dump(doc, handle)
    fill_secrets(path)
    return path


def deploy_psn(
    command: str,
    inventory: Path,
    certs_root: Path,
    log_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`./deploy_psn.sh <command> <inventory> --certs-dir --log-dir <args>` as an operator runs
    it (no terminal, wide output, `env` over this environment); output captured."""
    argv = [
        str(ROOT / "deploy_psn.sh"),
        "--skip-checksum",
        command,
        str(inventory),
        "--certs-dir",
        str(certs_root),
        "--log-dir",
        str(log_dir),
        *args,
    ]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
        stdin=subprocess.DEVNULL,
    )


def deploy(
    inventory: Path, certs_root: Path, log_dir: Path, tags: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`./deploy_psn.sh deploy -t <tags>`; emulated servers on a 2-core machine are below the
    guide's hardware minimums, so those are warnings."""
    return deploy_psn(
        "deploy", inventory, certs_root, log_dir, "-t", tags, "-e", "precheck__hardware=warn",
        *extra,
    )  # fmt: skip


def summary_rows(output: str) -> dict[str, dict[str, int]]:
    """The per-role table of the deployment summary: role -> ok/changed/failed/unreachable."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if len(cells) >= 6 and cells[0].isidentifier() and all(c.isdigit() for c in cells[1:6]):
            rows[cells[0]] = dict(zip(COLUMNS, map(int, cells[1:6]), strict=True))
    return rows


def print_summary(title: str, res: subprocess.CompletedProcess[str], seconds: float) -> None:
    """The deployment summary table (roles, counts, durations) in the test output."""
    table = [line for line in res.stderr.splitlines() if "│" in line or "┃" in line]
    print(f"\n{title}: {seconds:.0f}s\n" + "\n".join(table))


def newest_log(log_dir: Path) -> str:
    return max(log_dir.glob("deploy_psn_*.log"), key=lambda p: p.stat().st_mtime).read_text()


def recap(log_dir: Path) -> dict[str, int]:
    """PLAY RECAP totals of the newest deploy_psn_<DATE>.log in `log_dir`."""
    totals: dict[str, int] = {}
    for match in re.finditer(r"^\S+\s+:\s+((?:\w+=\d+\s*)+)$", newest_log(log_dir), re.MULTILINE):
        for key, value in re.findall(r"(\w+)=(\d+)", match.group(1)):
            totals[key] = totals.get(key, 0) + int(value)
    return totals


def image_archive(directory: Path, names: tuple[str, ...]) -> Path:
    """The images `names` of this version (built when missing) in one archive in `directory`,
    written and named as `deploy_psn images save` does."""
    if not images.engine_answers():
        pytest.skip("no Docker engine answers: start one with `bash .ci/docker-engine.sh`")
    tags = [images.image_tag(name, VERSION) for name in names]
    missing = [name for name, tag in zip(names, tags, strict=True) if not images.image_exists(tag)]
    if missing:
        started = time.monotonic()
        images.build_images(ROOT, VERSION, only=missing)
        print(f"\nbuilt {', '.join(missing)} in {time.monotonic() - started:.0f}s")
    out = directory / images.archive_path(ROOT, VERSION).name
    return images.save_images(ROOT, VERSION, out, only=names)


def task_container(lab, service: str) -> str:
    """The running task container of `service` on the lab's one server."""
    [server] = lab.servers
    cid = lab.ssh(
        server,
        f"docker ps -q --filter label=com.docker.swarm.service.name={service}"
        " --filter status=running",
    ).strip()
    assert cid, f"no running container of {service}"
    return cid


def in_task(lab, service: str, script: str) -> str:
    """Run a shell script in the service's task container; its stdout and stderr."""
    [server] = lab.servers
    command = f"docker exec -i {task_container(lab, service)} sh -c {shlex.quote(script)} 2>&1"
    return lab.ssh(server, command, check=False)


def updated_at(lab) -> dict[str, str]:
    """Service name -> UpdatedAt of every service of the swarm."""
    [server] = lab.servers
    out = lab.ssh(
        server,
        "docker service ls -q | xargs -r docker service inspect "
        "--format '{{.Spec.Name}} {{.UpdatedAt}}'",
    )
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())
