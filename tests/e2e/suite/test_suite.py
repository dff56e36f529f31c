"""The whole suite on one emulated Debian 12 server, as the README's real deployment does it.

`./deploy_psn.sh <inventory>` (every role of site.yml, the guide's command) on a fresh server;
then `deploy_psn verify` (the guide's acceptance check §4.3.2) passes; a mail client without
autoconfiguration finds every service through the SRV records `deploy_psn dns` prints (and the
A records beside them), and the DKIM record printed there verifies the signature of a sent mail
(inside verify); a second full run changes and restarts nothing.
"""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from e2e_helpers import (
    DOMAIN,
    ROOT,
    deploy_psn,
    newest_log,
    print_summary,
    recap,
    updated_at,
)

from psn.pinned import PinnedHTTPS, PinnedIMAP, PinnedSMTP

pytestmark = pytest.mark.e2e

ADMIN = f"admin@{DOMAIN}"


def test_verify_passes(first_run, certs_root, workdir):
    started = time.monotonic()
    res = deploy_psn("verify", first_run, certs_root, workdir / "verify")
    print(f"\nverify: {time.monotonic() - started:.0f}s\n{res.stdout}")
    assert res.returncode == 0, res.stdout + res.stderr
    checks = [line for line in res.stdout.splitlines() if re.match(r"[✓✗] [^:]+: ", line)]
    assert len(checks) == 13 and all(c.startswith("✓") for c in checks), res.stdout
    for name in ("DKIM", "GTUBE", "EICAR", "CalDAV", "user setting", "no open relay"):
        assert any(name in c for c in checks), name


def test_verify_fails_naming_the_check(first_run, certs_root, workdir, tmp_path):
    """A wrong admin password: the login checks fail by name, exit 6, the rest still run."""
    doc = yaml.safe_load(first_run.read_text())
    doc["all"]["vars"]["passwords"]["default_tenant_admin_user"] = "WrongPassword123"
    wrong = tmp_path / "hosts.yml"
    wrong.write_text(yaml.safe_dump(doc))
    res = deploy_psn("verify", wrong, certs_root, workdir / "verify-wrong")
    assert res.returncode == 6, res.stdout + res.stderr
    assert re.search(r"^✗ SOGo login", res.stdout, re.MULTILINE), res.stdout
    assert re.search(r"^✓ services", res.stdout, re.MULTILINE), res.stdout
    assert re.search(r"^✓ GTUBE", res.stdout, re.MULTILINE), res.stdout


def dns_zone(inventory: Path, certs_root: Path) -> str:
    """`./deploy_psn.sh dns <inventory> --certs-dir <certs_root>`: the zone snippet."""
    argv = [str(ROOT / "deploy_psn.sh"), "--skip-checksum", "dns", str(inventory)]
    res = subprocess.run(
        [*argv, "--certs-dir", str(certs_root)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _zone(inventory: Path, certs_root: Path) -> tuple[dict[str, str], list[tuple[str, int, str]]]:
    """(name → address, SRV records (service, port, target)) from `deploy_psn dns`."""
    addresses, srv = {}, []
    for line in dns_zone(inventory, certs_root).splitlines():
        fields = line.split(";")[0].split()
        if len(fields) >= 4 and fields[2] == "A":
            addresses[fields[0].rstrip(".")] = fields[3]
        if len(fields) == 7 and fields[2] == "SRV":
            srv.append((fields[0], int(fields[5]), fields[6].rstrip(".")))
    return addresses, srv


class PinnedIMAP4(imaplib.IMAP4):
    """IMAP on port 143 at an address, STARTTLS checked for the host name."""

    def __init__(self, host: str, address: str, port: int) -> None:
        self._address = address
        super().__init__(host, port, timeout=20)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self._address, self.port), timeout)


def _https(host: str, address: str, tls: ssl.SSLContext, path: str, auth: str) -> tuple[int, str]:
    conn = PinnedHTTPS(host, address, tls)
    try:
        conn.request("PROPFIND", path, headers={"Authorization": f"Basic {auth}", "Depth": "0"})
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Location") or ""
    finally:
        conn.close()


