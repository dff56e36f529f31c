"""`deploy_psn users|groups|domains|tenants`: administration over the PSN API, for scripts and
bulk imports. Thin commands over psn.api_client; the API enforces every rule."""

from __future__ import annotations

import json
import os
import secrets
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from psn import api_client
from psn.api_client import ADMIN_USER, ApiClient
from psn.console import make_console
from psn.errors import ApiError, InputError

out = make_console()
err = make_console(stderr=True)

# Columns of `list` per kind: (field, heading).
COLUMNS = {
    "users": [("address", "address"), ("display_name", "name"), ("quota", "quota"),
              ("enabled", "enabled"), ("tenant_admin", "admin"), ("aliases", "aliases")],
    "groups": [("address", "address"), ("name", "name"), ("members", "members"),
               ("aliases", "aliases")],
    "domains": [("name", "domain"), ("tenant", "tenant"), ("description", "description")],
    "tenants": [("name", "tenant"), ("description", "description")],
}  # fmt: skip
KEY = {"users": "address", "groups": "address", "domains": "name", "tenants": "name"}
# Filters of `list` per kind: option -> the API's query parameter.
FILTERS = {
    "users": {"tenant": "tenant", "domain": "domain", "search": "q"},
    "groups": {"tenant": "tenant", "domain": "domain", "search": "q"},
    "domains": {"tenant": "tenant"},
    "tenants": {},
}


def _password_from_env(user: str, inventory: Path | None) -> str | None:
    """PSN_API_PASSWORD; else the inventory's (global administrator); else a prompt."""
    if env := os.environ.get("PSN_API_PASSWORD"):
        return env
    if user == ADMIN_USER and inventory is not None:
        return None
    if sys.stdin.isatty():
        return click.prompt(f"Password of {user}", hide_input=True, err=True)
    return None


def api_group(kind: str, help_text: str) -> click.Group:
    """A command group whose options say which API to talk to, as whom."""

    @click.group(kind, help=help_text)
    @click.option(
        "-i",
        "--inventory",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="PSN_INVENTORY",
        help="Inventory: the API's host name, CA and admin password.",
    )
    @click.option(
        "--certs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Directory holding <DEFAULT_DOMAIN>/ca.crt [default: ./certificates].",
    )
    @click.option("--api-url", envvar="PSN_API_URL", help="e.g. https://psnapi.example.com")
    @click.option(
        "--user",
        envvar="PSN_API_USER",
        default=ADMIN_USER,
        show_default=True,
        help="Global administrator, or a tenant administrator's address "
        "(password: $PSN_API_PASSWORD or a prompt).",
    )
    @click.option(
        "--address",
        envvar="PSN_API_ADDRESS",
        default="",
        help="Connect to this IP instead of resolving the host name.",
    )
    @click.option(
        "--ca",
        "ca_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="CA certificate to trust [default: the installation's ca.crt].",
    )
    @click.pass_context
    def group(
        ctx: click.Context,
        inventory: Path | None,
        certs_dir: Path | None,
        api_url: str | None,
        user: str,
        address: str,
        ca_file: Path | None,
    ) -> None:
        root = ctx.find_root().obj.root
        ctx.obj = lambda: api_client.client_for(
            inventory=inventory, certs_root=certs_dir or root / "certificates", url=api_url,
            user=user, password=_password_from_env(user, inventory), address=address,
            ca_file=ca_file,
        )  # fmt: skip

    _add_common_commands(group, kind)
    return group


def _size(size: int) -> str:
    """A quota for reading: "unlimited", "200 MiB", "1.5 GiB"."""
    if not size:
        return "unlimited"
    for unit, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.4g} {unit}"
    return f"{size} B"


