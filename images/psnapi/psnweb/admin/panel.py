"""The admin panel's machinery shared by every page: the signed-in user's `Page`, the `Panel` that
renders templates, sets cookies, translates and redirects, and the helpers of the templates.

Every page calls the PSN API (config["api_url"]) with the token of the signed-in user, kept in an
HttpOnly, SameSite=Strict cookie; the API decides what the user may do, the panel shows its
answers. Forms post back to the panel (no JavaScript) and carry a CSRF token derived from the
session token, so no server-side state is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from psnweb.admin.client import Api, ApiError, path
from psnweb.admin.i18n import CATALOGUE, LANGUAGES, N_, decimal, translate

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


@dataclass
class Panel:
    """The settings every page reads (create_app keeps one in app.state.panel)."""

    secure: bool  # cookies only over HTTPS
    title: str  # shown in pages; empty: "PSN administration" in the page's language
    default_language: str
    http: httpx.AsyncClient  # to the API
    templates: Jinja2Templates

    @classmethod
    def create(cls, api_url: str, secure: bool, title: str, default_language: str) -> Panel:
        templates = Jinja2Templates(directory=str(HERE / "templates"), autoescape=True)
        templates.env.filters["quota"] = template_quota
        templates.env.globals.update(url=url, _=template_text, languages=LANGUAGES)
        http = httpx.AsyncClient(base_url=api_url, timeout=20.0)
        return cls(secure, title, default_language, http, templates)


def panel_of(request: Request) -> Panel:
    panel: Panel = request.app.state.panel
    return panel


def set_cookie(
    request: Request, resp: Response, name: str, value: str, max_age: int | None = None
) -> None:
    secure = panel_of(request).secure
    resp.set_cookie(name, value, max_age=max_age, secure=secure, httponly=True, samesite="strict")


def drop_cookie(request: Request, resp: Response, name: str) -> None:
    secure = panel_of(request).secure
    resp.delete_cookie(name, secure=secure, httponly=True, samesite="strict")


def language(request: Request) -> str:
    """The user's choice (cookie), else the installation's (config)."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    return chosen if chosen in LANGUAGES else panel_of(request).default_language


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
    """A page from its template, with the flash message of the last redirect."""
    panel = panel_of(request)
    page: Page | None = getattr(request.state, "page", None)
    flash = None
    raw = request.cookies.get(FLASH_COOKIE)
    if raw:
        try:
            flash = base64.urlsafe_b64decode(raw.encode()).decode()[:500]
        except ValueError:
            flash = None
    resp = panel.templates.TemplateResponse(
        template,
        {
            "request": request,
            "page": page,
            "lang": language(request),
            "here": here(request),
            "title": panel.title or tr(request, "PSN administration"),
            "flash": flash,
            **ctx,
        },
        status_code=status,
    )
    if raw:
        drop_cookie(request, resp, FLASH_COOKIE)
    return resp


def redirect(request: Request, target: str, message: str | None = None) -> Response:
    """303 to `target` (after a POST), with a message shown on the next page."""
    resp = RedirectResponse(target, status_code=303)
    if message:
        encoded = base64.urlsafe_b64encode(message.encode()).decode()
        set_cookie(request, resp, FLASH_COOKIE, encoded)
    return resp


async def current_page(request: Request) -> Page:
    """The signed-in user of this request (LoginRequired when there is none)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    api = Api(panel_of(request).http, token)
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


async def choices(page: Page) -> dict[str, list[dict[str, Any]]]:
    """Domains (and tenants, for the global admin) offered in filters and forms."""
    domains = await page.api.get(path("domains"))
    tenants = await page.api.get(path("tenants")) if page.is_admin else []
    return {"domains": domains, "tenants": tenants}


def add_delete_pages(router: APIRouter, listing: str, kind: str, done: str) -> None:
    """GET and POST /<listing>/<name>/delete: the confirmation form of an object, then its
    deletion and `done` (a msgid with {name}). A refusal (e.g. 409, a domain still in use) is
    shown on that form."""
    field = "address" if kind in ("user", "group") else "name"

    def form(request: Request, name: str, status: int = 200, error: str | None = None) -> Response:
        back = url(listing, name)
        return render(
            request, "confirm.html", status,
            kind=kind, name=name, action=back + "/delete", back=back, error=error,
        )  # fmt: skip

    @router.get(f"/{listing}/{{name}}/delete")
    async def confirm(request: Request, name: str, page: Page = signed_in) -> Response:
        found = await page.api.get(path(listing, name))
        return form(request, found[field])

    @router.post(f"/{listing}/{{name}}/delete")
    async def delete(request: Request, name: str, page: Page = signed_in) -> Response:
        await page.form()
        try:
            await page.api.delete(path(listing, name))
        except ApiError as exc:
            return form(request, name, exc.status, error_text(request, exc))
        return redirect(request, url(listing), tr(request, done, name=name))
