"""The web side (SOGo, its web front end, the TLS proxy) of the suite deployment (conftest
`suite`: every role on one emulated Debian 12 server).

A real HTTPS client talks to the server's published ports 80/443 by the installation's
host names (SNI and Host mail.<domain>, certificate checked against the test CA): HTTP
redirects to HTTPS, admin@<domain> logs in to SOGo, keeps a setting, stores a calendar event
over CalDAV and a contact over CardDAV, finds itself in the global address book; the
/.well-known redirects, the 404 page of names without a service, the TLS versions, `nginx -t`
in both nginx containers; `-t proxy` alone serves a new
certificate and restarts only the proxy.
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from http.cookiejar import CookieJar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from e2e_helpers import (
    DOMAIN,
    print_summary,
    updated_at,
)

from psn.certs import generate_self_signed
from psn.names import certificate_names, default_domain

pytestmark = pytest.mark.e2e

ADMIN = f"admin@{DOMAIN}"
# SOGo answers a "browser not supported" page to clients it does not know.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0"
MAIL_HOST = f"mail.{DOMAIN}"
WEB_SERVICES = (
    "psn-backend_sogo",
    "psn-backend_memcached",
    "psn-frontend_web_mail",
    "psn-nginx-proxy_nginx",
)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with the URL's host name as SNI and for the certificate check
    (the test machine has no DNS for the installation's names)."""

    def __init__(self, host: str, *args, address: str, **kwargs) -> None:
        super().__init__(host, *args, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Browser:
    """A web client of the installation: cookies kept, redirects not followed."""

    def __init__(self, address: str, context: ssl.SSLContext) -> None:
        self.cookies = CookieJar()
        pinned = functools.partial(_PinnedHTTPSConnection, address=address)

        class Handler(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(pinned, req, context=context)

        self._opener = urllib.request.build_opener(
            Handler, _NoRedirect, urllib.request.HTTPCookieProcessor(self.cookies)
        )

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.cookies if c.name == name and c.value)

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict | None = None
    ) -> Reply:
        headers = {"User-Agent": USER_AGENT, **(headers or {})}
        # SOGo refuses its JSON actions without the header its web client copies from the cookie.
        xsrf = [c.value for c in self.cookies if c.name == "XSRF-TOKEN"]
        if xsrf:
            headers.setdefault("X-XSRF-TOKEN", xsrf[0])
        req = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with self._opener.open(req, timeout=60) as resp:
                return Reply(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.headers, err.read())

    def post_json(self, url: str, data: object) -> Reply:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return self.request("POST", url, json.dumps(data).encode(), headers)


@pytest.fixture(scope="module")
def tls(certs_root) -> ssl.SSLContext:
    """Trusts the test CA and checks the host name of every request."""
    return ssl.create_default_context(cafile=certs_root / default_domain(DOMAIN) / "ca.crt")


@pytest.fixture(scope="module")
def browser(address, tls) -> Browser:
    return Browser(address, tls)


@pytest.fixture(scope="module")
def logged_in(browser, admin_password) -> Browser:
    """The browser after admin@<domain> logged in to SOGo (retried while SOGo warms up)."""
    deadline = time.monotonic() + 120
    while True:
        reply = browser.post_json(
            f"https://{MAIL_HOST}/SOGo/connect",
            {"userName": ADMIN, "password": admin_password, "rememberLogin": 0},
        )
        if reply.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert reply.status == 200, (reply.status, reply.body[:500])
    return browser


def dav(browser: Browser, method: str, path: str, password: str, body: bytes = b"", **headers):
    auth = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
    return browser.request(
        method,
        f"https://{MAIL_HOST}/SOGo/dav/{ADMIN}/{path}",
        body or None,
        {"Authorization": f"Basic {auth}", **headers},
    )


def in_container(lab, service: str, command: str) -> str:
    [server] = lab.servers
    return lab.ssh(
        server,
        f"docker exec $(docker ps -q -f label=com.docker.swarm.service.name={service}) {command}"
        " 2>&1",
    )


def served_certificate(address: str, context: ssl.SSLContext, name: str = MAIL_HOST) -> bytes:
    with (
        socket.create_connection((address, 443), timeout=20) as sock,
        context.wrap_socket(sock, server_hostname=name) as conn,
    ):
        return conn.getpeercert(binary_form=True)


def test_web_services_run(lab, first_run):
    [server] = lab.servers
    listing = lab.ssh(server, "docker service ls --format '{{.Name}} {{.Replicas}}'")
    replicas = dict(line.split()[:2] for line in listing.splitlines())
    for service in WEB_SERVICES:
        assert replicas.get(service) == "1/1", listing


def test_http_redirects_to_https(address):
    conn = http.client.HTTPConnection(address, 80, timeout=20)
    conn.request("GET", "/SOGo/?x=1", headers={"Host": MAIL_HOST})
    resp = conn.getresponse()
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://{MAIL_HOST}/SOGo/?x=1"