def _cell(value: Any, field: str = "") -> str:
    if field == "quota" and isinstance(value, int) and not isinstance(value, bool):
        return _size(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _print(data: Any, as_json: bool, kind: str) -> None:
    if as_json:
        out.print(json.dumps(data, indent=2, ensure_ascii=False), markup=False, highlight=False)
        return
    rows = data if isinstance(data, list) else [data]
    if not isinstance(data, list):
        for key, value in data.items():
            out.print(f"[bold]{escape(key)}[/]: {escape(_cell(value, key))}")
        return
    table = Table(box=None, pad_edge=False)
    for _, heading in COLUMNS[kind]:
        table.add_column(heading)
    for row in rows:
        table.add_row(*(escape(_cell(row.get(field), field)) for field, _ in COLUMNS[kind]))
    out.print(table)
    err.print(f"{len(rows)} {kind if len(rows) != 1 else kind.removesuffix('s')}")


json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")


def _add_common_commands(group: click.Group, kind: str) -> None:
    key = KEY[kind]

    @json_option
    @click.pass_obj
    def list_command(obj: Callable[[], ApiClient], as_json: bool, **options: str | None) -> None:
        query = {FILTERS[kind][name]: value for name, value in options.items()}
        _print(obj().request("GET", f"/{kind}", **query), as_json, kind)

    for name in reversed(FILTERS[kind]):
        help_text = "Part of an address or name." if name == "search" else f"Only this {name}."
        list_command = click.option(f"--{name}", help=help_text)(list_command)
    group.command("list", help=f"List {kind}.")(list_command)

    @group.command("show")
    @click.argument(key)
    @json_option
    @click.pass_obj
    def show(obj: Callable[[], ApiClient], as_json: bool, **name: str) -> None:
        """Show one."""
        client = obj()
        _print(client.request("GET", client.item(kind, name[key])), as_json, kind)

    @group.command("delete")
    @click.argument(key)
    @click.option("--yes", is_flag=True, help="Do not ask.")
    @click.pass_obj
    def delete(obj: Callable[[], ApiClient], yes: bool, **name: str) -> None:
        """Delete one (mail already stored stays on the mail host)."""
        if not yes:
            if not sys.stdin.isatty():
                raise InputError(f"deleting {name[key]} needs --yes when not asked on a terminal")
            click.confirm(f"Delete {name[key]}?", abort=True, err=True)
        client = obj()
        client.request("DELETE", client.item(kind, name[key]))
        err.print(f"[green]✓[/] deleted {escape(name[key])}")


def _done(verb: str, data: dict[str, Any], key: str) -> None:
    err.print(f"[green]✓[/] {verb} {escape(str(data.get(key, '')))}")


def _new_password(password_file: Path | None, generate: bool) -> str | None:
    """The password of --password-file ('-': stdin), a generated one (printed once), or None."""
    if password_file is not None:
        text = sys.stdin.read() if str(password_file) == "-" else password_file.read_text("utf-8")
        return text.rstrip("\n")
    if generate:
        alphabet = string.ascii_letters + string.digits
        password = "".join(secrets.choice(alphabet) for _ in range(20))
        out.print(password, markup=False, highlight=False)
        return password
    return None


password_file_option = click.option(
    "--password-file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Read the password from this file ('-': standard input); never on the command line.",
)  # fmt: skip
generate_option = click.option(
    "--generate-password", "generate", is_flag=True, help="Generate one and print it once."
)


# --- users ---------------------------------------------------------------------------------------

users = api_group("users", "Mailboxes: list, show, add, set, delete, import from CSV.")


def _user_fields(
    name: str | None, quota: str | None, aliases: tuple[str, ...], no_aliases: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if name is not None:
        body["display_name"] = name
    if quota is not None:
        body["quota"] = quota
    if aliases or no_aliases:
        body["aliases"] = list(aliases)
    return body


user_options = [
    click.option("--name", help="Display name."),
    click.option("--quota", help="Bytes, or with a unit: 500M, 10G; 0 = unlimited."),
    click.option("--alias", "aliases", multiple=True, help="Alias address (repeat; replaces all)."),
    click.option("--no-aliases", is_flag=True, help="Remove every alias."),
    password_file_option,
    generate_option,
]


def _with(options: list[Callable[[Callable[..., Any]], Callable[..., Any]]]) -> Callable[..., Any]:
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


@users.command("add")
@click.argument("address")
@_with(user_options)
@click.option("--tenant-admin", is_flag=True, help="Administers its tenant.")
@click.option("--disabled", is_flag=True, help="Created locked.")
@click.pass_obj
def users_add(
    obj: Callable[[], ApiClient],
    address: str,
    name: str | None,
    quota: str | None,
    aliases: tuple[str, ...],
    no_aliases: bool,
    password_file: Path | None,
    generate: bool,
    tenant_admin: bool,
    disabled: bool,
) -> None:
    """Add a user (the password from --password-file, --generate-password or a prompt)."""
    password = _new_password(password_file, generate)
    if password is None:
        if not sys.stdin.isatty():
            raise InputError("a new user needs --password-file or --generate-password")
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    body = {"address": address, "password": password, "enabled": not disabled}
    body |= {"tenant_admin": tenant_admin, **_user_fields(name, quota, aliases, no_aliases)}
    body.setdefault("display_name", address.split("@")[0])
    _done("added", obj().request("POST", "/users", body), "address")


@users.command("set")
@click.argument("address")
@_with(user_options)
@click.option("--enable/--disable", "enabled", default=None, help="Unlock or lock the account.")
@click.option("--tenant-admin/--no-tenant-admin", default=None)
@click.pass_obj
def users_set(
    obj: Callable[[], ApiClient],
    address: str,
    name: str | None,
    quota: str | None,
    aliases: tuple[str, ...],
    no_aliases: bool,
    password_file: Path | None,
    generate: bool,
    enabled: bool | None,
    tenant_admin: bool | None,
) -> None:
    """Change a user; a new password with --password-file or --generate-password."""
    body = _user_fields(name, quota, aliases, no_aliases)
    if (password := _new_password(password_file, generate)) is not None:
        body["password"] = password
    if enabled is not None:
        body["enabled"] = enabled
    if tenant_admin is not None:
        body["tenant_admin"] = tenant_admin
    if not body:
        raise InputError("nothing to change: give at least one option (see --help)")
    client = obj()
    _done("changed", client.request("PATCH", client.item("users", address), body), "address")


@users.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--update", is_flag=True, help="Change users that exist instead of skipping them.")
@click.pass_obj
def users_import(obj: Callable[[], ApiClient], csv_file: Path, update: bool) -> None:
    """Add users from a CSV file with a header row: address,display_name,password,quota,aliases
    (space separated),enabled,tenant_admin. Every row is tried; exit 7 when any failed."""
    rows = api_client.read_users_csv(csv_file)
    client = obj()
    failed = 0
    for line, body in rows:
        address = body["address"]
        try:
            try:
                client.request("POST", "/users", body)
                verb = "added"
            except ApiError as exc:
                if exc.status != 409:
                    raise
                if not update:
                    err.print(f"[yellow]-[/] {csv_file}:{line} {escape(address)} exists (skipped)")
                    continue
                changes = {k: v for k, v in body.items() if k != "address"}
                client.request("PATCH", client.item("users", address), changes)
                verb = "updated"
            err.print(f"[green]✓[/] {csv_file}:{line} {escape(address)} {verb}")
        except ApiError as exc:
            failed += 1
            err.print(f"[red]✗[/] {csv_file}:{line} {escape(address)}: {escape(exc.title)}")
    if failed:
        raise ApiError(f"{failed} of {len(rows)} rows of {csv_file} failed")


# --- groups --------------------------------------------------------------------------------------

groups = api_group("groups", "Distribution lists: list, show, add, set, delete.")


group_options = [
    click.option("--name", help="Name shown in the address book."),
    click.option("--description"),
    click.option(
        "--member", "members", multiple=True, help="Member address (repeat; replaces all)."
    ),
    click.option("--alias", "aliases", multiple=True, help="Alias address (repeat; replaces all)."),
]


def _group_fields(
    name: str | None, description: str | None, members: tuple[str, ...], aliases: tuple[str, ...]
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "description": description}
    body = {k: v for k, v in body.items() if v is not None}
    if members:
        body["members"] = list(members)
    if aliases:
        body["aliases"] = list(aliases)
    return body


@groups.command("add")
@click.argument("address")
@_with(group_options)
@click.pass_obj
def groups_add(
    obj: Callable[[], ApiClient],
    address: str,
    name: str | None,
    description: str | None,
    members: tuple[str, ...],
    aliases: tuple[str, ...],
) -> None:
    """Add a group."""
    body = {"address": address, **_group_fields(name, description, members, aliases)}
    body.setdefault("name", address.split("@")[0])
    _done("added", obj().request("POST", "/groups", body), "address")


@groups.command("set")
@click.argument("address")
@_with(group_options)
@click.option("--add-member", "add", multiple=True, help="Add this member (repeat).")
@click.option("--remove-member", "remove", multiple=True, help="Remove this member (repeat).")
@click.pass_obj
def groups_set(
    obj: Callable[[], ApiClient],
    address: str,
    name: str | None,
    description: str | None,
    members: tuple[str, ...],
    aliases: tuple[str, ...],
    add: tuple[str, ...],
    remove: tuple[str, ...],
) -> None:
    """Change a group."""
    client = obj()
    body = _group_fields(name, description, members, aliases)
    if add or remove:
        current = members or tuple(client.request("GET", client.item("groups", address))["members"])
        body["members"] = [m for m in dict.fromkeys(current + add) if m not in remove]
    if not body:
        raise InputError("nothing to change: give at least one option (see --help)")
    _done("changed", client.request("PATCH", client.item("groups", address), body), "address")


# --- domains -------------------------------------------------------------------------------------

domains = api_group("domains", "Mail domains of tenants: list, show, add, delete, dns.")


@domains.command("add")
@click.argument("name")
@click.option("--tenant", required=True)
@click.option("--description")
@click.pass_obj
def domains_add(
    obj: Callable[[], ApiClient], name: str, tenant: str, description: str | None
) -> None:
    """Add a domain to a tenant (global administrator)."""
    body = {"name": name, "tenant": tenant}
    if description is not None:
        body["description"] = description
    _done("added", obj().request("POST", "/domains", body), "name")


@domains.command("dns")
@click.argument("name")
@click.pass_obj
def domains_dns(obj: Callable[[], ApiClient], name: str) -> None:
    """The DNS records to publish for a domain, as a zone snippet."""
    client = obj()
    records = client.request("GET", client.item("domains", name) + "/dns")
    width = max((len(r["name"]) for r in records), default=0)
    for r in records:
        line = f"{r['name']:<{width}}  IN  {r['type']:<5} {r['data']}"
        out.print(f"{line}  ; {r['comment']}" if r.get("comment") else line, markup=False)


# --- tenants -------------------------------------------------------------------------------------

tenants = api_group("tenants", "Tenants: list, show, add, set, delete (global administrator).")


@tenants.command("add")
@click.argument("name")
@click.option("--description")
@click.pass_obj
def tenants_add(obj: Callable[[], ApiClient], name: str, description: str | None) -> None:
    """Add a tenant."""
    body = {"name": name} | ({"description": description} if description is not None else {})
    _done("added", obj().request("POST", "/tenants", body), "name")


@tenants.command("set")
@click.argument("name")
@click.option("--description", required=True)
@click.pass_obj
def tenants_set(obj: Callable[[], ApiClient], name: str, description: str) -> None:
    """Change a tenant's description."""
    client = obj()
    data = client.request("PATCH", client.item("tenants", name), {"description": description})
    _done("changed", data, "name")


ADMIN_GROUPS = (users, groups, domains, tenants)
