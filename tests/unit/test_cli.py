"""The commands end to end on this machine: shell entry points, the distribution check,
and a deployment of the site playbook over a local connection."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from psn.cli import run
from psn.dist import build_distribution
from psn.inventory import load_inventory, yaml_round_trip

ROOT = Path(__file__).resolve().parents[2]


def _local(inventory: Path) -> Path:
    """The inventory with every role on localhost over a local connection."""
    yaml = yaml_round_trip()
    doc = yaml.load(inventory.read_text().replace("host.example.com:", "localhost:"))
    doc["all"]["vars"]["ansible_connection"] = "local"
    # Mitogen leaves out become (sudo, missing here) only when the login user is the become user,
    # and a local connection names no login user unless told.
    doc["all"]["vars"]["ansible_user"] = getpass.getuser()
    doc["all"]["vars"]["ansible_python_interpreter"] = sys.executable
    with inventory.open("w") as handle:
        yaml.dump(doc, handle)
    return inventory


def test_a_mistyped_command_is_named(capsys) -> None:
    """`./deploy_psn.sh validat x.yml` reaches `deploy validat`: the command it resembles."""
    assert run(["--skip-checksum", "deploy", "validat", "x.yml"]) == 2
    output = capsys.readouterr().err
    assert "did you mean the command `validate`?" in output
    assert "Traceback" not in output


def test_root_option_precedes_the_command(tmp_path: Path) -> None:
    """`./deploy_psn.sh --root DIR validate ...`: --root is the option, not an inventory."""
    result = subprocess.run(
        [ROOT / "deploy_psn.sh", "--root", ROOT, "--skip-checksum", "validate", tmp_path / "n.yml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert f"no such file: {tmp_path / 'n.yml'}" in result.stderr
    assert "--root" not in result.stderr


def test_gen_self_signed_cert_script(tmp_path: Path, valid_inventory: Path) -> None:
    certs = tmp_path / "certs"
    result = subprocess.run(
        [ROOT / "gen_self_signed_cert.sh", "example.com", "--certs-dir", certs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (certs / "example.com").iterdir()} >= {
        "server.crt",
        "server.nopass.key",
        "ca.crt",
    }
    assert (
        run(["--skip-checksum", "certs", "check", str(valid_inventory), "--certs-dir", str(certs)])
        == 0
    )
    again = subprocess.run(
        [ROOT / "gen_self_signed_cert.sh", "example.com", "--certs-dir", certs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2 and "--force" in again.stderr


def test_self_signed_follows_the_inventory_domain_module(
    tmp_path: Path, valid_inventory: Path, capsys
) -> None:
    text = valid_inventory.read_text().replace('"{service}.{domain}"', '"{service}-{domain}"')
    valid_inventory.write_text(
        text.replace('external_domain: "example.com"', 'external_domain: "test.example.com"')
    )
    certs = tmp_path / "certs"
    args = [
        "--skip-checksum",
        "certs",
        "self-signed",
        "test.example.com",
        "--inventory",
        str(valid_inventory),
    ]
    assert run([*args, "--certs-dir", str(certs)]) == 0
    assert (certs / "example.com" / "server.crt").exists()  # DEFAULT_DOMAIN: second level
    assert (
        run(["--skip-checksum", "validate", str(valid_inventory), "--certs-dir", str(certs)]) == 0
    ), capsys.readouterr().err


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project built into a distribution and unpacked, as an operator gets it."""
    out = tmp_path_factory.mktemp("dist")
    result = build_distribution(ROOT, out, "9.9.9")
    with tarfile.open(result.tgz) as archive:
        archive.extractall(out / "unpacked", filter="tar")
    return out / "unpacked" / "PSN_9.9.9"


