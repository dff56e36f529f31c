"""The mail services (Postfix, Dovecot) with the directory on one emulated Debian 12 server.

`./deploy_psn.sh` deploys the base roles, the registry, the directory and the mail stack; then
real clients talk to the published ports of the server as a mail client or another mail
server would: a mail submitted on 587 (STARTTLS, AUTH as admin@<domain>) is read over IMAPS;
port 25 offers no AUTH, refuses unknown recipients and relaying; a user cannot send as another;
IMAP refuses a plaintext login before STARTTLS; a second run changes nothing.
"""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
import yaml
from e2e_helpers import (
    DOMAIN,
    deploy,
    image_archive,
    recap,
    summary_rows,
    updated_at,
    write_inventory,
)

pytestmark = pytest.mark.e2e

ARCHIVE_IMAGES = ("registry", "ldap", "postfix", "dovecot")
ROLES = (
    *("common", "sysctl", "timezone", "chrony", "swarm", "certificates", "docker_registry"),
    *("ldap", "mail"),
)
ADMIN = f"admin@{DOMAIN}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return image_archive(tmp_path_factory.mktemp("archive"), ARCHIVE_IMAGES)


@pytest.fixture(scope="module")
def lab(emulated_servers):
    return emulated_servers(1, prefix="mail")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mail")


def deploy_mail(archive: Path, inventory: Path, certs_root: Path, log_dir: Path):
    return deploy(
        inventory, certs_root, log_dir, ",".join(ROLES), "-e", f"docker_registry__archive={archive}"
    )


@pytest.fixture(scope="module")
def first_run(lab, archive, certs_root, workdir) -> Path:
    inventory = write_inventory(workdir / "hosts.yml", lab)
    started = time.monotonic()
    res = deploy_mail(archive, inventory, certs_root, workdir / "run1")
    print(f"\nfirst run ({', '.join(ROLES)}): {time.monotonic() - started:.0f}s")
    assert res.returncode == 0, res.stdout + res.stderr
    return inventory


@pytest.fixture(scope="module")
def address(lab, first_run) -> str:
    return lab.servers[0].address


@pytest.fixture(scope="module")
def admin_password(first_run) -> str:
    return yaml.safe_load(first_run.read_text())["all"]["vars"]["passwords"][
        "default_tenant_admin_user"
    ]


@pytest.fixture(scope="module")
def tls(certs_root) -> ssl.SSLContext:
    """Trusts the installation's CA; the test reaches the server by address, not by name."""
    context = ssl.create_default_context(cafile=certs_root / DOMAIN / "ca.crt")
    context.check_hostname = False
    return context


