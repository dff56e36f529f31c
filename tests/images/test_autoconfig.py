"""psn/psnapi's autoconfig service in its container: the documents mail clients fetch, parsed
the way the clients do (XML namespaces, plist), naming the configured hosts, ports and user."""

from __future__ import annotations

import plistlib
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest

CONFIG = {
    "domain": "psn.test",
    # Markup characters: the documents must escape them, not break.
    "display_name": "PSN <Mail> & Co",
    "hosts": {"imap": "imap.psn.test", "smtp": "smtp.psn.test", "mail": "mail.psn.test"},
    "ports": {"imap": 993, "smtp": 465, "submission": 587},
}
AD = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one request (redirects not followed, errors returned)."""
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with opener.open(req, timeout=15) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@pytest.fixture(scope="module")
def autoconfig(psnapi_image, psnweb_lab) -> str:
    cid = psnweb_lab.run(psnapi_image, "autoconfig", "autoconfig", config=CONFIG)
    psnweb_lab.wait_healthy(cid)
    return psnweb_lab.url(cid)


def autodiscover_request(address: str, schema: str = OUTLOOK) -> bytes:
    root = ET.Element("Autodiscover", xmlns=REQUEST)
    req = ET.SubElement(root, "Request")
    ET.SubElement(req, "EMailAddress").text = address
    ET.SubElement(req, "AcceptableResponseSchema").text = schema
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def test_health(autoconfig):
    status, _, body = fetch(f"{autoconfig}/health")
    assert status == 200, body


@pytest.mark.parametrize(
    "path", ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"]
)
def test_thunderbird_client_config(autoconfig, path):
    status, headers, body = fetch(f"{autoconfig}{path}?emailaddress=Alice.B@Example.ORG")
    assert status == 200, body
    assert "xml" in headers["content-type"]
    root = ET.fromstring(body)
    assert root.tag == "clientConfig"
    assert root.get("version") == "1.1"
    (provider,) = root.findall("emailProvider")
    assert {d.text for d in provider.findall("domain")} == {"psn.test", "example.org"}
    assert provider.findtext("displayName") == "PSN <Mail> & Co"
    incoming = [
        (s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
        for s in provider.findall("incomingServer")
    ]
    assert incoming == [
        ("imap", "imap.psn.test", "993", "SSL"),
        ("imap", "imap.psn.test", "143", "STARTTLS"),
    ]
    outgoing = [
        (s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"))
        for s in provider.findall("outgoingServer")
    ]
    assert outgoing == [
        ("smtp", "smtp.psn.test", "465", "SSL"),
        ("smtp", "smtp.psn.test", "587", "STARTTLS"),
    ]
    for server in [*provider.findall("incomingServer"), *provider.findall("outgoingServer")]:
        assert server.findtext("username") == "%EMAILADDRESS%"
        assert server.findtext("authentication") == "password-cleartext"
    for tag, kind in (("addressBook", "carddav"), ("calendar", "caldav")):
        dav = root.find(tag)
        assert dav is not None, f"no {tag} in the client config"
        assert dav.get("type") == kind
        assert dav.findtext("serverURL") == "https://mail.psn.test/SOGo/dav/"


@pytest.mark.parametrize("address", ["no-at-sign", "a@b@psn.test", "x<y>@psn.test", ""])
def test_thunderbird_rejects_bad_address(autoconfig, address):
    query = urllib.parse.urlencode({"emailaddress": address})
    status, _, body = fetch(f"{autoconfig}/mail/config-v1.1.xml?{query}")
    assert status == 400, body


@pytest.mark.parametrize(
    "path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]
)
def test_outlook_autodiscover(autoconfig, path):
    status, headers, body = fetch(f"{autoconfig}{path}", autodiscover_request("Bob@PSN.test"))
    assert status == 200, body
    assert "xml" in headers["content-type"]
    root = ET.fromstring(body)
    assert root.tag == f"{{{AD}}}Autodiscover"
    account = root.find(f"{{{OUTLOOK}}}Response/{{{OUTLOOK}}}Account")
    assert account is not None, body
    assert account.findtext(f"{{{OUTLOOK}}}AccountType") == "email"
    assert account.findtext(f"{{{OUTLOOK}}}Action") == "settings"
    protocols = {
        p.findtext(f"{{{OUTLOOK}}}Type"): {child.tag.split("}")[1]: child.text for child in p}
        for p in account.findall(f"{{{OUTLOOK}}}Protocol")
    }
    assert set(protocols) == {"IMAP", "SMTP"}
    for kind, host, port in (("IMAP", "imap.psn.test", "993"), ("SMTP", "smtp.psn.test", "465")):
        proto = protocols[kind]
        assert (proto["Server"], proto["Port"], proto["SSL"]) == (host, port, "on")
        assert proto["LoginName"] == "bob@psn.test"


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<Autodiscover/>",
        autodiscover_request("bad address"),
        autodiscover_request(
            "bob@psn.test",
            "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006",
        ),
        # An entity expansion bomb in miniature: DTDs are refused outright.
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx">]><a>&x;&x;</a>',
    ],
)
def test_outlook_autodiscover_rejects_bad_requests(autoconfig, body):
    status, _, answer = fetch(f"{autoconfig}/autodiscover/autodiscover.xml", body)
    assert status == 400, answer
    error = ET.fromstring(answer).find(f"{{{AD}}}Response/{{{AD}}}Error")
    assert error is not None, answer
    assert error.findtext(f"{{{AD}}}ErrorCode") == "600"


def test_apple_mobileconfig(autoconfig):
    url = f"{autoconfig}/apple/mobileconfig?email=carol%2Btag@psn.test"
    status, headers, body = fetch(url)
    assert status == 200, body
    assert headers["content-type"] == "application/x-apple-aspen-config"
    assert "attachment" in headers["content-disposition"]
    profile = plistlib.loads(body)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
    assert set(payloads) == {
        "com.apple.mail.managed",
        "com.apple.caldav.account",
        "com.apple.carddav.account",
    }
    mail = payloads["com.apple.mail.managed"]
    assert mail["EmailAddress"] == "carol+tag@psn.test"
    assert mail["EmailAccountType"] == "EmailTypeIMAP"
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "imap.psn.test",
        993,
    )
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == (
        "smtp.psn.test",
        465,
    )
    assert mail["IncomingMailServerUseSSL"] is mail["OutgoingMailServerUseSSL"] is True
    assert mail["IncomingMailServerUsername"] == mail["OutgoingMailServerUsername"]
    assert mail["IncomingMailServerUsername"] == "carol+tag@psn.test"
    for kind in ("CalDAV", "CardDAV"):
        dav = payloads[f"com.apple.{kind.lower()}.account"]
        assert dav[f"{kind}HostName"] == "mail.psn.test"
        assert dav[f"{kind}UseSSL"] is True
        assert dav[f"{kind}Username"] == "carol+tag@psn.test"
        assert dav[f"{kind}PrincipalURL"].startswith("/SOGo/dav/carol")

    # Every UUID is valid and distinct; the same address gets the same ones again (a profile
    # downloaded twice replaces itself), another address others.
    uuids = [profile["PayloadUUID"], *(p["PayloadUUID"] for p in profile["PayloadContent"])]
    assert len({str(uuid.UUID(u)) for u in uuids}) == 4
    again = plistlib.loads(fetch(url)[2])
    assert again["PayloadUUID"] == profile["PayloadUUID"]
    other = plistlib.loads(fetch(f"{autoconfig}/apple/mobileconfig?email=dave@psn.test")[2])
    assert other["PayloadUUID"] != profile["PayloadUUID"]


@pytest.mark.parametrize("query", ["", "?email=", "?email=nobody", "?email=a%20b@psn.test"])
def test_apple_mobileconfig_rejects_bad_address(autoconfig, query):
    status, _, body = fetch(f"{autoconfig}/apple/mobileconfig{query}")
    assert status == 400, body


@pytest.mark.parametrize("kind", ["caldav", "carddav"])
def test_dav_well_known_redirect(autoconfig, kind):
    status, headers, _ = fetch(f"{autoconfig}/.well-known/{kind}")
    assert status == 301
    assert headers["location"] == "https://mail.psn.test/SOGo/dav/"
