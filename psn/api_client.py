"""A client of the PSN API (psnapi.<domain>/api/v1) for `deploy_psn users|groups|domains|tenants`:
HTTPS with the installation's CA, Basic authentication, JSON; and the CSV bulk import."""

from __future__ import annotations

import base64
import csv
import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from psn.errors import ApiError, InputError, Problem
from psn.inventory import as_text
from psn.names import default_domain, service_hostname
from psn.pinned import API_ADMIN as ADMIN_USER
from psn.pinned import PinnedHTTPS
from psn.validate import load_inventory

TIMEOUT = 30
PREFIX = "/api/v1"

# Columns of a users CSV (header row required; only `address` is mandatory for every row,
# `display_name` and `password` for new users). Lists are separated by spaces.
CSV_COLUMNS = ("address", "display_name", "password", "quota", "aliases", "enabled", "tenant_admin")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n", ""}


@dataclass
class ApiClient:
    """Requests to one API as one principal. `address` connects to that IP instead of the host
    name's (TLS still checks the host name), as curl's --resolve does."""

    url: str
    user: str
    password: str
    context: ssl.SSLContext
    address: str = ""

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """The decoded JSON answer (None for 204); ApiError with the API's detail otherwise."""
        parts = urlsplit(self.url)
        host, port = parts.hostname or "", parts.port or 443
        params = {k: v for k, v in query.items() if v is not None}
        target = f"{parts.path.rstrip('/')}{PREFIX}{path}"
        if params:
            target += f"?{urlencode(params)}"
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = PinnedHTTPS(host, self.address, self.context, port, TIMEOUT)
        try:
            conn.request(method, target, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(f"{method} {self.url}{target}: no answer ({exc})") from exc
        finally:
            conn.close()
        if response.status >= 400:
            raise ApiError(f"{method} {path}: {response.status} {_detail(raw)}", response.status)
        return json.loads(raw) if raw else None

    def item(self, kind: str, name: str) -> str:
        """Path of one object, e.g. /users/a%40example.com."""
        return f"/{kind}/{quote(name, safe='')}"


def _detail(raw: bytes) -> str:
    """The API's error text: {"detail": "..."} or FastAPI's list of field errors."""
    try:
        detail = json.loads(raw)["detail"]
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")[:300]
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg', '')}" for e in detail
        )
    return str(detail)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Trust `ca_file` (the installation's ca.crt) or, without one, the system's CAs."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"CA file {ca_file}: {exc}") from exc


def _flag(value: str, path: Path, line: int, column: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    problem = Problem(
        f"column {column} must be true or false",
        "write true/false (or yes/no, 1/0)",
        file=str(path),
        line=line,
        value=value,
    )
    raise InputError(f"{path}:{line}: bad {column}", [problem])


def read_users_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, API body) per row of a users CSV; InputError naming file, line and column
    for a bad file, before anything is sent."""
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    reader = csv.DictReader(text.splitlines())
    unknown = sorted(set(reader.fieldnames or []) - set(CSV_COLUMNS))
    if "address" not in (reader.fieldnames or []) or unknown:
        raise InputError(
            f"{path}: bad header {reader.fieldnames}",
            [
                Problem(
                    "the first line names the columns: address is required"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
                    f"use the columns {', '.join(CSV_COLUMNS)}",
                    file=str(path),
                    line=1,
                )
            ],
        )
    rows = []
    for row in reader:
        line = reader.line_num
        body: dict[str, Any] = {}
        for column, value in row.items():
            value = (value or "").strip()
            if column in ("enabled", "tenant_admin"):
                if value:
                    body[column] = _flag(value, path, line, column)
            elif column == "aliases":
                body[column] = value.split()
            elif value:
                body[column] = value
        if not body.get("address"):
            problem = Problem(
                "the row has no address", "fill the address column", file=str(path), line=line
            )
            raise InputError(f"{path}:{line}: no address", [problem])
        rows.append((line, body))
    return rows


def client_for(
    *,
    inventory: Path | None,
    certs_root: Path,
    url: str | None,
    user: str,
    password: str | None,
    address: str,
    ca_file: Path | None,
) -> ApiClient:
    """The API's address, the CA and the global administrator's password from the inventory
    where the options leave them out (`password` None: none given)."""
    inv = load_inventory(inventory) if inventory else None
    if not url:
        if inv is None:
            raise InputError(
                "which API?",
                [Problem("neither --inventory nor --api-url is given", "pass one of them")],
            )
        url = f"https://{service_hostname('psnapi', inv.external_domain, inv.domain_module)}"
    if ca_file is None and inv is not None:
        candidate = certs_root / default_domain(inv.external_domain) / "ca.crt"
        ca_file = candidate if candidate.is_file() else None
    if password is None and inv is not None and user == ADMIN_USER:
        password = as_text(inv.var("passwords", "psnapi_admin_user")) or None
    if not password:
        raise InputError(
            f"no password for {user}",
            [
                Problem(
                    f"the API needs the password of {user}",
                    "set PSN_API_PASSWORD, or pass --inventory for the global administrator "
                    "(passwords.psnapi_admin_user)",
                )
            ],
        )
    return ApiClient(url.rstrip("/"), user, password, tls_context(ca_file), address)
