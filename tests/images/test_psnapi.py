"""Integration tests of the PSN API (psn/psnapi) over HTTP against a real directory (psn/ldap).

The directory runs on a private Docker network and is provisioned exactly as the ldap role does
it (conftest's ldap_role_description: the role's defaults piped to psn-ldap-provision), so the
API's account uid=psnapi and its ACIs are the role's. The API container gets a config.json and
its secrets as read-only files, like Docker configs and secrets. Binds as users (disabled
accounts, reset passwords) go to the directory itself with ldapwhoami in its container.
PSN_FUZZ_EXAMPLES: examples per operation of the fuzz test (default 30).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import BASE_DN, DOMAIN, PsnapiService, run_docker
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

DEFAULT_ADMIN = f"admin@{DOMAIN}"
# Host names the conftest gives the API (config hosts).
HOSTS = {k: f"{k}.{DOMAIN}" for k in ("mail", "imap", "smtp", "autoconfig")}


def _pw(name: str) -> str:
    return f"{name}-{secrets.token_hex(6)}"


@dataclass
class Lab:
    """The running directory and API, with the passwords they were given."""

    url: str
    admin_password: str
    default_admin_password: str
    ldap: str

    def client(self, auth: Any = None) -> httpx.Client:
        auth = auth if auth is not None else ("psnapi", self.admin_password)
        return httpx.Client(base_url=f"{self.url}/api/v1", auth=auth, timeout=60)

    def binds(self, address: str, password: str) -> bool:
        """Whether a simple bind as the user succeeds (what SOGo, IMAP and SMTP do)."""
        dn = f"uid={address},ou=People,{BASE_DN}"
        res = run_docker(
            "exec", self.ldap, "ldapwhoami", "-x", "-D", dn, "-w", password, check=False
        )
        return res.returncode == 0


@pytest.fixture(scope="module")
def lab(psnapi_service: PsnapiService) -> Lab:
    svc = psnapi_service
    return Lab(svc.url, svc.admin_password, svc.tenant_admin_password, svc.ldap)


@pytest.fixture(scope="module")
def admin(lab: Lab) -> Iterator[httpx.Client]:
    with lab.client() as client:
        yield client


def _ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


def _user(address: str, **fields: Any) -> dict[str, Any]:
    name = address.split("@")[0].title()
    return {"address": address, "display_name": name, "password": f"Pw-{address}-x", **fields}


def _tenant_with_domain(admin: httpx.Client, name: str) -> str:
    domain = f"{name}.example"
    _ok(admin.post("/tenants", json={"name": name, "description": f"tenant {name}"}), 201)
    _ok(admin.post("/domains", json={"name": domain, "tenant": name}), 201)
    return domain


# --- health, description, authentication -------------------------------------------------------


def test_health_and_description(lab):
    assert httpx.get(f"{lab.url}/health").status_code == 200
    spec = httpx.get(f"{lab.url}/api/v1/openapi.json").json()
    assert {"/api/v1/users", "/api/v1/groups/{address}", "/api/v1/domains/{name}/dns"} <= set(
        spec["paths"]
    )
    # no Swagger UI or ReDoc (they would load scripts from a CDN)
    assert httpx.get(f"{lab.url}/docs").status_code == 404
    assert httpx.get(f"{lab.url}/redoc").status_code == 404


def test_authentication(lab, admin):
    anonymous = httpx.get(f"{lab.url}/api/v1/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic")
    assert isinstance(anonymous.json()["detail"], str)
    assert _ok(admin.get("/me")) == {"username": "psnapi", "role": "admin", "tenant": None}
    with lab.client(("psnapi", "wrong-password")) as wrong:
        assert wrong.get("/me").status_code == 401

    # the default tenant's administrator, by Basic and by token
    with lab.client((DEFAULT_ADMIN, lab.default_admin_password)) as tadmin:
        me = _ok(tadmin.get("/me"))
    assert me == {"username": DEFAULT_ADMIN, "role": "tenant_admin", "tenant": "default"}
    token = _ok(
        httpx.post(
            f"{lab.url}/api/v1/auth/token",
            json={"username": DEFAULT_ADMIN, "password": lab.default_admin_password},
        )
    )
    assert token["token_type"] == "bearer" and token["expires_in"] == 600
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert _ok(httpx.get(f"{lab.url}/api/v1/me", headers=bearer))["role"] == "tenant_admin"
    forged = {"Authorization": f"Bearer {token['access_token'][:-4]}AAAA"}
    assert httpx.get(f"{lab.url}/api/v1/me", headers=forged).status_code == 401
    wrong_token = httpx.post(
        f"{lab.url}/api/v1/auth/token", json={"username": DEFAULT_ADMIN, "password": "nope-nope"}
    )
    assert wrong_token.status_code == 401

    # a plain user has a valid password but administers nothing
    plain = _user(f"plain@{DOMAIN}")
    _ok(admin.post("/users", json=plain), 201)
    with lab.client((plain["address"], plain["password"])) as user:
        assert user.get("/me").status_code == 403
        assert user.get("/users").status_code == 403
    with lab.client((plain["address"], "not-her-password")) as user:
        assert user.get("/me").status_code == 401
    login = {"username": plain["address"], "password": plain["password"]}
    assert httpx.post(f"{lab.url}/api/v1/auth/token", json=login).status_code == 403


# --- tenants and domains -------------------------------------------------------------------------


def test_tenants_and_domains(admin):
    assert _ok(admin.post("/tenants", json={"name": "acme", "description": "Acme"}), 201) == {
        "name": "acme",
        "description": "Acme",
    }
    assert admin.post("/tenants", json={"name": "acme"}).status_code == 409
    bad = admin.post("/tenants", json={"name": "Not a name!"})
    assert bad.status_code == 422 and "tenant name" in bad.json()["detail"]
    assert _ok(admin.patch("/tenants/acme", json={"description": "Acme Corp"}))["description"] == (
        "Acme Corp"
    )
    assert {"default", "acme"} <= {t["name"] for t in _ok(admin.get("/tenants"))}

    domain = {"name": "acme.example", "tenant": "acme", "description": "mail of Acme"}
    assert _ok(admin.post("/domains", json=domain), 201) == domain
    assert admin.post("/domains", json=domain).status_code == 409
    assert admin.post("/domains", json={"name": "x.example", "tenant": "nobody"}).status_code == 422
    assert (
        admin.post("/domains", json={"name": "not_a_domain", "tenant": "acme"}).status_code == 422
    )
    assert _ok(admin.get("/domains", params={"tenant": "acme"})) == [domain]
    assert _ok(admin.get("/domains/ACME.example"))["tenant"] == "acme"

    # a tenant with domains stays; so does the default tenant
    assert "acme.example" in _ok(admin.delete("/tenants/acme"), 409)["detail"]
    assert admin.delete("/tenants/default").status_code == 409
    _ok(admin.delete("/domains/acme.example"), 204)
    assert admin.get("/domains/acme.example").status_code == 404
    _ok(admin.delete("/tenants/acme"), 204)
    assert admin.get("/tenants/acme").status_code == 404


def test_domain_with_users_is_kept(admin):
    domain = _tenant_with_domain(admin, "keep")
    _ok(admin.post("/users", json=_user(f"ann@{domain}")), 201)
    detail = _ok(admin.delete(f"/domains/{domain}"), 409)["detail"]
    assert f"ann@{domain}" in detail
    _ok(admin.delete(f"/users/ann@{domain}"), 204)
    _ok(admin.delete(f"/domains/{domain}"), 204)


def test_dns_records(admin):
    own = {(r["name"], r["type"]): r for r in _ok(admin.get(f"/domains/{DOMAIN}/dns"))}
    assert own[(f"{DOMAIN}.", "MX")]["data"] == f"10 {HOSTS['smtp']}."
    assert own[(f"_imaps._tcp.{DOMAIN}.", "SRV")]["data"] == f"0 1 993 {HOSTS['imap']}."
    assert own[(f"_submission._tcp.{DOMAIN}.", "SRV")]["data"] == f"0 1 587 {HOSTS['smtp']}."
    assert own[(f"_caldavs._tcp.{DOMAIN}.", "SRV")]["data"] == f"0 1 443 {HOSTS['mail']}."
    dkim = own[(f"psn._domainkey.{DOMAIN}.", "TXT")]["data"]
    assert dkim.startswith('"v=DKIM1; k=rsa; p=AAA') and '" "' in dkim  # split at 255
    assert (f"autoconfig.{DOMAIN}.", "CNAME") not in own  # the installation's name has an A record

    domain = _tenant_with_domain(admin, "dns")
    other = {(r["name"], r["type"]): r for r in _ok(admin.get(f"/domains/{domain}/dns"))}
    assert other[(f"autoconfig.{domain}.", "CNAME")]["data"] == f"{HOSTS['autoconfig']}."
    assert other[(f"{domain}.", "TXT")]["data"] == '"v=spf1 mx -all"'
    assert other[(f"_dmarc.{domain}.", "TXT")]["data"].startswith('"v=DMARC1;')
    assert "-t mail,backend" in other[(f"psn._domainkey.{domain}.", "TXT")]["comment"]
    assert admin.get("/domains/nothing.example/dns").status_code == 404


# --- users and groups ----------------------------------------------------------------------------


def test_users(lab, admin):
    bob = _user(f"Bob@{DOMAIN}", quota="2G", aliases=[f"robert@{DOMAIN}"], given_name="Bob")
    created = _ok(admin.post("/users", json=bob), 201)
    assert created == {
        "address": f"bob@{DOMAIN}",
        "display_name": "Bob",
        "given_name": "Bob",
        "surname": None,
        "quota": 2 * 1024**3,
        "aliases": [f"robert@{DOMAIN}"],
        "enabled": True,
        "tenant_admin": False,
        "tenant": "default",
        "domain": DOMAIN,
        "groups": [],
    }
    assert "password" not in json.dumps(created)
    assert lab.binds(f"bob@{DOMAIN}", bob["password"])
    assert _ok(admin.get(f"/users/BOB@{DOMAIN}"))["address"] == f"bob@{DOMAIN}"
    assert [u["address"] for u in _ok(admin.get("/users", params={"q": "robert"}))] == [
        f"bob@{DOMAIN}"
    ]
    listed = {u["address"] for u in _ok(admin.get("/users", params={"domain": DOMAIN}))}
    assert {DEFAULT_ADMIN, f"bob@{DOMAIN}"} <= listed

    # every address is used once in the whole directory, aliases included
    assert admin.post("/users", json=_user(f"bob@{DOMAIN}")).status_code == 409
    assert "robert@" in _ok(admin.post("/users", json=_user(f"robert@{DOMAIN}")), 409)["detail"]
    clash = _user(f"carol@{DOMAIN}", aliases=[f"robert@{DOMAIN}"])
    assert admin.post("/users", json=clash).status_code == 409
    _ok(admin.post("/groups", json={"address": f"team@{DOMAIN}", "name": "Team"}), 201)
    assert admin.patch(
        f"/users/bob@{DOMAIN}", json={"aliases": [f"team@{DOMAIN}"]}
    ).status_code == (409)

    # bad input is refused with a message naming it
    bad_quota = _ok(admin.post("/users", json=_user(f"dan@{DOMAIN}", quota="7 parsecs")), 422)
    assert "7 parsecs" in bad_quota["detail"] and "500M" in bad_quota["detail"]
    assert admin.post("/users", json=_user(f"dan@{DOMAIN}", quota=-1)).status_code == 422
    assert admin.post("/users", json=_user("not-an-address")).status_code == 422
    short = _user(f"dan@{DOMAIN}", password="short")
    assert "8 to 128" in _ok(admin.post("/users", json=short), 422)["detail"]
    foreign = _user(f"dan@{DOMAIN}", aliases=["dan@elsewhere.example"])
    assert admin.post("/users", json=foreign).status_code == 422
    assert admin.post("/users", json=_user("dan@unknown.example")).status_code == 422
    assert admin.patch(f"/users/bob@{DOMAIN}", json={"display_name": None}).status_code == 422

    changed = _ok(
        admin.patch(
            f"/users/bob@{DOMAIN}",
            json={"display_name": "Robert Smith", "surname": "Smith", "quota": 0, "aliases": []},
        )
    )
    assert (changed["display_name"], changed["surname"], changed["quota"]) == (
        "Robert Smith",
        "Smith",
        0,
    )
    assert changed["aliases"] == [] and changed["given_name"] == "Bob"
    _ok(admin.delete(f"/users/bob@{DOMAIN}"), 204)
    assert admin.get(f"/users/bob@{DOMAIN}").status_code == 404
    assert admin.delete(f"/users/bob@{DOMAIN}").status_code == 404
    _ok(admin.delete(f"/groups/team@{DOMAIN}"), 204)


def test_groups(admin):
    for name in ("erin", "frank"):
        _ok(admin.post("/users", json=_user(f"{name}@{DOMAIN}")), 201)
    group = {
        "address": f"sales@{DOMAIN}",
        "name": "Sales",
        "description": "the sales team",
        "members": [f"erin@{DOMAIN}", f"FRANK@{DOMAIN}"],
        "aliases": [f"vente@{DOMAIN}"],
    }
    created = _ok(admin.post("/groups", json=group), 201)
    assert created["members"] == [f"erin@{DOMAIN}", f"frank@{DOMAIN}"]
    assert (created["tenant"], created["domain"]) == ("default", DOMAIN)
    assert admin.post("/groups", json=group).status_code == 409
    assert admin.post("/users", json=_user(f"vente@{DOMAIN}")).status_code == 409
    assert _ok(admin.get(f"/users/erin@{DOMAIN}"))["groups"] == [f"sales@{DOMAIN}"]
    assert [g["address"] for g in _ok(admin.get("/groups", params={"q": "sales"}))] == [
        f"sales@{DOMAIN}"
    ]

    # members are users of the group's tenant
    domain = _tenant_with_domain(admin, "grp")
    _ok(admin.post("/users", json=_user(f"gil@{domain}")), 201)
    outsider = admin.patch(f"/groups/sales@{DOMAIN}", json={"members": [f"gil@{domain}"]})
    assert outsider.status_code == 422 and f"gil@{domain}" in outsider.json()["detail"]
    assert admin.patch(
        f"/groups/sales@{DOMAIN}", json={"members": ["nobody@psn.test"]}
    ).status_code == (422)
    patched = _ok(
        admin.patch(f"/groups/sales@{DOMAIN}", json={"description": None, "name": "Sale"})
    )
    assert (patched["description"], patched["name"]) == (None, "Sale")

    # deleting a user takes it out of its groups
    _ok(admin.delete(f"/users/frank@{DOMAIN}"), 204)
    assert _ok(admin.get(f"/groups/sales@{DOMAIN}"))["members"] == [f"erin@{DOMAIN}"]
    _ok(admin.delete(f"/groups/sales@{DOMAIN}"), 204)
    assert admin.get(f"/groups/sales@{DOMAIN}").status_code == 404
    assert _ok(admin.get(f"/users/erin@{DOMAIN}"))["groups"] == []


def test_tenant_admin_sees_only_its_tenant(lab, admin):
    domain = _tenant_with_domain(admin, "beta")
    boss = _user(f"boss@{domain}", tenant_admin=True)
    _ok(admin.post("/users", json=boss), 201)
    _ok(admin.post("/users", json=_user(f"hank@{DOMAIN}")), 201)
    _ok(admin.post("/groups", json={"address": f"ops@{DOMAIN}", "name": "Ops"}), 201)
    with lab.client((boss["address"], boss["password"])) as tadmin:
        assert _ok(tadmin.get("/me"))["tenant"] == "beta"
        assert [t["name"] for t in _ok(tadmin.get("/tenants"))] == ["beta"]
        assert [d["name"] for d in _ok(tadmin.get("/domains"))] == [domain]
        assert _ok(tadmin.get(f"/domains/{domain}/dns"))
        assert {u["tenant"] for u in _ok(tadmin.get("/users"))} == {"beta"}
        assert _ok(tadmin.get("/groups")) == []
        # others' objects: 403, not 404
        for path in (f"/users/hank@{DOMAIN}", f"/groups/ops@{DOMAIN}", "/tenants/default",
                     f"/domains/{DOMAIN}", f"/domains/{DOMAIN}/dns"):  # fmt: skip
            assert tadmin.get(path).status_code == 403, path
        assert tadmin.patch(f"/users/hank@{DOMAIN}", json={"quota": 1}).status_code == 403
        assert tadmin.delete(f"/users/hank@{DOMAIN}").status_code == 403
        assert tadmin.delete(f"/groups/ops@{DOMAIN}").status_code == 403
        assert tadmin.get("/users", params={"tenant": "default"}).status_code == 403
        assert tadmin.post("/users", json=_user(f"ivy@{DOMAIN}")).status_code == 403
        # tenants and domains are the global administrator's
        assert tadmin.post("/tenants", json={"name": "mine"}).status_code == 403
        assert tadmin.post(
            "/domains", json={"name": "m.example", "tenant": "beta"}
        ).status_code == (403)
        assert tadmin.delete(f"/domains/{domain}").status_code == 403
        # its own tenant's users and groups are its to manage
        ivy = _ok(tadmin.post("/users", json=_user(f"ivy@{domain}", tenant_admin=True)), 201)
        assert ivy["tenant_admin"] is True
        group = {"address": f"all@{domain}", "name": "All", "members": [ivy["address"]]}
        _ok(tadmin.post("/groups", json=group), 201)
        _ok(tadmin.delete(f"/groups/all@{domain}"), 204)
        _ok(tadmin.delete(f"/users/ivy@{domain}"), 204)
    assert _ok(admin.get(f"/users/hank@{DOMAIN}"))["quota"] == 0


def test_disable_and_reset_password(lab, admin):
    domain = _tenant_with_domain(admin, "gamma")
    jill = _user(f"jill@{domain}", tenant_admin=True)
    _ok(admin.post("/users", json=jill), 201)
    token = _ok(
        httpx.post(
            f"{lab.url}/api/v1/auth/token",
            json={"username": jill["address"], "password": jill["password"]},
        )
    )["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert _ok(httpx.get(f"{lab.url}/api/v1/me", headers=bearer))["tenant"] == "gamma"
    assert lab.binds(jill["address"], jill["password"])

    # disabled: the directory refuses its binds (mail and web logins stop), its token stops too
    assert (
        _ok(admin.patch(f"/users/{jill['address']}", json={"enabled": False}))["enabled"] is False
    )
    assert not lab.binds(jill["address"], jill["password"])
    assert httpx.get(f"{lab.url}/api/v1/me", headers=bearer).status_code == 401
    disabled = _ok(admin.get("/users", params={"tenant": "gamma", "enabled": False}))
    assert [u["address"] for u in disabled] == [jill["address"]]
    _ok(admin.patch(f"/users/{jill['address']}", json={"enabled": True}))
    assert lab.binds(jill["address"], jill["password"])

    # no longer an administrator: the token is refused
    _ok(admin.patch(f"/users/{jill['address']}", json={"tenant_admin": False}))
    assert httpx.get(f"{lab.url}/api/v1/me", headers=bearer).status_code == 403

    # a reset password binds, the old one does not
    new = "Brand-new-pässword-1"
    _ok(admin.patch(f"/users/{jill['address']}", json={"password": new}))
    assert lab.binds(jill["address"], new)
    assert not lab.binds(jill["address"], jill["password"])
    hashed = admin.patch(f"/users/{jill['address']}", json={"password": "{SSHA}abcdefgh"})
    assert hashed.status_code == 422


# --- fuzzing from the OpenAPI description --------------------------------------------------------

FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_fuzz_from_openapi(lab):
    """Requests generated from the API's own description, as the global administrator: no
    server error, and every answer (status, content type, body) as the description says.
    Schemathesis' pytest plugin (from_fixture) does not run on pytest 9: each operation gets a
    Hypothesis test of its own here, PSN_FUZZ_EXAMPLES examples each."""
    schema = schemathesis.openapi.from_url(f"{lab.url}/api/v1/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=int(os.environ.get("PSN_FUZZ_EXAMPLES", "30")),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=lab.url,
                auth=("psnapi", lab.admin_password),
                timeout=60,
                checks=FUZZ_CHECKS,
            )

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # the example, as Hypothesis reports it
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_directory_intact_after_fuzzing(lab):
    """Runs last: the default administrator still logs in."""
    assert lab.binds(DEFAULT_ADMIN, lab.default_admin_password)
