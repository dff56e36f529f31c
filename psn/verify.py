"""`deploy_psn verify`: the guide's acceptance check (§4.3.2) run as a client would run it.

From the installer machine, against the published ports of the proxy and mail hosts, reached by
their inventory addresses under the installation's host names (SNI and Host headers), with the
certificate checked against the certificate directory's `ca.crt` and the system's trust store:
every service at full replicas, the webmail login page, a login, a mail through submission read
back over IMAPS with a DKIM signature valid for the published record, a calendar event, a user
setting, GTUBE and EICAR refused, no open relay, the PSN API, the admin panel and autoconfig.
What it creates (the mail, the event) it removes, and the setting it changes it puts back.
"""

from __future__ import annotations

import base64
import http.client
import imaplib
import json
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from http.cookies import SimpleCookie
from pathlib import Path

import dkim
from rich.console import Console

from psn import dns, status
from psn.deploy import Servers
from psn.errors import DegradedError, InputError, Problem
from psn.inventory import Inventory, as_text, load_inventory
from psn.names import default_domain, service_hostname, service_hostnames
from psn.pinned import API_ADMIN, PinnedHTTPS, PinnedIMAP, PinnedSMTP, tls_context

DELIVERY_WAIT = 90  # seconds a test mail may take to reach the mailbox
LOGIN_WAIT = 90  # seconds SOGo may take to answer a login after a (re)start
# The antivirus and antispam industry's harmless test strings (https://www.eicar.org, Spamassassin).
EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# A SOGo preference every user has; verify flips it and puts it back.
SETTING = "SOGoDayStartTime"
# SOGo answers other clients with a "browser not supported" page.
# Login name of the API's global administrator (roles/backend backend__psnapi_admin_name).
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 psn-verify"


class CheckFailed(Exception):
    """One check's failure, with what was seen."""


@dataclass
class Target:
    """Where and as whom the checks talk to the installation."""

    domain: str
    web_host: str  # mail.<domain>: SOGo behind the proxy
    web_address: str
    smtp_host: str
    imap_host: str
    mail_address: str
    user: str
    password: str
    tls: ssl.SSLContext
    dkim_records: dict[str, str] = field(default_factory=dict)  # dns.dkim_values
    api_password: str = ""  # passwords.psnapi_admin_user: the API's global administrator
    hosts: dict[str, str] = field(default_factory=dict)  # names.service_hostnames


@dataclass
class Result:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str


def _host_address(inv: Inventory, group: str) -> str:
    hosts = inv.hosts(group)
    if not hosts:
        raise InputError(
            f"verify needs a host in the {group} group",
            [Problem(f"the inventory has no {group} host", path=f"all.children.{group}")],
        )
    host = next(iter(hosts))
    return as_text(inv.host_vars(host).get("ansible_host")) or host


def target_of(inv: Inventory, certs_root: Path) -> Target:
    """Addresses, names, the admin account and the trust of an inventory."""
    domain, module = inv.external_domain, inv.domain_module
    cert_dir = certs_root / default_domain(domain)
    password = as_text(inv.var("passwords", "default_tenant_admin_user"))
    if not password:
        raise InputError(
            "verify logs in as admin@<domain> and needs its password",
            [Problem("empty", path="all.vars.passwords.default_tenant_admin_user")],
        )
    return Target(
        domain=domain,
        web_host=service_hostname("mail", domain, module),
        web_address=_host_address(inv, "proxy"),
        smtp_host=service_hostname("smtp", domain, module),
        imap_host=service_hostname("imap", domain, module),
        mail_address=_host_address(inv, "mail"),
        user=f"admin@{domain}",
        password=password,
        tls=tls_context(cert_dir),
        dkim_records=dns.dkim_values(cert_dir),
        api_password=as_text(inv.var("passwords", "psnapi_admin_user")),
        hosts=service_hostnames(domain, module),
    )


