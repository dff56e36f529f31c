"""The mail stack (Postfix, Dovecot, Rspamd, ClamAV) of the suite deployment (conftest `suite`:
every role on one emulated Debian 12 server; ClamAV with a self-written EICAR database, as the
public mirror is unreachable).

Real clients
talk to the published ports of the server as a mail client or another mail server would: a mail
submitted on 587 (STARTTLS, AUTH as admin@<domain>) is read over IMAPS with a DKIM signature that
verifies against the published record; port 25 offers no AUTH, refuses unknown recipients,
relaying, GTUBE and an EICAR attachment; a user cannot send as another; IMAP refuses a plaintext
login before STARTTLS; a vacation rule uploaded over ManageSieve answers once; the quota set in
the directory refuses mail; the tools of each daemon accept the rendered configuration;
always_bcc works as the guide sets it (§4.4.1.1).
"""

from __future__ import annotations

import base64
import imaplib
import json
import shlex
import smtplib
import socket
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import dkim
import pytest
import yaml
from e2e_helpers import (
    DOMAIN,
    in_task,
    task_container,
)

pytestmark = pytest.mark.e2e

ADMIN = f"admin@{DOMAIN}"
BASE_DN = "dc=example,dc=com"
DKIM_DIR = "/opt/poseidon/dkim"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


@pytest.fixture(scope="module")
def tls(certs_root) -> ssl.SSLContext:
    """Trusts the installation's CA; the test reaches the server by address, not by name."""
    context = ssl.create_default_context(cafile=certs_root / DOMAIN / "ca.crt")
    context.check_hostname = False
    return context


