"""Who is asking: HTTP Basic credentials or a bearer token (JWT, HS256) become a Principal.

The global administrator's password is the secret psnapi_admin_password; anybody else is a user
of the directory whose bind succeeds, and only tenant administrators (psnTenantAdmin TRUE) are let
in. A token is re-checked on every request: its user must still exist, be enabled and administer.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of Utf8Basic.__call__ at
# run time, and an instance has no module globals to resolve strings in.
import binascii
import hmac
import time
from base64 import b64decode
from dataclasses import dataclass

import jwt
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import Request

from psnweb.api.directory import Directory, Session
from psnweb.api.errors import ApiError, forbidden
from psnweb.api.models import TokenOut, parse_address
from psnweb.api.settings import Settings

ADMIN = "admin"
TENANT_ADMIN = "tenant_admin"
ALGORITHM = "HS256"


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail)


@dataclass(frozen=True)
class Principal:
    """An authenticated administrator: the global one, or one tenant's."""

    username: str
    role: str
    tenant: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def require_admin(self, action: str) -> None:
        """403 unless the global administrator asks."""
        if not self.is_admin:
            raise forbidden(f"only the global administrator may {action}")

    def check_tenant(self, tenant: str, what: str) -> None:
        """403 when a tenant administrator reaches for another tenant's object."""
        if not self.is_admin and tenant != self.tenant:
            raise forbidden(f"{what} belongs to another tenant than yours ({self.tenant})")


class Utf8Basic(HTTPBasic):
    """HTTP Basic with UTF-8 credentials (FastAPI 0.92 decodes them as ASCII only)."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        scheme, param = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "basic":
            return None
        try:
            username, sep, password = b64decode(param, validate=True).decode("utf-8").partition(":")
        except (ValueError, binascii.Error):
            username, sep, password = "", "", ""
        if not sep:
            raise unauthorized("the Basic credentials are not base64 of user:password (UTF-8)")
        return HTTPBasicCredentials(username=username, password=password)


class Authenticator:
    """Checks credentials and tokens against the settings and the directory."""

    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory

    def login(self, session: Session, username: str, password: str) -> Principal:
        """The principal of a user name and password; 401 when wrong, 403 when no administrator."""
        if username == self.settings.admin_name:
            wanted = self.settings.admin_password.encode("utf-8")
            if hmac.compare_digest(password.encode("utf-8", "surrogatepass"), wanted):
                return Principal(username, ADMIN)
            raise unauthorized("wrong user name or password")
        try:
            addr = parse_address(username)
        except ValueError:
            raise unauthorized("wrong user name or password") from None
        if not self.directory.password_valid(self.directory.user_dn(addr), password):
            raise unauthorized("wrong user name or password (or the account is disabled)")
        return self._tenant_admin(session, addr)

    def _tenant_admin(self, session: Session, addr: str) -> Principal:
        user = session.user(addr)
        if user is None or not user.enabled:
            raise unauthorized(f"{addr} no longer exists or is disabled")
        if not user.tenant_admin:
            raise forbidden(f"{addr} is not an administrator")
        return Principal(addr, TENANT_ADMIN, user.tenant)

    def issue(self, principal: Principal) -> TokenOut:
        """A bearer token for the principal, valid for the configured time."""
        now = int(time.time())
        claims = {
            "sub": principal.username,
            "role": principal.role,
            "tenant": principal.tenant,
            "iat": now,
            "exp": now + self.settings.token_ttl,
        }
        token = jwt.encode(claims, self.settings.token_key, algorithm=ALGORITHM)
        return TokenOut(access_token=token, expires_in=self.settings.token_ttl)

    def from_token(self, session: Session, token: str) -> Principal:
        """The principal of a bearer token, re-checked against the directory."""
        try:
            claims = jwt.decode(
                token,
                self.settings.token_key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.PyJWTError:
            raise unauthorized("the token is not valid or has expired: ask for a new one") from None
        sub, role = str(claims["sub"]), claims["role"]
        if role == ADMIN and sub == self.settings.admin_name:
            return Principal(sub, ADMIN)
        if role == TENANT_ADMIN:
            try:
                return self._tenant_admin(session, parse_address(sub))
            except ValueError:
                pass
        raise unauthorized("the token is not valid: ask for a new one")