@dataclass
class WebSession:
    """HTTPS requests to SOGo with the cookies of a login."""

    target: Target
    cookies: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None  # seconds per request (None: psn.pinned's default)

    @property
    def logged_in(self) -> bool:
        """Whether SOGo has given this session its login cookie."""
        return any(name.startswith("0xHIGHFLYxSOGo") for name in self.cookies)

    def request(
        self,
        method: str,
        path: str,
        body: str | bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        t = self.target
        conn = PinnedHTTPS(t.web_host, t.web_address, t.tls, timeout=self.timeout)
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if "XSRF-TOKEN" in self.cookies:
                sent["X-XSRF-TOKEN"] = self.cookies["XSRF-TOKEN"]
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise CheckFailed(f"{method} https://{t.web_host}{path}: {exc}") from exc
        finally:
            conn.close()
        for header in response.msg.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, dict(response.getheaders()), data


def dav(
    t: Target, method: str, path: str, body: str = "", content_type: str = ""
) -> tuple[int, bytes]:
    """A CalDAV/CardDAV request with the user's credentials, as a DAV client sends them."""
    auth = base64.b64encode(f"{t.user}:{t.password}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}
    if content_type:
        headers["Content-Type"] = content_type
    code, _, data = WebSession(t).request(method, path, body or None, headers)
    return code, data


def _message(t: Target, subject: str, body: str, to: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = t.user, to or t.user, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@psn-verify.invalid>"
    msg.set_content(body)
    return msg


def check_login_page(t: Target, web: WebSession) -> str:
    code, headers, _ = web.request("GET", "/")
    location = headers.get("Location", "")
    if code in (301, 302) and location:
        path = location.split(t.web_host, 1)[-1] or "/"
        code, _, data = web.request("GET", path)
    else:
        data = b""
    if code != 200 or b"SOGo" not in data:
        raise CheckFailed(f"https://{t.web_host}/ answered {code} without the SOGo login page")
    return f"https://{t.web_host}/ serves the login page (certificate valid for {t.web_host})"


def sogo_login(t: Target, web: WebSession) -> tuple[int, bytes]:
    """One webmail login as the login page posts it: SOGo's status and body (`web` keeps the
    cookies)."""
    body = json.dumps({"userName": t.user, "password": t.password, "rememberLogin": 0})
    code, _, data = web.request("POST", "/SOGo/connect", body, {"Content-Type": "application/json"})
    return code, data


def check_sogo_login(t: Target, web: WebSession) -> str:
    deadline = time.monotonic() + LOGIN_WAIT
    while True:  # a SOGo that just started answers 5xx for a while
        code, data = sogo_login(t, web)
        if code < 500 or time.monotonic() > deadline:
            break
        time.sleep(3)
    if code != 200 or not web.logged_in:
        raise CheckFailed(f"POST /SOGo/connect as {t.user}: {code} {data[:200]!r}")
    return f"{t.user} logs in to SOGo"


def check_setting(t: Target, web: WebSession) -> str:
    """Change one preference, read it back, put the preferences back as they were (SOGo saves
    the whole dictionary it is given)."""
    base = f"/SOGo/so/{t.user}"

    def load() -> dict:
        code, _, data = web.request("GET", f"{base}/jsonDefaults")
        if code != 200:
            raise CheckFailed(f"GET {base}/jsonDefaults: {code}")
        return json.loads(data)

    def save(defaults: dict) -> None:
        body = json.dumps({"defaults": defaults})
        code, _, data = web.request(
            "POST", f"{base}/Preferences/save", body, {"Content-Type": "application/json"}
        )
        if code != 200:
            raise CheckFailed(f"POST {base}/Preferences/save: {code} {data[:200]!r}")

    original = load()
    before = original.get(SETTING, "08:00")
    changed = "07:00" if before != "07:00" else "09:00"
    save({**original, SETTING: changed})
    try:
        after = load().get(SETTING)
    finally:
        save(original)
    if after != changed:
        raise CheckFailed(f"{SETTING} set to {changed} but read back as {after}")
    return f"the setting {SETTING} is saved and read back (then restored to {before})"


def _on_host(t: Target, prefix: str) -> WebSession:
    """A session with another host name of the installation behind the same proxy."""
    return WebSession(replace(t, web_host=t.hosts.get(prefix, prefix)))


def check_api(t: Target) -> str:
    """The PSN API knows its global administrator and finds admin@<domain>."""
    api = _on_host(t, "psnapi")
    auth = base64.b64encode(f"{API_ADMIN}:{t.api_password}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}
    code, _, data = api.request("GET", "/api/v1/me", headers=headers)
    if code != 200 or json.loads(data).get("role") != "admin":
        raise CheckFailed(f"GET https://{api.target.web_host}/api/v1/me as {API_ADMIN}: {code}")
    code, _, data = api.request("GET", f"/api/v1/users?q={t.user}", headers=headers)
    if code != 200 or t.user not in {u.get("address") for u in json.loads(data)}:
        raise CheckFailed(f"GET /api/v1/users?q={t.user}: {code}, {t.user} not listed")
    return f"https://{api.target.web_host}/api/v1 answers {API_ADMIN} and lists {t.user}"


def check_admin_panel(t: Target) -> str:
    web = _on_host(t, "admin")
    code, _, data = web.request("GET", "/login")
    if code != 200 or b'name="password"' not in data:
        raise CheckFailed(
            f"https://{web.target.web_host}/login answered {code} without a login form"
        )
    return f"https://{web.target.web_host}/ serves the admin panel's login page"


def check_autoconfig(t: Target) -> str:
    web = _on_host(t, "autoconfig")
    code, _, data = web.request("GET", f"/mail/config-v1.1.xml?emailaddress={t.user}")
    if code != 200 or t.imap_host.encode() not in data or t.smtp_host.encode() not in data:
        raise CheckFailed(
            f"https://{web.target.web_host}/mail/config-v1.1.xml answered {code} "
            f"without {t.imap_host} and {t.smtp_host}"
        )
    return f"Thunderbird's autoconfig names {t.imap_host} and {t.smtp_host}"


def check_caldav(t: Target) -> str:
    uid = f"psn-verify-{uuid.uuid4().hex}"
    path = f"/SOGo/dav/{t.user}/Calendar/personal/{uid}.ics"
    start = time.strftime("%Y%m%dT%H0000Z", time.gmtime(time.time() + 86400))
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//PSN//verify//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{start}\r\nDTSTART:{start}\r\nDURATION:PT30M\r\n"
        "SUMMARY:PSN verify\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    code, _ = dav(t, "PUT", path, event, "text/calendar; charset=utf-8")
    if code not in (201, 204):
        raise CheckFailed(f"PUT {path}: {code}")
    try:
        code, data = dav(t, "GET", path)
        if code != 200 or uid.encode() not in data:
            raise CheckFailed(f"GET {path}: {code}, the event is not there")
    finally:
        dav(t, "DELETE", path)
    return "a calendar event is created over CalDAV and read back (then deleted)"


def _submit(t: Target, msg: EmailMessage) -> None:
    with PinnedSMTP(t.smtp_host, t.mail_address, 587) as smtp:
        smtp.starttls(context=t.tls)
        smtp.login(t.user, t.password)
        smtp.send_message(msg)


def _fetch_and_delete(t: Target, message_id: str) -> bytes:
    deadline = time.monotonic() + DELIVERY_WAIT
    while True:
        with PinnedIMAP(t.imap_host, t.mail_address, t.tls) as imap:
            imap.login(t.user, t.password)
            imap.select("INBOX")
            _, found = imap.search(None, "HEADER", "Message-ID", message_id)
            if found[0]:
                num = found[0].split()[-1]
                _, data = imap.fetch(num, "(BODY.PEEK[])")
                imap.store(num, "+FLAGS", "\\Deleted")
                imap.expunge()
                return data[0][1]
        if time.monotonic() > deadline:
            raise CheckFailed(f"the mail {message_id} did not arrive in {DELIVERY_WAIT} s")
        time.sleep(2)


def check_mail_and_dkim(t: Target) -> tuple[str, str]:
    """(detail of the delivery check, detail of the DKIM check); raises when delivery fails."""
    msg = _message(t, f"PSN verify {uuid.uuid4().hex[:8]}", "Sent by deploy_psn verify.\n")
    try:
        _submit(t, msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise CheckFailed(f"submission on {t.smtp_host}:587: {exc}") from exc
    raw = _fetch_and_delete(t, msg["Message-ID"])
    return (
        f"a mail submitted on {t.smtp_host}:587 (STARTTLS, AUTH) is read over IMAPS 993",
        _dkim_detail(t, raw),
    )


def _dkim_detail(t: Target, raw: bytes) -> str:
    if b"DKIM-Signature:" not in raw:
        return "✗ the mail carries no DKIM-Signature"
    if not t.dkim_records:
        return "✗ no DKIM record to check against: run `deploy_psn dns` after a deployment"

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return t.dkim_records.get(name.decode(), "").encode()

    if not dkim.verify(raw, dnsfunc=dnsfunc):
        return "✗ the DKIM signature does not verify against the record of `deploy_psn dns`"
    return "the outgoing mail carries a DKIM signature that verifies against the DNS record"


def _refused_on_25(t: Target, msg: EmailMessage, reason: tuple[str, ...]) -> str:
    """The permanent refusal of `msg` from an unauthenticated client on port 25 (as another
    mail server sends: STARTTLS, no AUTH); CheckFailed unless refused for one of `reason`."""
    try:
        with PinnedSMTP(t.smtp_host, t.mail_address, 25) as smtp:
            smtp.starttls(context=t.tls)
            smtp.send_message(msg)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
    except smtplib.SMTPResponseException as exc:
        code, text = exc.smtp_code, exc.smtp_error
    else:
        raise CheckFailed("accepted")
    reply = f"{code} {text.decode(errors='replace')}"
    if code < 500 or not any(word in reply.lower() for word in reason):
        raise CheckFailed(f"refused for another reason: {reply}")
    return reply


def _external(t: Target, subject: str, body: str, to: str | None = None) -> EmailMessage:
    msg = _message(t, subject, body, to)
    msg.replace_header("From", "psn-verify@relay-test.invalid")
    return msg


def check_gtube(t: Target) -> str:
    msg = _external(t, "PSN verify GTUBE", f"{GTUBE}\n")
    return f"GTUBE mail refused: {_refused_on_25(t, msg, ('spam', 'gtube'))}"


def check_eicar(t: Target) -> str:
    msg = _external(t, "PSN verify EICAR", "The attachment is the EICAR test file.\n")
    msg.add_attachment(
        EICAR.encode(), maintype="application", subtype="octet-stream", filename="eicar.com"
    )
    return f"EICAR attachment refused: {_refused_on_25(t, msg, ('virus', 'eicar'))}"


def check_no_relay(t: Target) -> str:
    msg = _external(t, "PSN verify relay", "Must not leave.\n", to="nobody@relay-test.invalid")
    reply = _refused_on_25(t, msg, ("relay access denied",))
    return f"relay to a foreign domain without AUTH refused: {reply}"


def run_checks(t: Target, report: status.Report) -> list[Result]:
    """Every check, each independent of the others' failures."""
    results: list[Result] = []

    def record(name: str, check: Callable[[], str]) -> None:
        try:
            detail = check()
        except CheckFailed as exc:
            results.append(Result(name, False, str(exc)))
        except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, ValueError) as exc:
            results.append(Result(name, False, f"{type(exc).__name__}: {exc}"))
        else:
            ok = not detail.startswith("✗ ")
            results.append(Result(name, ok, detail.removeprefix("✗ ")))

    services = report.services
    bad = [s for s in services if not s.ok]
    results.append(
        Result(
            "services",
            bool(services) and not bad,
            f"all {len(services)} services at full replicas"
            if services and not bad
            else "; ".join(f"{s.name}: {', '.join(s.problems)}" for s in bad) or "nothing deployed",
        )
    )
    if report.replication:
        lagging = [m for m in report.replication if not m.ok]
        results.append(
            Result(
                "replication",
                not lagging,
                f"{len(report.replication)} replicated members in sync"
                if not lagging
                else "; ".join(f"{m.member} on {m.host}: {', '.join(m.problems)}" for m in lagging),
            )
        )
    web = WebSession(t)
    record("login page", lambda: check_login_page(t, web))
    record("SOGo login", lambda: check_sogo_login(t, web))
    record("user setting", lambda: check_setting(t, web))
    record("calendar (CalDAV)", lambda: check_caldav(t))
    dkim_detail: list[str] = []

    def mail() -> str:
        delivered, signed = check_mail_and_dkim(t)
        dkim_detail.append(signed)
        return delivered

    record("mail 587 → IMAPS", mail)
    record("DKIM", lambda: dkim_detail[0] if dkim_detail else "✗ no mail to check")
    record("GTUBE", lambda: check_gtube(t))
    record("EICAR", lambda: check_eicar(t))
    record("no open relay", lambda: check_no_relay(t))
    record("PSN API", lambda: check_api(t))
    record("admin panel", lambda: check_admin_panel(t))
    record("autoconfig", lambda: check_autoconfig(t))
    return results


def verify(servers: Servers) -> list[Result]:
    """The state of the services and replicas (the status playbook), then the client checks."""
    report = status.collect(servers)
    return run_checks(target_of(load_inventory(servers.inventory), servers.certs_root), report)


def render(results: list[Result], console: Console) -> None:
    """The checklist, one line per check."""
    for r in results:
        mark = "[green]✓[/]" if r.ok else "[red]✗[/]"
        console.print(f"{mark} {r.name}: {r.detail}", markup=True, highlight=False)


def verdict(results: list[Result]) -> None:
    """Raise DegradedError naming the failed checks."""
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise DegradedError(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}")