def message(sender: str, recipient: str, subject: str, body: str = "") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, recipient, subject
    msg["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    msg["Message-ID"] = make_msgid(domain="client.test")
    msg.set_content(body or "Sent by the PSN end-to-end test.\n")
    return msg


def ldap_manager(lab, tool: str, ldif: str) -> str:
    """ldapadd/ldapmodify as cn=Directory Manager inside the directory's container."""
    script = (
        f"{tool} -x -H ldap://localhost:3389 -D 'cn=Directory Manager' "
        f"-y /run/secrets/ldap_dm_password <<'EOF'\n{ldif}\nEOF"
    )
    return in_task(lab, "psn-ldap_ldap", script)


def count_subject(address: str, tls, user: str, password: str, subject: str) -> int:
    with imaplib.IMAP4_SSL(address, 993, ssl_context=tls, timeout=20) as imap:
        imap.login(user, password)
        imap.select("INBOX")
        _, found = imap.search(None, "SUBJECT", f'"{subject}"')
        return len(found[0].split())


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
    for name in ("postfix", "dovecot", "rspamd", "clamav"):
        assert replicas.get(f"psn-mail_{name}") == "1/1", listing
    # freshclam is off by default (guide §7.1: no automatic updates): not deployed.
    assert "psn-mail_freshclam" not in replicas, listing


def test_the_daemons_accept_their_rendered_configuration(lab, first_run):
    """Postfix, Dovecot and Rspamd check the files the role rendered, in the running containers."""
    postfix = in_task(lab, "psn-mail_postfix", "postfix check && postconf -n >/dev/null && echo ok")
    assert postfix.strip() == "ok", postfix  # no warning at all
    milters = in_task(lab, "psn-mail_postfix", "postconf -h smtpd_milters non_smtpd_milters")
    # Postfix and Rspamd share the mail host: the milter's unix socket, not TCP.
    assert milters.split() == ["unix:/run/psn-milter/rspamd.sock", "$smtpd_milters"], milters
    transport = in_task(lab, "psn-mail_postfix", "postconf -h virtual_transport")
    assert transport.strip() == "lmtp:unix:/run/psn-dovecot/lmtp", transport  # Dovecot's socket
    maps = in_task(
        lab, "psn-mail_postfix",
        "postconf -h virtual_mailbox_domains virtual_mailbox_maps virtual_alias_maps"
        " smtpd_sender_login_maps",
    )  # fmt: skip
    assert maps.count("proxy:ldap:") == 5 and " ldap:" not in maps, maps
    dovecot = in_task(lab, "psn-mail_dovecot", "doveconf -n >/dev/null && echo ok")
    assert dovecot.strip() == "ok", dovecot
    rspamd = in_task(lab, "psn-mail_rspamd", "rspamadm configtest")
    assert "syntax OK" in rspamd, rspamd
    clamd = in_task(lab, "psn-mail_rspamd", "rspamadm configdump antivirus")
    assert "clamav:3310" in clamd, clamd
    redis = in_task(lab, "psn-mail_rspamd", "rspamadm configdump redis")
    assert "redis:6379" in redis and "@@secret" not in redis, "the Redis password is not rendered"
    # Redis only for Bayes and greylisting (mail__rspamd_redis_modules empty).
    modules = {
        line.split(":")[0]: line.split(":", 1)[1].replace(",", " ").split()
        for line in in_task(lab, "psn-mail_rspamd", "rspamadm configdump -m").splitlines()
        if line.startswith("Modules ")
    }
    assert "greylist" in modules["Modules enabled"], modules
    for module in ("history_redis", "neural", "ratelimit", "replies"):
        assert module in modules["Modules disabled (explicitly)"], modules
    proxy = in_task(lab, "psn-mail_rspamd", "rspamadm configdump worker")
    assert '"/run/psn-milter/rspamd.sock mode=0666"' in proxy and '"*:11332"' in proxy, proxy


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


def smtp_25(address: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP(address, 25, timeout=60)
    smtp.ehlo("mx.sender.test")
    return smtp


def test_gtube_is_rejected_at_smtp(address):
    with smtp_25(address) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.send_message(message("someone@sender.test", ADMIN, "e2e gtube", GTUBE + "\n"))
    assert 500 <= refused.value.smtp_code < 600, refused.value


def attachment_mail(subject: str, content: bytes) -> EmailMessage:
    msg = message("someone@sender.test", ADMIN, subject)
    msg.add_attachment(content, maintype="application", subtype="octet-stream", filename="a.com")
    return msg


def test_an_eicar_attachment_is_rejected_and_a_clean_one_arrives(address, tls, admin_password):
    with smtp_25(address) as smtp, pytest.raises(smtplib.SMTPDataError) as refused:
        smtp.send_message(attachment_mail("e2e eicar", EICAR))
    assert 500 <= refused.value.smtp_code < 600, refused.value
    assert b"PSN.Smoke.EICAR" in refused.value.smtp_error, refused.value
    subject = f"e2e clean attachment {uuid.uuid4().hex[:8]}"
    with smtp_25(address) as smtp:
        assert smtp.send_message(attachment_mail(subject, b"just a clean file\n")) == {}
    raw = wait_for_subject(address, tls, ADMIN, admin_password, subject)
    assert base64.b64encode(b"just a clean file\n") in raw


def dkim_record(lab) -> str:
    [server] = lab.servers
    return lab.ssh(server, f"cat {DKIM_DIR}/{DOMAIN}.psn.txt")


def test_submission_carries_a_valid_dkim_signature(lab, address, tls, admin_password, certs_root):
    [server] = lab.servers
    record = dkim_record(lab)
    assert record.startswith("v=DKIM1; k=rsa; p=") and "\n" not in record, record
    key, txt = f"{DKIM_DIR}/{DOMAIN}.psn.key", f"{DKIM_DIR}/{DOMAIN}.psn.txt"
    modes = lab.ssh(server, f"stat -c '%n %a %u' {key} {txt}")
    assert modes.splitlines() == [f"{key} 600 910", f"{txt} 644 0"], modes
    # The installer keeps a copy for `deploy_psn dns`.
    assert (certs_root / DOMAIN / "dkim" / f"{DOMAIN}.psn.txt").read_text() == record
    subject = f"e2e dkim {uuid.uuid4().hex[:8]}"
    with smtplib.SMTP(address, 587, timeout=30) as smtp:
        smtp.starttls(context=tls)
        smtp.login(ADMIN, admin_password)
        smtp.send_message(message(ADMIN, ADMIN, subject))
    raw = wait_for_subject(address, tls, ADMIN, admin_password, subject)
    assert b"DKIM-Signature:" in raw and b"s=psn" in raw and f"d={DOMAIN}".encode() in raw

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"psn._domainkey.{DOMAIN}.".encode(), name
        return record.encode()

    assert dkim.verify(raw, dnsfunc=dnsfunc), "the DKIM signature does not verify"


@pytest.fixture(scope="module")
def users(lab, first_run) -> dict[str, str]:
    """Three directory users (address -> password): away, writer, full (1 MiB quota)."""
    tag = uuid.uuid4().hex[:6]
    password = f"Test-{uuid.uuid4().hex[:12]}"
    found = {}
    for name in ("away", "writer", "full"):
        address = f"{name}-{tag}@{DOMAIN}"
        ldif = "\n".join(
            (
                f"dn: uid={address},ou=People,{BASE_DN}",
                *(f"objectClass: {c}" for c in ("top", "person", "organizationalPerson")),
                *(f"objectClass: {c}" for c in ("inetOrgPerson", "mailRecipient")),
                f"uid: {address}",
                f"cn: {name}",
                f"sn: {name}",
                f"mail: {address}",
                "mailQuota: 1048576",
                f"userPassword: {password}",
            )
        )
        out = ldap_manager(lab, "ldapadd", ldif)
        assert "adding new entry" in out and "ldap_add" not in out, out
        found[name] = address
    return {"password": password, **found}


def managesieve_put(address: str, tls, user: str, password: str, name: str, script: str) -> None:
    """Upload and activate a Sieve script over ManageSieve (RFC 5804) as a client does."""

    def response(stream) -> list[bytes]:
        lines = []
        while True:
            line = stream.readline()
            assert line, "ManageSieve closed the connection"
            lines.append(line)
            if line.startswith((b"OK", b"NO", b"BYE")):
                assert line.startswith(b"OK"), lines
                return lines

    with socket.create_connection((address, 4190), timeout=30) as raw:
        plain = raw.makefile("rb")
        assert any(b'"STARTTLS"' in line for line in response(plain))
        raw.sendall(b"STARTTLS\r\n")
        response(plain)
        with tls.wrap_socket(raw) as conn:
            stream = conn.makefile("rb")
            capabilities = b"".join(response(stream))  # sent again after STARTTLS
            assert b'"SASL" "PLAIN' in capabilities, capabilities
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            conn.sendall(f'AUTHENTICATE "PLAIN" "{token}"\r\n'.encode())
            response(stream)
            data = script.encode()
            conn.sendall(f'PUTSCRIPT "{name}" {{{len(data)}+}}\r\n'.encode() + data + b"\r\n")
            response(stream)
            conn.sendall(f'SETACTIVE "{name}"\r\n'.encode())
            response(stream)
            conn.sendall(b"LOGOUT\r\n")


def test_a_vacation_rule_over_managesieve_answers_once(address, tls, users):
    password, away, writer = users["password"], users["away"], users["writer"]
    reply = f"away {uuid.uuid4().hex[:6]}"
    script = f'require "vacation";\nvacation :days 1 :subject "{reply}" "I am away.";\n'
    managesieve_put(address, tls, away, password, "vacation", script)
    subjects = [f"e2e vacation {i} {uuid.uuid4().hex[:6]}" for i in (1, 2)]
    with smtplib.SMTP(address, 587, timeout=30) as smtp:
        smtp.starttls(context=tls)
        smtp.login(writer, password)
        for subject in subjects:
            smtp.send_message(message(writer, away, subject))
    for subject in subjects:
        wait_for_subject(address, tls, away, password, subject)
    wait_for_subject(address, tls, writer, password, reply)
    time.sleep(5)  # a second reply would have been delivered alongside the first
    assert count_subject(address, tls, writer, password, reply) == 1


def test_the_quota_from_the_directory_is_enforced(lab, address, users):
    full = users["full"]
    with smtp_25(address) as smtp:
        smtp.mail("someone@sender.test", ["SIZE=200000"])
        assert smtp.rcpt(full)[0] == 250  # 1 MiB quota: room for 200 kB
    out = ldap_manager(
        lab,
        "ldapmodify",
        f"dn: uid={full},ou=People,{BASE_DN}\nchangetype: modify\nreplace: mailQuota\n"
        "mailQuota: 100000",
    )
    assert "modifying entry" in out and "ldap_modify" not in out, out
    with smtp_25(address) as smtp:
        smtp.mail("someone@sender.test", ["SIZE=200000"])
        code, text = smtp.rcpt(full)
    assert code == 552 and b"5.2.2" in text, (code, text)


def test_always_bcc_by_the_guides_procedure(lab, address, tls, admin_password, users):
    """Guide §4.4.1.1: always_bcc in /opt/poseidon/postfix/main.cf, then a forced update."""
    [server] = lab.servers
    main_cf = "/opt/poseidon/postfix/main.cf"
    original = lab.ssh(server, f"cat {main_cf}")
    update = "docker service update psn-mail_postfix --force --with-registry-auth -q"
    try:
        lab.ssh(server, f"echo 'always_bcc = {ADMIN}' >> {main_cf} && {update}")
        subject = f"e2e bcc {uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + 60
        while True:  # Postfix starts after the update returns
            try:
                with smtplib.SMTP(address, 587, timeout=30) as smtp:
                    smtp.starttls(context=tls)
                    smtp.login(users["writer"], users["password"])
                    smtp.send_message(message(users["writer"], users["writer"], subject))
                break
            except (OSError, smtplib.SMTPException):
                assert time.monotonic() < deadline, "Postfix did not come back"
                time.sleep(2)
        assert wait_for_subject(address, tls, ADMIN, admin_password, subject)
    finally:
        lab.ssh(server, f"printf %s {shlex.quote(original)} > {main_cf} && {update}")


def queued(lab) -> dict[str, dict]:
    """Postfix's queue (postqueue -j) by queue ID."""
    listing = in_task(lab, "psn-mail_postfix", "postqueue -j")
    return {entry["queue_id"]: entry for entry in map(json.loads, listing.splitlines())}


def wait_until(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(2)


def test_mail_waits_in_the_queue_while_dovecot_is_down_and_survives_a_new_postfix_task(
    lab, address, tls, admin_password
):
    """Dovecot stopped: port 25 still accepts mail for a mailbox, Postfix defers it (not a bounce)
    and keeps it on the named volume psn-postfix-queue through a forced update of its service (a
    new task, as a certificate change or an upgrade makes); Dovecot back, the same message is
    delivered once."""
    [server] = lab.servers
    mounts = lab.ssh(
        server,
        "docker service inspect psn-mail_postfix --format "
        "'{{range .Spec.TaskTemplate.ContainerSpec.Mounts}}{{.Source}}:{{.Target}} {{end}}'",
    )
    assert "psn-postfix-queue:/var/spool/postfix" in mounts.split()
    subject = f"e2e queued {uuid.uuid4().hex[:8]}"
    sender = f"queued-{uuid.uuid4().hex[:8]}@sender.test"
    lab.ssh(server, "docker service scale -d psn-mail_dovecot=0")
    try:
        wait_until(
            "the Dovecot container stopped",
            lambda: (
                not lab.ssh(
                    server,
                    "docker ps -q --filter label=com.docker.swarm.service.name=psn-mail_dovecot",
                ).strip()
            ),
            60,
        )
        with smtp_25(address) as smtp:
            assert smtp.send_message(message(sender, ADMIN, subject)) == {}

        def deferred() -> dict[str, dict]:
            return {
                qid: entry
                for qid, entry in queued(lab).items()
                if entry["sender"] == sender and entry["queue_name"] == "deferred"
            }

        wait_until("Postfix deferred the message", deferred, 60)
        before = deferred()
        reasons = [r.get("delay_reason", "") for e in before.values() for r in e["recipients"]]
        assert all("/run/psn-dovecot/lmtp" in r for r in reasons), reasons
        old = task_container(lab, "psn-mail_postfix")
        lab.ssh(server, "docker service update psn-mail_postfix --force --with-registry-auth -q")
        assert task_container(lab, "psn-mail_postfix") != old
        assert set(before) <= set(queued(lab)), "the queue was lost with the old task"
    finally:
        lab.ssh(server, "docker service scale psn-mail_dovecot=1")

    def flushed() -> bool:
        in_task(lab, "psn-mail_postfix", "postqueue -f")
        return not set(before) & set(queued(lab))

    wait_until("Postfix delivered its queue to Dovecot", flushed, 120)
    assert wait_for_subject(address, tls, ADMIN, admin_password, subject)
    assert count_subject(address, tls, ADMIN, admin_password, subject) == 1
