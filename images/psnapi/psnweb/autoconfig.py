"""Mail client autoconfiguration (service psn-backend_autoconfig).

Thunderbird's clientConfig v1.1, Outlook's POX autodiscover, an Apple configuration profile and
the CalDAV/CardDAV well-known redirects, all pointing at the installation's hosts. Every
document is built with xml.etree or plistlib so that nothing from a request reaches the output
unescaped; addresses are validated first.
"""

from __future__ import annotations

import plistlib
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from psnweb.config import ConfigError

AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
OUTLOOK_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
DEFAULT_PORTS = {"imap": 993, "imap_starttls": 143, "smtp": 465, "submission": 587, "https": 443}
# Outlook sends a few hundred bytes; anything much larger is not a client asking for settings.
MAX_REQUEST_BYTES = 16 * 1024
# RFC 5321 sizes, dot-atom local part, LDH domain labels.
ADDRESS_RE = re.compile(
    r"(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
# Namespace of the profile's PayloadUUIDs: the same address always gets the same UUIDs, so a
# downloaded-again profile replaces the installed one instead of adding a second account.
PROFILE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "autoconfig.psn")
DAV_PATH = "/SOGo/dav/"


class BadRequest(Exception):
    """The client's request can't be answered; the message says why."""


def normalize_address(value: str | None) -> str:
    """The lower-cased mail address `value`, or BadRequest."""
    address = (value or "").strip().lower()
    if not ADDRESS_RE.fullmatch(address):
        raise BadRequest(f"not a mail address: {value!r} (expected local@domain)")
    return address


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    """The service's settings from its config.json, with defaults; ConfigError when incomplete."""
    hosts = config.get("hosts") or {}
    missing = [f"hosts.{k}" for k in ("imap", "smtp", "mail") if not hosts.get(k)]
    if not config.get("domain"):
        missing.insert(0, "domain")
    if missing:
        raise ConfigError(f"autoconfig: config.json lacks {', '.join(missing)}")
    ports = {**DEFAULT_PORTS, **(config.get("ports") or {})}
    return {
        "domain": str(config["domain"]).lower(),
        "display_name": config.get("display_name") or str(config["domain"]),
        "hosts": {k: str(hosts[k]) for k in ("imap", "smtp", "mail")},
        "ports": {k: int(v) for k, v in ports.items()},
    }


def _sub(parent: ET.Element, tag: str, text: object = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def thunderbird_config(s: dict[str, Any], address: str | None) -> bytes:
    """clientConfig v1.1: IMAP over TLS and STARTTLS, SMTP over TLS and STARTTLS, CalDAV and
    CardDAV on the mail host; the user name is the address (Thunderbird fills it in)."""
    hosts, ports = s["hosts"], s["ports"]
    domains = [s["domain"]]
    if address and address.split("@", 1)[1] not in domains:
        domains.append(address.split("@", 1)[1])
    root = ET.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domains[-1])
    for domain in domains:
        _sub(provider, "domain", domain)
    _sub(provider, "displayName", s["display_name"])
    _sub(provider, "displayShortName", s["display_name"])
    servers = [
        ("incomingServer", "imap", hosts["imap"], ports["imap"], "SSL"),
        ("incomingServer", "imap", hosts["imap"], ports["imap_starttls"], "STARTTLS"),
        ("outgoingServer", "smtp", hosts["smtp"], ports["smtp"], "SSL"),
        ("outgoingServer", "smtp", hosts["smtp"], ports["submission"], "STARTTLS"),
    ]
    for tag, kind, host, port, socket_type in servers:
        server = _sub(provider, tag, type=kind)
        _sub(server, "hostname", host)
        _sub(server, "port", port)
        _sub(server, "socketType", socket_type)
        _sub(server, "authentication", "password-cleartext")
        _sub(server, "username", "%EMAILADDRESS%")
    dav_url = f"https://{hosts['mail']}{DAV_PATH}"
    for tag, kind in (("addressBook", "carddav"), ("calendar", "caldav")):
        dav = _sub(root, tag, type=kind)
        _sub(dav, "username", "%EMAILADDRESS%")
        _sub(dav, "authentication", "http-basic")
        _sub(dav, "serverURL", dav_url)
    return _xml(root)


def autodiscover_address(body: bytes) -> str:
    """The EMailAddress of an Outlook autodiscover request, or BadRequest."""
    # No DTDs: nothing a client needs, and no entity expansion to worry about.
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise BadRequest("DTDs are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadRequest(f"the request is not XML: {exc}") from exc
    schema = root.findtext(
        f"{{{OUTLOOK_REQUEST_NS}}}Request/{{{OUTLOOK_REQUEST_NS}}}AcceptableResponseSchema"
    )
    if schema is not None and schema.strip() != OUTLOOK_NS:
        raise BadRequest(f"only the response schema {OUTLOOK_NS} is served")
    address = root.findtext(f"{{{OUTLOOK_REQUEST_NS}}}Request/{{{OUTLOOK_REQUEST_NS}}}EMailAddress")
    if address is None:
        raise BadRequest("the request names no EMailAddress")
    return normalize_address(address)


def autodiscover_response(s: dict[str, Any], address: str) -> bytes:
    """Outlook's "outlook" response: IMAP and SMTP over TLS, logging in with the address."""
    # Default namespaces declared as plain attributes: the form Outlook's own examples use
    # (ElementTree would otherwise invent ns0:/ns1: prefixes).
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_NS)
    response = _sub(root, "Response", xmlns=OUTLOOK_NS)
    _sub(_sub(response, "User"), "DisplayName", address)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    for kind, host, port in (
        ("IMAP", s["hosts"]["imap"], s["ports"]["imap"]),
        ("SMTP", s["hosts"]["smtp"], s["ports"]["smtp"]),
    ):
        proto = _sub(account, "Protocol")
        for tag, value in (
            ("Type", kind),
            ("Server", host),
            ("Port", port),
            ("DomainRequired", "off"),
            ("LoginName", address),
            ("SPA", "off"),
            ("SSL", "on"),
            ("AuthRequired", "on"),
        ):
            _sub(proto, tag, value)
        if kind == "SMTP":
            # The SMTP login is the IMAP one.
            _sub(proto, "UsePOPAuth", "on")
    return _xml(root)


