"""Pages of the mail domains: list, create, edit, their DNS records, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from psnweb.admin.client import ApiError, path
from psnweb.admin.i18n import N_
from psnweb.admin.panel import (
    Page,
    add_delete_pages,
    error_text,
    redirect,
    render,
    signed_in,
    tr,
    url,
)

router = APIRouter()
add_delete_pages(router, "domains", "domain", N_("Domain {name} deleted."))


@router.get("/domains")
async def domains(request: Request, page: Page = signed_in) -> Response:
    tenant = request.query_params.get("tenant", "")
    found = await page.api.get(path("domains"), tenant=tenant)
    tenants = await page.api.get(path("tenants")) if page.is_admin else []
    return render(request, "domains.html", domains=found, tenants=tenants, tenant=tenant)


async def domain_new_form(
    request: Request,
    page: Page,
    values: dict[str, str],
    status: int = 200,
    error: str | None = None,
) -> Response:
    tenants = await page.api.get(path("tenants"))
    return render(request, "domain_new.html", status, values=values, tenants=tenants, error=error)


@router.get("/domains/new")
async def domain_new(request: Request, page: Page = signed_in) -> Response:
    return await domain_new_form(request, page, {"tenant": request.query_params.get("tenant")})


@router.post("/domains/new")
async def domain_create(request: Request, page: Page = signed_in) -> Response:
    form = await page.form()
    values = {k: form.get(k, "").strip() for k in ("name", "tenant", "description")}
    values["name"] = values["name"].lower()
    try:
        domain = await page.api.post(path("domains"), values)
    except ApiError as exc:
        return await domain_new_form(request, page, values, exc.status, error_text(request, exc))
    return redirect(
        request,
        url("domains", domain["name"]),
        tr(request, "Domain {name} created.", name=domain["name"]),
    )


@router.get("/domains/{name}")
async def domain_edit(request: Request, name: str, page: Page = signed_in) -> Response:
    domain = await page.api.get(path("domains", name))
    values = {"description": domain.get("description") or ""}
    return render(request, "domain.html", domain=domain, values=values)


@router.post("/domains/{name}")
async def domain_update(request: Request, name: str, page: Page = signed_in) -> Response:
    form = await page.form()
    domain = await page.api.get(path("domains", name))
    values = {"description": form.get("description", "").strip()}
    try:
        await page.api.patch(path("domains", name), values)
    except ApiError as exc:
        return render(
            request,
            "domain.html",
            exc.status,
            domain=domain,
            values=values,
            error=error_text(request, exc),
        )
    return redirect(request, url("domains", name), tr(request, "Domain {name} saved.", name=name))


@router.get("/domains/{name}/dns")
async def domain_dns(request: Request, name: str, page: Page = signed_in) -> Response:
    domain = await page.api.get(path("domains", name))
    records = await page.api.get(path("domains", name, "dns"))
    return render(request, "dns.html", domain=domain, records=records)
