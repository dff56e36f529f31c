"""The PSN API (service psn-backend_psnapi): tenants, domains, users and groups of the directory.

`create_app(config)` reads these keys of /etc/psnweb/config.json (defaults in brackets):
  ldap.uri ["ldap://ldap:3389"], ldap.base_dn, ldap.bind_dn [uid=psnapi,ou=Services,<base>],
  ldap.password_secret ["ldap_psnapi_password"], admin.name ["psnapi"],
  admin.password_secret ["psnapi_admin_password"], token.key_secret ["psnapi_jwt_key"],
  token.ttl [3600 s], default_tenant ["default"], external_domain,
  hosts.mail/imap/smtp/autoconfig (host names), dns.mx [hosts.smtp], dns.dkim_selector ["psn"],
  dns.dkim {domain: TXT value}.
Endpoints under /api/v1 (OpenAPI description at /api/v1/openapi.json); GET /health binds to the
directory. Errors are {"detail": "<message>"}; passwords and tokens are never logged.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from ldap3.core.exceptions import (
    LDAPEntryAlreadyExistsResult,
    LDAPException,
    LDAPNoSuchObjectResult,
)

from psnweb.api.auth import Authenticator
from psnweb.api.directory import Directory
from psnweb.api.errors import ApiError
from psnweb.api.routes import auth_router, routers
from psnweb.api.settings import Settings

PREFIX = "/api/v1"
VERSION = "1.0"
LOG = logging.getLogger("uvicorn.error")
# The body of every error, 422 included (FastAPI's default for 422 is a list of errors).
ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"title": "Detail", "type": "string"}},
}


def _error(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="PSN API"'} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    """`field: problem; ...` from pydantic's errors (values are not repeated: passwords)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("body", "__root__"))
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts) or "the request is not valid"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(LDAPException)
    async def directory_error(request: Request, exc: LDAPException) -> JSONResponse:
        # Two requests raced for the same entry: the loser sees what the checks would have said.
        if isinstance(exc, LDAPEntryAlreadyExistsResult):
            return _error(409, "the entry exists already")
        if isinstance(exc, LDAPNoSuchObjectResult):
            return _error(404, "the entry does not exist (any more)")
        LOG.error("directory error on %s %s: %s", request.method, request.url.path, exc)
        return _error(503, f"the directory failed: {type(exc).__name__}; try again later")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI description, with the 422 body as it really is ({"detail": "..."})."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["HTTPValidationError"] = ERROR_SCHEMA
        components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(config: dict[str, Any]) -> FastAPI:
    """The API application for the parsed config.json (ConfigError when something is missing)."""
    settings = Settings.from_config(config)
    directory = Directory(
        settings.ldap_uri, settings.base_dn, settings.bind_dn, settings.bind_password
    )
    app = FastAPI(
        title="PSN API",
        version=VERSION,
        description="Tenants, mail domains, users and groups of the PSN mail suite.",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.directory = directory
    app.state.auth = Authenticator(settings, directory)
    _install_error_handlers(app)
    app.include_router(auth_router, prefix=PREFIX)
    for router in routers:
        app.include_router(router, prefix=PREFIX)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        """200 when the API's account binds to the directory, else 503."""
        try:
            directory.ping()
        except LDAPException as exc:
            LOG.warning("health: the directory does not answer: %s", type(exc).__name__)
            return _error(503, "the directory does not answer")
        return JSONResponse({"status": "ok"})

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
