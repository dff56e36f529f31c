"""The admin panel's application: settings, security headers, sign in and out, the language
switch, and the pages of each resource (users, groups, domains, tenants: a module each over
panel.py's shared pieces)."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from psnweb.admin import domains, groups, tenants, users
from psnweb.admin.client import Api, ApiError, path
from psnweb.admin.i18n import LANGUAGES
from psnweb.admin.panel import (
    HEADERS,
    HERE,
    LANGUAGE_COOKIE,
    LOCAL_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfError,
    LoginRequired,
    Page,
    Panel,
    csrf_token,
    drop_cookie,
    error_text,
    panel_of,
    redirect,
    render,
    set_cookie,
    signed_in,
    tr,
)
from psnweb.config import ConfigError


def create_app(config: dict[str, Any]) -> FastAPI:
    """The admin panel. Config: api_url (the API's base URL), secure_cookies (default true:
    cookies only over HTTPS, which the proxy terminates), title (optional, shown in pages;
    default "PSN administration" in the page's language), language ("ru" or "en", default "en":
    the pages' language unless the user chose another, kept in a cookie)."""
    api_url = config.get("api_url")
    if not api_url:
        raise ConfigError("admin: config.json lacks api_url (e.g. http://psnapi:8080)")
    default_language = str(config.get("language") or "en")
    if default_language not in LANGUAGES:
        raise ConfigError(
            f"admin: config.json language {default_language!r} is none of "
            f"{', '.join(LANGUAGES)}; set one of them"
        )

    app = FastAPI(title="PSN administration", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.panel = Panel.create(
        str(api_url),
        secure=bool(config.get("secure_cookies", True)),
        title=str(config.get("title") or ""),
        default_language=default_language,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.on_event("shutdown")
    async def close_http() -> None:
        await app.state.panel.http.aclose()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        resp = await call_next(request)
        resp.headers.update(HEADERS)
        if not request.url.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        resp = redirect(request, "/login", exc.message)
        drop_cookie(request, resp, SESSION_COOKIE)
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
        set_cookie(request, resp, LANGUAGE_COOKIE, code, 365 * 24 * 3600)
        return resp

    # --- sign in and out ------------------------------------------------------------------

    def login_page(request: Request, nonce: str, status: int = 200, **ctx: Any) -> Response:
        resp = render(request, "login.html", status, csrf=csrf_token(nonce), **ctx)
        set_cookie(request, resp, LOGIN_COOKIE, nonce)
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
            token = await Api(panel_of(request).http).post(
                path("auth", "token"),
                {"username": username, "password": str(form.get("password", ""))},
            )
        except ApiError as exc:
            return login_page(
                request, nonce, exc.status, error=error_text(request, exc), username=username
            )
        resp = redirect(request, "/users")
        set_cookie(
            request, resp, SESSION_COOKIE, token["access_token"], int(token.get("expires_in", 3600))
        )
        drop_cookie(request, resp, LOGIN_COOKIE)
        return resp

    @app.post("/logout")
    async def logout(page: Page = signed_in) -> Response:
        await page.form()
        resp = redirect(page.request, "/login", tr(page.request, "Signed out."))
        drop_cookie(page.request, resp, SESSION_COOKIE)
        return resp

    @app.get("/")
    async def home(page: Page = signed_in) -> Response:
        return RedirectResponse("/users", status_code=303)

    for module in (users, groups, domains, tenants):
        app.include_router(module.router)
    return app
