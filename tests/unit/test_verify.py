"""`deploy_psn verify`: the parts that need no installation (DKIM against the printed record,
the inventory's target, failures reported per check). The whole command runs end to end in
tests/e2e."""

from __future__ import annotations

import base64
import ssl
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from psn import dns, pinned, status, verify
from psn.errors import InputError
from psn.inventory import load_inventory, yaml_round_trip

ROOT = Path(__file__).resolve().parents[2]


def _key_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def _target(records: dict[str, str]) -> verify.Target:
    return verify.Target(
        domain="example.com",
        web_host="mail.example.com",
        web_address="127.0.0.1",
        smtp_host="smtp.example.com",
        imap_host="imap.example.com",
        mail_address="127.0.0.1",
        user="admin@example.com",
        password="secret",
        tls=ssl.create_default_context(),
        dkim_records=records,
    )


def _signed(private: bytes, body: str = "hello\r\n") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "admin@example.com", "x@example.org", "t"
    msg.set_content(body)
    raw = msg.as_bytes()
    return (
        dkim.sign(raw, b"psn", b"example.com", private, include_headers=[b"from", b"subject"]) + raw
    )


def test_dkim_verifies_against_the_record_dns_prints(tmp_path: Path) -> None:
    private, value = _key_pair()
    (tmp_path / "dkim").mkdir()
    (tmp_path / "dkim" / "example.com.psn.txt").write_text(value + "\n")
    target = _target(dns.dkim_values(tmp_path))
    assert "verifies" in verify._dkim_detail(target, _signed(private))


def test_dkim_with_another_key_or_no_signature_fails() -> None:
    private, _ = _key_pair()
    _, other = _key_pair()
    target = _target({"psn._domainkey.example.com.": other})
    assert verify._dkim_detail(target, _signed(private)).startswith("✗ ")
    assert verify._dkim_detail(target, b"From: a@example.com\r\n\r\nx\r\n").startswith("✗ ")
    assert "deploy_psn dns" in verify._dkim_detail(_target({}), _signed(private))


def test_target_needs_the_admin_password(tmp_path: Path) -> None:
    yaml = yaml_round_trip()
    doc = yaml.load((ROOT / "inventory" / "hosts.yml").read_text())
    doc["all"]["vars"]["setup"]["external_domain"] = "example.com"
    doc["all"]["vars"]["passwords"]["default_tenant_admin_user"] = ""
    path = tmp_path / "hosts.yml"
    with path.open("w") as handle:
        yaml.dump(doc, handle)
    with pytest.raises(InputError) as err:
        verify.target_of(load_inventory(path), tmp_path)
    assert err.value.problems[0].path == "all.vars.passwords.default_tenant_admin_user"


def test_every_check_reports_its_own_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens: each check fails with what it saw; none stops the others."""
    target = _target({})
    target.web_address = target.mail_address = "127.0.0.1"
    monkeypatch.setattr(pinned, "TIMEOUT", 2)
    results = verify.run_checks(target, status.Report([], []))
    assert [r.name for r in results][:2] == ["services", "login page"]
    assert len(results) == 13 and not any(r.ok for r in results)
    assert all(r.detail for r in results)
