"""The groups (distribution lists) of the tenants."""

from __future__ import annotations

from fastapi import Depends, Query, Response

from psnweb.api.auth import Principal
from psnweb.api.directory import Session
from psnweb.api.models import GroupIn, GroupOut, GroupPatch, parse_address, parse_domain
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
        tenant=tenant_filter(principal, tenant),
        domain=query(parse_domain, domain),
        q=search_text(q),
    )


@router.post("/groups", response_model=GroupOut, status_code=201, responses=errors(409, 422))
def create_group(
    body: GroupIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> GroupOut:
    check_domain_tenant(principal, session, body.address)
    return session.add_group(body.dict())


def _group(value: str, principal: Principal, session: Session) -> GroupOut:
    return lookup(value, "group", parse_address, session.group, lambda g: g.tenant, principal)


@router.get("/groups/{address}", response_model=GroupOut, responses=errors(404))
def get_group(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> GroupOut:
    return _group(address, principal, session)


@router.patch("/groups/{address}", response_model=GroupOut, responses=errors(404, 409, 422))
def update_group(
    address: str,
    body: GroupPatch,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> GroupOut:
    group = _group(address, principal, session)
    return session.set_group(group, body.dict(exclude_unset=True))


@router.delete("/groups/{address}", status_code=204, response_class=Response, responses=errors(404))
def delete_group(
    address: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> Response:
    group = _group(address, principal, session)
    session.delete_group(group.address)
    return Response(status_code=204)
