"""The suite's directory (389-ds over LDAP, ldap3): tenants, domains, users and groups.

`Directory` holds the server and the API's account; `Session` is one connection bound as that
account (uid=psnapi,ou=Services) with the operations of the endpoints and the rules that keep the
tree consistent: an address is used once in the whole directory, addresses are in domains of
their object's tenant, group members are users of the group's tenant, and nothing still in use
is deleted. Authorization (who may see what) is the routes' business.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ldap3 import BASE, LEVEL, MODIFY_REPLACE, NONE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from psnweb.api.errors import conflict, invalid, listing, not_found
from psnweb.api.models import DomainOut, GroupOut, TenantOut, UserOut

USER_CLASSES = [
    "top",
    "person",
    "organizationalPerson",
    "inetOrgPerson",
    "mailRecipient",
    "psnTenantMember",
]
GROUP_CLASSES = ["top", "groupOfNames", "mailGroup", "psnTenantMember"]
# nsAccountLock is operational: it is returned only when asked for by name.
USER_ATTRS = [
    "mail",
    "displayName",
    "cn",
    "givenName",
    "sn",
    "mailQuota",
    "mailAlternateAddress",
    "nsAccountLock",
    "psnTenant",
    "psnTenantAdmin",
]
GROUP_ATTRS = ["mail", "cn", "description", "member", "mailAlternateAddress", "psnTenant"]
Attributes = dict[str, list[str]]


def _values(attrs: Attributes, name: str) -> list[str]:
    for key, values in attrs.items():
        if key.lower() == name.lower():
            return [str(v) for v in (values if isinstance(values, list) else [values])]
    return []


def _first(attrs: Attributes, name: str, default: str | None = None) -> str | None:
    values = _values(attrs, name)
    return values[0] if values else default


def _substring_filter(q: str, names: list[str]) -> str:
    """Entries with `q` in one of the name attributes or in an address (addresses are ASCII:
    the directory refuses other characters in a filter on them)."""
    if q.isascii():
        names = [*names, "mail", "mailAlternateAddress"]
    s = escape_filter_chars(q)
    return f"(|{''.join(f'({name}=*{s}*)' for name in names)})"


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2]


class Directory:
    """The directory server and the API's account on it."""

    def __init__(self, uri: str, base_dn: str, bind_dn: str, password: str) -> None:
        self.server = Server(uri, get_info=NONE, connect_timeout=5)
        self.base_dn = base_dn
        self._bind_dn = bind_dn
        self._password = password

    def ou(self, name: str) -> str:
        return f"ou={name},{self.base_dn}"

    def user_dn(self, address: str) -> str:
        return f"uid={escape_rdn(address)},{self.ou('People')}"

    def group_dn(self, address: str) -> str:
        return f"mail={escape_rdn(address)},{self.ou('Groups')}"

    def domain_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.ou('Domains')}"

    def tenant_dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.ou('Tenants')}"

    def _connect(self, user: str, password: str) -> Connection:
        return Connection(
            self.server,
            user=user,
            password=password,
            raise_exceptions=True,
            receive_timeout=15,
            read_only=False,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A connection bound as the API's account, closed afterwards."""
        conn = self._connect(self._bind_dn, self._password)
        conn.bind()
        try:
            yield Session(self, conn)
        finally:
            conn.unbind()

    def password_valid(self, dn: str, password: str) -> bool:
        """Whether a simple bind as `dn` with `password` succeeds (locked accounts fail)."""
        if not password:  # an empty password would be an anonymous bind
            return False
        conn = self._connect(dn, password)
        conn.raise_exceptions = False
        try:
            return bool(conn.bind())
        finally:
            conn.unbind()

    def ping(self) -> None:
        """Bind as the API's account and read the base entry; LDAPException when that fails."""
        with self.session() as session:
            session.search(self.base_dn, "(objectClass=*)", ["dc"], BASE)


class Session:
    """One bound connection of the API's account and the operations of the endpoints."""

    def __init__(self, directory: Directory, conn: Connection) -> None:
        self.dir = directory
        self.conn = conn

    # --- LDAP primitives --------------------------------------------------------------------

    def search(
        self, base: str, flt: str, attrs: list[str], scope: str = LEVEL
    ) -> list[tuple[str, Attributes]]:
        """(dn, attributes) of the entries found; none when the base does not exist."""
        try:
            entries = self.conn.extend.standard.paged_search(
                base, flt, scope, attributes=attrs, paged_size=500, generator=False
            )
        except LDAPNoSuchObjectResult:
            return []
        return [
            (e["dn"], dict(e["attributes"])) for e in entries if e.get("type") == "searchResEntry"
        ]

    def read(self, dn: str, attrs: list[str]) -> Attributes | None:
        found = self.search(dn, "(objectClass=*)", attrs, BASE)
        return found[0][1] if found else None

    def add(self, dn: str, attrs: dict[str, list[str]]) -> None:
        """Add the entry; empty values are left out (LDAP has no empty strings)."""
        values = {k: [v for v in vs if v != ""] for k, vs in attrs.items()}
        self.conn.add(dn, attributes={k: vs for k, vs in values.items() if vs})

    def replace(self, dn: str, changes: dict[str, list[str]]) -> None:
        """Set each attribute to the values (an empty list removes it, present or not)."""
        if changes:
            self.conn.modify(dn, {k: [(MODIFY_REPLACE, v)] for k, v in changes.items()})

    def delete(self, dn: str) -> None:
        self.conn.delete(dn)

    # --- addresses --------------------------------------------------------------------------

    def owners(self, address: str) -> list[str]:
        """DNs of the entries using `address` as mail or alias, anywhere in the directory."""
        a = escape_filter_chars(address)
        flt = f"(|(mail={a})(mailAlternateAddress={a}))"
        return [dn for dn, _ in self.search(self.dir.base_dn, flt, ["1.1"], SUBTREE)]

    def check_addresses(self, dn: str, tenant: str, addresses: list[str]) -> None:
        """422 unless each address is in a domain of `tenant`; 409 when another entry uses it."""
        domains = {d.name for d in self.domains(tenant=tenant)}
        for addr in addresses:
            if _domain_of(addr) not in domains:
                raise invalid(f"{addr}: {_domain_of(addr)} is not a domain of tenant {tenant}")
            others = [o for o in self.owners(addr) if o.lower() != dn.lower()]
            if others:
                raise conflict(f"the address {addr} is already used by {others[0]}")

    def domain_tenant(self, domain: str) -> str:
        """The tenant of a domain of the installation; 422 when there is no such domain."""
        found = self.domain(domain)
        if found is None:
            raise invalid(f"{domain} is not a mail domain of this installation")
        return found.tenant

    # --- tenants ----------------------------------------------------------------------------

    def _tenant(self, attrs: Attributes) -> TenantOut:
        return TenantOut(name=_first(attrs, "cn", ""), description=_first(attrs, "description", ""))

    def tenants(self) -> list[TenantOut]:
        found = self.search(self.dir.ou("Tenants"), "(objectClass=psnMailTenant)", ["*"])
        return sorted((self._tenant(a) for _, a in found), key=lambda t: t.name)

    def tenant(self, name: str) -> TenantOut | None:
        attrs = self.read(self.dir.tenant_dn(name), ["cn", "description"])
        return self._tenant(attrs) if attrs is not None else None

    def add_tenant(self, name: str, description: str) -> TenantOut:
        if self.tenant(name) is not None:
            raise conflict(f"the tenant {name} exists already")
        attrs = {"objectClass": ["top", "psnMailTenant"], "cn": [name]}
        self.add(self.dir.tenant_dn(name), {**attrs, "description": [description]})
        return TenantOut(name=name, description=description)

    def set_tenant(self, name: str, description: str | None) -> TenantOut:
        self.replace(
            self.dir.tenant_dn(name), {"description": [description] if description else []}
        )
        return self.tenant(name) or TenantOut(name=name, description="")

    def delete_tenant(self, name: str, default_tenant: str) -> None:
        if name == default_tenant:
            raise conflict(f"{name} is the default tenant of the installation: it stays")
        domains = [d.name for d in self.domains(tenant=name)]
        if domains:
            raise conflict(f"the tenant {name} still has the domains {listing(domains)}")
        members = self.search(
            self.dir.base_dn, f"(psnTenant={escape_filter_chars(name)})", ["mail"], SUBTREE
        )
        if members:
            names = [_first(a, "mail") or dn for dn, a in members]
            raise conflict(f"the tenant {name} still has {listing(names)}")
        self.delete(self.dir.tenant_dn(name))

    # --- domains ----------------------------------------------------------------------------

    def _domain(self, attrs: Attributes) -> DomainOut:
        return DomainOut(
            name=_first(attrs, "cn", ""),
            tenant=_first(attrs, "psnTenant", ""),
            description=_first(attrs, "description", ""),
        )

    def domains(self, tenant: str | None = None) -> list[DomainOut]:
        flt = "(objectClass=psnMailDomain)"
        if tenant is not None:
            flt = f"(&{flt}(psnTenant={escape_filter_chars(tenant)}))"
        found = self.search(self.dir.ou("Domains"), flt, ["cn", "psnTenant", "description"])
        return sorted((self._domain(a) for _, a in found), key=lambda d: d.name)

    def domain(self, name: str) -> DomainOut | None:
        attrs = self.read(self.dir.domain_dn(name), ["cn", "psnTenant", "description"])
        return self._domain(attrs) if attrs is not None else None

    def add_domain(self, name: str, tenant: str, description: str) -> DomainOut:
        if self.tenant(tenant) is None:
            raise invalid(f"there is no tenant {tenant}")
        if self.domain(name) is not None:
            raise conflict(f"the domain {name} exists already")
        attrs = {"objectClass": ["top", "psnMailDomain"], "cn": [name], "psnTenant": [tenant]}
        self.add(self.dir.domain_dn(name), {**attrs, "description": [description]})
        return DomainOut(name=name, tenant=tenant, description=description)

    def set_domain(self, name: str, description: str | None) -> DomainOut:
        self.replace(
            self.dir.domain_dn(name), {"description": [description] if description else []}
        )
        return self.domain(name) or DomainOut(name=name, tenant="", description="")

    def delete_domain(self, name: str) -> None:
        d = escape_filter_chars(name)
        flt = f"(|(mail=*@{d})(mailAlternateAddress=*@{d}))"
        users = [
            _first(a, "mail", dn) for dn, a in self.search(self.dir.ou("People"), flt, ["mail"])
        ]
        groups = [
            _first(a, "mail", dn) for dn, a in self.search(self.dir.ou("Groups"), flt, ["mail"])
        ]
        if users or groups:
            left = [f"users {listing(users)}"] if users else []
            left += [f"groups {listing(groups)}"] if groups else []
            raise conflict(
                f"the domain {name} still has addresses of the {' and the '.join(left)}: "
                "delete them or their aliases first"
            )
        self.delete(self.dir.domain_dn(name))

    # --- users ------------------------------------------------------------------------------

    def _memberships(self) -> dict[str, list[str]]:
        """Lower-cased member DN → addresses of its groups."""
        groups: dict[str, list[str]] = {}
        for _, attrs in self.search(self.dir.ou("Groups"), "(objectClass=mailGroup)", GROUP_ATTRS):
            for member in _values(attrs, "member"):
                groups.setdefault(member.lower(), []).append(_first(attrs, "mail", ""))
        return groups

    def _user(self, dn: str, attrs: Attributes, groups: list[str]) -> UserOut:
        address = _first(attrs, "mail", "")
        display = _first(attrs, "displayName") or _first(attrs, "cn", "")
        surname = _first(attrs, "sn")
        try:
            quota = int(_first(attrs, "mailQuota", "0"))
        except ValueError:
            quota = 0
        return UserOut(
            address=address,
            display_name=display,
            given_name=_first(attrs, "givenName"),
            # sn is mandatory: the display name stands in for a missing surname
            surname=surname if surname != display else None,
            quota=quota,
            aliases=sorted(_values(attrs, "mailAlternateAddress")),
            enabled=(_first(attrs, "nsAccountLock", "false").lower() != "true"),
            tenant_admin=(_first(attrs, "psnTenantAdmin", "FALSE").upper() == "TRUE"),
            tenant=_first(attrs, "psnTenant", ""),
            domain=_domain_of(address),
            groups=sorted(groups),
        )

    def users(
        self,
        tenant: str | None = None,
        domain: str | None = None,
        q: str | None = None,
        enabled: bool | None = None,
    ) -> list[UserOut]:
        parts = ["(objectClass=inetOrgPerson)(mail=*)"]
        if tenant is not None:
            parts.append(f"(psnTenant={escape_filter_chars(tenant)})")
        if domain is not None:
            parts.append(f"(mail=*@{escape_filter_chars(domain)})")
        if q:
            parts.append(_substring_filter(q, ["displayName", "cn"]))
        found = self.search(self.dir.ou("People"), f"(&{''.join(parts)})", USER_ATTRS)
        groups = self._memberships()
        users = [self._user(dn, a, groups.get(dn.lower(), [])) for dn, a in found]
        if enabled is not None:
            users = [u for u in users if u.enabled == enabled]
        return sorted(users, key=lambda u: u.address)

    def user(self, address: str) -> UserOut | None:
        dn = self.dir.user_dn(address)
        attrs = self.read(dn, USER_ATTRS)
        if attrs is None:
            return None
        member = escape_filter_chars(dn)
        groups = self.search(self.dir.ou("Groups"), f"(member={member})", ["mail"])
        return self._user(dn, attrs, [_first(a, "mail", "") for _, a in groups])

    def add_user(self, fields: dict[str, Any]) -> UserOut:
        address = fields["address"]
        dn = self.dir.user_dn(address)
        tenant = self.domain_tenant(_domain_of(address))
        aliases = [a for a in fields["aliases"] if a != address]
        self.check_addresses(dn, tenant, [address, *aliases])
        display = fields["display_name"]
        attrs = {
            "objectClass": USER_CLASSES,
            "uid": [address],
            "mail": [address],
            "cn": [display],
            "displayName": [display],
            "sn": [fields.get("surname") or display],
            "givenName": [fields["given_name"]] if fields.get("given_name") else [],
            "userPassword": [fields["password"]],
            "mailQuota": [str(fields["quota"])],
            "mailAlternateAddress": aliases,
            "psnTenant": [tenant],
            "psnTenantAdmin": ["TRUE" if fields["tenant_admin"] else "FALSE"],
            "nsAccountLock": [] if fields["enabled"] else ["true"],
        }
        self.add(dn, attrs)
        return self.user(address) or _gone(address)

    def set_user(self, current: UserOut, fields: dict[str, Any]) -> UserOut:
        """Apply a PATCH's fields (absent: unchanged; given_name or surname null: removed)."""
        dn = self.dir.user_dn(current.address)
        changes: dict[str, list[str]] = {}
        display = fields.get("display_name") or current.display_name
        if "display_name" in fields:
            changes["cn"] = changes["displayName"] = [display]
        if "surname" in fields or "display_name" in fields:
            surname = fields.get("surname", current.surname)
            changes["sn"] = [surname or display]
        if "given_name" in fields:
            changes["givenName"] = [fields["given_name"]] if fields["given_name"] else []
        if "quota" in fields:
            changes["mailQuota"] = [str(fields["quota"])]
        if "aliases" in fields:
            aliases = [a for a in fields["aliases"] if a != current.address]
            self.check_addresses(dn, current.tenant, aliases)
            changes["mailAlternateAddress"] = aliases
        if "enabled" in fields:
            changes["nsAccountLock"] = [] if fields["enabled"] else ["true"]
        if "tenant_admin" in fields:
            changes["psnTenantAdmin"] = ["TRUE" if fields["tenant_admin"] else "FALSE"]
        if "password" in fields:
            changes["userPassword"] = [fields["password"]]
        self.replace(dn, changes)
        return self.user(current.address) or _gone(current.address)

    def delete_user(self, address: str) -> None:
        dn = self.dir.user_dn(address)
        flt = f"(member={escape_filter_chars(dn)})"
        for group_dn, attrs in self.search(self.dir.ou("Groups"), flt, ["member"]):
            members = [m for m in _values(attrs, "member") if m.lower() != dn.lower()]
            self.replace(group_dn, {"member": members})
        self.delete(dn)

    # --- groups -----------------------------------------------------------------------------

    def _member_address(self, dn: str) -> str | None:
        parts = parse_dn(dn)
        if len(parts) < 2 or parts[0][0].lower() != "uid" or parts[1][1].lower() != "people":
            return None
        return parts[0][1].replace("\\", "")

    def _group(self, attrs: Attributes) -> GroupOut:
        address = _first(attrs, "mail", "")
        members = (self._member_address(m) for m in _values(attrs, "member"))
        return GroupOut(
            address=address,
            name=_first(attrs, "cn", ""),
            description=_first(attrs, "description"),
            members=sorted(m for m in members if m),
            aliases=sorted(_values(attrs, "mailAlternateAddress")),
            tenant=_first(attrs, "psnTenant", ""),
            domain=_domain_of(address),
        )

    def groups(
        self, tenant: str | None = None, domain: str | None = None, q: str | None = None
    ) -> list[GroupOut]:
        parts = ["(objectClass=mailGroup)"]
        if tenant is not None:
            parts.append(f"(psnTenant={escape_filter_chars(tenant)})")
        if domain is not None:
            parts.append(f"(mail=*@{escape_filter_chars(domain)})")
        if q:
            parts.append(_substring_filter(q, ["cn"]))
        found = self.search(self.dir.ou("Groups"), f"(&{''.join(parts)})", GROUP_ATTRS)
        return sorted((self._group(a) for _, a in found), key=lambda g: g.address)

    def group(self, address: str) -> GroupOut | None:
        attrs = self.read(self.dir.group_dn(address), GROUP_ATTRS)
        return self._group(attrs) if attrs is not None else None

    def member_dns(self, tenant: str, members: list[str]) -> list[str]:
        """DNs of the member addresses; 422 unless each is a user of `tenant`."""
        dns = []
        for member in members:
            user = self.user(member)
            if user is None or user.tenant != tenant:
                raise invalid(f"{member} is not a user of tenant {tenant}")
            dns.append(self.dir.user_dn(member))
        return dns

    def add_group(self, fields: dict[str, Any]) -> GroupOut:
        address = fields["address"]
        dn = self.dir.group_dn(address)
        tenant = self.domain_tenant(_domain_of(address))
        aliases = [a for a in fields["aliases"] if a != address]
        self.check_addresses(dn, tenant, [address, *aliases])
        attrs = {
            "objectClass": GROUP_CLASSES,
            "mail": [address],
            "cn": [fields["name"]],
            "description": [fields["description"]] if fields.get("description") else [],
            "member": self.member_dns(tenant, fields["members"]),
            "mailAlternateAddress": aliases,
            "psnTenant": [tenant],
        }
        self.add(dn, attrs)
        return self.group(address) or _gone(address)

    def set_group(self, current: GroupOut, fields: dict[str, Any]) -> GroupOut:
        dn = self.dir.group_dn(current.address)
        changes: dict[str, list[str]] = {}
        if "name" in fields:
            changes["cn"] = [fields["name"]]
        if "description" in fields:
            changes["description"] = [fields["description"]] if fields["description"] else []
        if "members" in fields:
            changes["member"] = self.member_dns(current.tenant, fields["members"])
        if "aliases" in fields:
            aliases = [a for a in fields["aliases"] if a != current.address]
            self.check_addresses(dn, current.tenant, aliases)
            changes["mailAlternateAddress"] = aliases
        self.replace(dn, changes)
        return self.group(current.address) or _gone(current.address)

    def delete_group(self, address: str) -> None:
        self.delete(self.dir.group_dn(address))


def _gone(address: str) -> Any:
    """The entry vanished between writing and reading it back (deleted concurrently)."""
    raise not_found(f"{address} was deleted meanwhile")
