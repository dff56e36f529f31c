"""The endpoints under /api/v1: authentication, tenants, domains, users and groups.

Each request gets its own connection of the API's account (`get_session`) and its principal
(`get_principal`); the global administrator may do everything, a tenant administrator only reads
its tenant and domains and manages the users and groups of its tenant (others' objects: 403).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasicCredentials, HTTPBearer

from psnweb.api.auth import Authenticator, Principal, Utf8Basic, unauthorized
from psnweb.api.directory import Session
from psnweb.api.dnsrecords import domain_records
from psnweb.api.errors import invalid, not_found
from psnweb.api.models import (
    DnsRecordOut,
    DomainIn,
    DomainOut,
    DomainPatch,
    ErrorOut,
    GroupIn,
    GroupOut,
    GroupPatch,
    MeOut,
    TenantIn,
    TenantOut,
    TenantPatch,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
    parse_address,
    parse_domain,
    parse_tenant,
    parse_text,
)

BASIC = Utf8Basic(auto_error=False, realm="PSN API")
BEARER = HTTPBearer(auto_error=False)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


# Every authenticated endpoint may answer 401 and 403; the others are named per endpoint.
router = APIRouter(responses=_errors(401, 403))
auth_router = APIRouter()


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


def _parsed(parse: Callable[[str], str], value: str, what: str) -> str:
    """A path parameter normalized; 404 when it cannot name anything."""
    try:
        return parse(value)
    except ValueError:
        raise not_found(f"there is no {what} {value!r}") from None


def _query(parse: Callable[[str], str], value: str | None) -> str | None:
    """A query parameter normalized; 422 naming the problem when it is not valid."""
    try:
        return parse(value) if value is not None else None
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _tenant_filter(principal: Principal, tenant: str | None) -> str | None:
    """The tenant a listing is limited to: a tenant administrator's own one."""
    tenant = _query(parse_tenant, tenant)
    if tenant is not None:
        principal.check_tenant(tenant, f"the tenant {tenant}")
        return tenant
    return principal.tenant


def _search_text(q: str | None) -> str | None:
    return _query(parse_text, q) or None


# --- authentication -------------------------------------------------------------------------


@auth_router.post("/auth/token", response_model=TokenOut, responses=_errors(401, 403))
def create_token(
    body: TokenIn, request: Request, session: Session = Depends(get_session)
) -> TokenOut:
    """A bearer token for an administrator's user name and password."""
    auth: Authenticator = request.app.state.auth
    return auth.issue(auth.login(session, body.username, body.password))


@router.get("/me", response_model=MeOut)
def me(principal: Principal = Depends(get_principal)) -> MeOut:
    """Who the credentials belong to."""
    return MeOut(username=principal.username, role=principal.role, tenant=principal.tenant)


# --- tenants --------------------------------------------------------------------------------


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(
    principal: Principal = Depends(get_principal), session: Session = Depends(get_session)
) -> list[TenantOut]:
    """All tenants (a tenant administrator: its own)."""
    tenants = session.tenants()
    return tenants if principal.is_admin else [t for t in tenants if t.name == principal.tenant]


