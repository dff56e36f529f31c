"""Every local check of an inventory: the JSON Schema, then the guide's rules across values."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from passlib.hash import apr_md5_crypt

from psn.certs import check_certificates
from psn.errors import MASK, Problem
from psn.inventory import (
    GROUP_PARENTS,
    Inventory,
    KeyPath,
    as_text,
    dotted,
    inventory_schema,
    is_secret,
    load_inventory,
    to_bool,
)
from psn.names import certificate_names, default_domain, is_valid_hostname, service_hostnames
from psn.topology import HOST_COUNTS, NEEDS, topology_problems

# Guide Table 6: "letters, digits and the special characters & ! % ($ is not allowed)".
PASSWORD_CHARS = re.compile(r"^[A-Za-z0-9&!%]+$")
PASSWORD_ALLOWED = "letters A-Z a-z, digits and & ! %"
PASSWORD_MIN_RECOMMENDED = 10  # the guide suggests `pwgen 10 1`
JWT_KEY_MIN = 16
REQUIRED_HOST_GROUPS = (
    "docker_registry",
    "etcd",
    "redis",
    "postgres",
    "ldap",
    "proxy",
    "backend",
    "mail",
)
OPTIONAL_HOST_GROUPS = ("syslog",)
# Groups of the guide whose roles this release does not deploy: accepted, with a warning.
NOT_DEPLOYED_GROUPS = {
    "monitoring": "the monitoring role is not part of this release",
}
VOLUME_ROLES = ("etcd", "postgres")
KLMS_POSTFIX_FORM = re.compile(
    r"^inet:(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$"
)
KLMS_MILTER_FORM = re.compile(r"^inet6?:(?P<port>\d{1,5})@(?P<host>.+)$")
# Ansible's connection variables, offered as spelling suggestions for host variables.
ANSIBLE_VARS = (
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_connection",
    "ansible_password",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
    "ansible_become",
    "ansible_become_user",
    "ansible_become_password",
    "ansible_python_interpreter",
)
GOOGLE_JSON_KEYS = ("type", "project_id", "private_key", "client_email")

Check = Callable[[Inventory, Path], Iterable[Problem]]


def _shown(path: KeyPath, value: object) -> str | None:
    """The value as the operator may see it: secrets masked, empty shown as empty."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return MASK if text and is_secret(path) else text


def _problem(
    inv: Inventory,
    path: KeyPath,
    message: str,
    fix: str,
    *,
    value: object = None,
    show_value: bool = True,
    severity: str = "error",
) -> Problem:
    return Problem(
        message=message,
        fix=fix,
        path=dotted(path),
        file=str(inv.path),
        line=inv.line_of(path),
        value=_shown(path, value) if show_value else None,
        severity=severity,  # type: ignore[arg-type]
    )


# --- JSON Schema -------------------------------------------------------------------------------