def use_service(
    service: str, host: str, address: str, port: int, certs_root: Path, password: str
) -> None:
    """Log in to the service an SRV record names, at its target and port, as a client would:
    the certificate is checked for the target's name."""
    ca = certs_root / DOMAIN / "ca.crt"
    tls = ssl.create_default_context(cafile=ca)
    if service.startswith("_imaps."):
        with PinnedIMAP(host, address, tls) as imap:
            assert port == imap.port
            imap.login(ADMIN, password)
    elif service.startswith("_imap."):
        with PinnedIMAP4(host, address, port) as imap:
            imap.starttls(ssl_context=tls)
            imap.login(ADMIN, password)
    elif service.startswith("_submission."):
        with PinnedSMTP(host, address, port) as smtp:
            smtp.starttls(context=tls)
            smtp.login(ADMIN, password)
    elif service.startswith(("_submissions.", "_smtps.")):
        # The name check on the raw TLS socket, then the login (smtplib would check the address).
        raw = socket.create_connection((address, port), 20)
        with tls.wrap_socket(raw, server_hostname=host) as sock:
            assert sock.recv(1024).startswith(b"220 "), f"{service}: no SMTP greeting over TLS"
        by_address = ssl.create_default_context(cafile=ca)
        by_address.check_hostname = False
        with smtplib.SMTP_SSL(address, port, context=by_address, timeout=20) as smtp:
            smtp.login(ADMIN, password)
    elif service.startswith(("_caldavs.", "_carddavs.")):
        kind = "caldav" if service.startswith("_caldavs.") else "carddav"
        auth = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
        path = f"/.well-known/{kind}"
        for _ in range(3):  # follow the well-known redirect (the web names share the proxy)
            status, location = _https(host, address, tls, path, auth)
            if status not in (301, 302, 307, 308):
                break
            url = urlsplit(location)
            host, path = url.hostname or host, url.path
        assert status == 207, f"{kind}: PROPFIND {path} at {host} answered {status}"
    else:
        raise AssertionError(f"unexpected SRV record {service}")


def test_clients_without_autoconfig_find_everything_by_srv(first_run, certs_root, admin_password):
    addresses, srv = _zone(first_run, certs_root)
    assert {s.split(".")[0] for s, _, _ in srv} >= {"_imaps", "_submission", "_caldavs"}
    for service, port, target in srv:
        use_service(service, target, addresses[target], port, certs_root, admin_password)


def test_dns_prints_the_dkim_record(first_run, certs_root):
    [line] = [x for x in dns_zone(first_run, certs_root).splitlines() if "._domainkey." in x]
    assert line.startswith(f"psn._domainkey.{DOMAIN}.") and '"v=DKIM1; k=rsa; p=' in line, line


def test_second_run_restarts_nothing(suite):
    """A full re-run changes and restarts nothing and keeps the DKIM key."""
    key = f"sha256sum /opt/poseidon/dkim/{DOMAIN}.psn.key"
    dkim_key = suite.lab.ssh(suite.server, key)
    before = updated_at(suite.lab)
    started = time.monotonic()
    res = suite.deploy("run2")
    print_summary("second run (nothing changed)", res, time.monotonic() - started)
    assert res.returncode == 0, res.stdout + res.stderr
    assert recap(suite.workdir / "run2").get("changed") == 0, res.stdout
    assert updated_at(suite.lab) == before
    assert suite.lab.ssh(suite.server, key) == dkim_key


def test_check_diff_plans_exactly_the_services_a_change_updates(suite):
    """`--check --diff -t mail` with a changed mail__ value: the plan names exactly Dovecot,
    shows its changed definition, and nothing changes on the server."""
    before = updated_at(suite.lab)
    stack_file = "sha256sum /opt/poseidon/psn-mail-stack.yml"
    file_before = suite.lab.ssh(suite.server, stack_file)
    change = "mail__dovecot_memory_limit=600M"
    res = suite.deploy("plan", "-t", "mail", "--check", "--diff", "-e", change)
    assert res.returncode == 0, res.stdout + res.stderr
    planned = [line.split()[1] for line in res.stderr.splitlines() if line.startswith("  update ")]
    assert planned == ["psn-mail_dovecot"], res.stderr
    assert "Services a run would change (--check: nothing was changed)" in res.stderr
    log = newest_log(suite.workdir / "plan")
    assert "+++ after: psn-mail_dovecot (wanted)" in log and "+      memory: 600M" in log
    assert updated_at(suite.lab) == before
    assert suite.lab.ssh(suite.server, stack_file) == file_before
