"""Routes of the admin panel. Every page calls the PSN API (config["api_url"]) with the token of
the signed-in user, kept in an HttpOnly, SameSite=Strict cookie; the API decides what the user
may do, the panel shows its answers. Forms post back to the panel (no JavaScript) and carry a
CSRF token derived from the session token, so no server-side state is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from psnweb.admin.client import Api, ApiError, path
from psnweb.admin.i18n import CATALOGUE, LANGUAGES, N_, decimal, translate
from psnweb.config import ConfigError

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "psn_admin_session"
LOGIN_COOKIE = "psn_admin_login"
FLASH_COOKIE = "psn_admin_flash"
LANGUAGE_COOKIE = "psn_admin_language"
# A path of this panel (printable ASCII, no "//" or "\\" that a browser reads as another host).
LOCAL_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")
BINARY_UNITS = (
    (N_("{number} TiB"), 1 << 40),
    (N_("{number} GiB"), 1 << 30),
    (N_("{number} MiB"), 1 << 20),
    (N_("{number} KiB"), 1 << 10),
)
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class LoginRequired(Exception):
    """No valid session: back to the login page, with `message` when there is one."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message)
        self.message = message


class CsrfError(Exception):
    """A form without the CSRF token of this session."""


def csrf_token(seed: str) -> str:
    """The CSRF token of a session (seed: its API token) or of the login form (seed: a random
    cookie). One-way: the page reveals nothing of the token; another site can't compute it."""
    return hashlib.sha256(b"psn-admin-csrf\0" + seed.encode()).hexdigest()


def split_list(text: str) -> list[str]:
    """Addresses typed one a line (or separated by commas/spaces), lower-cased, in order, once."""
    items: list[str] = []
    for item in re.split(r"[\s,;]+", text.strip().lower()):
        if item and item not in items:
            items.append(item)
    return items


def quota_input(size: int) -> str:
    """A quota in bytes as the shortest input form the API accepts (1073741824 → "1G")."""
    for unit, factor in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def quota_label(size: int, language: str) -> str:
    """A quota for reading: "unlimited" or e.g. "1.5 GiB", in `language`."""
    if not size:
        return translate(language, "unlimited")
    for unit, factor in BINARY_UNITS:
        if size >= factor:
            return translate(language, unit, number=decimal(language, f"{size / factor:.3g}"))
    return translate(language, "{number} B", number=str(size))


@pass_context
def template_text(context: Context, msgid: str, **params: Any) -> str:
    """`_()` of the templates: the msgid in the page's language. Parameters are escaped unless
    they are markup (an element with its id, inside a translated heading)."""
    text = CATALOGUE.get(context["lang"], {}).get(msgid, msgid)
    return Markup(escape(text).format(**params)) if params else text


@pass_context
def template_quota(context: Context, size: int) -> str:
    return quota_label(size, context["lang"])


def url(*parts: str, **query: str) -> str:
    """A path of the panel with percent-encoded parts and an optional query."""
    out = "/" + "/".join(quote(p, safe="@") for p in parts)
    query = {k: v for k, v in query.items() if v}
    return f"{out}?{urlencode(query)}" if query else out


@dataclass
class Page:
    """One request of a signed-in user: the API as that user, who it is, the CSRF token."""

    request: Request
    api: Api
    me: dict[str, Any]
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.me.get("role") == "admin"

    async def form(self) -> dict[str, str]:
        """The posted form's fields, after checking its CSRF token."""
        form = await self.request.form()
        if not hmac.compare_digest(str(form.get("csrf", "")), self.csrf):
            raise CsrfError
        return {k: v for k, v in form.items() if isinstance(v, str)}


# --- form values: what a form shows, from an API object or from what the user posted ----------


def user_values(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": user["address"],
        "display_name": user.get("display_name") or "",
        "given_name": user.get("given_name") or "",
        "surname": user.get("surname") or "",
        "quota": quota_input(int(user.get("quota") or 0)),
        "aliases": "\n".join(user.get("aliases") or []),
        "enabled": bool(user.get("enabled")),
        "tenant_admin": bool(user.get("tenant_admin")),
    }


def posted_user(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        k: form.get(k, "").strip()
        for k in ("address", "display_name", "given_name", "surname", "quota", "aliases")
    }
    values["address"] = values["address"].lower()
    values["enabled"] = form.get("enabled") == "on"
    values["tenant_admin"] = form.get("tenant_admin") == "on"
    return values