def test_login_page_static_files_and_hsts(browser):
    root = browser.request("GET", f"https://{MAIL_HOST}/")
    assert root.status == 302 and root.headers["Location"].endswith("/SOGo/")
    page = browser.request("GET", f"https://{MAIL_HOST}/SOGo/")
    assert page.status == 200 and b"SOGo" in page.body, page.status
    assert page.headers["Strict-Transport-Security"] == "max-age=63072000"
    css = browser.request("GET", f"https://{MAIL_HOST}/SOGo.woa/WebServerResources/css/icons.css")
    assert css.status == 200 and len(css.body) > 1000


def test_wrong_password_is_refused(address, tls):
    reply = Browser(address, tls).post_json(
        f"https://{MAIL_HOST}/SOGo/connect", {"userName": ADMIN, "password": "wrong-password"}
    )
    assert reply.status == 403, reply.status


def user_defaults(browser: Browser) -> dict:
    """The user's preferences as SOGo's web client reads them."""
    reply = browser.request("GET", f"https://{MAIL_HOST}/SOGo/so/{ADMIN}/jsonDefaults")
    assert reply.status == 200, (reply.status, reply.body[:300])
    return reply.json()


def test_admin_logs_in_with_the_installation_defaults(logged_in, lab):
    """The inventory's default_instance_language ("Russian") is the language SOGo gives a user
    who chose none; the servers' psn_timezone is SOGo's default time zone."""
    page = logged_in.request("GET", f"https://{MAIL_HOST}/SOGo/so/{ADMIN}/Preferences")
    assert page.status == 200 and b'<html lang="ru"' in page.body, page.body[:300]
    assert user_defaults(logged_in)["SOGoLanguage"] == "Russian"
    conf = in_container(
        lab, "psn-backend_sogo", "grep -E 'SOGo(Language|TimeZone) ' /etc/sogo/sogo.conf"
    )
    assert 'SOGoLanguage = "Russian";' in conf and 'SOGoTimeZone = "Etc/UTC";' in conf, conf


def test_a_setting_is_kept(logged_in):
    """The web client's own save (which also writes the Sieve script over ManageSieve)."""
    values = user_defaults(logged_in)
    new = "07:00" if values.get("SOGoDayStartTime") != "07:00" else "09:00"
    saved = logged_in.post_json(
        f"https://{MAIL_HOST}/SOGo/so/{ADMIN}/Preferences/save",
        {"defaults": {**values, "SOGoDayStartTime": new}},
    )
    assert saved.status == 200, (saved.status, saved.body[:300])
    assert user_defaults(logged_in)["SOGoDayStartTime"] == new


def test_webmail_sends_and_reads_mail(logged_in):
    """A mail written in SOGo's web client leaves through Postfix's submission port (STARTTLS,
    the user's credentials) and shows in the INBOX SOGo reads from Dovecot (IMAP STARTTLS as the
    user), with the quota Dovecot reports."""
    mail = f"https://{MAIL_HOST}/SOGo/so/{ADMIN}/Mail"
    compose = logged_in.request("GET", f"{mail}/0/compose")
    assert compose.status == 201, (compose.status, compose.body[:300])
    draft = compose.json()
    folders = "/".join("folder" + part for part in draft["mailboxPath"].split("/"))
    path = f"{mail}/{draft['accountId']}/{folders}/{draft['draftId']}"
    message = logged_in.request("GET", f"{path}/edit").json()
    subject = f"e2e webmail {uuid.uuid4().hex[:8]}"
    message.update(to=[ADMIN], subject=subject, text="Sent by the PSN end-to-end test.", isHTML=0)
    sent = logged_in.post_json(f"{path}/send", message)
    assert sent.status == 200 and sent.json()["status"] == "success", sent.body[:300]
    deadline = time.monotonic() + 60
    while True:
        reply = logged_in.post_json(
            f"{mail}/0/folderINBOX/view", {"sortingAttributes": {"sort": "date", "asc": 0}}
        )
        assert reply.status == 200, (reply.status, reply.body[:300])
        listing = reply.json()
        if subject in json.dumps(listing["headers"], ensure_ascii=False):
            break
        assert time.monotonic() < deadline, f"{subject} not in SOGo's INBOX: {listing}"
        time.sleep(2)
    assert int(listing["quotas"]["maxQuota"]) > 0


def test_activesync_answers(logged_in, admin_password):
    auth = base64.b64encode(f"{ADMIN}:{admin_password}".encode()).decode()
    reply = logged_in.request(
        "OPTIONS",
        f"https://{MAIL_HOST}/Microsoft-Server-ActiveSync",
        headers={"Authorization": f"Basic {auth}"},
    )
    assert reply.status == 200, reply.status
    assert "14.1" in reply.headers["MS-ASProtocolVersions"].split(",")


