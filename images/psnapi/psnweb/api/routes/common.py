"""What every endpoint shares: the session and the principal of a request, the checks of path and
query parameters, and the one way a resource is looked up and its tenant checked.

Each request gets its own connection of the API's account (`get_session`) and its principal
(`get_principal`); the global administrator may do everything, a tenant administrator only reads
its tenant and domains and manages the users and groups of its tenant (others' objects: 403).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials, HTTPBearer

from psnweb.api.auth import Authenticator, Principal, Utf8Basic, unauthorized
from psnweb.api.directory import Session
from psnweb.api.errors import invalid, not_found
from psnweb.api.models import ErrorOut, parse_tenant, parse_text

BASIC = Utf8Basic(auto_error=False, realm="PSN API")
BEARER = HTTPBearer(auto_error=False)
Found = TypeVar("Found")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of an endpoint: these status codes answer an ErrorOut."""
    return {code: {"model": ErrorOut} for code in codes}


def resource_router() -> APIRouter:
    """The router of one resource: every endpoint is authenticated, so may answer 401 and 403."""
    return APIRouter(responses=errors(401, 403))


def get_session(request: Request) -> Iterator[Session]:
    """A connection of the API's account for this request."""
    with request.app.state.directory.session() as session:
        yield session


def get_principal(
    request: Request,
    basic: HTTPBasicCredentials | None = Depends(BASIC),
    bearer: HTTPAuthorizationCredentials | None = Depends(BEARER),
    session: Session = Depends(get_session),
) -> Principal:
    """The authenticated administrator of this request; 401/403 otherwise."""
    auth: Authenticator = request.app.state.auth
    if bearer is not None:
        return auth.from_token(session, bearer.credentials)
    if basic is not None:
        return auth.login(session, basic.username, basic.password)
    raise unauthorized("log in: HTTP Basic, or a bearer token from POST /api/v1/auth/token")


def lookup(
    value: str,
    what: str,
    parse: Callable[[str], str],
    find: Callable[[str], Found | None],
    tenant_of: Callable[[Found], str],
    principal: Principal,
) -> Found:
    """The resource a path parameter names: 404 when there is none (or the value cannot name
    one), 403 when it belongs to another tenant than a tenant administrator's."""
    try:
        key = parse(value)
    except ValueError:
        raise not_found(f"there is no {what} {value!r}") from None
    found = find(key)
    if found is None:
        raise not_found(f"there is no {what} {value!r}")
    principal.check_tenant(tenant_of(found), f"the {what} {key}")
    return found


def query(parse: Callable[[str], str], value: str | None) -> str | None:
    """A query parameter normalized; 422 naming the problem when it is not valid."""
    try:
        return parse(value) if value is not None else None
    except ValueError as exc:
        raise invalid(str(exc)) from None


def tenant_filter(principal: Principal, tenant: str | None) -> str | None:
    """The tenant a listing is limited to: a tenant administrator's own one."""
    tenant = query(parse_tenant, tenant)
    if tenant is not None:
        principal.check_tenant(tenant, f"the tenant {tenant}")
        return tenant
    return principal.tenant


def search_text(q: str | None) -> str | None:
    """The `q` of a listing, normalized ('' means no search)."""
    return query(parse_text, q) or None


def check_domain_tenant(principal: Principal, session: Session, address: str) -> None:
    """A new address is created in its domain's tenant: the principal must manage that tenant."""
    domain = address.rpartition("@")[2]
    principal.check_tenant(session.domain_tenant(domain), f"the domain {domain}")
