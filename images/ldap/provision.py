#!/usr/bin/python3
"""psn-ldap-provision: bring a running psn/ldap directory to a described state, idempotently.

Reads a JSON description on stdin and applies it over LDAPI as the server's own user (SASL
EXTERNAL maps to cn=Directory Manager):

    {"schema": {"attributeTypes": [...], "objectClasses": [...]},
     "entries": [{"dn": ..., "mode": "enforce" | "create" | "modify",
                  "attributes": {name: [values]}, "password_secret": name}]}

- schema: each definition is added to cn=schema when its OID is missing, replaced when it
  differs (names, syntax, matching rules, SUP, MUST/MAY, kind, single-value).
- enforce: the entry is created when missing; otherwise each listed attribute is made equal to
  the listed values (operational attributes such as nsSizeLimit included: the entry is read
  with exactly the listed attributes). Other attributes are left alone. `aci` is merged
  instead: values whose acl name starts with "psn:" are ours (made equal to the list), the
  others are kept.
- create: created when missing, never changed afterwards (owned by its users from then on).
- modify: the entry must exist (cn=config); listed attributes are enforced.
- password_secret: userPassword is the content of /run/secrets/<name>; on an existing enforced
  entry it is replaced only when a bind with it fails, so the server keeps its own hash.
- An index entry (objectClass nsIndex) that is added or changed gets a reindex task, so entries
  already there are indexed too.

Prints one "CHANGED: ..." line per change (no values) and exits 0; on an error prints it and
exits 1. Secret values are never printed.
"""

from __future__ import annotations

import json
import os
import sys
import time

import ldap
import ldap.modlist
import ldap.schema.models

LDAPI = "ldapi://%2fdata%2frun%2fslapd-localhost.socket"
SECRETS_DIR = os.environ.get("PSN_SECRETS_DIR", "/run/secrets")
LDAP_URI = f"ldap://127.0.0.1:{os.environ.get('PSN_LDAP_PORT', '3389')}"
OUR_ACL = 'acl "psn:'
SCHEMA_KINDS = {
    "attributeTypes": ldap.schema.models.AttributeType,
    "objectClasses": ldap.schema.models.ObjectClass,
}
# Fields that make two schema definitions the same (X-ORIGIN and the like are the server's).
SCHEMA_FIELDS = (
    "oid",
    "names",
    "desc",
    "sup",
    "syntax",
    "single_value",
    "equality",
    "substr",
    "ordering",
    "kind",
    "must",
    "may",
    "no_user_mod",
    "usage",
)


class ProvisionError(Exception):
    """The description cannot be applied."""


def secret(name: str) -> str:
    """First line of /run/secrets/<name>."""
    path = os.path.join(SECRETS_DIR, name)
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.readline().rstrip("\r\n")
    except OSError as exc:
        raise ProvisionError(f"cannot read the secret {path}: {exc.strerror}") from None
    if not value:
        raise ProvisionError(f"the secret {path} is empty")
    return value


def encode(values: list[str]) -> list[bytes]:
    return [str(v).encode("utf-8") for v in values]


def schema_key(kind: str, definition: str) -> tuple:
    parsed = SCHEMA_KINDS[kind](definition)
    return tuple(
        tuple(sorted(x.lower() for x in v)) if isinstance(v, tuple) else v
        for v in (getattr(parsed, f, None) for f in SCHEMA_FIELDS)
    )


def apply_schema(conn: ldap.ldapobject.LDAPObject, schema: dict[str, list[str]]) -> list[str]:
    [(_, current)] = conn.search_s("cn=schema", ldap.SCOPE_BASE, attrlist=list(SCHEMA_KINDS))
    changes = []
    for kind, definitions in schema.items():
        by_oid = {}
        for raw in current.get(kind, []):
            text = raw.decode("utf-8")
            by_oid[SCHEMA_KINDS[kind](text).oid] = text
        for definition in definitions:
            wanted = SCHEMA_KINDS[kind](definition)
            old = by_oid.get(wanted.oid)
            if old is not None and schema_key(kind, old) == schema_key(kind, definition):
                continue
            mods = [(ldap.MOD_DELETE, kind, [old.encode()])] if old is not None else []
            mods.append((ldap.MOD_ADD, kind, [definition.encode()]))
            conn.modify_s("cn=schema", mods)
            verb = "replaced" if old is not None else "added"
            changes.append(f"schema: {verb} {kind} {wanted.names[0]}")
    return changes


