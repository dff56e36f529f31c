"""The admin panel (`psnweb admin`) in a real headless Chromium, talking to a real API container
over a real psn/ldap directory (conftest's psnapi_service): sign-in, users, groups, domains and
tenants the way an administrator clicks through them, with what the directory ends up holding
checked through the API itself.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

USER = "frank@psn.test"


def api_call(service, method: str, path: str, body: dict | None = None, auth=None):
    """(status, JSON answer) of the API itself, as its global admin unless `auth` is given."""
    user, password = auth or (service.admin_name, service.admin_password)
    req = urllib.request.Request(
        f"{service.url}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            data = resp.read()
            return resp.status, json.loads(data) if data else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def token_status(service, user: str, password: str) -> int:
    """The status of POST /auth/token: 200 administrator, 401 bad password, 403 not an admin."""
    req = urllib.request.Request(
        f"{service.url}/api/v1/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start_panel(image: str, lab, service, **config) -> str:
    cid = lab.run(
        image, f"admin-{len(lab.ids)}", "admin", config={"api_url": service.internal_url, **config}
    )
    lab.wait_healthy(cid)
    return lab.url(cid)


@pytest.fixture(scope="module")
def panel(psnapi_image, psnweb_lab, psnapi_service) -> str:
    # Plain HTTP here (the proxy terminates TLS in production): cookies without Secure.
    return start_panel(psnapi_image, psnweb_lab, psnapi_service, secure_cookies=False)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "tests/run.sh installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    chrome.implicitly_wait(10)
    yield chrome
    chrome.quit()


def _gone(element) -> bool:
    """The element left the document. chromedriver reports a node of the page just replaced
    as an "unknown error" ("does not belong to the document") as well as a stale reference."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def submit(browser, button_id: str) -> None:
    """Click a submit button and wait for the next page."""
    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, button_id).click()
    WebDriverWait(browser, 20).until(lambda _: _gone(old))


def fill(browser, **fields: str) -> None:
    for name, value in fields.items():
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def message(browser, kind: str) -> str:
    """The text of the page's notice or error."""
    return browser.find_element(By.ID, kind).text