def _from_tree(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PSN_ROOT"}
    return subprocess.run(
        [sys.executable, tree / "deploy_psn.py", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_unpacked_distribution_runs(unpacked: Path, valid_inventory: Path) -> None:
    result = _from_tree(unpacked, "dns", str(valid_inventory))
    assert result.returncode == 0, result.stderr
    assert "_submission._tcp.example.com." in result.stdout


def test_tampered_distribution_is_refused(unpacked: Path, valid_inventory: Path) -> None:
    target = unpacked / "psn" / "names.py"
    original = target.read_text()
    target.write_text(original + "\n# changed\n")
    try:
        result = _from_tree(unpacked, "dns", str(valid_inventory))
        assert result.returncode == 3
        assert "psn/names.py" in result.stderr and "differs" in result.stderr
        assert "--skip-checksum" in result.stderr
        assert _from_tree(unpacked, "--skip-checksum", "dns", str(valid_inventory)).returncode == 0
    finally:
        target.write_text(original)


def test_deploy_refuses_without_certificates_and_touches_nothing(
    tmp_path: Path, valid_inventory: Path, capsys
) -> None:
    code = run(
        [
            "--skip-checksum",
            "deploy",
            str(_local(valid_inventory)),
            "--certs-dir",
            str(tmp_path / "none"),
            "--log-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "Nothing was changed" in capsys.readouterr().err
    assert not list(tmp_path.glob("deploy_psn_*.log"))  # Ansible never started


def test_deploy_refuses_unknown_ansible_option(
    tmp_path: Path, valid_inventory: Path, certs_root: Path, capsys
) -> None:
    code = run(
        [
            "--skip-checksum",
            "deploy",
            str(_local(valid_inventory)),
            "--certs-dir",
            str(certs_root),
            "--log-dir",
            str(tmp_path),
            "--frobnicate",
        ]
    )
    assert code == 2
    assert "--frobnicate" in capsys.readouterr().err


def test_deploy_runs_the_site_playbook_with_a_masked_log(
    tmp_path: Path, valid_inventory: Path, certs_root: Path, capsys
) -> None:
    inventory = _local(valid_inventory)
    code = run(
        [
            "--skip-checksum",
            "deploy",
            str(inventory),
            "--certs-dir",
            str(certs_root),
            "--log-dir",
            str(tmp_path),
            # The guide's split tag list ("-t nginx, mail"), with roles that change nothing on
            # this machine: the read-only prechecks, and syslog, which has no host here.
            "-t",
            "precheck,",
            "syslog",
            "-e",
            "probe={{ passwords.redis_user }}",
            "-e",
            "precheck__hardware=warn",
        ]
    )
    output = capsys.readouterr().err
    assert code == 0, output
    logs = list(tmp_path.glob("deploy_psn_*.log"))
    assert len(logs) == 1
    log = logs[0].read_text()
    assert "precheck" in output and "ldap" not in output.split("Deployment summary")[1]
    assert "-t precheck,syslog" in log
    for secret in load_inventory(inventory).secret_values():
        assert secret not in log


def test_precheck_reports_every_problem_of_a_host_together(
    tmp_path: Path, valid_inventory: Path, certs_root: Path, capsys
) -> None:
    inventory = _local(valid_inventory)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        extra = json.dumps(
            {"precheck__min_cpus": 4096, "precheck__ports_by_group": {"mail": [port]}}
        )
        code = run(
            [
                "--skip-checksum",
                "precheck",
                str(inventory),
                "--certs-dir",
                str(certs_root),
                "--log-dir",
                str(tmp_path),
                "-e",
                extra,
            ]
        )
    output = " ".join(capsys.readouterr().err.split())
    assert code == 4, output
    assert "localhost is not ready:" in output
    assert "CPU: found" in output and "needed 4096" in output
    assert f"port: {port} is held by" in output and "needed free for mail" in output


def test_precheck_passes_with_hardware_warnings(
    tmp_path: Path, valid_inventory: Path, certs_root: Path, capsys
) -> None:
    code = run(
        [
            "--skip-checksum",
            "precheck",
            str(_local(valid_inventory)),
            "--certs-dir",
            str(certs_root),
            "--log-dir",
            str(tmp_path),
            "-e",
            '{"precheck__hardware": "warn", "precheck__min_cpus": 4096}',
        ]
    )
    output = capsys.readouterr().err
    assert code == 0, output
