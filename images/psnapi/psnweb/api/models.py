"""Request and response bodies of the API (pydantic 1.10) and the checks of their values."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, Extra, Field, root_validator, validator

TENANT_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
# Local parts without "+" (Postfix's recipient delimiter) or characters that need escaping in a DN
# or a filter.
ADDRESS_RE = re.compile(rf"([a-z0-9_](?:[a-z0-9._-]{{0,62}}[a-z0-9_-])?)@({DOMAIN_RE.pattern})")
QUOTA_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:([KMGT])(I?)(B?)|(B?))", re.IGNORECASE)
QUOTA_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
QUOTA_MAX = 2**63 - 1
QUOTA_FORMS = (
    "give bytes as an integer, or a string like 500M, 10GiB or 1T (binary units: 1K = 1024 bytes); "
    "0 means unlimited"
)
# A value the directory would take as an already hashed password instead of hashing it.
HASHED_RE = re.compile(r"\{[A-Za-z0-9_-]+\}")
TEXT_MAX = 256
# pydantic 1 does not mark optional fields nullable in the OpenAPI description: `nullable=True`
# does, where null is a value (in a PATCH, null removes the attribute).
NULL_DOC = "null removes it"
MAX_ADDRESSES = 1000


def parse_tenant(value: str) -> str:
    """A tenant name, lower-cased; ValueError when it has other characters."""
    name = value.strip().lower()
    if not TENANT_RE.fullmatch(name):
        raise ValueError(
            f"tenant name {value!r} is not valid: 1 to 63 of a-z, 0-9, '-' and '_', "
            "starting with a letter or digit"
        )
    return name


def parse_domain(value: str) -> str:
    """A domain name, lower-cased; ValueError when it is not one."""
    name = value.strip().lower().rstrip(".")
    if len(name) > 253 or not DOMAIN_RE.fullmatch(name):
        raise ValueError(f"{value!r} is not a domain name like example.com")
    return name


def parse_address(value: str) -> str:
    """A mail address, lower-cased; ValueError when it is not one."""
    addr = value.strip().lower()
    match = ADDRESS_RE.fullmatch(addr)
    if len(addr) > 254 or not match or ".." in match.group(1):
        raise ValueError(
            f"{value!r} is not a mail address like jane.doe@example.com (local part: a-z, 0-9, "
            "'.', '_', '-')"
        )
    return addr


def parse_addresses(values: list[str]) -> list[str]:
    """Addresses, lower-cased, each once, in the given order."""
    if len(values) > MAX_ADDRESSES:
        raise ValueError(f"at most {MAX_ADDRESSES} addresses")
    return list(dict.fromkeys(parse_address(v) for v in values))


def text(value: str, what: str = "the value") -> str:
    """A one-line text without control characters, trimmed."""
    cleaned = value.strip()
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in cleaned):
        raise ValueError(f"{what} must not contain control characters")
    return cleaned


def parse_text(value: str | None) -> str | None:
    """`text` as a pydantic validator of an optional field (null: removed)."""
    return None if value is None else text(value)


def parse_quota(value: Any) -> int:
    """Bytes from an integer or a string like 10G, 500MiB, 1TB; 0: unlimited."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"quota {value!r} is not valid: {QUOTA_FORMS}")
    if isinstance(value, int):
        number = Decimal(value)
    else:
        match = QUOTA_RE.fullmatch(value.strip())
        if not match or (match.group(2) is None and "." in match.group(1)):
            raise ValueError(f"quota {value!r} is not valid: {QUOTA_FORMS}")
        try:
            number = Decimal(match.group(1)) * 1024 ** QUOTA_UNITS[(match.group(2) or "").upper()]
        except InvalidOperation:
            raise ValueError(f"quota {value!r} is not valid: {QUOTA_FORMS}") from None
    if number < 0 or number > QUOTA_MAX:
        raise ValueError(f"quota {value!r} is out of range: 0 to {QUOTA_MAX} bytes")
    return int(number)


