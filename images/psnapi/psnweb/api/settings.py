"""The API's settings: config.json (see the README of psnweb.api's create_app) and its secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psnweb.config import ConfigError, secret


@dataclass(frozen=True)
class Settings:
    """What the API needs, secrets read once at start (a changed secret restarts the service)."""

    ldap_uri: str
    base_dn: str
    bind_dn: str
    bind_password: str
    admin_name: str
    admin_password: str
    token_key: str
    token_ttl: int
    default_tenant: str
    external_domain: str
    hosts: dict[str, str]
    mx: str
    dkim_selector: str
    dkim: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        """Settings from the parsed config.json; ConfigError names a missing value."""
        ldap, admin = config.get("ldap", {}), config.get("admin", {})
        token, dns = config.get("token", {}), config.get("dns", {})
        base_dn = ldap.get("base_dn")
        if not base_dn:
            raise ConfigError("ldap.base_dn is missing in the configuration")
        hosts = {k: str(v) for k, v in config.get("hosts", {}).items()}
        missing = [k for k in ("mail", "imap", "smtp", "autoconfig") if not hosts.get(k)]
        if missing:
            raise ConfigError(f"hosts.{', hosts.'.join(missing)} missing in the configuration")
        try:
            ttl = int(token.get("ttl", 3600))
        except (TypeError, ValueError):
            raise ConfigError(f"token.ttl must be seconds, not {token.get('ttl')!r}") from None
        return cls(
            ldap_uri=ldap.get("uri", "ldap://ldap:3389"),
            base_dn=base_dn,
            bind_dn=ldap.get("bind_dn", f"uid=psnapi,ou=Services,{base_dn}"),
            bind_password=secret(ldap.get("password_secret", "ldap_psnapi_password")),
            admin_name=admin.get("name", "psnapi"),
            admin_password=secret(admin.get("password_secret", "psnapi_admin_password")),
            token_key=secret(token.get("key_secret", "psnapi_jwt_key")),
            token_ttl=ttl,
            default_tenant=config.get("default_tenant", "default"),
            external_domain=str(config.get("external_domain", "")).lower(),
            hosts=hosts,
            mx=dns.get("mx") or hosts["smtp"],
            dkim_selector=dns.get("dkim_selector", "psn"),
            dkim={str(k).lower(): str(v) for k, v in (dns.get("dkim") or {}).items()},
        )