def _hint(schema: dict[str, Any]) -> str:
    return schema.get("x-psn-hint", "")


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`? " if close else ""


def _unknown_key_problems(inv: Inventory, err: ValidationError) -> Iterator[Problem]:
    path = tuple(err.absolute_path)
    allowed = list(err.schema.get("properties", {}))
    patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
    takes_ansible_vars = bool(patterns)  # host and group vars: Ansible's own variables pass
    for key in map(str, err.instance):
        if key in allowed or any(p.search(key) for p in patterns):
            continue
        fix = _suggest(key, allowed + (list(ANSIBLE_VARS) if takes_ansible_vars else []))
        if key in GROUP_PARENTS:
            where = dotted(inv.group_path(key)[:-1])
            fix += f"The group `{key}` belongs under `{where}` (see inventory/hosts.yml). "
        elif key.startswith("volume_device_"):
            fix += (
                "volume_device_etcd* belongs to etcd hosts, volume_device_postgres* to postgres. "
            )
        elif takes_ansible_vars:
            fix += "Only Ansible's own `ansible_*` variables may be set here. "
        if not fix:
            fix = f"Keys allowed here: {', '.join(allowed)}. " if allowed else ""
        yield _problem(
            inv,
            (*path, key),
            f"unknown key `{key}`",
            fix + "Remove the key or correct its spelling.",
            show_value=False,
        )


def _missing_key_problems(inv: Inventory, err: ValidationError) -> Iterator[Problem]:
    path = tuple(err.absolute_path)
    for key in err.validator_value:
        if key in err.instance:
            continue
        what = "group" if key in GROUP_PARENTS or path[-1:] == ("children",) else "key"
        yield _problem(
            inv,
            (*path, key),
            f"required {what} `{key}` is missing under `{dotted(path) or 'the top level'}`",
            f"add `{key}:` there, as in the template inventory/hosts.yml",
            show_value=False,
        )


def _schema_problems(inv: Inventory) -> Iterator[Problem]:
    validator = Draft202012Validator(inventory_schema())
    for err in validator.iter_errors(inv.doc):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties":
            yield from _unknown_key_problems(inv, err)
        elif err.validator == "required":
            yield from _missing_key_problems(inv, err)
        elif "propertyNames" in err.absolute_schema_path:
            yield _problem(
                inv,
                path,
                f"`{err.instance}` is not a valid host name or IP address",
                "use the server's host name or IP address as the key",
                show_value=False,
            )
        elif len(path) >= 2 and path[-2] == "hosts" and str(path[-1]).startswith("volume_device_"):
            group = path[-3]
            yield _problem(
                inv,
                path,
                f"`{path[-1]}` is written as a host of group `{group}`",
                f"indent it under the host name, two spaces further than the host, e.g.\n"
                f'      host.example.com:\n        {path[-1]}: "False"',
                value=err.instance,
            )
        elif err.instance is None or err.instance == "":
            yield _problem(
                inv, path, "the value is empty and cannot be", _hint(err.schema) or "set a value"
            )
        elif err.validator == "enum" or (err.validator == "anyOf" and "enum" in str(err.schema)):
            yield _problem(
                inv,
                path,
                "not an allowed value",
                _hint(err.schema) or f"use one of {err.validator_value}",
                value=err.instance,
            )
        else:
            kind = {
                dict: "a mapping",
                list: "a list",
                str: "text",
                bool: "a boolean",
                int: "a number",
            }
            found = next(
                (v for t, v in kind.items() if isinstance(err.instance, t)),
                type(err.instance).__name__,
            )
            yield _problem(
                inv,
                path,
                f"wrong kind of value: found {found}",
                _hint(err.schema) or err.message,
                value=err.instance,
            )


# --- Semantic checks ---------------------------------------------------------------------------


def check_groups(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """Required groups have hosts, and each group the host count this release deploys."""
    for group in REQUIRED_HOST_GROUPS:
        if inv.has_group(group) and not inv.hosts(group):
            yield _problem(
                inv,
                (*inv.group_path(group), "hosts"),
                f"group `{group}` has no hosts",
                f"put at least one server under `{group}.hosts`",
            )
    for group in OPTIONAL_HOST_GROUPS:
        if inv.has_group(group) and not inv.hosts(group):
            yield _problem(
                inv,
                inv.group_path(group),
                f"optional group `{group}` has no hosts",
                f"add a server, or delete the `{group}` group to skip it",
                severity="warning",
            )
    for group, why in NOT_DEPLOYED_GROUPS.items():
        if inv.hosts(group):
            yield _problem(
                inv,
                inv.group_path(group),
                f"group `{group}` is not deployed: {why}",
                f"delete the `{group}` group, or keep it: its hosts get nothing from it",
                value=", ".join(inv.hosts(group)),
                severity="warning",
            )
    found = {group: list(inv.hosts(group)) for group in {*HOST_COUNTS, *NEEDS}}
    for problem in topology_problems(found):
        yield _problem(
            inv,
            (*inv.group_path(problem.group), "hosts"),
            problem.message,
            problem.fix,
            value=", ".join(problem.hosts),
        )


def check_volume_devices(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """`volume_device_<role>`: a real device path when "True", never one device for two roles."""
    used: dict[tuple[str, str], str] = {}
    for role in VOLUME_ROLES:
        for host, hostvars in inv.hosts(role).items():
            flag_key, path_key = f"volume_device_{role}", f"volume_device_{role}_path"
            base = (*inv.group_path(role), "hosts", host)
            if to_bool(hostvars.get(flag_key, False)) is not True:
                continue
            device = as_text(hostvars.get(path_key))
            where = (*base, path_key) if path_key in hostvars else base
            if not device:
                yield _problem(
                    inv,
                    where,
                    f'{flag_key} is "True" but {path_key} is not set',
                    f"set {path_key} to the XFS device, e.g. /dev/disk/by-uuid/<UUID>, "
                    f'or set {flag_key}: "False"',
                )
            elif not device.startswith("/dev/") or "<" in device:
                yield _problem(
                    inv,
                    where,
                    f"{path_key} is not a device path",
                    "use the device's path under /dev, e.g. /dev/disk/by-uuid/<UUID> with the "
                    "real UUID "
                    "(see `blkid`)",
                    value=device,
                )
            elif (host, device) in used:
                yield _problem(
                    inv,
                    where,
                    f"device {device} on {host} is already used by {used[host, device]}",
                    "give every role its own device (guide §4.2.3.1)",
                    value=device,
                )
            else:
                used[host, device] = role


def check_passwords(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """Passwords and keys: present, the guide's character set, no `$`, the JWT key's length."""
    for section in ("passwords", "secure"):
        values = inv.var(section)
        if not isinstance(values, dict):
            continue
        for key, raw in values.items():
            path = ("all", "vars", section, key)
            if key == "mon_user_hash" or not isinstance(raw, str | None):
                continue
            value = as_text(raw)
            if not value:
                yield _problem(
                    inv,
                    path,
                    "empty",
                    "run `deploy_psn genpwd <inventory>` to fill every empty "
                    "password, or write one",
                )
            elif "$" in value:
                yield _problem(
                    inv,
                    path,
                    "contains `$`, which the installation cannot use",
                    f"choose a value of {PASSWORD_ALLOWED}",
                    value=value,
                )
            elif section == "passwords" and not PASSWORD_CHARS.match(value):
                bad = "".join(sorted({c for c in value if not PASSWORD_CHARS.match(c)}))
                yield _problem(
                    inv,
                    path,
                    f"contains characters outside the allowed set: {bad!r}",
                    f"use only {PASSWORD_ALLOWED}",
                    value=value,
                )
            elif section == "passwords" and len(value) < PASSWORD_MIN_RECOMMENDED:
                yield _problem(
                    inv,
                    path,
                    f"shorter than {PASSWORD_MIN_RECOMMENDED} characters",
                    "use a longer password (genpwd makes 24 characters)",
                    severity="warning",
                )
    jwt = as_text(inv.var("secure", "auth_jwt_key"))
    if jwt and len(jwt) < JWT_KEY_MIN:
        yield _problem(
            inv,
            ("all", "vars", "secure", "auth_jwt_key"),
            f"{len(jwt)} characters; at least {JWT_KEY_MIN} are required",
            "write a longer key, or empty it and run `deploy_psn genpwd`",
            value=jwt,
        )


def check_mon_user_hash(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """`mon_user_hash` is the apr1 hash of `mon_user`."""
    path = ("all", "vars", "passwords", "mon_user_hash")
    password, hashed = (
        as_text(inv.var("passwords", "mon_user")),
        as_text(inv.var("passwords", "mon_user_hash")),
    )
    fix = (
        "leave mon_user_hash empty and run `deploy_psn genpwd` (it derives it from mon_user), "
        "or write the output of `openssl passwd -apr1 '<mon_user>'`"
    )
    if not hashed and not password:
        return  # no monitoring access: optional while the monitoring role is not in this release
    if not hashed:
        yield _problem(inv, path, "empty", fix)
    elif not apr_md5_crypt.identify(hashed):
        yield _problem(inv, path, "not an apr1 hash (it starts with $apr1$)", fix, value=hashed)
    elif password and not apr_md5_crypt.verify(password, hashed):
        yield _problem(inv, path, "does not match passwords.mon_user", fix, value=hashed)


def check_setup(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """Domain, host name template and the address book salt."""
    setup = ("all", "vars", "setup")
    domain, module = inv.external_domain, inv.domain_module
    if domain and not is_valid_hostname(domain):
        yield _problem(
            inv,
            (*setup, "external_domain"),
            "not a valid domain name",
            "write the registered domain, e.g. example.com (no scheme, no port, no trailing dot)",
            value=domain,
        )
    if module:
        missing = [p for p in ("{service}", "{domain}") if p not in module]
        stray = set(re.findall(r"\{[^}]*\}", module)) - {"{service}", "{domain}"}
        if missing or stray:
            yield _problem(
                inv,
                (*setup, "domain_module"),
                "must contain {service} and {domain} and nothing else in braces",
                'e.g. "{service}.{domain}" or "{service}-{domain}"',
                value=module,
            )
        elif domain and is_valid_hostname(domain):
            bad = [
                n for n in service_hostnames(domain, module).values() if not is_valid_hostname(n)
            ]
            if bad:
                yield _problem(
                    inv,
                    (*setup, "domain_module"),
                    f"yields invalid host names: {', '.join(bad)}",
                    "use only letters, digits, dots and hyphens around the placeholders, "
                    'e.g. "{service}.{domain}"',
                    value=module,
                )
    for key in ("external_domain", "domain_module"):
        if (
            not as_text(inv.var("setup", key))
            and isinstance(inv.var("setup"), dict)
            and key in inv.var("setup")
        ):
            yield _problem(
                inv, (*setup, key), "empty", "see the comment above it in inventory/hosts.yml"
            )
    salt = as_text(inv.var("setup", "autoconfig_auth_salt"))
    if not salt:
        yield _problem(
            inv,
            (*setup, "autoconfig_auth_salt"),
            "empty",
            "run `deploy_psn genpwd <inventory>`, or write letters and digits",
        )
    elif not salt.isalnum() or not salt.isascii():
        yield _problem(
            inv,
            (*setup, "autoconfig_auth_salt"),
            "contains characters other than letters and digits",
            "use only A-Z, a-z and 0-9",
            value=salt,
        )


def check_modes(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """Switches that an administrator should notice."""
    if to_bool(inv.var("dev_mode")) is True:
        yield _problem(
            inv,
            ("all", "vars", "dev_mode"),
            "developer mode publishes internal service ports",
            'set dev_mode: "False" on any system with real users',
            severity="warning",
        )


def _require_fields(
    inv: Inventory, base: KeyPath, fields: Iterable[str], why: str
) -> Iterator[Problem]:
    for field in fields:
        if not as_text(inv.get((*base, field))):
            yield _problem(
                inv,
                (*base, field),
                f"required when {why}",
                f'fill `{field}` or disable the feature ({dotted(base[:4])}.enabled: "False")',
            )


def _enabled(inv: Inventory, *path: str) -> bool:
    return to_bool(inv.var(*path, "enabled")) is True


def _dn_problem(inv: Inventory, path: KeyPath, *, required: bool) -> Iterator[Problem]:
    value = as_text(inv.get(path))
    if not value:
        if required:
            yield _problem(
                inv,
                path,
                "required when the catalog integration is enabled",
                "write the DN, e.g. ou=People,dc=example,dc=com",
            )
        return
    try:
        parse_dn(value)
    except LDAPInvalidDnError:
        yield _problem(
            inv,
            path,
            "not a valid LDAP DN",
            "write it as attr=value pairs, e.g. ou=People,dc=example,dc=com",
            value=value,
        )


def _filter_problem(inv: Inventory, path: KeyPath) -> Iterator[Problem]:
    value = as_text(inv.get(path))
    depth, balanced = 0, value.startswith("(") and value.endswith(")")
    for char in value:
        depth += {"(": 1, ")": -1}.get(char, 0)
        balanced &= depth >= 0
    if not value or not balanced or depth:
        yield _problem(
            inv,
            path,
            "not a valid LDAP filter",
            "write a parenthesised filter, e.g. (&(objectClass=person)(mail=*))",
            value=value,
        )


def check_integrations(inv: Inventory, _root: Path) -> Iterator[Problem]:
    """Fields an enabled integration needs, in the form its consumer expects."""
    base = ("all", "vars", "integrations")
    if _enabled(inv, "integrations", "pgs"):
        yield from _require_fields(
            inv,
            (*base, "pgs"),
            ("appapi_user_password", "co_oauth2_client_secret"),
            "PGS integration is enabled",
        )
        if _enabled(inv, "integrations", "catalog"):
            yield _problem(
                inv,
                (*base, "catalog", "enabled"),
                "the catalog integration cannot be used with PGS",
                'with PGS, users come from PGS: set catalog.enabled: "False"',
            )
    if _enabled(inv, "integrations", "trueconf"):
        url = as_text(inv.var("integrations", "trueconf", "url"))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            yield _problem(
                inv,
                (*base, "trueconf", "url"),
                "not an http(s) URL",
                "write the TrueConf API address, e.g. https://trueconf.example.com",
                value=url,
            )
        if as_text(inv.var("integrations", "trueconf", "delete_after")) == "":
            yield _problem(
                inv,
                (*base, "trueconf", "delete_after"),
                "required when TrueConf is enabled",
                'write the number of seconds, e.g. "60"',
            )
    if _enabled(inv, "integrations", "catalog"):
        yield from _check_catalog(inv, (*base, "catalog"))
    if _enabled(inv, "integrations", "klms"):
        yield from _check_klms(inv, (*base, "klms", "host"))


def _check_catalog(inv: Inventory, base: KeyPath) -> Iterator[Problem]:
    host = as_text(inv.get((*base, "host")))
    if not host:
        yield _problem(
            inv,
            (*base, "host"),
            "required when the catalog integration is enabled",
            "write the domain controller's host name or IP address",
        )
    elif not (is_valid_hostname(host) or _is_ip(host) or re.fullmatch(r"[A-Za-z0-9-]{1,63}", host)):
        yield _problem(
            inv,
            (*base, "host"),
            "not a host name or IP address",
            "write only the host, e.g. dc1.example.com (no ldap:// and no port)",
            value=host,
        )
    port_text = as_text(inv.get((*base, "port")))
    if not port_text:
        yield _problem(
            inv,
            (*base, "port"),
            "required when the catalog integration is enabled",
            "write 389 (plain LDAP) or 636 (LDAPS)",
        )
    elif port_text.isdigit() and not 0 < int(port_text) < 65536:
        yield _problem(inv, (*base, "port"), "not a TCP port", "write 389 or 636", value=port_text)
    ssl = to_bool(inv.get((*base, "ssl")))
    if ssl is None:
        yield _problem(
            inv,
            (*base, "ssl"),
            "must be set when the catalog integration is enabled",
            'write "True" (LDAPS) or "False"',
        )
    elif ssl is False and port_text == "636":
        yield _problem(
            inv,
            (*base, "ssl"),
            'port 636 is LDAPS but ssl is "False"',
            'set ssl: "True", or use port 389',
            severity="warning",
        )
    yield from _dn_problem(inv, (*base, "login_dn"), required=True)
    yield from _require_fields(inv, base, ("password",), "the catalog integration is enabled")
    yield from _dn_problem(inv, (*base, "mail", "mail_base_dn"), required=True)
    yield from _dn_problem(inv, (*base, "mail", "groups_base_dn"), required=False)
    if not as_text(inv.get((*base, "mail", "sync_attr"))):
        yield _problem(
            inv,
            (*base, "mail", "sync_attr"),
            "required when the catalog integration is enabled",
            "write mail, sAMAccountName (AD) or uid",
        )
    yield from _dn_problem(inv, (*base, "cab", "users_base_dn"), required=True)
    yield from _filter_problem(inv, (*base, "cab", "users_filter"))
    yield from _dn_problem(inv, (*base, "cab", "groups_base_dn"), required=False)
    if as_text(inv.get((*base, "cab", "groups_base_dn"))):
        yield from _filter_problem(inv, (*base, "cab", "groups_filter"))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_klms(inv: Inventory, path: KeyPath) -> Iterator[Problem]:
    value = as_text(inv.get(path))
    milter = KLMS_MILTER_FORM.match(value)
    postfix = KLMS_POSTFIX_FORM.match(value)
    if milter:
        yield _problem(
            inv,
            path,
            "written in the milter form inet:PORT@IP; Postfix needs inet:IP:PORT",
            f"write inet:{milter['host']}:{milter['port']} (guide §4.5)",
            value=value,
        )
    elif not postfix or not 0 < int(postfix["port"]) < 65536:
        yield _problem(
            inv,
            path,
            "not a Postfix milter address",
            "write inet:IP:PORT, e.g. inet:10.10.22.22:10025",
            value=value,
        )


def check_notifications(inv: Inventory, root: Path) -> Iterator[Problem]:
    """Fields of enabled push notifications, and the Firebase JSON file in certificates/."""
    base = ("all", "vars", "notifications")
    if _enabled(inv, "notifications", "mobile"):
        mobile = (*base, "mobile")
        for platform in ("ios", "android"):
            yield from _require_fields(
                inv,
                (*mobile, platform),
                ("api_key", "app_id", "messaging_sender_id", "project_id"),
                "mobile notifications are enabled",
            )
        yield from _require_fields(
            inv,
            mobile,
            ("ios_bundle_name", "android_bundle_name", "google_conf_file_name"),
            "mobile notifications are enabled",
        )
        name = as_text(inv.var("notifications", "mobile", "google_conf_file_name"))
        if name:
            yield from _check_google_json(
                inv, (*mobile, "google_conf_file_name"), root / "certificates" / name
            )
    if _enabled(inv, "notifications", "huawei"):
        yield from _require_fields(
            inv,
            (*base, "huawei"),
            ("client_id", "client_secret", "huawei_bundle_name"),
            "Huawei notifications are enabled",
        )
    if _enabled(inv, "notifications", "web"):
        yield from _require_fields(
            inv,
            (*base, "web"),
            (
                "webpush_bundle_name",
                "api_key",
                "vapid_key",
                "auth_domain",
                "database_url",
                "project_id",
                "storage_bucket",
            ),
            "web push notifications are enabled",
        )


def _check_google_json(inv: Inventory, path: KeyPath, file: Path) -> Iterator[Problem]:
    fix = (
        "download the service account key from the Firebase console "
        f"(Project settings → Service accounts) and save it as {file}"
    )
    try:
        data = json.loads(file.read_text("utf-8"))
    except FileNotFoundError:
        yield _problem(inv, path, f"the file {file} does not exist", fix, value=file.name)
        return
    except (OSError, ValueError) as exc:
        yield _problem(inv, path, f"{file} is not readable JSON: {exc}", fix, value=file.name)
        return
    missing = [k for k in GOOGLE_JSON_KEYS if not (isinstance(data, dict) and data.get(k))]
    if missing:
        yield _problem(inv, path, f"{file} lacks {', '.join(missing)}", fix, value=file.name)
    elif data["type"] != "service_account":
        yield _problem(
            inv,
            path,
            f"{file} is not a service account key (type {data['type']!r})",
            fix,
            value=file.name,
        )


SEMANTIC_CHECKS: tuple[Check, ...] = (
    check_groups,
    check_volume_devices,
    check_passwords,
    check_mon_user_hash,
    check_setup,
    check_modes,
    check_integrations,
    check_notifications,
)


def validate_inventory(inv: Inventory, root: Path) -> list[Problem]:
    """All problems of an inventory (schema and semantic), errors and warnings, deduplicated.

    `root` is the installer's root directory, where `certificates/` lives.
    """
    problems = list(_schema_problems(inv))
    for check in SEMANTIC_CHECKS:
        problems.extend(check(inv, root))
    unique = {(p.path, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.line or 0, p.path))


def certificate_problems(inv: Inventory, certs_root: Path) -> list[Problem]:
    """Problems of `certs_root/<DEFAULT_DOMAIN>/` for this inventory's host names (guide §4.2.4)."""
    domain, module = inv.external_domain, inv.domain_module
    if not is_valid_hostname(domain) or "{service}" not in module:
        return []  # already reported against the inventory; no names to check against
    return check_certificates(
        certs_root / default_domain(domain), certificate_names(domain, module)
    )


def check_installation(
    inventory: Path, root: Path, certs_root: Path
) -> tuple[Inventory, list[Problem]]:
    """Every local check before a deploy: the inventory, then the certificates it needs."""
    inv = load_inventory(inventory)
    problems = validate_inventory(inv, root)
    return inv, problems + certificate_problems(inv, certs_root)
