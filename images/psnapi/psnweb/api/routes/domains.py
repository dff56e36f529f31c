"""The mail domains of the tenants, and the DNS records each needs."""

from __future__ import annotations

from fastapi import Depends, Query, Request, Response

from psnweb.api.auth import Principal
from psnweb.api.directory import Session
from psnweb.api.dnsrecords import domain_records
from psnweb.api.models import DnsRecordOut, DomainIn, DomainOut, DomainPatch, parse_domain
from psnweb.api.routes.common import (
    errors,
    get_principal,
    get_session,
    lookup,
    resource_router,
    tenant_filter,
)

router = resource_router()


@router.get("/domains", response_model=list[DomainOut])
def list_domains(
    tenant: str | None = Query(None, max_length=63),
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> list[DomainOut]:
    """The mail domains, of one tenant if asked (a tenant administrator: its own)."""
    return session.domains(tenant=tenant_filter(principal, tenant))


@router.post("/domains", response_model=DomainOut, status_code=201, responses=errors(409, 422))
def create_domain(
    body: DomainIn,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> DomainOut:
    principal.require_admin("add domains")
    return session.add_domain(body.name, body.tenant, body.description)


def _domain(name: str, principal: Principal, session: Session) -> DomainOut:
    return lookup(name, "domain", parse_domain, session.domain, lambda d: d.tenant, principal)


@router.get("/domains/{name}", response_model=DomainOut, responses=errors(404))
def get_domain(
    name: str,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> DomainOut:
    return _domain(name, principal, session)


@router.patch("/domains/{name}", response_model=DomainOut, responses=errors(404, 422))
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
    "/domains/{name}", status_code=204, response_class=Response, responses=errors(404, 409)
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


@router.get("/domains/{name}/dns", response_model=list[DnsRecordOut], responses=errors(404))
def domain_dns(
    name: str,
    request: Request,
    principal: Principal = Depends(get_principal),
    session: Session = Depends(get_session),
) -> list[DnsRecordOut]:
    """The DNS records the domain needs (MX, SPF, DMARC, DKIM, SRV, autoconfig)."""
    domain = _domain(name, principal, session)
    return domain_records(request.app.state.settings, domain.name)
