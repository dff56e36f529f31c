"""Pages of the tenants (the global administrator's): list, create, edit, delete."""

from __future__ import annotations

from typing import Any

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
add_delete_pages(router, "tenants", "tenant", N_("Tenant {name} deleted."))


@router.get("/tenants")
async def tenants(request: Request, page: Page = signed_in) -> Response:
    found = await page.api.get(path("tenants"))
    return render(request, "tenants.html", tenants=found)


def tenant_form(
    request: Request,
    values: dict[str, str],
    tenant: dict[str, Any] | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(request, "tenant_form.html", status, values=values, tenant=tenant, error=error)


@router.get("/tenants/new")
async def tenant_new(request: Request, page: Page = signed_in) -> Response:
    return tenant_form(request, {})


@router.post("/tenants/new")
async def tenant_create(request: Request, page: Page = signed_in) -> Response:
    form = await page.form()
    values = {k: form.get(k, "").strip() for k in ("name", "description")}
    try:
        tenant = await page.api.post(path("tenants"), values)
    except ApiError as exc:
        return tenant_form(request, values, None, exc.status, error_text(request, exc))
    return redirect(
        request,
        url("tenants", tenant["name"]),
        tr(request, "Tenant {name} created.", name=tenant["name"]),
    )


@router.get("/tenants/{name}")
async def tenant_edit(request: Request, name: str, page: Page = signed_in) -> Response:
    tenant = await page.api.get(path("tenants", name))
    return tenant_form(request, {"description": tenant.get("description") or ""}, tenant)


@router.post("/tenants/{name}")
async def tenant_update(request: Request, name: str, page: Page = signed_in) -> Response:
    form = await page.form()
    tenant = await page.api.get(path("tenants", name))
    values = {"description": form.get("description", "").strip()}
    try:
        await page.api.patch(path("tenants", name), values)
    except ApiError as exc:
        return tenant_form(request, values, tenant, exc.status, error_text(request, exc))
    return redirect(request, url("tenants", name), tr(request, "Tenant {name} saved.", name=name))
