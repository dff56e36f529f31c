"""Filters giving the installation's derived names from the inventory's `setup` (psn/names.py).

group_vars/all/main.yml computes psn_domain, psn_default_domain, psn_ldap_base_dn and
psn_hostnames with them once; roles read those variables and recompute nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from psn import names


def psn_domain(setup: Mapping[str, Any] | None) -> str:
    """setup.external_domain, lower-cased."""
    return names.domain(setup)


def psn_default_domain(setup: Mapping[str, Any] | None) -> str:
    """The guide's DEFAULT_DOMAIN (second-level domain): certificates/<DEFAULT_DOMAIN>/."""
    return names.default_domain(names.domain(setup))


def psn_ldap_base_dn(setup: Mapping[str, Any] | None) -> str:
    """The directory's base DN: dc=example,dc=com."""
    return names.base_dn(names.domain(setup))


def psn_hostnames(setup: Mapping[str, Any] | None) -> dict[str, str]:
    """Host name of each prefix of guide Table 7 through setup.domain_module."""
    return names.hostnames(setup)


class FilterModule:
    """psn_domain, psn_default_domain, psn_ldap_base_dn, psn_hostnames."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "psn_domain": psn_domain,
            "psn_default_domain": psn_default_domain,
            "psn_ldap_base_dn": psn_ldap_base_dn,
            "psn_hostnames": psn_hostnames,
        }
