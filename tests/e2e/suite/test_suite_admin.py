"""Administration of the suite deployment (conftest `suite`) through the PSN API, the CLI over it,
the admin panel in a real headless Chromium, and client autoconfiguration, all through the proxy
with the installation's certificate, as an administrator's browser or script would.

A tenant, a domain, two users and a group are created through the API; the users log in to SOGo
and exchange mail, mail to the group reaches both, the group is in the global address book, a
disabled user can no longer log in, a tenant administrator gets 403 on the objects of another
tenant. Everything the module creates is deleted again at its end.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import shutil
import smtplib
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_helpers import DOMAIN, ROOT

from psn import verify
from psn.api_client import ApiClient, tls_context
from psn.errors import ApiError
from psn.validate import load_inventory

pytestmark = pytest.mark.e2e

TENANT = "acme"
ACME = "acme.test"
ANN, BOB, CAROL = f"ann@{ACME}", f"bob@{ACME}", f"carol@{ACME}"
TEAM = f"team@{ACME}"
PASSWORDS = {ANN: "Ann-pass-1234", BOB: "Bob-pass-1234", CAROL: "Carol-pass-1234"}
API_HOST, ADMIN_HOST = f"psnapi.{DOMAIN}", f"admin.{DOMAIN}"
AUTOCONFIG_HOST = f"autoconfig.{DOMAIN}"


@pytest.fixture(scope="module")
def target(first_run: Path, certs_root: Path) -> verify.Target:
    return verify.target_of(load_inventory(first_run), certs_root)


@pytest.fixture(scope="module")
def api_password(first_run: Path) -> str:
    return yaml.safe_load(first_run.read_text())["all"]["vars"]["passwords"]["psnapi_admin_user"]


def _api(target: verify.Target, user: str, password: str, certs_root: Path) -> ApiClient:
    ca = tls_context(certs_root / DOMAIN / "ca.crt")
    return ApiClient(f"https://{API_HOST}", user, password, ca, target.web_address)


@pytest.fixture(scope="module")
def api(target, api_password, certs_root) -> ApiClient:
    return _api(target, "psnapi", api_password, certs_root)


@pytest.fixture(scope="module")
def acme(api: ApiClient) -> Iterator[None]:
    """Tenant acme with domain acme.test, Ann and Bob, group team@ with both; removed after."""
    api.request("POST", "/tenants", {"name": TENANT, "description": "e2e tenant"})
    api.request("POST", "/domains", {"name": ACME, "tenant": TENANT})
    for user, name in ((ANN, "Ann Example"), (BOB, "Bob Example")):
        api.request(
            "POST", "/users",
            {"address": user, "display_name": name, "password": PASSWORDS[user], "quota": "100M"},
        )  # fmt: skip
    api.request(
        "POST", "/groups", {"address": TEAM, "name": "Acme team", "members": [ANN, BOB]}
    )  # fmt: skip
    yield
    for kind, name in (("groups", TEAM), ("users", ANN), ("users", BOB), ("users", CAROL)):
        try:
            api.request("DELETE", api.item(kind, name))
        except ApiError as exc:
            assert exc.status == 404, exc.title
    api.request("DELETE", api.item("domains", ACME))
    api.request("DELETE", api.item("tenants", TENANT))


def _as(target: verify.Target, user: str, password: str | None = None) -> verify.Target:
    return dataclasses.replace(target, user=user, password=password or PASSWORDS[user])


def test_api_refuses_bad_credentials_and_answers_the_global_admin(api, target, certs_root):
    with pytest.raises(ApiError) as caught:
        _api(target, "psnapi", "wrong-password", certs_root).request("GET", "/me")
    assert caught.value.status == 401
    assert api.request("GET", "/me")["role"] == "admin"
    tenants = {t["name"] for t in api.request("GET", "/tenants")}
    assert "default" in tenants


def test_new_users_log_in_to_sogo_and_exchange_mail(acme, target):
    for user in (ANN, BOB):
        verify.check_sogo_login(_as(target, user), verify.WebSession(_as(target, user)))
    ann, bob = _as(target, ANN), _as(target, BOB)
    to_bob = verify._message(ann, f"to bob {uuid.uuid4().hex[:6]}", "Hello Bob.\n", to=BOB)
    verify._submit(ann, to_bob)
    assert b"Hello Bob." in verify._fetch_and_delete(bob, to_bob["Message-ID"])
    to_ann = verify._message(bob, f"to ann {uuid.uuid4().hex[:6]}", "Hello Ann.\n", to=ANN)
    verify._submit(bob, to_ann)
    assert b"Hello Ann." in verify._fetch_and_delete(ann, to_ann["Message-ID"])


def test_mail_to_the_group_reaches_every_member(acme, target):
    ann = _as(target, ANN)
    msg = verify._message(ann, f"to the team {uuid.uuid4().hex[:6]}", "Team news.\n", to=TEAM)
    verify._submit(ann, msg)
    for user in (ANN, BOB):
        assert b"Team news." in verify._fetch_and_delete(_as(target, user), msg["Message-ID"])


def test_the_group_is_in_the_global_address_book(acme, target):
    bob = _as(target, BOB)
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
        "<D:prop><D:getetag/><C:address-data/></D:prop>"
        '<C:filter><C:prop-filter name="mail">'
        '<C:text-match collation="i;unicode-casemap" match-type="contains">team</C:text-match>'
        "</C:prop-filter></C:filter></C:addressbook-query>"
    )
    auth = base64.b64encode(f"{bob.user}:{bob.password}".encode()).decode()
    code, _, data = verify.WebSession(bob).request(
        "REPORT", f"/SOGo/dav/{BOB}/Contacts/groups/", body,
        {"Authorization": f"Basic {auth}", "Depth": "1", "Content-Type": "application/xml"},
    )  # fmt: skip
    assert code == 207, (code, data[:500])
    assert TEAM.encode() in data and b"Acme team" in data


def test_a_disabled_user_can_no_longer_log_in(acme, api, target):
    ann = _as(target, ANN)
    api.request("PATCH", api.item("users", ANN), {"enabled": False})
    try:
        with pytest.raises(verify.CheckFailed):
            verify.check_sogo_login(ann, verify.WebSession(ann))
        with pytest.raises(smtplib.SMTPAuthenticationError):
            verify._submit(ann, verify._message(ann, "locked", "x\n"))
    finally:
        api.request("PATCH", api.item("users", ANN), {"enabled": True})
    verify.check_sogo_login(ann, verify.WebSession(ann))


def test_a_password_reset_takes_effect_at_once(acme, api, target):
    api.request("PATCH", api.item("users", BOB), {"password": "Bob-new-pass-99"})
    try:
        bob = _as(target, BOB, "Bob-new-pass-99")
        verify.check_sogo_login(bob, verify.WebSession(bob))
        with pytest.raises(verify.CheckFailed):
            verify.check_sogo_login(_as(target, BOB), verify.WebSession(_as(target, BOB)))
    finally:
        api.request("PATCH", api.item("users", BOB), {"password": PASSWORDS[BOB]})


def test_a_tenant_admin_sees_only_its_tenant(acme, api, target, certs_root):
    api.request(
        "POST", "/users",
        {"address": CAROL, "display_name": "Carol", "password": PASSWORDS[CAROL],
         "tenant_admin": True},
    )  # fmt: skip
    carol = _api(target, CAROL, PASSWORDS[CAROL], certs_root)
    assert carol.request("GET", "/me")["tenant"] == TENANT
    assert {u["address"] for u in carol.request("GET", "/users")} == {ANN, BOB, CAROL}
    for kind, name in (("users", f"admin@{DOMAIN}"), ("domains", DOMAIN), ("tenants", "default")):
        with pytest.raises(ApiError) as caught:
            carol.request("GET", carol.item(kind, name))
        assert caught.value.status == 403, (kind, name, caught.value.title)
    with pytest.raises(ApiError) as caught:
        carol.request("PATCH", carol.item("users", f"admin@{DOMAIN}"), {"display_name": "x"})
    assert caught.value.status == 403
    with pytest.raises(ApiError) as caught:
        carol.request("POST", "/domains", {"name": "claimed.test", "tenant": TENANT})
    assert caught.value.status == 403
    # Within its tenant it administers.
    carol.request("PATCH", carol.item("users", BOB), {"display_name": "Robert Example"})
    assert api.request("GET", api.item("users", BOB))["display_name"] == "Robert Example"


def test_a_new_domain_signs_after_the_next_mail_run(acme, api, target, suite):
    """docs/administration.md: `-t mail,backend` makes the DKIM key of a domain added through
    the API; its record is on the domain's DNS page and its mail verifies against it."""

    def dkim_record() -> str:
        records = api.request("GET", api.item("domains", ACME) + "/dns")
        data = next(r["data"] for r in records if r["name"] == f"psn._domainkey.{ACME}.")
        return "".join(part for part in data.split('"')[1::2])

    assert "not generated" in dkim_record() or "<" in dkim_record()
    res = suite.deploy("run-dkim", "-t", "mail,backend")
    assert res.returncode == 0, res.stdout + res.stderr
    record = dkim_record()
    assert record.startswith("v=DKIM1; k=rsa; p=MII"), record
    ann = dataclasses.replace(_as(target, ANN), dkim_records={f"psn._domainkey.{ACME}.": record})
    msg = verify._message(ann, f"signed {uuid.uuid4().hex[:6]}", "Signed by acme.\n", to=BOB)
    verify._submit(ann, msg)
    raw = verify._fetch_and_delete(_as(target, BOB), msg["Message-ID"])
    assert b"d=acme.test" in raw
    detail = verify._dkim_detail(ann, raw)
    assert not detail.startswith("✗"), detail