def message(sender: str, recipient: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, recipient, subject
    msg.set_content("Sent by the PSN end-to-end test.\n")
    return msg


def wait_for_subject(address: str, tls, user: str, password: str, subject: str) -> bytes:
    """The message with `subject` read from the INBOX over IMAPS 993 (waits up to 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        with imaplib.IMAP4_SSL(address, 993, ssl_context=tls, timeout=20) as imap:
            imap.login(user, password)
            imap.select("INBOX")
            _, found = imap.search(None, "SUBJECT", f'"{subject}"')
            if found[0]:
                _, data = imap.fetch(found[0].split()[-1], "(RFC822)")
                return data[0][1]
        assert time.monotonic() < deadline, f"no mail with the subject {subject} arrived"
        time.sleep(2)


def test_mail_services_run(lab, first_run):
    [server] = lab.servers
    listing = lab.ssh(server, "docker service ls --format '{{.Name}} {{.Replicas}}'")
    replicas = dict(line.split() for line in listing.splitlines())
    assert replicas.get("psn-mail_postfix") == "1/1", listing
    assert replicas.get("psn-mail_dovecot") == "1/1", listing


def test_submission_with_starttls_and_auth_arrives_in_imap(address, tls, admin_password):
    subject = f"e2e submission {uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(address, 587, timeout=30) as smtp:
        smtp.ehlo("client.test")
        assert not smtp.has_extn("auth"), "AUTH offered before STARTTLS on 587"
        smtp.starttls(context=tls)
        smtp.ehlo("client.test")
        assert "PLAIN" in smtp.esmtp_features.get("auth", "")
        smtp.login(ADMIN, admin_password)
        smtp.send_message(message(ADMIN, ADMIN, subject))
    raw = wait_for_subject(address, tls, ADMIN, admin_password, subject)
    assert b"Sent by the PSN end-to-end test." in raw
    assert b"Authenticated sender" not in raw  # smtpd_sasl_authenticated_header = no


def test_implicit_tls_submission_on_465(address, tls, admin_password):
    with smtplib.SMTP_SSL(address, 465, context=tls, timeout=30) as smtp:
        smtp.ehlo("client.test")
        smtp.login(ADMIN, admin_password)
        refused = smtp.send_message(message(ADMIN, ADMIN, "e2e 465"))
    assert refused == {}


def test_system_notifications_on_3525(address, tls, first_run, admin_password):
    """Guide §4.5: the system user sends with implicit TLS and AUTH on port 3525."""
    password = yaml.safe_load(first_run.read_text())["all"]["vars"]["passwords"]["system_user"]
    subject = f"e2e notification {uuid.uuid4().hex[:8]}"
    system = f"system@{DOMAIN}"
    with smtplib.SMTP_SSL(address, 3525, context=tls, timeout=30) as smtp:
        smtp.ehlo("psn.test")
        smtp.login(system, password)
        smtp.send_message(message(system, ADMIN, subject))
    assert b"Sent by the PSN" in wait_for_subject(address, tls, ADMIN, admin_password, subject)
    with smtplib.SMTP_SSL(address, 3525, context=tls, timeout=30) as smtp:
        smtp.ehlo("psn.test")
        smtp.mail(system)
        code, _ = smtp.rcpt(ADMIN)
    assert code == 554, "port 3525 relayed without authentication"


def test_port_25_offers_no_auth_and_refuses_strangers(address, tls):
    with smtplib.SMTP(address, 25, timeout=30) as smtp:
        smtp.ehlo("mx.sender.test")
        assert not smtp.has_extn("auth"), "AUTH offered on port 25 before STARTTLS"
        smtp.starttls(context=tls)
        smtp.ehlo("mx.sender.test")
        assert not smtp.has_extn("auth"), "AUTH offered on port 25"
        assert smtp.mail("someone@sender.test")[0] == 250
        code, text = smtp.rcpt(f"nobody-{uuid.uuid4().hex[:6]}@{DOMAIN}")
        assert code == 550, text
        code, text = smtp.rcpt("victim@elsewhere.test")
        assert code == 554 and b"Relay access denied" in text, text
        assert smtp.rcpt(ADMIN)[0] == 250


def test_a_user_cannot_send_as_another(address, tls, admin_password):
    with smtplib.SMTP(address, 587, timeout=30) as smtp:
        smtp.starttls(context=tls)
        smtp.login(ADMIN, admin_password)
        smtp.mail(f"ceo@{DOMAIN}")
        code, text = smtp.rcpt(ADMIN)
    assert code == 553 and b"not owned by user" in text, text


def test_wrong_password_and_plaintext_imap_are_refused(address, tls, admin_password):
    with smtplib.SMTP(address, 587, timeout=30) as smtp:
        smtp.starttls(context=tls)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(ADMIN, "wrong-password")
    with imaplib.IMAP4(address, 143, timeout=20) as imap:
        assert "LOGINDISABLED" in imap.capabilities
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(ADMIN, admin_password)


def test_second_run_changes_nothing(lab, archive, first_run, certs_root, workdir):
    before = updated_at(lab)
    res = deploy_mail(archive, first_run, certs_root, workdir / "run2")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = summary_rows(res.stderr)
    assert {role: row["changed"] for role, row in rows.items()} == dict.fromkeys(rows, 0)
    assert recap(workdir / "run2")["changed"] == 0
    assert updated_at(lab) == before
