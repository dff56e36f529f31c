"""SSH host keys under both strategies (Mitogen's, the default, and Ansible's own).

Every standard way of handling host keys must behave as Ansible's own ssh connection does: the
inventory's ansible_ssh_common_args, ansible_host_key_checking, ANSIBLE_HOST_KEY_CHECKING,
~/.ssh/config and ~/.ssh/known_hosts. An unknown key stops the run with the server's fingerprint
and the command that accepts it. `deploy_psn precheck` (read-only) is the run, so the server stays
untouched, and a deployment with a broken inventory must leave it so without even logging in.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from e2e_helpers import deploy, deploy_psn, write_inventory

from psn import emulated

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# Options every case keeps: the lab's key, and no prompt (ssh would otherwise ask on the pty of
# ansible-runner and wait).
BASE = "-o IdentitiesOnly=yes -o BatchMode=yes"
STRATEGIES = {"mitogen": {"PSN_MITOGEN": "1"}, "ansible": {"PSN_MITOGEN": "0"}}


@pytest.fixture(scope="module")
def lab(emulated_servers):
    return emulated_servers(1, prefix="hostkey")


@contextmanager
def in_users_ssh(name: str, text: str) -> Iterator[None]:
    """`text` appended to ~/.ssh/<name> of this user (ssh reads the passwd home, not $HOME),
    the file put back as it was afterwards."""
    path = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ssh" / name
    made_dir = not path.parent.exists()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    before = path.read_bytes() if path.exists() else None
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    try:
        yield
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)
        if made_dir:
            path.parent.rmdir()


def run(lab, tmp_path: Path, certs_root: Path, strategy: str, *, host_vars=None, env=None):
    """precheck with the server's host variables changed."""
    server = lab.servers[0]

    def edit(doc) -> None:
        doc["all"]["hosts"][server.name].update(host_vars or {})

    inventory = write_inventory(tmp_path / "hosts.yml", lab, edit)
    return deploy_psn(
        "precheck", inventory, certs_root, tmp_path, "-e", "precheck__hardware=warn",
        # Ansible's ssh keeps connections open for 60 s: a test must not reuse the last one's.
        env={
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
            **STRATEGIES[strategy],
            **(env or {}),
        },
    )  # fmt: skip


def empty_known_hosts(tmp_path: Path) -> str:
    path = tmp_path / "empty_known_hosts"
    path.write_text("")
    return f"-o UserKnownHostsFile={path} -o GlobalKnownHostsFile=/dev/null"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ssh_common_args_turn_checking_off(lab, tmp_path, certs_root, strategy):
    args = f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {BASE}"
    res = run(lab, tmp_path, certs_root, strategy, host_vars={"ansible_ssh_common_args": args})
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_host_key_checking_variable_turns_checking_off(lab, tmp_path, certs_root, strategy):
    host_vars = {
        "ansible_ssh_common_args": f"{empty_known_hosts(tmp_path)} {BASE}",
        "ansible_host_key_checking": False,
    }
    res = run(lab, tmp_path, certs_root, strategy, host_vars=host_vars)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_environment_turns_checking_off(lab, tmp_path, certs_root, strategy):
    host_vars = {"ansible_ssh_common_args": f"{empty_known_hosts(tmp_path)} {BASE}"}
    env = {"ANSIBLE_HOST_KEY_CHECKING": "False"}
    res = run(lab, tmp_path, certs_root, strategy, host_vars=host_vars, env=env)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ssh_config_is_honoured(lab, tmp_path, certs_root, strategy):
    address = lab.servers[0].address
    config = f"\nHost {address}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
    with in_users_ssh("config", config):
        res = run(lab, tmp_path, certs_root, strategy, host_vars={"ansible_ssh_common_args": BASE})
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_users_known_hosts_is_honoured(lab, tmp_path, certs_root, strategy):
    known = emulated.known_hosts_path(lab.state_dir, lab.network).read_text()
    with in_users_ssh("known_hosts", known):
        res = run(lab, tmp_path, certs_root, strategy, host_vars={"ansible_ssh_common_args": BASE})
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unknown_key_names_the_fingerprint_and_the_fix(lab, tmp_path, certs_root, strategy):
    host_vars = {"ansible_ssh_common_args": f"{empty_known_hosts(tmp_path)} {BASE}"}
    res = run(lab, tmp_path, certs_root, strategy, host_vars=host_vars)
    assert res.returncode != 0
    address = lab.servers[0].address
    fingerprint = emulated.exec_on(
        lab.servers[0], ["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"], check=True
    ).stdout.split()[1]
    assert fingerprint.startswith("SHA256:")
    assert f"ED25519 {fingerprint}" in res.stderr
    assert f"ssh-keyscan {address} >> ~/.ssh/known_hosts" in res.stderr


def test_broken_inventory_changes_nothing(lab, certs_root, tmp_path):
    [server] = lab.servers

    def break_password(doc) -> None:
        doc["all"]["vars"]["passwords"]["redis_user"] = "pa$$word1"

    logins = lab.exec(server, "journalctl", "-u", "ssh", "-o", "cat").stdout.count("Accepted")
    inventory = write_inventory(tmp_path / "hosts.yml", lab, break_password)

    res = deploy(inventory, certs_root, tmp_path / "logs", "common,swarm,certificates")

    assert res.returncode == 2, res.stdout + res.stderr
    assert "passwords.redis_user" in res.stderr
    assert lab.exec(server, "dpkg-query", "-W", "docker.io").returncode != 0
    assert lab.exec(server, "test", "-e", "/opt/poseidon").returncode != 0
    after = lab.exec(server, "journalctl", "-u", "ssh", "-o", "cat").stdout.count("Accepted")
    assert after == logins  # nobody logged in: no SSH session was even opened
