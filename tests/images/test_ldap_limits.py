"""The directory's service accounts list more entries than 389-ds' default limits.

psn/ldap is provisioned from the ldap role's description (conftest's psnapi_service) and 5100
users are added: more than 389-ds returns (2000) and examines (5000) per search by default; the
API's paged search (500 a page) only hits the latter. The accounts that list the whole
directory (uid=psnapi: the API, paged; uid=groupware: SOGo's address book; uid=mail: Dovecot's
user iteration) get every user, binding with the passwords the fixture gave the directory (its
secret files). A second provision run changes nothing: the limits are operational attributes,
read by name.
"""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import BASE_DN, DOMAIN, PsnapiService, PsnwebLab, ldap_role_description, run_docker

USERS = 5100  # more than nsslapd-sizelimit (2000) and nsslapd-lookthroughlimit (5000)
LDAPI = "ldapi://%2fdata%2frun%2fslapd-localhost.socket"
PEOPLE = f"ou=People,{BASE_DN}"
USER_FILTER = "(&(objectClass=inetOrgPerson)(mail=*))"  # the API's list of users


def _users_ldif() -> bytes:
    entries = []
    for i in range(USERS):
        address = f"bulk{i:04d}@{DOMAIN}"
        entries.append(
            f"dn: uid={address},{PEOPLE}\n"
            "objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\n"
            "objectClass: inetOrgPerson\nobjectClass: mailRecipient\n"
            "objectClass: psnTenantMember\n"
            f"uid: {address}\ncn: Bulk {i}\nsn: Bulk\nmail: {address}\npsnTenant: default\n"
        )
    return "\n".join(entries).encode()


@pytest.fixture(scope="module")
def ldap(psnapi_service: PsnapiService, psnweb_lab: PsnwebLab) -> str:
    """The fixture's directory (container name) with the bulk users added over LDAPI."""
    name = f"{psnweb_lab.network}-ldap"
    ldapadd = ["exec", "-i", name, "ldapadd", "-Q", "-Y", "EXTERNAL", "-H", LDAPI]
    run_docker(*ldapadd, input=_users_ldif(), timeout=600)
    return name


def _search(ldap: str, account: str, *options: str) -> tuple[int, list[str], str]:
    """(exit code, DNs found, diagnostics) of a search of the users bound as
    uid=<account>,ou=Services with the password of its secret file in the container."""
    res = run_docker(
        "exec", ldap, "ldapsearch", "-x", "-LLL", "-o", "ldif_wrap=no",
        "-H", "ldap://127.0.0.1:3389", "-D", f"uid={account},ou=Services,{BASE_DN}",
        "-y", f"/run/secrets/ldap_{account}_password", "-b", PEOPLE, "-s", "one",
        *options, USER_FILTER, "1.1",
        check=False, timeout=300,
    )  # fmt: skip
    out = res.stdout.decode(errors="replace")
    dns = [line[4:] for line in out.splitlines() if line.startswith("dn: ")]
    return res.returncode, dns, out[-300:] + res.stderr.decode(errors="replace")


def test_default_limits_are_below_the_users(ldap: str) -> None:
    """The server's own limits would cut the lists short: the accounts' limits lift them."""
    config = "cn=config,cn=ldbm database,cn=plugins,cn=config"
    for base, limit in (("cn=config", "nsslapd-sizelimit"), (config, "nsslapd-lookthroughlimit")):
        res = run_docker(
            "exec", ldap, "ldapsearch", "-Q", "-LLL", "-Y", "EXTERNAL", "-H", LDAPI,
            "-b", base, "-s", "base", limit,
        )  # fmt: skip
        [value] = [v for v in res.stdout.decode().split() if v.isdigit()]
        assert 0 < int(value) < USERS, f"{limit}: {value}"


@pytest.mark.parametrize(
    ("account", "options"),
    [
        ("psnapi", ["-E", "pr=500/noprompt"]),  # the API's page size
        ("psnapi", ["-E", "pr=3000/noprompt"]),  # a page beyond the default size limit
        ("groupware", []),
        ("mail", []),
    ],
)
def test_service_account_lists_every_user(ldap: str, account: str, options: list[str]) -> None:
    code, dns, diagnostics = _search(ldap, account, *options)
    assert code == 0, f"uid={account} search failed ({code}):\n{diagnostics}"
    # The bulk users and the default tenant's administrator.
    assert len(dns) == USERS + 1, f"uid={account} got {len(dns)} users:\n{diagnostics}"
    assert len({dn.lower() for dn in dns}) == len(dns)


def test_api_lists_every_user(ldap: str, psnapi_service: PsnapiService) -> None:
    resp = httpx.get(
        f"{psnapi_service.url}/api/v1/users",
        auth=(psnapi_service.admin_name, psnapi_service.admin_password),
        timeout=300,
    )
    assert resp.status_code == 200, resp.text[:500]
    addresses = {u["address"] for u in resp.json()}
    assert len(addresses) == USERS + 1
    assert {f"bulk0000@{DOMAIN}", f"bulk{USERS - 1:04d}@{DOMAIN}"} <= addresses


def test_second_provision_changes_nothing(ldap: str) -> None:
    description = json.dumps(ldap_role_description(BASE_DN, DOMAIN)).encode()
    res = run_docker("exec", "-i", ldap, "psn-ldap-provision", input=description)
    assert "CHANGED:" not in res.stdout.decode(), res.stdout.decode()
