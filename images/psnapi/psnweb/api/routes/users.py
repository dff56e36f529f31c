"""The users (mailboxes) of the tenants."""

from __future__ import annotations

from fastapi import Depends, Query, Response

from psnweb.api.auth import Principal
from psnweb.api.directory import Session
from psnweb.api.models import UserIn, UserOut, UserPatch, parse_address, parse_domain
from psnweb.api.routes.common import (
    check_domain_tenant,
    errors,
    get_principal,
    get_session,
    lookup,
    query,
    resource_router,
    search_text,
    tenant_filter,
)

router = resource_router()


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
        tenant=tenant_filter(principal, tenant),
        domain=query(parse_domain, domain),
        q=search_text(q),
        enabled=enabled,
    )


@router.post("/users", response_model=UserOut, status_code=201, responses=errors(409, 422))
def create_user(
    body: UserIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> UserOut:
    check_domain_tenant(principal, session, body.address)
    return session.add_user(body.dict())


def _user(value: str, principal: Principal, session: Session) -> UserOut:
    return lookup(value, "user", parse_address, session.user, lambda u: u.tenant, principal)


@router.get("/users/{address}", response_model=UserOut, responses=errors(404))
def get_user(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> UserOut:
    return _user(address, principal, session)


@router.patch("/users/{address}", response_model=UserOut, responses=errors(404, 409, 422))
def update_user(
    address: str,
    body: UserPatch,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> UserOut:
    """Change any field but the address; `password` sets a new one."""
    user = _user(address, principal, session)
    return session.set_user(user, body.dict(exclude_unset=True))


@router.delete("/users/{address}", status_code=204, response_class=Response, responses=errors(404))
def delete_user(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> Response:
    """Delete the user and remove it from every group."""
    user = _user(address, principal, session)
    session.delete_user(user.address)
    return Response(status_code=204)
