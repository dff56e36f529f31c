"""Pages of the users (mailboxes): list, create, edit, reset the password, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from psnweb.admin.client import ApiError, path
from psnweb.admin.forms import posted_user, split_list, user_changes, user_values
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
add_delete_pages(router, "users", "user", N_("User {name} deleted."))


@router.get("/users")
async def users(request: Request, page: Page = signed_in) -> Response:
    filters = {k: request.query_params.get(k, "") for k in ("q", "tenant", "domain", "enabled")}
    error, found = None, []
    try:
        found = await page.api.get(path("users"), **filters)
    except ApiError as exc:
        error = error_text(request, exc)
    return render(
        request, "users.html", users=found, filters=filters, error=error, **await choices(page)
    )


async def user_form(
    request: Request,
    page: Page,
    values: dict[str, Any],
    user: dict[str, Any] | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(
        request,
        "user_form.html",
        status,
        values=values,
        user=user,
        error=error,
        **await choices(page),
    )


@router.get("/users/new")
async def user_new(request: Request, page: Page = signed_in) -> Response:
    return await user_form(request, page, {"enabled": True, "tenant_admin": False})


@router.post("/users/new")
async def user_create(request: Request, page: Page = signed_in) -> Response:
    form = await page.form()
    values = posted_user(form)
    body: dict[str, Any] = {
        "address": values["address"],
        "display_name": values["display_name"],
        "password": form.get("password", ""),
        "enabled": values["enabled"],
        "tenant_admin": values["tenant_admin"],
        "aliases": split_list(values["aliases"]),
    }
    body.update({k: values[k] for k in ("given_name", "surname", "quota") if values[k]})
    try:
        user = await page.api.post(path("users"), body)
    except ApiError as exc:
        return await user_form(request, page, values, None, exc.status, error_text(request, exc))
    return redirect(
        request,
        url("users", user["address"]),
        tr(request, "User {address} created.", address=user["address"]),
    )


@router.get("/users/{address}")
async def user_edit(request: Request, address: str, page: Page = signed_in) -> Response:
    user = await page.api.get(path("users", address))
    return await user_form(request, page, user_values(user), user)


@router.post("/users/{address}")
async def user_update(request: Request, address: str, page: Page = signed_in) -> Response:
    form = await page.form()
    user = await page.api.get(path("users", address))
    values = {**posted_user(form), "address": user["address"]}
    changes = user_changes(user, values)
    if not changes:
        return redirect(request, url("users", address), tr(request, "Nothing to change."))
    try:
        await page.api.patch(path("users", address), changes)
    except ApiError as exc:
        return await user_form(request, page, values, user, exc.status, error_text(request, exc))
    return redirect(
        request, url("users", address), tr(request, "User {address} saved.", address=address)
    )


@router.post("/users/{address}/password")
async def user_password(request: Request, address: str, page: Page = signed_in) -> Response:
    form = await page.form()
    user = await page.api.get(path("users", address))
    password = form.get("new_password", "")
    try:
        await page.api.patch(path("users", address), {"password": password})
    except ApiError as exc:
        return await user_form(
            request, page, user_values(user), user, exc.status, error_text(request, exc)
        )
    return redirect(
        request,
        url("users", address),
        tr(request, "The password of {address} has been reset.", address=address),
    )