def login(browser, panel: str, user: str, password: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{panel}/login")
    fill(browser, username=user, password=password)
    submit(browser, "login")


def test_a_wrong_password_shows_an_error_and_signs_nobody_in(browser, panel, psnapi_service):
    login(browser, panel, psnapi_service.admin_name, "not-the-password")
    assert "/login" in browser.current_url
    assert message(browser, "error")
    assert browser.find_element(By.NAME, "username").get_attribute("value") == "psnapi"
    assert browser.get_cookie("psn_admin_session") is None
    browser.get(f"{panel}/users")
    assert browser.current_url.endswith("/login")


def test_the_global_admin_creates_resets_and_deletes_a_user(browser, panel, psnapi_service):
    svc = psnapi_service
    login(browser, panel, svc.admin_name, svc.admin_password)
    assert browser.current_url.endswith("/users")
    assert "psnapi" in browser.find_element(By.ID, "whoami").text
    cookie = browser.get_cookie("psn_admin_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert browser.find_element(By.ID, f"user-{svc.tenant_admin}")

    browser.find_element(By.ID, "new-user").click()
    fill(
        browser,
        address=USER,
        display_name="Frank Example",
        password="Frank-pass-1234",
        quota="200M",
        aliases="f.example@psn.test",
    )
    browser.find_element(By.ID, "tenant_admin").click()
    submit(browser, "save")
    assert "created" in message(browser, "notice")
    status, user = api_call(svc, "GET", f"/users/{USER}")
    assert status == 200, user
    assert (user["display_name"], user["quota"], user["aliases"]) == (
        "Frank Example",
        200 << 20,
        ["f.example@psn.test"],
    )
    assert user["tenant_admin"] is True and user["enabled"] is True
    assert token_status(svc, USER, "Frank-pass-1234") == 200

    # Edit: display name, quota, no aliases, disabled.
    fill(browser, display_name="Frank Changed", quota="1G", aliases="")
    browser.find_element(By.ID, "enabled").click()
    submit(browser, "save")
    assert "saved" in message(browser, "notice")
    _, user = api_call(svc, "GET", f"/users/{USER}")
    assert (user["display_name"], user["quota"], user["aliases"], user["enabled"]) == (
        "Frank Changed",
        1 << 30,
        [],
        False,
    )
    assert browser.find_element(By.NAME, "quota").get_attribute("value") == "1G"
    browser.find_element(By.ID, "enabled").click()
    submit(browser, "save")
    assert api_call(svc, "GET", f"/users/{USER}")[1]["enabled"] is True

    fill(browser, new_password="Frank-new-pass-99")
    submit(browser, "reset-password")
    assert "reset" in message(browser, "notice")
    assert token_status(svc, USER, "Frank-new-pass-99") == 200
    assert token_status(svc, USER, "Frank-pass-1234") == 401

    browser.find_element(By.ID, "delete-user").click()
    assert browser.find_element(By.ID, "confirm-name").text == USER
    submit(browser, "confirm-delete")
    assert "deleted" in message(browser, "notice")
    assert browser.current_url.endswith("/users")
    assert not browser.find_elements(By.ID, f"user-{USER}")
    assert api_call(svc, "GET", f"/users/{USER}")[0] == 404


def test_api_errors_are_shown_and_the_input_kept(browser, panel, psnapi_service):
    svc = psnapi_service
    login(browser, panel, svc.admin_name, svc.admin_password)
    browser.get(f"{panel}/users/new")
    fill(browser, address=svc.tenant_admin, display_name="Duplicate", password="Dup-pass-1234")
    submit(browser, "save")
    assert message(browser, "error")  # 409: the address exists
    assert browser.find_element(By.NAME, "display_name").get_attribute("value") == "Duplicate"
    assert browser.find_element(By.NAME, "password").get_attribute("value") == ""

    fill(browser, address="gina@psn.test", quota="lots", password="Gina-pass-1234")
    submit(browser, "save")
    assert "lots" in message(browser, "error")  # 422 names the bad value
    assert browser.find_element(By.NAME, "address").get_attribute("value") == "gina@psn.test"
    assert api_call(svc, "GET", "/users/gina@psn.test")[0] == 404


def test_forms_without_the_csrf_token_are_refused(browser, panel, psnapi_service):
    svc = psnapi_service
    login(browser, panel, svc.admin_name, svc.admin_password)
    session = browser.get_cookie("psn_admin_session")["value"]
    body = {"address": "mallory@psn.test", "display_name": "M", "password": "Mallory-pass-1"}
    for csrf in ("", "0" * 64):
        req = urllib.request.Request(
            f"{panel}/users/new",
            data=urllib.parse.urlencode({**body, "csrf": csrf}).encode(),
            headers={"Cookie": f"psn_admin_session={session}"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(req, timeout=20)
        assert caught.value.code == 403
    assert api_call(svc, "GET", "/users/mallory@psn.test")[0] == 404


def test_cookies_are_secure_by_default(psnapi_image, psnweb_lab, psnapi_service):
    url = start_panel(psnapi_image, psnweb_lab, psnapi_service)
    with urllib.request.urlopen(f"{url}/login", timeout=20) as resp:
        cookie = resp.headers["Set-Cookie"]
    assert "psn_admin_login=" in cookie
    for flag in ("Secure", "HttpOnly", "SameSite=strict"):
        assert flag.lower() in cookie.lower(), cookie


def test_tenants_domains_groups_and_dns_records(browser, panel, psnapi_service):
    svc = psnapi_service
    login(browser, panel, svc.admin_name, svc.admin_password)

    browser.find_element(By.ID, "nav-tenants").click()
    browser.find_element(By.ID, "new-tenant").click()
    fill(browser, name="acme", description="Acme Inc.")
    submit(browser, "save")
    assert "created" in message(browser, "notice")

    browser.find_element(By.ID, "nav-domains").click()
    browser.find_element(By.ID, "new-domain").click()
    fill(browser, name="acme.test", description="Acme mail")
    browser.find_element(By.CSS_SELECTOR, "#tenant option[value='acme']").click()
    submit(browser, "save")
    assert "created" in message(browser, "notice")
    assert browser.find_element(By.ID, "domain-tenant").text == "acme"

    browser.find_element(By.ID, "dns").click()
    types = {
        r.get_attribute("data-type") for r in browser.find_elements(By.CSS_SELECTOR, ".record")
    }
    assert {"MX", "TXT"} <= types, types
    assert "smtp.psn.test" in browser.find_element(By.ID, "dns-records").text

    api_call(svc, "POST", "/users", {"address": "hank@acme.test", "display_name": "Hank",
                                       "password": "Hank-pass-1234"})  # fmt: skip
    browser.get(f"{panel}/groups/new")
    fill(browser, address="team@acme.test", name="Acme team", members="hank@acme.test")
    submit(browser, "save")
    assert "created" in message(browser, "notice")
    assert api_call(svc, "GET", "/groups/team@acme.test")[1]["members"] == ["hank@acme.test"]
    fill(browser, aliases="all@acme.test", members="")
    submit(browser, "save")
    group = api_call(svc, "GET", "/groups/team@acme.test")[1]
    assert (group["members"], group["aliases"]) == ([], ["all@acme.test"])

    # The domain still holds a group and a user: the API's 409 is shown on the confirmation.
    browser.get(f"{panel}/domains/acme.test/delete")
    submit(browser, "confirm-delete")
    assert "team@acme.test" in message(browser, "error") or "hank" in message(browser, "error")
    assert api_call(svc, "GET", "/domains/acme.test")[0] == 200

    browser.get(f"{panel}/groups/team@acme.test/delete")
    submit(browser, "confirm-delete")
    browser.get(f"{panel}/users/hank@acme.test/delete")
    submit(browser, "confirm-delete")
    browser.get(f"{panel}/domains/acme.test/delete")
    submit(browser, "confirm-delete")
    assert "deleted" in message(browser, "notice")
    browser.get(f"{panel}/tenants/acme/delete")
    submit(browser, "confirm-delete")
    assert "deleted" in message(browser, "notice")
    assert api_call(svc, "GET", "/tenants/acme")[0] == 404


def test_a_tenant_admin_sees_its_tenant_only(browser, panel, psnapi_service):
    svc = psnapi_service
    login(browser, panel, svc.tenant_admin, svc.tenant_admin_password)
    assert browser.current_url.endswith("/users")
    assert "default" in browser.find_element(By.ID, "whoami").text
    assert not browser.find_elements(By.ID, "nav-tenants")
    browser.get(f"{panel}/domains")
    assert browser.find_element(By.ID, f"domain-{svc.domain}")
    assert not browser.find_elements(By.ID, "new-domain")

    browser.find_element(By.ID, "logout").click()
    assert "Signed out" in message(browser, "notice")
    assert browser.get_cookie("psn_admin_session") is None


def test_the_configured_language_and_the_users_choice(
    browser, psnapi_image, psnweb_lab, psnapi_service
):
    svc = psnapi_service
    ru = start_panel(psnapi_image, psnweb_lab, svc, secure_cookies=False, language="ru")

    def lang() -> str:
        return browser.find_element(By.TAG_NAME, "html").get_attribute("lang")

    try:
        browser.delete_all_cookies()
        browser.get(f"{ru}/login")
        assert lang() == "ru"
        assert browser.find_element(By.CSS_SELECTOR, "label[for=username]").text == (
            "Имя пользователя или адрес"
        )
        fill(browser, username=svc.admin_name, password=svc.admin_password)
        submit(browser, "login")
        browser.get(f"{ru}/users?q=admin")
        assert browser.find_element(By.ID, "nav-users").text == "Пользователи"
        assert browser.find_element(By.ID, "new-user").text == "Новый пользователь"
        assert "Адрес" in browser.find_element(By.ID, "users").text
        assert browser.find_element(By.ID, f"user-{svc.tenant_admin}")

        # The switch returns to the same page (search included), in English.
        submit(browser, "lang-en")
        assert browser.current_url.endswith("/users?q=admin")
        assert lang() == "en"
        assert browser.find_element(By.ID, "nav-users").text == "Users"
        cookie = browser.get_cookie("psn_admin_language")
        assert cookie["value"] == "en" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        submit(browser, "logout")
        assert message(browser, "notice") == "Signed out."  # the choice outlives the session

        # And back: the sign-in page and the panel's own messages in Russian again.
        submit(browser, "lang-ru")
        assert browser.current_url.endswith("/login") and lang() == "ru"
        assert browser.find_element(By.ID, "login").text == "Вход"
        fill(browser, username=svc.admin_name, password=svc.admin_password)
        submit(browser, "login")
        submit(browser, "logout")
        assert message(browser, "notice") == "Вы вышли из панели."
    finally:
        browser.delete_all_cookies()  # cookies of 127.0.0.1 reach the other panels' ports too
