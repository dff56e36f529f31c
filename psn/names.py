"""Host names of an installation: the guide's prefixes expanded through `domain_module`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Guide §4.2.6, Table 7: every prefix that must resolve to the proxy host.
SERVICE_PREFIXES = ("admin", "autoconfig", "cab", "imap", "mail", "psnapi", "smtp", "pbn")
# Prefixes of Table 7 that this release serves nothing on (the proxy answers them with its 404
# page): the certificate still covers them, the DNS records leave them out. The proxy role's
# routes must agree (tests/unit/test_dns.py).
UNSERVED_PREFIXES = ("cab", "pbn")

# setup.domain_module when the inventory gives none (guide §4.2.3).
DEFAULT_DOMAIN_MODULE = "{service}.{domain}"

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def is_valid_hostname(name: str) -> bool:
    """True for a fully qualified DNS host name (LDH labels, at least two, ≤ 253 chars)."""
    labels = name.lower().split(".")
    return (
        len(name) <= 253
        and len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()
    )


def service_hostname(prefix: str, external_domain: str, domain_module: str) -> str:
    """`domain_module` with `{service}` and `{domain}` filled in, e.g. `mail.example.com`."""
    return domain_module.replace("{service}", prefix).replace("{domain}", external_domain).lower()


def service_hostnames(external_domain: str, domain_module: str) -> dict[str, str]:
    """Every prefix of Table 7 mapped to its host name."""
    return {p: service_hostname(p, external_domain, domain_module) for p in SERVICE_PREFIXES}


def domain(setup: Mapping[str, Any] | None) -> str:
    """The installation's domain: `setup.external_domain`, lower-cased ('' when unset)."""
    return str((setup or {}).get("external_domain") or "").lower()


def base_dn(external_domain: str) -> str:
    """The directory's base DN (guide §6.1): example.com → dc=example,dc=com."""
    return ",".join(f"dc={label}" for label in external_domain.lower().split("."))


def hostnames(setup: Mapping[str, Any] | None) -> dict[str, str]:
    """`service_hostnames` of the inventory's `setup` (domain_module defaults to the guide's)."""
    module = str((setup or {}).get("domain_module") or DEFAULT_DOMAIN_MODULE)
    return service_hostnames(domain(setup), module)


def default_domain(external_domain: str) -> str:
    """The guide's `DEFAULT_DOMAIN`: the second-level domain of the installation (§4.2.4)."""
    return ".".join(external_domain.lower().split(".")[-2:])


def certificate_names(external_domain: str, domain_module: str) -> list[str]:
    """Names the server certificate must cover: every service host plus the bare domain.

    The bare domain is the target of the guide's `_carddavs._tcp` SRV record (Table 8).
    """
    names = [external_domain.lower(), *service_hostnames(external_domain, domain_module).values()]
    return list(dict.fromkeys(names))
