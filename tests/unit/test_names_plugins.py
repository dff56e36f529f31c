"""The psn_names filters and test: the derived names have one home (psn/names.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from psn import names

ROOT = Path(__file__).resolve().parents[2]


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def filters():
    return load("plugins/filter/psn_names.py").FilterModule().filters()


def test_filters_derive_every_name_from_setup(filters):
    setup = {"external_domain": "Mail.Example.COM", "domain_module": "{service}-{domain}"}
    assert filters["psn_domain"](setup) == "mail.example.com"
    assert filters["psn_default_domain"](setup) == "example.com"
    assert filters["psn_ldap_base_dn"](setup) == "dc=mail,dc=example,dc=com"
    hosts = filters["psn_hostnames"](setup)
    assert list(hosts) == list(names.SERVICE_PREFIXES)
    assert hosts["smtp"] == "smtp-mail.example.com"
    assert hosts == names.service_hostnames("mail.example.com", "{service}-{domain}")


def test_filters_take_an_empty_setup(filters):
    assert filters["psn_domain"](None) == ""
    assert filters["psn_hostnames"]({"external_domain": "a.b"})["mail"] == "mail.a.b"


def test_hostname_test_agrees_with_validate():
    test = load("plugins/test/psn_names.py").TestModule().tests()["psn_hostname"]
    assert test("example.com") and test("mail.example.co")
    assert not test("example") and not test("-a.example.com") and not test(None)


def test_no_role_recomputes_a_derived_name():
    """Roles read psn_domain, psn_default_domain, psn_ldap_base_dn and psn_hostnames."""
    recomputed = re.compile(
        r"setup\.external_domain \| default\([^)]*\) \| lower"  # the domain
        r"|split\('\.'\)\[-2:\]"  # the default domain
        r"|replace\('\{service\}'"  # a host name
        r"|\(\\\.\[a-z0-9\]\(\[a-z0-9-\]\*"  # the domain pattern (is psn_hostname)
    )
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in [*ROOT.glob("roles/**/*.yml"), *ROOT.glob("group_vars/**/*.yml")]
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if recomputed.search(line)
    ]
    assert found == []