def autodiscover_error(message: str) -> bytes:
    """An autodiscover error response (code 600, invalid request)."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_NS)
    error = _sub(_sub(root, "Response"), "Error")
    _sub(error, "ErrorCode", 600)
    _sub(error, "Message", message)
    return _xml(root)


def mobileconfig(s: dict[str, Any], address: str) -> bytes:
    """An unsigned Apple configuration profile: one mail account (IMAP/SMTP over TLS) plus
    CalDAV and CardDAV accounts on SOGo, all logging in with the address."""
    hosts, ports = s["hosts"], s["ports"]
    domain = address.split("@", 1)[1]
    ident = ".".join(reversed(s["domain"].split("."))) + ".psn"
    principal = DAV_PATH + quote(address, safe="@") + "/"

    def payload(kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "PayloadType": kind,
            "PayloadVersion": 1,
            "PayloadIdentifier": f"{ident}.{name}.{address}",
            "PayloadUUID": str(uuid.uuid5(PROFILE_NAMESPACE, f"{name}:{address}")).upper(),
            "PayloadDisplayName": f"{s['display_name']} {name} ({address})",
            **body,
        }

    mail = payload(
        "com.apple.mail.managed",
        "mail",
        {
            "EmailAccountDescription": f"{s['display_name']} ({address})",
            "EmailAccountType": "EmailTypeIMAP",
            "EmailAddress": address,
            "IncomingMailServerAuthentication": "EmailAuthPassword",
            "IncomingMailServerHostName": hosts["imap"],
            "IncomingMailServerPortNumber": ports["imap"],
            "IncomingMailServerUseSSL": True,
            "IncomingMailServerUsername": address,
            "OutgoingMailServerAuthentication": "EmailAuthPassword",
            "OutgoingMailServerHostName": hosts["smtp"],
            "OutgoingMailServerPortNumber": ports["smtp"],
            "OutgoingMailServerUseSSL": True,
            "OutgoingMailServerUsername": address,
            "OutgoingPasswordSameAsIncomingPassword": True,
        },
    )
    dav = {
        kind: payload(
            f"com.apple.{kind.lower()}.account",
            kind.lower(),
            {
                f"{kind}AccountDescription": f"{s['display_name']} ({address})",
                f"{kind}HostName": hosts["mail"],
                f"{kind}Port": ports["https"],
                f"{kind}PrincipalURL": principal,
                f"{kind}UseSSL": True,
                f"{kind}Username": address,
            },
        )
        for kind in ("CalDAV", "CardDAV")
    }
    profile = payload(
        "Configuration",
        "profile",
        {
            "PayloadContent": [mail, dav["CalDAV"], dav["CardDAV"]],
            "PayloadDisplayName": f"{s['display_name']}: {address}",
            "PayloadDescription": f"Mail, calendars and contacts of {address} ({domain})",
            "PayloadOrganization": s["display_name"],
            "PayloadRemovalDisallowed": False,
        },
    )
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


async def _limited_body(request: Request) -> bytes:
    """The request body, or BadRequest when larger than MAX_REQUEST_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise BadRequest(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    return body


def create_app(config: dict[str, Any]) -> FastAPI:
    """The autoconfig service over the settings in `config` (see _settings)."""
    s = _settings(config)
    app = FastAPI(title="PSN autoconfig", docs_url=None, redoc_url=None, openapi_url=None)
    xml_type = "application/xml; charset=utf-8"

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        if request.url.path.lower().startswith("/autodiscover/"):
            return Response(autodiscover_error(str(exc)), status_code=400, media_type=xml_type)
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/mail/config-v1.1.xml")
    @app.get("/.well-known/autoconfig/mail/config-v1.1.xml")
    async def thunderbird(request: Request) -> Response:
        raw = request.query_params.get("emailaddress")
        address = normalize_address(raw) if raw is not None else None
        return Response(thunderbird_config(s, address), media_type=xml_type)

    @app.post("/autodiscover/autodiscover.xml")
    @app.post("/Autodiscover/Autodiscover.xml")
    async def autodiscover(request: Request) -> Response:
        address = autodiscover_address(await _limited_body(request))
        return Response(autodiscover_response(s, address), media_type=xml_type)

    @app.get("/apple/mobileconfig")
    async def apple(request: Request) -> Response:
        address = normalize_address(request.query_params.get("email"))
        filename = f"{s['domain']}.mobileconfig"
        return Response(
            mobileconfig(s, address),
            media_type="application/x-apple-aspen-config",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/.well-known/caldav")
    @app.get("/.well-known/carddav")
    async def dav_redirect() -> Response:
        return RedirectResponse(f"https://{s['hosts']['mail']}{DAV_PATH}", status_code=301)

    return app
