"""`deploy_psn genpwd`: fills what is empty, keeps what is set, keeps the file's form."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

from passlib.hash import apr_md5_crypt

from psn.cli import run
from psn.genpwd import fill_secrets
from psn.inventory import load_inventory
from psn.validate import PASSWORD_CHARS

ROOT = Path(__file__).resolve().parents[2]
VALUE = re.compile(r'^(\s*[a-z0-9_]+:) ".*"(.*)$')


def _template(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    shutil.copy(ROOT / "inventory" / "hosts.yml", path)
    path.chmod(0o644)
    return path


def _skeleton(text: str) -> list[str]:
    """The file with every quoted value blanked: comments, keys and order only."""
    return [VALUE.sub(r'\1 ""\2', line) for line in text.splitlines()]


def test_fills_every_empty_secret_and_keeps_the_form(tmp_path: Path) -> None:
    path = _template(tmp_path)
    before = path.read_text()
    filled = fill_secrets(path)
    after = path.read_text()
    assert "passwords.redis_user" in filled and "secure.auth_jwt_key" in filled
    assert "setup.autoconfig_auth_salt" in filled and "passwords.mon_user_hash" in filled
    assert _skeleton(after) == _skeleton(before)  # comments, order, quoting unchanged
    assert [line for line in after.splitlines() if "#" in line] == [
        line for line in before.splitlines() if "#" in line
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generated_values_pass_the_rules(tmp_path: Path) -> None:
    path = _template(tmp_path)
    fill_secrets(path)
    inv = load_inventory(path)
    passwords = inv.var("passwords")
    for key, value in passwords.items():
        if key != "mon_user_hash":
            assert PASSWORD_CHARS.match(value) and len(value) >= 20, key
    assert len(inv.var("secure", "auth_jwt_key")) >= 16
    assert apr_md5_crypt.verify(passwords["mon_user"], passwords["mon_user_hash"])
    assert len(set(passwords.values())) == len(passwords)  # no value reused


def test_never_overwrites_and_is_idempotent(tmp_path: Path) -> None:
    path = _template(tmp_path)
    text = path.read_text().replace('redis_user: ""', 'redis_user: "MyOwn&Pass1"')
    text = text.replace('mon_user: ""', 'mon_user: "Monitor!pass9"')
    path.write_text(text)
    fill_secrets(path)
    first = path.read_text()
    assert 'redis_user: "MyOwn&Pass1"' in first
    inv = load_inventory(path)
    assert apr_md5_crypt.verify("Monitor!pass9", inv.var("passwords", "mon_user_hash"))
    assert fill_secrets(path) == []
    assert path.read_text() == first


def test_unquoted_and_null_values_are_filled(tmp_path: Path) -> None:
    path = _template(tmp_path)
    path.write_text(path.read_text().replace('redis_user: ""', "redis_user:"))
    assert "passwords.redis_user" in fill_secrets(path)
    assert load_inventory(path).var("passwords", "redis_user")


def test_cli_reports_names_not_values(tmp_path: Path, capsys) -> None:
    path = _template(tmp_path)
    assert run(["--skip-checksum", "genpwd", str(path)]) == 0
    output = capsys.readouterr().err
    assert "passwords.redis_user" in output
    assert load_inventory(path).var("passwords", "redis_user") not in output


def test_monitoring_access_is_optional(valid_inventory: Path, certs_root: Path, capsys) -> None:
    """Without passwords.mon_user/mon_user_hash (no monitoring role yet) genpwd adds neither and
    validate accepts the inventory."""
    text = valid_inventory.read_text()
    kept = [line for line in text.splitlines() if "mon_user" not in line]
    valid_inventory.write_text("\n".join(kept) + "\n")
    assert "mon_user" not in " ".join(fill_secrets(valid_inventory))
    assert "mon_user" not in valid_inventory.read_text()
    args = ["--skip-checksum", "validate", str(valid_inventory), "--certs-dir", str(certs_root)]
    code = run(args)
    assert code == 0, capsys.readouterr().err