def test_the_cli_imports_users_from_csv_and_prints_dns_records(acme, target, certs_root,
                                                               first_run, tmp_path):  # fmt: skip
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        "address,display_name,password,quota\n"
        f"dave@{ACME},Dave Example,Dave-pass-1234,50M\n"
        f"erin@{ACME},Erin Example,Erin-pass-1234,1G\n"
    )
    cli = [str(ROOT / "deploy_psn.sh"), "users", "-i", str(first_run), "--certs-dir",
           str(certs_root), "--address", target.web_address]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PSN_API_PASSWORD"}
    try:
        res = subprocess.run([*cli, "import", str(csv_file)], capture_output=True, text=True,
                             env=env, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        res = subprocess.run([*cli, "list", "--domain", ACME, "--json"], capture_output=True,
                             text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
        listed = {u["address"]: u for u in json.loads(res.stdout)}
        assert listed[f"erin@{ACME}"]["quota"] == 1 << 30
        assert "Erin-pass" not in res.stdout + res.stderr
        dave = _as(target, f"dave@{ACME}", "Dave-pass-1234")
        verify.check_sogo_login(dave, verify.WebSession(dave))
        dns = subprocess.run(
            [*cli[:1], "domains", *cli[2:], "dns", ACME], capture_output=True, text=True,
            env=env, stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        assert dns.returncode == 0, dns.stdout + dns.stderr
        assert f"{ACME}." in dns.stdout and f"smtp.{DOMAIN}." in dns.stdout
    finally:
        for user in (f"dave@{ACME}", f"erin@{ACME}"):
            subprocess.run([*cli, "delete", "--yes", user], capture_output=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=120, check=False)  # fmt: skip


def _https(target: verify.Target, host: str, method: str, path: str, body: str = ""):
    session = verify.WebSession(dataclasses.replace(target, web_host=host))
    headers = {"Content-Type": "text/xml"} if body else {}
    return session.request(method, path, body or None, headers)


def test_thunderbird_autoconfig_names_this_installation(target):
    code, _, data = _https(target, AUTOCONFIG_HOST, "GET",
                           f"/mail/config-v1.1.xml?emailaddress={ANN}")  # fmt: skip
    assert code == 200, (code, data[:300])
    provider = ET.fromstring(data).find("emailProvider")
    incoming = {(s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
                for s in provider.iter("incomingServer")}  # fmt: skip
    outgoing = {(s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
                for s in provider.iter("outgoingServer")}  # fmt: skip
    assert (f"imap.{DOMAIN}", "993", "SSL") in incoming
    assert (f"smtp.{DOMAIN}", "465", "SSL") in outgoing
    assert (f"smtp.{DOMAIN}", "587", "STARTTLS") in outgoing


def test_outlook_autodiscover_on_the_bare_domain_names_this_installation(target):
    request = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/'
        'requestschema/2006"><Request>'
        f"<EMailAddress>{ANN}</EMailAddress>"
        "<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/"
        "responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
    )
    code, _, data = _https(target, DOMAIN, "POST", "/autodiscover/autodiscover.xml", request)
    assert code == 200, (code, data[:300])
    ns = {"a": "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"}
    protocols = {
        p.findtext("a:Type", namespaces=ns): (p.findtext("a:Server", namespaces=ns),
                                              p.findtext("a:Port", namespaces=ns))
        for p in ET.fromstring(data).iter(f"{{{ns['a']}}}Protocol")
    }  # fmt: skip
    assert protocols["IMAP"] == (f"imap.{DOMAIN}", "993")
    assert protocols["SMTP"][0] == f"smtp.{DOMAIN}"


@pytest.fixture(scope="module")
def chromium(target, certs_root) -> Iterator[object]:
    """Debian's headless Chromium through selenium, resolving every name to the server and
    trusting nothing but what the test checks (the certificate chain is tested elsewhere)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "tests/run.sh installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--host-resolver-rules=MAP * {target.web_address}",
                "--ignore-certificate-errors"):  # fmt: skip
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=driver)
    browser = webdriver.Chrome(options=options, service=service)
    browser.implicitly_wait(15)
    yield browser
    browser.quit()


def _click_and_wait(browser, button_id: str) -> None:
    """Click a submit button and wait until the next page replaced this one (chromedriver may
    report the old page's node as "does not belong to the document" instead of stale)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, button_id).click()

    def gone(_: object) -> bool:
        try:
            old.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" not in str(exc):
                raise
            return True
        return False

    WebDriverWait(browser, 30).until(gone)


def _element(browser, element_id: str):
    """The element with this id; a failure shows the page the browser was on instead."""
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        return browser.find_element(By.ID, element_id)
    except NoSuchElementException:
        page = browser.find_element(By.TAG_NAME, "body").text
        pytest.fail(f"no #{element_id} on {browser.current_url}, which shows: {page[:1500]}")


def test_the_admin_panel_creates_resets_and_deletes_a_user(acme, chromium, api, api_password,
                                                          target):  # fmt: skip
    from selenium.webdriver.common.by import By

    browser = chromium
    user = f"frank@{ACME}"
    browser.get(f"https://{ADMIN_HOST}/")
    browser.find_element(By.NAME, "username").send_keys("psnapi")
    browser.find_element(By.NAME, "password").send_keys(api_password)
    _click_and_wait(browser, "login")
    assert "psnapi" in browser.find_element(By.ID, "whoami").text
    browser.get(f"https://{ADMIN_HOST}/users/new")
    browser.find_element(By.NAME, "address").send_keys(user)
    browser.find_element(By.NAME, "display_name").send_keys("Frank Example")
    browser.find_element(By.NAME, "password").send_keys("Frank-pass-1234")
    browser.find_element(By.NAME, "quota").send_keys("200M")
    _click_and_wait(browser, "save")
    try:
        assert api.request("GET", api.item("users", user))["quota"] == 200 << 20
        frank = _as(target, user, "Frank-pass-1234")
        verify.check_sogo_login(frank, verify.WebSession(frank))
        browser.get(f"https://{ADMIN_HOST}/users/{user}")
        browser.find_element(By.NAME, "new_password").send_keys("Frank-new-pass-99")
        _click_and_wait(browser, "reset-password")
        frank = _as(target, user, "Frank-new-pass-99")
        verify.check_sogo_login(frank, verify.WebSession(frank))
        browser.get(f"https://{ADMIN_HOST}/users/{user}")
        _element(browser, "delete-user").click()
        _click_and_wait(browser, "confirm-delete")
        with pytest.raises(ApiError) as caught:
            api.request("GET", api.item("users", user))
        assert caught.value.status == 404
    finally:
        with contextlib.suppress(ApiError):
            api.request("DELETE", api.item("users", user))