def password_works(dn: str, password: str) -> bool:
    probe = ldap.initialize(LDAP_URI)
    try:
        probe.simple_bind_s(dn, password)
    except ldap.INVALID_CREDENTIALS:
        return False
    finally:
        probe.unbind_s()
    return True


def merged_acis(current: list[bytes], wanted: list[bytes]) -> list[bytes]:
    """The operator's ACIs as they are, ours exactly as described."""
    return [v for v in current if OUR_ACL not in v.decode("utf-8", "replace")] + wanted


def apply_entry(conn: ldap.ldapobject.LDAPObject, entry: dict) -> list[str]:
    dn, mode = entry["dn"], entry.get("mode", "enforce")
    wanted = {k: encode(v) for k, v in entry.get("attributes", {}).items()}
    password = secret(entry["password_secret"]) if entry.get("password_secret") else None
    try:
        # The attributes compared, by name: operational ones (aci, nsSizeLimit, ...) are only
        # returned when asked for. objectClass and cn tell whether it is an index, and of what.
        attrlist = [*wanted, "objectClass", "cn"]
        [(_, current)] = conn.search_s(dn, ldap.SCOPE_BASE, attrlist=attrlist)
    except ldap.NO_SUCH_OBJECT:
        if mode == "modify":
            raise ProvisionError(f"{dn} does not exist") from None
        if password is not None:
            wanted["userPassword"] = [password.encode("utf-8")]
        conn.add_s(dn, ldap.modlist.addModlist(wanted))
        return [f"added {dn}", *reindex(conn, wanted)]
    if mode == "create":
        return []
    current = {k.lower(): v for k, v in current.items()}
    mods = []
    for name, values in wanted.items():
        have = current.get(name.lower(), [])
        if name.lower() == "aci":
            values = merged_acis(have, values)
        if sorted(have) != sorted(values):
            mods.append((ldap.MOD_REPLACE, name, values))
    changes = [f"{dn}: set {', '.join(m[1] for m in mods)}"] if mods else []
    if password is not None and not password_works(dn, password):
        mods.append((ldap.MOD_REPLACE, "userPassword", [password.encode("utf-8")]))
        changes.append(f"{dn}: set userPassword")
    if mods:
        conn.modify_s(dn, mods)
        changes += reindex(conn, {**current, **wanted})
    return changes


def reindex(conn: ldap.ldapobject.LDAPObject, index: dict[str, list[bytes]]) -> list[str]:
    """Start a reindex task when `index` is the entry of an index (objectClass nsIndex)."""
    classes = {v.lower() for k, vs in index.items() if k.lower() == "objectclass" for v in vs}
    if b"nsindex" not in classes:
        return []
    [attribute] = next(vs for k, vs in index.items() if k.lower() == "cn")
    task = f"cn=psn-reindex-{attribute.decode()}-{int(time.time())},cn=index,cn=tasks,cn=config"
    conn.add_s(
        task,
        [
            ("objectClass", [b"top", b"extensibleObject"]),
            ("nsInstance", [os.environ.get("PSN_LDAP_BACKEND", "userRoot").encode()]),
            ("nsIndexAttribute", [attribute]),
        ],
    )
    return [f"reindexing {attribute.decode()}"]


def provision(description: dict) -> list[str]:
    conn = ldap.initialize(LDAPI)
    conn.sasl_non_interactive_bind_s("EXTERNAL")
    try:
        changes = apply_schema(conn, description.get("schema", {}))
        for entry in description.get("entries", []):
            try:
                changes += apply_entry(conn, entry)
            except ldap.LDAPError as exc:
                info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                detail = info.get("info") or info.get("desc") or str(exc)
                raise ProvisionError(f"{entry['dn']}: {detail}") from None
    finally:
        conn.unbind_s()
    return changes


def main() -> int:
    try:
        description = json.load(sys.stdin)
        for change in provision(description):
            print(f"CHANGED: {change}")
    except (ProvisionError, ValueError, ldap.LDAPError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