@router.post("/tenants", response_model=TenantOut, status_code=201, responses=_errors(409, 422))
def create_tenant(
    body: TenantIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> TenantOut:
    principal.require_admin("create tenants")
    return session.add_tenant(body.name, body.description)


def _tenant(name: str, principal: Principal, session: Session) -> TenantOut:
    tenant = session.tenant(_parsed(parse_tenant, name, "tenant"))
    if tenant is None:
        raise not_found(f"there is no tenant {name!r}")
    principal.check_tenant(tenant.name, f"the tenant {tenant.name}")
    return tenant


@router.get("/tenants/{name}", response_model=TenantOut, responses=_errors(404))
def get_tenant(
    name: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> TenantOut:
    return _tenant(name, principal, session)


@router.patch("/tenants/{name}", response_model=TenantOut, responses=_errors(404, 422))
def update_tenant(
    name: str,
    body: TenantPatch,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> TenantOut:
    tenant = _tenant(name, principal, session)
    principal.require_admin("change tenants")
    if "description" not in body.dict(exclude_unset=True):
        return tenant
    return session.set_tenant(tenant.name, body.description)


@router.delete(
    "/tenants/{name}", status_code=204, response_class=Response, responses=_errors(404, 409)
)
def delete_tenant(
    name: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> Response:
    tenant = _tenant(name, principal, session)
    principal.require_admin("delete tenants")
    session.delete_tenant(tenant.name, request.app.state.settings.default_tenant)
    return Response(status_code=204)


# --- domains --------------------------------------------------------------------------------


@router.get("/domains", response_model=list[DomainOut])
def list_domains(
    tenant: str | None = Query(None, max_length=63),
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> list[DomainOut]:
    """The mail domains, of one tenant if asked (a tenant administrator: its own)."""
    return session.domains(tenant=_tenant_filter(principal, tenant))


@router.post("/domains", response_model=DomainOut, status_code=201, responses=_errors(409, 422))
def create_domain(
    body: DomainIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> DomainOut:
    principal.require_admin("add domains")
    return session.add_domain(body.name, body.tenant, body.description)


def _domain(name: str, principal: Principal, session: Session) -> DomainOut:
    domain = session.domain(_parsed(parse_domain, name, "domain"))
    if domain is None:
        raise not_found(f"there is no domain {name!r}")
    principal.check_tenant(domain.tenant, f"the domain {domain.name}")
    return domain


@router.get("/domains/{name}", response_model=DomainOut, responses=_errors(404))
def get_domain(
    name: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> DomainOut:
    return _domain(name, principal, session)


@router.patch("/domains/{name}", response_model=DomainOut, responses=_errors(404, 422))
def update_domain(
    name: str,
    body: DomainPatch,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> DomainOut:
    domain = _domain(name, principal, session)
    principal.require_admin("change domains")
    if "description" not in body.dict(exclude_unset=True):
        return domain
    return session.set_domain(domain.name, body.description)


@router.delete(
    "/domains/{name}", status_code=204, response_class=Response, responses=_errors(404, 409)
)
def delete_domain(
    name: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> Response:
    domain = _domain(name, principal, session)
    principal.require_admin("delete domains")
    session.delete_domain(domain.name)
    return Response(status_code=204)


@router.get("/domains/{name}/dns", response_model=list[DnsRecordOut], responses=_errors(404))
def domain_dns(
    name: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> list[DnsRecordOut]:
    """The DNS records the domain needs (MX, SPF, DMARC, DKIM, SRV, autoconfig)."""
    domain = _domain(name, principal, session)
    return domain_records(request.app.state.settings, domain.name)


# --- users ----------------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut])
def list_users(
    tenant: str | None = Query(None, max_length=63),
    domain: str | None = Query(None, max_length=253),
    q: str | None = Query(None, max_length=256, description="part of the address or name"),
    enabled: bool | None = None,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> list[UserOut]:
    """Users, filtered (a tenant administrator: those of its tenant)."""
    return session.users(
        tenant=_tenant_filter(principal, tenant),
        domain=_query(parse_domain, domain),
        q=_search_text(q),
        enabled=enabled,
    )


@router.post("/users", response_model=UserOut, status_code=201, responses=_errors(409, 422))
def create_user(
    body: UserIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> UserOut:
    domain = body.address.rpartition("@")[2]
    principal.check_tenant(session.domain_tenant(domain), f"the domain {domain}")
    return session.add_user(body.dict())


def _user(value: str, principal: Principal, session: Session) -> UserOut:
    user = session.user(_parsed(parse_address, value, "user"))
    if user is None:
        raise not_found(f"there is no user {value!r}")
    principal.check_tenant(user.tenant, f"the user {user.address}")
    return user


@router.get("/users/{address}", response_model=UserOut, responses=_errors(404))
def get_user(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> UserOut:
    return _user(address, principal, session)


@router.patch("/users/{address}", response_model=UserOut, responses=_errors(404, 409, 422))
def update_user(
    address: str,
    body: UserPatch,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> UserOut:
    """Change any field but the address; `password` sets a new one."""
    user = _user(address, principal, session)
    return session.set_user(user, body.dict(exclude_unset=True))


@router.delete("/users/{address}", status_code=204, response_class=Response, responses=_errors(404))
def delete_user(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> Response:
    """Delete the user and remove it from every group."""
    user = _user(address, principal, session)
    session.delete_user(user.address)
    return Response(status_code=204)


# --- groups ---------------------------------------------------------------------------------


@router.get("/groups", response_model=list[GroupOut])
def list_groups(
    tenant: str | None = Query(None, max_length=63),
    domain: str | None = Query(None, max_length=253),
    q: str | None = Query(None, max_length=256, description="part of the address or name"),
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> list[GroupOut]:
    """Groups (distribution lists), filtered (a tenant administrator: those of its tenant)."""
    return session.groups(
        tenant=_tenant_filter(principal, tenant),
        domain=_query(parse_domain, domain),
        q=_search_text(q),
    )


@router.post("/groups", response_model=GroupOut, status_code=201, responses=_errors(409, 422))
def create_group(
    body: GroupIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> GroupOut:
    domain = body.address.rpartition("@")[2]
    principal.check_tenant(session.domain_tenant(domain), f"the domain {domain}")
    return session.add_group(body.dict())


def _group(value: str, principal: Principal, session: Session) -> GroupOut:
    group = session.group(_parsed(parse_address, value, "group"))
    if group is None:
        raise not_found(f"there is no group {value!r}")
    principal.check_tenant(group.tenant, f"the group {group.address}")
    return group


@router.get("/groups/{address}", response_model=GroupOut, responses=_errors(404))
def get_group(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> GroupOut:
    return _group(address, principal, session)


@router.patch("/groups/{address}", response_model=GroupOut, responses=_errors(404, 409, 422))
def update_group(
    address: str,
    body: GroupPatch,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> GroupOut:
    group = _group(address, principal, session)
    return session.set_group(group, body.dict(exclude_unset=True))


@router.delete(
    "/groups/{address}", status_code=204, response_class=Response, responses=_errors(404)
)
def delete_group(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> Response:
    group = _group(address, principal, session)
    session.delete_group(group.address)
    return Response(status_code=204)