def test_caldav_event_round_trip(logged_in, admin_password):
    uid = uuid.uuid4().hex
    event = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//PSN//e2e//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T090000Z\r\nDTSTART:20260301T100000Z\r\n"
        f"DTEND:20260301T110000Z\r\nSUMMARY:PSN e2e {uid[:8]}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    put = dav(
        logged_in, "PUT", f"Calendar/personal/{uid}.ics", admin_password, event.encode(),
        **{"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"},
    )  # fmt: skip
    assert put.status == 201, (put.status, put.body[:300])
    got = dav(logged_in, "GET", f"Calendar/personal/{uid}.ics", admin_password)
    assert got.status == 200 and f"SUMMARY:PSN e2e {uid[:8]}".encode() in got.body


def test_carddav_contact_round_trip(logged_in, admin_password):
    uid = uuid.uuid4().hex
    card = (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Contact {uid[:8]}\r\n"
        f"N:{uid[:8]};Contact;;;\r\nEMAIL;TYPE=work:c{uid[:8]}@partner.test\r\nEND:VCARD\r\n"
    )
    put = dav(
        logged_in, "PUT", f"Contacts/personal/{uid}.vcf", admin_password, card.encode(),
        **{"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"},
    )  # fmt: skip
    assert put.status == 201, (put.status, put.body[:300])
    got = dav(logged_in, "GET", f"Contacts/personal/{uid}.vcf", admin_password)
    assert got.status == 200 and f"c{uid[:8]}@partner.test".encode() in got.body


def test_global_address_book_lists_admin(logged_in):
    reply = logged_in.post_json(
        f"https://{MAIL_HOST}/SOGo/so/{ADMIN}/Contacts/people/view",
        {"search": "name_or_address", "value": "admin"},
    )
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert ADMIN in json.dumps(reply.json()["headers"])


def test_well_known_dav_redirects(browser):
    for host in (MAIL_HOST, DOMAIN):
        for kind in ("caldav", "carddav"):
            reply = browser.request("GET", f"https://{host}/.well-known/{kind}")
            assert reply.status == 301, (host, kind, reply.status)
            assert reply.headers["Location"] == f"https://{MAIL_HOST}/SOGo/dav/"


def test_names_without_a_service_get_a_clear_404(address, tls):
    # The certificate covers the names of Table 7, not an arbitrary one.
    for host, context in (
        (f"cab.{DOMAIN}", tls),
        (f"nothing-here.{DOMAIN}", tls_by_address(tls)),
    ):
        reply = Browser(address, context).request("GET", f"https://{host}/anything")
        assert reply.status == 404, (host, reply.status)
        assert b"not provided by this installation yet" in reply.body


def test_tls_1_1_is_refused_and_1_2_accepted(address, tls):
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError), socket.create_connection((address, 443), timeout=20) as sock:
        old.wrap_socket(sock, server_hostname=MAIL_HOST)
    tls12 = ssl.create_default_context(cadata=_ca_pem(tls))
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection((address, 443), timeout=20) as sock,
        tls12.wrap_socket(sock, server_hostname=MAIL_HOST) as conn,
    ):
        assert conn.version() == "TLSv1.2"
        # Mozilla intermediate: forward-secret AEAD suites only.
        assert conn.cipher()[0] in {
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-RSA-CHACHA20-POLY1305",
        }


def tls_by_address(context: ssl.SSLContext) -> ssl.SSLContext:
    """The test CA for servers reached by address (no host name to check)."""
    by_address = ssl.create_default_context(cadata=_ca_pem(context))
    by_address.check_hostname = False
    return by_address


def _ca_pem(context: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in context.get_ca_certs(binary_form=True))


def test_nginx_configurations_are_valid(lab):
    for service in ("psn-nginx-proxy_nginx", "psn-frontend_web_mail"):
        out = in_container(lab, service, "nginx -t")
        assert "syntax is ok" in out and "test is successful" in out, (service, out)


def test_proxy_tag_replaces_the_certificate(suite, lab, certs_root, tls):
    """Guide §4.2.4.2: new files in certificates/<domain>/, then `-t proxy` alone. Runs last of
    the suite's tests: the other services keep the old certificate until their own tags run."""
    address = lab.servers[0].address
    cert_dir = certs_root / default_domain(DOMAIN)
    old = served_certificate(address, tls)
    assert old == x509.load_pem_x509_certificate(
        (cert_dir / "server.crt").read_bytes()
    ).public_bytes(Encoding.DER)
    generate_self_signed(cert_dir, certificate_names(DOMAIN, "{service}.{domain}"), force=True)
    new = x509.load_pem_x509_certificate((cert_dir / "server.crt").read_bytes())
    before = updated_at(lab)

    started = time.monotonic()
    res = suite.deploy("run-proxy", "-t", "proxy")
    print_summary("deploy -t proxy", res, time.monotonic() - started)
    assert res.returncode == 0, res.stdout + res.stderr

    assert served_certificate(address, tls) == new.public_bytes(Encoding.DER) != old
    after = updated_at(lab)
    assert {name for name in after if after[name] != before.get(name)} == {"psn-nginx-proxy_nginx"}