def user_changes(user: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The PATCH body turning `user` into the posted `values` (only what differs)."""
    old = user_values(user)
    changes: dict[str, Any] = {}
    for key in ("display_name", "enabled", "tenant_admin"):
        if values[key] != old[key]:
            changes[key] = values[key]
    for key in ("given_name", "surname"):
        if values[key] != old[key]:
            changes[key] = values[key] or None  # null removes the attribute
    if values["quota"] and values["quota"] != old["quota"]:
        changes["quota"] = values["quota"]
    if split_list(values["aliases"]) != split_list(old["aliases"]):
        changes["aliases"] = split_list(values["aliases"])
    return changes


def group_values(group: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": group["address"],
        "name": group.get("name") or "",
        "description": group.get("description") or "",
        "members": "\n".join(group.get("members") or []),
        "aliases": "\n".join(group.get("aliases") or []),
    }


def posted_group(form: dict[str, str]) -> dict[str, Any]:
    values = {
        k: form.get(k, "").strip() for k in ("address", "name", "description", "members", "aliases")
    }
    values["address"] = values["address"].lower()
    return values


def create_app(config: dict[str, Any]) -> FastAPI:
    """The admin panel. Config: api_url (the API's base URL), secure_cookies (default true:
    cookies only over HTTPS, which the proxy terminates), title (optional, shown in pages;
    default "PSN administration" in the page's language), language ("ru" or "en", default "en":
    the pages' language unless the user chose another, kept in a cookie)."""
    api_url = config.get("api_url")
    if not api_url:
        raise ConfigError("admin: config.json lacks api_url (e.g. http://psnapi:8080)")
    secure = bool(config.get("secure_cookies", True))
    title = str(config.get("title") or "")
    default_language = str(config.get("language") or "en")
    if default_language not in LANGUAGES:
        raise ConfigError(
            f"admin: config.json language {default_language!r} is none of "
            f"{', '.join(LANGUAGES)}; set one of them"
        )

    app = FastAPI(title="PSN administration", docs_url=None, redoc_url=None, openapi_url=None)
    http = httpx.AsyncClient(base_url=str(api_url), timeout=20.0)
    templates = Jinja2Templates(directory=str(HERE / "templates"), autoescape=True)
    templates.env.filters["quota"] = template_quota
    templates.env.globals.update(url=url, _=template_text, languages=LANGUAGES)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.on_event("shutdown")
    async def close_http() -> None:
        await http.aclose()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        resp = await call_next(request)
        resp.headers.update(HEADERS)
        if not request.url.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    def set_cookie(resp: Response, name: str, value: str, max_age: int | None = None) -> None:
        resp.set_cookie(
            name, value, max_age=max_age, secure=secure, httponly=True, samesite="strict"
        )

    def drop_cookie(resp: Response, name: str) -> None:
        resp.delete_cookie(name, secure=secure, httponly=True, samesite="strict")

    def language(request: Request) -> str:
        """The user's choice (cookie), else the installation's (config)."""
        chosen = request.cookies.get(LANGUAGE_COOKIE, "")
        return chosen if chosen in LANGUAGES else default_language

    def tr(request: Request, msgid: str, **params: Any) -> str:
        """A message of the panel in the user's language."""
        return translate(language(request), msgid, **params)

    def error_text(request: Request, exc: ApiError) -> str:
        """What went wrong, for the user: the API's detail, or the panel's own message."""
        return exc.text(language(request))

    def here(request: Request) -> str:
        """Where the language switch returns to: this page. A page a form's POST showed comes
        again from a GET of the same path, except the password form's: its user's page."""
        target = quote(request.url.path, safe="/@")
        if request.method != "GET":
            return target.removesuffix("/password")
        return f"{target}?{request.url.query}" if request.url.query else target

    def render(request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
        page: Page | None = getattr(request.state, "page", None)
        flash = None
        raw = request.cookies.get(FLASH_COOKIE)
        if raw:
            try:
                flash = base64.urlsafe_b64decode(raw.encode()).decode()[:500]
            except ValueError:
                flash = None
        resp = templates.TemplateResponse(
            template,
            {
                "request": request,
                "page": page,
                "lang": language(request),
                "here": here(request),
                "title": title or tr(request, "PSN administration"),
                "flash": flash,
                **ctx,
            },
            status_code=status,
        )
        if raw:
            drop_cookie(resp, FLASH_COOKIE)
        return resp

    def redirect(target: str, message: str | None = None) -> Response:
        """303 to `target` (after a POST), with a message shown on the next page."""
        resp = RedirectResponse(target, status_code=303)
        if message:
            set_cookie(resp, FLASH_COOKIE, base64.urlsafe_b64encode(message.encode()).decode())
        return resp

    async def current_page(request: Request) -> Page:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            raise LoginRequired
        api = Api(http, token)
        try:
            me = await api.get(path("me"))
        except ApiError as exc:
            if exc.status == 401:
                raise LoginRequired(
                    tr(request, "Your session has ended; please sign in again.")
                ) from exc
            if exc.status == 403:
                raise LoginRequired(error_text(request, exc)) from exc
            raise
        page = Page(request, api, me, csrf_token(token))
        request.state.page = page
        return page

    # The dependency of every page behind the login.
    signed_in = Depends(current_page)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        resp = redirect("/login", exc.message)
        drop_cookie(resp, SESSION_COOKIE)
        return resp

    @app.exception_handler(CsrfError)
    async def csrf_failed(request: Request, exc: CsrfError) -> Response:
        msg = tr(
            request,
            "The form has expired or did not come from this panel. Reload the page, try again.",
        )
        return render(request, "error.html", 403, error=msg)

    @app.exception_handler(ApiError)
    async def api_failed(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            return await to_login(request, LoginRequired(tr(request, "Please sign in again.")))
        return render(request, "error.html", exc.status, error=error_text(request, exc))

    @app.get("/health")
    async def health() -> dict[str, str]:
        # Only the panel itself: an API outage shows on the pages, and restarting the panel
        # would not cure it.
        return {"status": "ok"}

    @app.get("/language/{code}")
    async def choose_language(request: Request, code: str) -> Response:
        """The user's language (a link in every page's header), then back to that page."""
        if code not in LANGUAGES:
            return render(request, "error.html", 404, error=tr(request, "No such language."))
        target = request.query_params.get("next", "/")
        resp = RedirectResponse(target if LOCAL_PATH.fullmatch(target) else "/", status_code=303)
        set_cookie(resp, LANGUAGE_COOKIE, code, 365 * 24 * 3600)
        return resp

    # --- sign in and out ------------------------------------------------------------------

    def login_page(request: Request, nonce: str, status: int = 200, **ctx: Any) -> Response:
        resp = render(request, "login.html", status, csrf=csrf_token(nonce), **ctx)
        set_cookie(resp, LOGIN_COOKIE, nonce)
        return resp

    @app.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request, request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username", "")).strip()
        nonce = request.cookies.get(LOGIN_COOKIE)
        if not nonce or not hmac.compare_digest(str(form.get("csrf", "")), csrf_token(nonce)):
            return login_page(
                request,
                secrets.token_urlsafe(32),
                403,
                error=tr(
                    request,
                    "The sign-in form has expired (or cookies are off). Please try again.",
                ),
                username=username,
            )
        try:
            token = await Api(http).post(
                path("auth", "token"),
                {"username": username, "password": str(form.get("password", ""))},
            )
        except ApiError as exc:
            return login_page(
                request, nonce, exc.status, error=error_text(request, exc), username=username
            )
        resp = redirect("/users")
        set_cookie(resp, SESSION_COOKIE, token["access_token"], int(token.get("expires_in", 3600)))
        drop_cookie(resp, LOGIN_COOKIE)
        return resp

    @app.post("/logout")
    async def logout(page: Page = signed_in) -> Response:
        await page.form()
        resp = redirect("/login", tr(page.request, "Signed out."))
        drop_cookie(resp, SESSION_COOKIE)
        return resp

    @app.get("/")
    async def home(page: Page = signed_in) -> Response:
        return RedirectResponse("/users", status_code=303)

    # --- shared pieces --------------------------------------------------------------------

    async def choices(page: Page) -> dict[str, list[dict[str, Any]]]:
        """Domains (and tenants, for the global admin) offered in filters and forms."""
        domains = await page.api.get(path("domains"))
        tenants = await page.api.get(path("tenants")) if page.is_admin else []
        return {"domains": domains, "tenants": tenants}

    def confirm(request: Request, kind: str, name: str, action: str, back: str) -> Response:
        return render(request, "confirm.html", kind=kind, name=name, action=action, back=back)

    async def delete(
        request: Request, page: Page, kind: str, name: str, listing: str, done: str
    ) -> Response:
        """Delete the object after its confirmation form, then show `done`; a refusal (e.g. 409,
        a domain still in use) is shown on that form."""
        await page.form()
        try:
            await page.api.delete(path(listing, name))
        except ApiError as exc:
            back = url(listing, name)
            return render(
                request,
                "confirm.html",
                exc.status,
                kind=kind,
                name=name,
                action=back + "/delete",
                back=back,
                error=error_text(request, exc),
            )
        return redirect(url(listing), done)

    # --- users ----------------------------------------------------------------------------

    @app.get("/users")
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

    @app.get("/users/new")
    async def user_new(request: Request, page: Page = signed_in) -> Response:
        return await user_form(request, page, {"enabled": True, "tenant_admin": False})

    @app.post("/users/new")
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
            return await user_form(
                request, page, values, None, exc.status, error_text(request, exc)
            )
        return redirect(
            url("users", user["address"]),
            tr(request, "User {address} created.", address=user["address"]),
        )

    @app.get("/users/{address}")
    async def user_edit(request: Request, address: str, page: Page = signed_in) -> Response:
        user = await page.api.get(path("users", address))
        return await user_form(request, page, user_values(user), user)

    @app.post("/users/{address}")
    async def user_update(request: Request, address: str, page: Page = signed_in) -> Response:
        form = await page.form()
        user = await page.api.get(path("users", address))
        values = {**posted_user(form), "address": user["address"]}
        changes = user_changes(user, values)
        if not changes:
            return redirect(url("users", address), tr(request, "Nothing to change."))
        try:
            await page.api.patch(path("users", address), changes)
        except ApiError as exc:
            return await user_form(
                request, page, values, user, exc.status, error_text(request, exc)
            )
        return redirect(
            url("users", address), tr(request, "User {address} saved.", address=address)
        )

    @app.post("/users/{address}/password")
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
            url("users", address),
            tr(request, "The password of {address} has been reset.", address=address),
        )

    @app.get("/users/{address}/delete")
    async def user_delete_confirm(
        request: Request, address: str, page: Page = signed_in
    ) -> Response:
        user = await page.api.get(path("users", address))
        back = url("users", user["address"])
        return confirm(request, "user", user["address"], back + "/delete", back)

    @app.post("/users/{address}/delete")
    async def user_delete(request: Request, address: str, page: Page = signed_in) -> Response:
        done = tr(request, "User {name} deleted.", name=address)
        return await delete(request, page, "user", address, "users", done)

    # --- groups ---------------------------------------------------------------------------

    @app.get("/groups")
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

    @app.get("/groups/new")
    async def group_new(request: Request, page: Page = signed_in) -> Response:
        return group_form(request, {})

    @app.post("/groups/new")
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
            url("groups", group["address"]),
            tr(request, "Group {address} created.", address=group["address"]),
        )

    @app.get("/groups/{address}")
    async def group_edit(request: Request, address: str, page: Page = signed_in) -> Response:
        group = await page.api.get(path("groups", address))
        return group_form(request, group_values(group), group)

    @app.post("/groups/{address}")
    async def group_update(request: Request, address: str, page: Page = signed_in) -> Response:
        form = await page.form()
        group = await page.api.get(path("groups", address))
        values = {**posted_group(form), "address": group["address"]}
        old = group_values(group)
        changes: dict[str, Any] = {
            k: values[k] for k in ("name", "description") if values[k] != old[k]
        }
        for key in ("members", "aliases"):
            if split_list(values[key]) != split_list(old[key]):
                changes[key] = split_list(values[key])
        if not changes:
            return redirect(url("groups", address), tr(request, "Nothing to change."))
        try:
            await page.api.patch(path("groups", address), changes)
        except ApiError as exc:
            return group_form(request, values, group, exc.status, error_text(request, exc))
        return redirect(
            url("groups", address), tr(request, "Group {address} saved.", address=address)
        )

    @app.get("/groups/{address}/delete")
    async def group_delete_confirm(
        request: Request, address: str, page: Page = signed_in
    ) -> Response:
        group = await page.api.get(path("groups", address))
        back = url("groups", group["address"])
        return confirm(request, "group", group["address"], back + "/delete", back)

    @app.post("/groups/{address}/delete")
    async def group_delete(request: Request, address: str, page: Page = signed_in) -> Response:
        done = tr(request, "Group {name} deleted.", name=address)
        return await delete(request, page, "group", address, "groups", done)

    # --- domains --------------------------------------------------------------------------

    @app.get("/domains")
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
        return render(
            request, "domain_new.html", status, values=values, tenants=tenants, error=error
        )

    @app.get("/domains/new")
    async def domain_new(request: Request, page: Page = signed_in) -> Response:
        return await domain_new_form(request, page, {"tenant": request.query_params.get("tenant")})

    @app.post("/domains/new")
    async def domain_create(request: Request, page: Page = signed_in) -> Response:
        form = await page.form()
        values = {k: form.get(k, "").strip() for k in ("name", "tenant", "description")}
        values["name"] = values["name"].lower()
        try:
            domain = await page.api.post(path("domains"), values)
        except ApiError as exc:
            return await domain_new_form(
                request, page, values, exc.status, error_text(request, exc)
            )
        return redirect(
            url("domains", domain["name"]),
            tr(request, "Domain {name} created.", name=domain["name"]),
        )

    @app.get("/domains/{name}")
    async def domain_edit(request: Request, name: str, page: Page = signed_in) -> Response:
        domain = await page.api.get(path("domains", name))
        values = {"description": domain.get("description") or ""}
        return render(request, "domain.html", domain=domain, values=values)

    @app.post("/domains/{name}")
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
        return redirect(url("domains", name), tr(request, "Domain {name} saved.", name=name))

    @app.get("/domains/{name}/dns")
    async def domain_dns(request: Request, name: str, page: Page = signed_in) -> Response:
        domain = await page.api.get(path("domains", name))
        records = await page.api.get(path("domains", name, "dns"))
        return render(request, "dns.html", domain=domain, records=records)

    @app.get("/domains/{name}/delete")
    async def domain_delete_confirm(
        request: Request, name: str, page: Page = signed_in
    ) -> Response:
        domain = await page.api.get(path("domains", name))
        back = url("domains", domain["name"])
        return confirm(request, "domain", domain["name"], back + "/delete", back)

    @app.post("/domains/{name}/delete")
    async def domain_delete(request: Request, name: str, page: Page = signed_in) -> Response:
        done = tr(request, "Domain {name} deleted.", name=name)
        return await delete(request, page, "domain", name, "domains", done)

    # --- tenants (the global admin's) -----------------------------------------------------

    @app.get("/tenants")
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
        return render(
            request, "tenant_form.html", status, values=values, tenant=tenant, error=error
        )

    @app.get("/tenants/new")
    async def tenant_new(request: Request, page: Page = signed_in) -> Response:
        return tenant_form(request, {})

    @app.post("/tenants/new")
    async def tenant_create(request: Request, page: Page = signed_in) -> Response:
        form = await page.form()
        values = {k: form.get(k, "").strip() for k in ("name", "description")}
        try:
            tenant = await page.api.post(path("tenants"), values)
        except ApiError as exc:
            return tenant_form(request, values, None, exc.status, error_text(request, exc))
        return redirect(
            url("tenants", tenant["name"]),
            tr(request, "Tenant {name} created.", name=tenant["name"]),
        )

    @app.get("/tenants/{name}")
    async def tenant_edit(request: Request, name: str, page: Page = signed_in) -> Response:
        tenant = await page.api.get(path("tenants", name))
        return tenant_form(request, {"description": tenant.get("description") or ""}, tenant)

    @app.post("/tenants/{name}")
    async def tenant_update(request: Request, name: str, page: Page = signed_in) -> Response:
        form = await page.form()
        tenant = await page.api.get(path("tenants", name))
        values = {"description": form.get("description", "").strip()}
        try:
            await page.api.patch(path("tenants", name), values)
        except ApiError as exc:
            return tenant_form(request, values, tenant, exc.status, error_text(request, exc))
        return redirect(url("tenants", name), tr(request, "Tenant {name} saved.", name=name))

    @app.get("/tenants/{name}/delete")
    async def tenant_delete_confirm(
        request: Request, name: str, page: Page = signed_in
    ) -> Response:
        tenant = await page.api.get(path("tenants", name))
        back = url("tenants", tenant["name"])
        return confirm(request, "tenant", tenant["name"], back + "/delete", back)

    @app.post("/tenants/{name}/delete")
    async def tenant_delete(request: Request, name: str, page: Page = signed_in) -> Response:
        done = tr(request, "Tenant {name} deleted.", name=name)
        return await delete(request, page, "tenant", name, "tenants", done)

    return app