def parse_password(value: str) -> str:
    """A new password: 8 to 128 characters, no control characters, not a hash."""
    if not 8 <= len(value) <= 128:
        raise ValueError("the password must have 8 to 128 characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise ValueError("the password must not contain control characters")
    if HASHED_RE.match(value):
        raise ValueError("the password must not start with {SCHEME} (the directory's hash prefix)")
    return value


class Body(BaseModel):
    """An input body: unknown fields are refused, so that a typo does not pass silently."""

    class Config:
        extra = Extra.forbid


def _not_null(values: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    nulls = [name for name in fields if name in values and values[name] is None]
    if nulls:
        raise ValueError(f"{', '.join(nulls)} cannot be null")
    return values


# --- principals and tokens ------------------------------------------------------------------


class TokenIn(Body):
    username: str = Field(..., max_length=TEXT_MAX)
    password: str = Field(..., max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class MeOut(BaseModel):
    username: str
    role: str = Field(..., description="admin or tenant_admin")
    tenant: str | None = Field(
        None, nullable=True, description="the tenant of a tenant administrator"
    )


class ErrorOut(BaseModel):
    detail: str


# --- tenants --------------------------------------------------------------------------------


class TenantIn(Body):
    name: str = Field(..., max_length=63, description="a-z, 0-9, '-', '_'")
    description: str = Field("", max_length=1024)

    _name = validator("name", allow_reuse=True)(parse_tenant)
    _description = validator("description", allow_reuse=True)(parse_text)


class TenantPatch(Body):
    description: str | None = Field(None, max_length=1024)

    _description = validator("description", allow_reuse=True)(parse_text)


class TenantOut(BaseModel):
    name: str
    description: str


# --- domains --------------------------------------------------------------------------------


class DomainIn(Body):
    name: str = Field(..., max_length=253)
    tenant: str = Field(..., max_length=63)
    description: str = Field("", max_length=1024)

    _name = validator("name", allow_reuse=True)(parse_domain)
    _tenant = validator("tenant", allow_reuse=True)(parse_tenant)
    _description = validator("description", allow_reuse=True)(parse_text)


class DomainPatch(Body):
    description: str | None = Field(None, max_length=1024)

    _description = validator("description", allow_reuse=True)(parse_text)


class DomainOut(BaseModel):
    name: str
    tenant: str
    description: str


class DnsRecordOut(BaseModel):
    name: str
    type: str
    data: str
    comment: str


# --- users ----------------------------------------------------------------------------------

Quota = int | str
QUOTA_DOC = "bytes, or a string like 500M, 10GiB, 1T (binary units); 0: unlimited"


class UserPatch(Body):
    display_name: str | None = Field(None, max_length=TEXT_MAX)
    password: str | None = Field(None, description="a new password (8 to 128 characters)")
    quota: Quota | None = Field(None, description=QUOTA_DOC)
    aliases: list[str] | None = None
    enabled: bool | None = None
    tenant_admin: bool | None = None
    given_name: str | None = Field(None, max_length=TEXT_MAX, nullable=True, description=NULL_DOC)
    surname: str | None = Field(None, max_length=TEXT_MAX, nullable=True, description=NULL_DOC)

    @root_validator(pre=True)
    def _nulls(cls, values: dict[str, Any]) -> dict[str, Any]:
        fields = ("display_name", "password", "quota", "aliases", "enabled", "tenant_admin")
        return _not_null(values, fields)

    _quota = validator("quota", pre=True, allow_reuse=True)(parse_quota)
    _password = validator("password", allow_reuse=True)(parse_password)
    _aliases = validator("aliases", allow_reuse=True)(parse_addresses)
    _texts = validator("given_name", "surname", allow_reuse=True)(parse_text)

    @validator("display_name")
    def _display_name(cls, value: str) -> str:
        value = text(value, "the display name")
        if not value:
            raise ValueError("the display name must not be empty")
        return value


class UserIn(UserPatch):
    address: str = Field(..., max_length=254)
    display_name: str = Field(..., max_length=TEXT_MAX)
    password: str = Field(..., description="8 to 128 characters")
    quota: Quota = Field(0, description=QUOTA_DOC)
    aliases: list[str] = []
    enabled: bool = True
    tenant_admin: bool = False

    _address = validator("address", allow_reuse=True)(parse_address)


class UserOut(BaseModel):
    address: str
    display_name: str
    given_name: str | None = Field(..., nullable=True)
    surname: str | None = Field(..., nullable=True)
    quota: int
    aliases: list[str]
    enabled: bool
    tenant_admin: bool
    tenant: str
    domain: str
    groups: list[str]


# --- groups ---------------------------------------------------------------------------------


class GroupPatch(Body):
    name: str | None = Field(None, max_length=TEXT_MAX)
    description: str | None = Field(None, max_length=1024, nullable=True, description=NULL_DOC)
    members: list[str] | None = Field(None, description="addresses of users of the tenant")
    aliases: list[str] | None = None

    @root_validator(pre=True)
    def _nulls(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _not_null(values, ("name", "members", "aliases"))

    _description = validator("description", allow_reuse=True)(parse_text)
    _addresses = validator("members", "aliases", allow_reuse=True)(parse_addresses)

    @validator("name")
    def _name(cls, value: str) -> str:
        value = text(value, "the name")
        if not value:
            raise ValueError("the name must not be empty")
        return value


class GroupIn(GroupPatch):
    address: str = Field(..., max_length=254)
    name: str = Field(..., max_length=TEXT_MAX)
    members: list[str] = []
    aliases: list[str] = []

    _address = validator("address", allow_reuse=True)(parse_address)


class GroupOut(BaseModel):
    address: str
    name: str
    description: str | None = Field(..., nullable=True)
    members: list[str]
    aliases: list[str]
    tenant: str
    domain: str
