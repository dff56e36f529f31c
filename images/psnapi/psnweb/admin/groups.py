"""Pages of the groups (distribution lists): list, create, edit, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from psnweb.admin.client import ApiError, path
from psnweb.admin.forms import group_values, posted_group, split_list
from psnweb.admin.i18n import N_
from psnweb.admin.panel import (
    Page,
    add_delete_pages,
    choices,
    error_text,
    redirect,
    render,
    signed_in,
    tr,
    url,
)

router = APIRouter()
add_delete_pages(router, "groups", "group", N_("Group {name} deleted."))


@router.get("/groups")
async def groups(request: Request, page: Page = signed_in) -> Response:
    filters = {k: request.query_params.get(k, "") for k in ("q", "tenant", "domain")}
    error, found = None, []
    try:
        found = await page.api.get(path("groups"), **filters)
    except ApiError as exc:
        error = error_text(request, exc)
    return render(
        request,
        "groups.html",
        groups=found,
        filters=filters,
        error=error,
        **await choices(page),
    )


def group_form(
    request: Request,
    values: dict[str, Any],
    group: dict[str, Any] | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(request, "group_form.html", status, values=values, group=group, error=error)


@router.get("/groups/new")
async def group_new(request: Request, page: Page = signed_in) -> Response:
    return group_form(request, {})


@router.post("/groups/new")
async def group_create(request: Request, page: Page = signed_in) -> Response:
    values = posted_group(await page.form())
    body = {
        "address": values["address"],
        "name": values["name"],
        "description": values["description"],
        "members": split_list(values["members"]),
        "aliases": split_list(values["aliases"]),
    }
    try:
        group = await page.api.post(path("groups"), body)
    except ApiError as exc:
        return group_form(request, values, None, exc.status, error_text(request, exc))
    return redirect(
        request,
        url("groups", group["address"]),
        tr(request, "Group {address} created.", address=group["address"]),
    )


@router.get("/groups/{address}")
async def group_edit(request: Request, address: str, page: Page = signed_in) -> Response:
    group = await page.api.get(path("groups", address))
    return group_form(request, group_values(group), group)


@router.post("/groups/{address}")
async def group_update(request: Request, address: str, page: Page = signed_in) -> Response:
    form = await page.form()
    group = await page.api.get(path("groups", address))
    values = {**posted_group(form), "address": group["address"]}
    old = group_values(group)
    changes: dict[str, Any] = {k: values[k] for k in ("name", "description") if values[k] != old[k]}
    for key in ("members", "aliases"):
        if split_list(values[key]) != split_list(old[key]):
            changes[key] = split_list(values[key])
    if not changes:
        return redirect(request, url("groups", address), tr(request, "Nothing to change."))
    try:
        await page.api.patch(path("groups", address), changes)
    except ApiError as exc:
        return group_form(request, values, group, exc.status, error_text(request, exc))
    return redirect(
        request, url("groups", address), tr(request, "Group {address} saved.", address=address)
    )
