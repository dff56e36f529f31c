"""`deploy_psn validate` on a corpus of broken inventories: one rule each, exit code 2, the key
path and a readable message; plus what must pass."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from psn.cli import run
from psn.genpwd import fill_secrets
from psn.inventory import load_inventory, yaml_round_trip
from psn.topology import HOST_COUNTS

D = "all/children/db/children"
ETCD_HOST = f"{D}/etcd/hosts/host.example.com"
PG_HOST = f"{D}/postgres/hosts/host.example.com"
V = "all/vars"
ROOT = Path(__file__).resolve().parents[2]
NULL = object()  # sets a key to YAML null; None deletes the key
INT = f"{V}/integrations"
CATALOG_ON = {
    f"{INT}/catalog/enabled": "True",
    f"{INT}/catalog/host": "dc1.corp.example.com",
    f"{INT}/catalog/login_dn": "cn=psn,ou=Service,dc=corp,dc=example,dc=com",
    f"{INT}/catalog/password": "Secret123",
    f"{INT}/catalog/mail/mail_base_dn": "ou=People,dc=corp,dc=example,dc=com",
    f"{INT}/catalog/cab/users_base_dn": "ou=People,dc=corp,dc=example,dc=com",
}
MOBILE_ON = {
    f"{V}/notifications/mobile/enabled": "True",
    **{
        f"{V}/notifications/mobile/{os}/{k}": "x1"
        for os in ("ios", "android")
        for k in ("api_key", "app_id", "messaging_sender_id", "project_id")
    },
}


@dataclass
class Case:
    """A broken inventory: values to set (`None` deletes), raw text edits, what must be reported."""

    id: str
    path: str  # dotted key path expected in the report
    message: str  # fragment of the message or fix
    set: dict[str, Any] = field(default_factory=dict)
    text: tuple[tuple[str, str], ...] = ()


CORPUS = [
    # --- groups and hosts
    Case(
        "group-missing",
        "all.children.db.children.etcd",
        "required group `etcd`",
        {f"{D}/etcd": None},
    ),
    Case(
        "top-group-missing",
        "all.children.mail",
        "required group `mail`",
        {"all/children/mail": None},
    ),
    Case(
        "group-without-hosts",
        "all.children.frontend.children.proxy.hosts",
        "has no hosts",
        {"all/children/frontend/children/proxy/hosts": NULL},
    ),
    Case(
        "group-hosts-key-missing",
        "all.children.backend.hosts",
        "required key `hosts`",
        {"all/children/backend/hosts": None},
    ),
    Case(
        "group-misplaced",
        "all.children.proxy",
        "belongs under `all.children.frontend.children`",
        {"all/children/proxy": {"hosts": {"host.example.com": None}}},
    ),
    Case(
        "group-typo",
        "all.children.bakend",
        "did you mean `backend`",
        {"all/children/bakend": {"hosts": None}},
    ),
    Case(
        "registry-two-hosts",
        "all.children.infra.children.docker_registry.hosts",
        "group `docker_registry` has 2 hosts; allowed: 1",
        {"all/children/infra/children/docker_registry/hosts/host2.example.com": NULL},
    ),
    Case(
        "ldap-three-hosts",
        "all.children.db.children.ldap.hosts",
        "group `ldap` has 3 hosts; allowed: 1 or 2",
        {f"{D}/ldap/hosts/h2.example.com": NULL, f"{D}/ldap/hosts/h3.example.com": NULL},
    ),
    Case(
        "etcd-two-hosts",
        "all.children.db.children.etcd.hosts",
        "group `etcd` has 2 hosts; allowed: 1",
        {f"{D}/etcd/hosts/h2.example.com": NULL},
    ),
    Case(
        "hosts-as-scalar",
        "all.children.mail.hosts",
        "host.example.com:",
        text=(
            (
                "    mail:\n      hosts:\n        host.example.com:\n",
                "    mail:\n      hosts:\n        host.example.com\n",
            ),
        ),
    ),
    Case(
        "bad-host-name",
        "all.children.mail.hosts",
        "not a valid host name",
        {"all/children/mail/hosts/bad host!": NULL},
    ),
    Case(
        "volume-var-as-host",
        "all.children.db.children.etcd.hosts.volume_device_etcd",
        "indent it under the host",
        text=(
            (
                '              volume_device_etcd: "False"\n              volume_device_etcd_path',
                '            volume_device_etcd: "False"\n            volume_device_etcd_path',
            ),
        ),
    ),
    Case(
        "volume-true-no-path",
        f"{ETCD_HOST.replace('/', '.')}.volume_device_etcd_path",
        "is not set",
        {f"{ETCD_HOST}/volume_device_etcd": "True", f"{ETCD_HOST}/volume_device_etcd_path": ""},
    ),
    Case(
        "volume-placeholder-path",
        f"{PG_HOST.replace('/', '.')}.volume_device_postgres_path",
        "not a device path",
        {f"{PG_HOST}/volume_device_postgres": "True"},
    ),
    Case(
        "volume-shared-device",
        f"{PG_HOST.replace('/', '.')}.volume_device_postgres_path",
        "already used by etcd",
        {
            f"{ETCD_HOST}/volume_device_etcd": "True",
            f"{ETCD_HOST}/volume_device_etcd_path": "/dev/sdb",
            f"{PG_HOST}/volume_device_postgres": "True",
            f"{PG_HOST}/volume_device_postgres_path": "/dev/sdb",
        },
    ),
    Case(
        "volume-var-wrong-role",
        f"{ETCD_HOST.replace('/', '.')}.volume_device_postgres",
        "belongs to etcd hosts",
        {f"{ETCD_HOST}/volume_device_postgres": "True"},
    ),
    Case(
        "hostvar-typo",
        "all.children.mail.hosts.host.example.com.ansibel_host",
        "did you mean `ansible_host`",
        {"all/children/mail/hosts/host.example.com": {"ansibel_host": "10.0.0.5"}},
    ),
    Case(
        "volume-flag-bad",
        f"{ETCD_HOST.replace('/', '.')}.volume_device_etcd",
        'write "True" or "False"',
        {f"{ETCD_HOST}/volume_device_etcd": "maybe"},
    ),
    # --- passwords and keys
    Case(
        "password-empty",
        "all.vars.passwords.redis_user",
        "deploy_psn genpwd",
        {f"{V}/passwords/redis_user": ""},
    ),
    Case(
        "password-null",
        "all.vars.passwords.master_user",
        "deploy_psn genpwd",
        {f"{V}/passwords/master_user": NULL},
    ),
    Case(
        "password-dollar",
        "all.vars.passwords.postgres_db_user",
        "contains `$`",
        {f"{V}/passwords/postgres_db_user": "abc$def12345"},
    ),
    Case(
        "password-charset",
        "all.vars.passwords.ds389_manager_user",
        "outside the allowed set",
        {f"{V}/passwords/ds389_manager_user": "abc#def12345"},
    ),
    Case(
        "password-typo",
        "all.vars.passwords.redis_usr",
        "did you mean `redis_user`",
        {f"{V}/passwords/redis_usr": "x"},
    ),
    Case(
        "secure-dollar",
        "all.vars.secure.db_secret_key",
        "contains `$`",
        {f"{V}/secure/db_secret_key": "a$" * 10},
    ),
    Case(
        "jwt-short",
        "all.vars.secure.auth_jwt_key",
        "at least 16",
        {f"{V}/secure/auth_jwt_key": "short1234"},
    ),
    Case(
        "mon-hash-mismatch",
        "all.vars.passwords.mon_user_hash",
        "does not match",
        {f"{V}/passwords/mon_user_hash": "$apr1$abcdefgh$0123456789012345678901"},
    ),
    Case(
        "mon-hash-format",
        "all.vars.passwords.mon_user_hash",
        "not an apr1 hash",
        {f"{V}/passwords/mon_user_hash": "plaintext"},
    ),
    Case(
        "salt-charset",
        "all.vars.setup.autoconfig_auth_salt",
        "letters and digits",
        {f"{V}/setup/autoconfig_auth_salt": "abc!def"},
    ),
    # --- setup
    Case(
        "domain-invalid",
        "all.vars.setup.external_domain",
        "not a valid domain name",
        {f"{V}/setup/external_domain": "exa mple.com"},
    ),
    Case(
        "domain-with-scheme",
        "all.vars.setup.external_domain",
        "no scheme",
        {f"{V}/setup/external_domain": "https://example.com"},
    ),
    Case(
        "domain-empty",
        "all.vars.setup.external_domain",
        "empty",
        {f"{V}/setup/external_domain": ""},
    ),
    Case(
        "module-no-service",
        "all.vars.setup.domain_module",
        "{service} and {domain}",
        {f"{V}/setup/domain_module": "mail.{domain}"},
    ),
    Case(
        "module-stray-placeholder",
        "all.vars.setup.domain_module",
        "nothing else in braces",
        {f"{V}/setup/domain_module": "{service}.{zone}.{domain}"},
    ),
    Case(
        "module-invalid-names",
        "all.vars.setup.domain_module",
        "invalid host names",
        {f"{V}/setup/domain_module": "{service}_{domain}"},
    ),
    Case(
        "language-unknown",
        "all.vars.setup.default_instance_language",
        "Bashkir",
        {f"{V}/setup/default_instance_language": "German"},
    ),
    Case(
        "dev-mode-bad", "all.vars.dev_mode", 'write "True" or "False"', {f"{V}/dev_mode": "maybe"}
    ),
    Case(
        "dev-mode-missing", "all.vars.dev_mode", "required key `dev_mode`", {f"{V}/dev_mode": None}
    ),
    Case("var-typo", "all.vars.dev_mod", "did you mean `dev_mode`", {f"{V}/dev_mod": "False"}),
    Case("setup-missing", "all.vars.setup", "required key `setup`", {f"{V}/setup": None}),
    # --- integrations
    Case("enabled-empty", "all.vars.integrations.pgs.enabled", "empty", {f"{INT}/pgs/enabled": ""}),
    Case(
        "enabled-null",
        "all.vars.integrations.klms.enabled",
        "empty",
        text=(('      klms:\n        enabled: "False"\n', "      klms:\n        enabled:\n"),),
    ),
    Case(
        "integration-missing",
        "all.vars.integrations.squadus",
        "required key `squadus`",
        {f"{INT}/squadus": None},
    ),
    Case(
        "pgs-fields",
        "all.vars.integrations.pgs.appapi_user_password",
        "required when PGS",
        {f"{INT}/pgs/enabled": "True", f"{INT}/pgs/co_oauth2_client_secret": "s3cret"},
    ),
    Case(
        "pgs-and-catalog",
        "all.vars.integrations.catalog.enabled",
        "cannot be used with PGS",
        {
            **CATALOG_ON,
            f"{INT}/pgs/enabled": "True",
            f"{INT}/pgs/appapi_user_password": "a",
            f"{INT}/pgs/co_oauth2_client_secret": "b",
        },
    ),
    Case(
        "catalog-host",
        "all.vars.integrations.catalog.host",
        "required when the catalog",
        {**CATALOG_ON, f"{INT}/catalog/host": ""},
    ),
    Case(
        "catalog-host-url",
        "all.vars.integrations.catalog.host",
        "no ldap://",
        {**CATALOG_ON, f"{INT}/catalog/host": "ldap://dc1.example.com:389"},
    ),
    Case(
        "catalog-port",
        "all.vars.integrations.catalog.port",
        "whole number",
        {**CATALOG_ON, f"{INT}/catalog/port": "ldaps"},
    ),
    Case(
        "catalog-port-range",
        "all.vars.integrations.catalog.port",
        "not a TCP port",
        {**CATALOG_ON, f"{INT}/catalog/port": "70000"},
    ),
    Case(
        "catalog-ssl-empty",
        "all.vars.integrations.catalog.ssl",
        "empty",
        {**CATALOG_ON, f"{INT}/catalog/ssl": ""},
    ),
    Case(
        "catalog-login-dn",
        "all.vars.integrations.catalog.login_dn",
        "not a valid LDAP DN",
        {**CATALOG_ON, f"{INT}/catalog/login_dn": "administrator"},
    ),
    Case(
        "catalog-password",
        "all.vars.integrations.catalog.password",
        "required when the catalog",
        {**CATALOG_ON, f"{INT}/catalog/password": ""},
    ),
    Case(
        "catalog-base-dn",
        "all.vars.integrations.catalog.mail.mail_base_dn",
        "required when the catalog",
        {**CATALOG_ON, f"{INT}/catalog/mail/mail_base_dn": ""},
    ),
    Case(
        "catalog-filter",
        "all.vars.integrations.catalog.cab.users_filter",
        "not a valid LDAP filter",
        {**CATALOG_ON, f"{INT}/catalog/cab/users_filter": "(&(objectClass=person)(mail=*)"},
    ),
    Case(
        "catalog-groups-filter",
        "all.vars.integrations.catalog.cab.groups_filter",
        "not a valid LDAP filter",
        {
            **CATALOG_ON,
            f"{INT}/catalog/cab/groups_base_dn": "ou=Groups,dc=corp",
            f"{INT}/catalog/cab/groups_filter": "",
        },
    ),
    Case(
        "catalog-unknown-key",
        "all.vars.integrations.catalog.use_ssl",
        "did you mean `ssl`",
        {f"{INT}/catalog/use_ssl": "True"},
    ),
    Case(
        "klms-milter-form",
        "all.vars.integrations.klms.host",
        "inet:10.10.22.22:10025",
        {f"{INT}/klms/enabled": "True", f"{INT}/klms/host": "inet:10025@10.10.22.22"},
    ),
    Case(
        "klms-garbage",
        "all.vars.integrations.klms.host",
        "not a Postfix milter address",
        {f"{INT}/klms/enabled": "True", f"{INT}/klms/host": "10.10.22.22"},
    ),
    Case(
        "trueconf-url",
        "all.vars.integrations.trueconf.url",
        "not an http(s) URL",
        {f"{INT}/trueconf/enabled": "True", f"{INT}/trueconf/url": "trueconf.example.com"},
    ),
    Case(
        "trueconf-delete-after",
        "all.vars.integrations.trueconf.delete_after",
        "whole number",
        {f"{INT}/trueconf/delete_after": "60s"},
    ),
    # --- notifications
    Case(
        "mobile-json-missing",
        "all.vars.notifications.mobile.google_conf_file_name",
        "does not exist",
        MOBILE_ON,
    ),
    Case(
        "mobile-field",
        "all.vars.notifications.mobile.ios.api_key",
        "required when mobile",
        {**MOBILE_ON, f"{V}/notifications/mobile/ios/api_key": ""},
    ),
    Case(
        "web-field",
        "all.vars.notifications.web.vapid_key",
        "required when web push",
        {
            f"{V}/notifications/web/enabled": "True",
            **{
                f"{V}/notifications/web/{k}": "x"
                for k in ("api_key", "auth_domain", "database_url", "project_id", "storage_bucket")
            },
        },
    ),
    Case(
        "huawei-field",
        "all.vars.notifications.huawei.client_secret",
        "required when Huawei",
        {f"{V}/notifications/huawei/enabled": "True", f"{V}/notifications/huawei/client_id": "123"},
    ),
    # --- the file itself
    Case(
        "yaml-syntax",
        "",
        "not valid YAML",
        text=(('    dev_mode: "False"\n', '    dev_mode: "False\n'),),
    ),
    Case(
        "yaml-duplicate-key",
        "",
        "duplicate",
        text=(('    dev_mode: "False"\n', '    dev_mode: "False"\n    dev_mode: "True"\n'),),
    ),
    Case("top-level-typo", "al", "did you mean `all`", text=(("\nall:\n", "\nal:\n"),)),
]


def _set(doc: Any, path: str, value: Any) -> None:
    *parents, last = path.split("/")
    node = doc
    for part in parents:
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = None if value is NULL else value


def write_case(path: Path, case: Case) -> None:
    text = path.read_text()
    for old, new in case.text:
        assert old in text, f"corpus edit does not apply: {old!r}"
        text = text.replace(old, new, 1)
    if case.set:
        yaml = yaml_round_trip()
        doc = yaml.load(text)
        for key, value in case.set.items():
            _set(doc, key, value)
        with path.open("w") as handle:
            yaml.dump(doc, handle)
    else:
        path.write_text(text)


def validate(
    inventory: Path, certs_root: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = run(["--skip-checksum", "validate", str(inventory), "--certs-dir", str(certs_root)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_corpus_is_large_and_distinct() -> None:
    assert len(CORPUS) >= 40
    assert len({c.id for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_broken_inventory_is_refused(
    case: Case, valid_inventory: Path, certs_root: Path, capsys
) -> None:
    write_case(valid_inventory, case)
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 2, output
    flat = " ".join(output.split())
    assert case.path in output, output
    assert " ".join(case.message.split()) in flat, output
    assert "Traceback" not in output
    assert f"{valid_inventory}:" in output  # file:line of the finding


def test_valid_template_passes(valid_inventory: Path, certs_root: Path, capsys) -> None:
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 0, output
    assert "valid" in output


def test_cluster_example_is_refused_only_for_the_counts_this_release_cannot_deploy(
    tmp_path: Path, certs_root: Path, capsys
) -> None:
    path = tmp_path / "cluster.yml"
    path.write_text((ROOT / "inventory/examples/cluster.yml").read_text())
    fill_secrets(path)
    example = load_inventory(path)
    expected = {
        group
        for group, rule in HOST_COUNTS.items()
        if len(example.hosts(group)) not in rule.allowed
    }
    code, output = validate(path, certs_root, capsys)
    if not expected:
        assert code == 0, output
        return
    assert code == 2, output
    assert set(re.findall(r"group `([a-z_]+)` has \d+ hosts; allowed", output)) == expected
    errors = f"{len(expected)} error{'s' if len(expected) > 1 else ''}"
    assert f"{errors}, 0 warnings" in output, output


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (f"{V}/dev_mode", True),  # YAML boolean instead of the guide's quoted string
        (f"{V}/swarm_network_encryption", "true"),
        (f"{V}/setup/default_instance_language", "Vashkir"),  # the guide's spelling of Bashkir
        (f"{INT}/trueconf/delete_after", 120),  # unquoted number
        (
            "all/children/mail/hosts/host.example.com",
            {"ansible_host": "192.0.2.10", "ansible_user": "admin"},
        ),
        (f"{V}/passwords/redis_user", "Str0ng&Pass!word%"),  # the guide's special characters
    ],
)
def test_what_operators_write_is_accepted(valid_inventory, certs_root, capsys, key, value) -> None:
    write_case(valid_inventory, Case("ok", "", "", {key: value}))
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 0, output


def test_all_problems_reported_at_once(valid_inventory, certs_root, capsys) -> None:
    write_case(
        valid_inventory,
        Case(
            "many",
            "",
            "",
            {
                f"{V}/passwords/redis_user": "",
                f"{V}/dev_mode": "x",
                f"{D}/etcd/hosts/h2.example.com": NULL,
            },
        ),
    )
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 2
    for fragment in ("all.vars.passwords.redis_user", "all.vars.dev_mode", "has 2 hosts"):
        assert fragment in output


def test_secrets_are_masked_in_reports(valid_inventory, certs_root, capsys) -> None:
    write_case(
        valid_inventory, Case("mask", "", "", {f"{V}/passwords/redis_user": "Visible$Secret42"})
    )
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 2
    assert "Visible$Secret42" not in output
    assert "********" in output


def test_line_numbers_point_at_the_key(valid_inventory, certs_root, capsys) -> None:
    write_case(valid_inventory, Case("line", "", "", {f"{V}/passwords/redis_user": ""}))
    line = next(
        i
        for i, text in enumerate(valid_inventory.read_text().splitlines(), 1)
        if "redis_user:" in text
    )
    _, output = validate(valid_inventory, certs_root, capsys)
    assert f"{valid_inventory}:{line}" in output


def test_warnings_do_not_fail(valid_inventory, certs_root, capsys) -> None:
    write_case(valid_inventory, Case("warn", "", "", {f"{V}/dev_mode": "True"}))
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 0
    assert "developer mode" in output


def test_hosts_in_the_monitoring_group_get_a_warning(valid_inventory, certs_root, capsys) -> None:
    write_case(
        valid_inventory,
        Case("mon", "", "", {"all/children/monitoring": {"hosts": {"host.example.com": None}}}),
    )
    code, output = validate(valid_inventory, certs_root, capsys)
    assert code == 0
    assert "all.children.monitoring" in output
    assert "monitoring role is not part of this release" in output


def test_missing_certificates_fail_validation(valid_inventory, tmp_path, capsys) -> None:
    code, output = validate(valid_inventory, tmp_path / "nothing-here", capsys)
    assert code == 2
    assert "certificates/<DEFAULT_DOMAIN>/" in output or "example.com" in output


def test_debug_shows_traceback(tmp_path) -> None:
    with pytest.raises(Exception, match="Cannot read the inventory"):
        run(["--debug", "--skip-checksum", "validate", str(tmp_path / "missing.yml")])


def test_missing_file_is_a_clean_error(tmp_path, capsys) -> None:
    code = run(["--skip-checksum", "validate", str(tmp_path / "missing.yml")])
    output = capsys.readouterr().err
    assert code == 2
    assert "no such file" in output
    assert "Traceback" not in output
