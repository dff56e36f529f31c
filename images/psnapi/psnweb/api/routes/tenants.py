"""The tenants: all of them for the global administrator, its own for a tenant administrator."""

from __future__ import annotations

from fastapi import Depends, Request, Response

from psnweb.api.auth import Principal
from psnweb.api.directory import Session
from psnweb.api.models import TenantIn, TenantOut, TenantPatch, parse_tenant
from psnweb.api.routes.common import (
    errors,
    get_principal,
    get_session,
    lookup,
    resource_router,
)

router = resource_router()


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(
    principal: Principal = Depends(get_principal), session: Session = Depends(get_session)
) -> list[TenantOut]:
    """All tenants (a tenant administrator: its own)."""
    tenants = session.tenants()
    return tenants if principal.is_admin else [t for t in tenants if t.name == principal.tenant]


@router.post("/tenants", response_model=TenantOut, status_code=201, responses=errors(409, 422))
def create_tenant(
    body: TenantIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> TenantOut:
    principal.require_admin("create tenants")
    return session.add_tenant(body.name, body.description)


def _tenant(name: str, principal: Principal, session: Session) -> TenantOut:
    return lookup(name, "tenant", parse_tenant, session.tenant, lambda t: t.name, principal)


@router.get("/tenants/{name}", response_model=TenantOut, responses=errors(404))
def get_tenant(
    name: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> TenantOut:
    return _tenant(name, principal, session)


@router.patch("/tenants/{name}", response_model=TenantOut, responses=errors(404, 422))
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
    "/tenants/{name}", status_code=204, response_class=Response, responses=errors(404, 409)
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
