"""`deploy_psn`: the command line. Commands stay thin and call plain functions."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from psn import (
    __version__,
    ansible_args,
    certs,
    demo,
    deploy,
    dist,
    dns,
    genpwd,
    images,
    status,
    validate,
    verify,
)
from psn.cli_admin import ADMIN_GROUPS
from psn.console import make_console, render_problems, summary_line
from psn.errors import InputError, Problem, PsnError
from psn.names import certificate_names, default_domain

out = make_console()
err = make_console(stderr=True)


def installer_root() -> Path:
    """The installer's directory: `$PSN_ROOT`, else the tree this package was installed from."""
    if env := os.environ.get("PSN_ROOT"):
        return Path(env).resolve()
    tree = Path(__file__).resolve().parent.parent
    return tree if (tree / "playbooks" / "site.yml").is_file() else Path.cwd()


class State:
    """Options of the command group, handed to every command."""

    def __init__(self, root: Path, debug: bool) -> None:
        self.root = root
        self.debug = debug

    def certs_root(self, option: Path | None) -> Path:
        """`--certs-dir`, else `certificates/` of the installer (guide §4.2.4)."""
        return option if option is not None else self.root / "certificates"


pass_state = click.make_pass_decorator(State)
certs_dir_option = click.option(
    "--certs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding <DEFAULT_DOMAIN>/ with the certificates [default: ./certificates].",
)
inventory_argument = click.argument("inventory", type=click.Path(path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deploy_psn")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option(
    "--skip-checksum", is_flag=True, help="Run even if installer files differ from MANIFEST.sha256."
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Installer directory (default: where deploy_psn is installed from).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, skip_checksum: bool, root: Path | None) -> None:
    """Install and run the PSN mail suite (see README.md)."""
    state = State(root.resolve() if root else installer_root(), debug)
    ctx.obj = state
    if not skip_checksum:
        dist.verify_tree(state.root)


def _report(problems: list, ok_message: str) -> None:
    """Print problems; raise InputError (exit 2) when any is an error."""
    render_problems(err, problems)
    errors, _, summary = summary_line(problems)
    if errors:
        raise InputError(f"Check failed: {summary}. Nothing was changed on any server.")
    err.print(f"[green]✓[/] {ok_message}" + (f" ({summary})" if problems else ""))


@cli.command("validate")
@inventory_argument
@certs_dir_option
@pass_state
def validate_cmd(state: State, inventory: Path, certs_dir: Path | None) -> None:
    """Check an inventory and its certificates; touches no server."""
    _, problems = validate.check_installation(inventory, state.root, state.certs_root(certs_dir))
    _report(problems, f"{inventory} and its certificates are valid")


@cli.command("genpwd")
@inventory_argument
def genpwd_cmd(inventory: Path) -> None:
    """Fill every empty password and key of INVENTORY (values already set are kept)."""
    filled = genpwd.fill_secrets(inventory)
    for name in filled:
        err.print(f"  generated {name}")
    err.print(f"[green]✓[/] {len(filled) or 'no'} values generated; {inventory} is mode 0600")


@cli.group("certs")
def certs_group() -> None:
    """Create or check the TLS certificates (guide §4.2.4)."""


@certs_group.command("self-signed")
@click.argument("domain")
@click.option(
    "--domain-module",
    default=None,
    help="Host name template [default: from --inventory, else {service}.{domain}].",
)
@click.option(
    "--inventory", type=click.Path(path_type=Path), help="Take domain_module from this inventory."
)
@click.option(
    "--force", is_flag=True, help="Replace an existing server certificate (the local CA is kept)."
)
@certs_dir_option
@pass_state
def certs_self_signed(
    state: State,
    domain: str,
    domain_module: str | None,
    inventory: Path | None,
    force: bool,
    certs_dir: Path | None,
) -> None:
    """Make a local CA and a server certificate for DOMAIN's host names."""
    module = domain_module
    if module is None and inventory is not None:
        module = validate.load_inventory(inventory).domain_module or None
    cert_dir = state.certs_root(certs_dir) / default_domain(domain)
    written = certs.generate_self_signed(
        cert_dir, certificate_names(domain, module or "{service}.{domain}"), force=force
    )
    for path in written:
        err.print(f"  wrote {path}")
    err.print(
        f"[green]✓[/] self-signed certificates in {cert_dir}; "
        f"clients must trust {cert_dir / certs.CA_CERT}"
    )


@certs_group.command("check")
@inventory_argument
@certs_dir_option
@pass_state
def certs_check(state: State, inventory: Path, certs_dir: Path | None) -> None:
    """Check the certificates an inventory needs."""
    inv = validate.load_inventory(inventory)
    _report(
        validate.certificate_problems(inv, state.certs_root(certs_dir)), "certificates are valid"
    )


@cli.command("dns")
@inventory_argument
@certs_dir_option
@pass_state
def dns_cmd(state: State, inventory: Path, certs_dir: Path | None) -> None:
    """Print the DNS records the installation needs, as a BIND zone snippet (DKIM: the keys the
    last deployment generated, copied under the certificate directory)."""
    inv = validate.load_inventory(inventory)
    blocking = [
        p
        for p in validate.validate_inventory(inv, Path.cwd())
        if p.severity == "error"
        and p.path.startswith(
            ("all.children", "all.vars.setup.external_domain", "all.vars.setup.domain_module")
        )
    ]
    if blocking:
        _report(blocking, "")
    cert_dir = state.certs_root(certs_dir) / default_domain(inv.external_domain)
    out.print(dns.render_zone(inv, cert_dir), end="", markup=False)


def _image_progress(step: images.Progress) -> None:
    if step.event == "start":
        err.print(f"[{step.index}/{step.total}] {escape(step.detail)} …")
    else:
        err.print(f"    {step.event} in {step.seconds:.0f} s {escape(step.detail)}")


@cli.group("images")
def images_group() -> None:
    """Build the suite's container images from Debian packages, or save them to one archive."""


@images_group.command("build")
@click.option("--only", multiple=True, metavar="NAME", help="Build only these (and their bases).")
@click.option(
    "--rebuild-base", is_flag=True, help="Rebuild the debootstrap base (security updates)."
)
@click.option("--no-cache", is_flag=True, help="Do not use Docker's layer cache.")
@click.option("--version", "version", default=__version__, show_default=True, help="Image tag.")
@pass_state
def images_build(
    state: State, only: tuple[str, ...], rebuild_base: bool, no_cache: bool, version: str
) -> None:
    """Build the base and every image in dependency order (layer cache on)."""
    results = images.build_images(
        state.root,
        version,
        only or None,
        _image_progress,
        rebuild_base=rebuild_base,
        no_cache=no_cache,
        log_dir=state.root / "images" / "dist" / "logs",
    )
    built = sum(not r.cached for r in results)
    err.print(
        f"[green]✓[/] {len(results)} images ready ({built} built, {len(results) - built} cached)"
    )


@images_group.command("save")
@click.option("--version", "version", default=__version__, show_default=True, help="Image tag.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive path [default: images/dist/psn-images-<version>.tar].",
)
@click.option("--only", multiple=True, metavar="NAME", help="Save only these (and the registry).")
@pass_state
def images_save(state: State, version: str, out_path: Path | None, only: tuple[str, ...]) -> None:
    """Write every image into ONE archive, as the registry stores them (layers stored once)."""
    path = images.save_images(
        state.root,
        version,
        out_path or images.archive_path(state.root, version),
        _image_progress,
        only=only,
    )
    err.print(f"[green]✓[/] {path} ({path.stat().st_size / 1e6:.0f} MB)")


@cli.group("dist")
def dist_group() -> None:
    """Build the distribution archive (guide §4.1)."""


@dist_group.command("build")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("dist"),
    show_default=True,
    help="Where to write the archive.",
)
@click.option(
    "--version", "version", default=__version__, show_default=True, help="Release version."
)
@click.option(
    "--without-images", is_flag=True, help="Leave the image archive out (no offline install)."
)
@click.option(
    "--offline",
    is_flag=True,
    help="Also pack offline/apt/ (Debian packages the servers need, for inventories with "
    'offline: "True") and wheels/ (the installer\'s Python packages). Needs Docker and the '
    "Debian mirror and package index on this machine.",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="With --offline: build offline/apt/ and wheels/ again instead of reusing them.",
)
@click.option(
    "--offline-package",
    "offline_packages",
    multiple=True,
    metavar="NAME",
    help="With --offline: one more Debian package for offline/apt/ (e.g. an entry of "
    "common__extra_packages); repeat for more.",
)
@pass_state
def dist_build(
    state: State,
    out_dir: Path,
    version: str,
    without_images: bool,
    offline: bool,
    rebuild: bool,
    offline_packages: tuple[str, ...],
) -> None:
    """Write PSN_<version>.tgz with .md5, .sha256, a manifest and the image archive inside."""
    from psn import offline as offline_mod  # only this command uses it

    if (rebuild or offline_packages) and not offline:
        raise InputError(
            "Options that need --offline",
            [Problem("--rebuild and --offline-package apply to --offline", fix="add --offline")],
        )
    extra: list[str] = []
    if not without_images:
        archive = images.archive_path(state.root, version)
        if not archive.is_file():
            raise InputError(
                "No image archive to pack",
                [
                    Problem(
                        f"{archive} does not exist",
                        fix="run `deploy_psn images build` and `deploy_psn images save` first, "
                        "or pass --without-images",
                    )
                ],
            )
        extra.append(archive.relative_to(state.root).as_posix())
    if offline:

        def say(message: str) -> None:
            err.print(f"  {escape(message)}")

        repo = offline_mod.build_apt_repo(
            state.root,
            version,
            extra_packages=offline_packages,
            rebuild=rebuild,
            progress=say,
        )
        how = "reused" if repo.cached else f"{repo.downloaded} downloaded"
        err.print(
            f"[green]✓[/] {offline_mod.APT_DIR}/: {repo.packages} packages, "
            f"{repo.size / 1e6:.0f} MB ({how}, {repo.seconds:.0f} s)"
        )
        if repo.note:
            err.print(f"[yellow]![/] {escape(repo.note)}")
        wheels = offline_mod.build_wheels(state.root, rebuild=rebuild, progress=say)
        how = "reused" if wheels.cached else "collected"
        err.print(
            f"[green]✓[/] {offline_mod.WHEELS_DIR}/: {wheels.wheels} wheels, "
            f"{wheels.size / 1e6:.0f} MB ({how}, {wheels.seconds:.0f} s)"
        )
        extra += offline_mod.artifact_files(state.root)
    result = dist.build_distribution(state.root, out_dir, version, extra)
    for path in (result.tgz, result.md5, result.sha256):
        err.print(f"  wrote {path}")
    err.print(f"[green]✓[/] check it with: cd {out_dir} && md5sum -c {result.md5.name}")


# Commands that pass the rest of their arguments to Ansible.
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}
ansible_args_argument = click.argument("ansible_args", nargs=-1, type=click.UNPROCESSED)
log_dir_option = click.option(
    "--log-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write deploy_psn_<DATE>.log [default: the installer directory].",
)


def server_command(name: str) -> Callable[[Callable[[deploy.Servers, list[str]], None]], Any]:
    """A command over the servers of INVENTORY: Ansible arguments after it, --certs-dir and
    --log-dir. The function gets the Servers and the options a resume command repeats."""

    def decorate(func: Callable[[deploy.Servers, list[str]], None]) -> Any:
        @cli.command(name, context_settings=PASS_THROUGH, help=func.__doc__)
        @inventory_argument
        @ansible_args_argument
        @certs_dir_option
        @log_dir_option
        @pass_state
        def command(
            state: State,
            inventory: Path,
            ansible_args: tuple[str, ...],
            certs_dir: Path | None,
            log_dir: Path | None,
        ) -> None:
            options = [*(["--certs-dir", str(certs_dir)] if certs_dir else [])]
            options += ["--log-dir", str(log_dir)] if log_dir else []
            servers = deploy.Servers(
                state.root,
                inventory,
                list(ansible_args),
                state.certs_root(certs_dir),
                log_dir or state.root,
                err,
            )
            func(servers, options)

        return command

    return decorate


def _refuse_mistyped_command(inventory: Path) -> None:
    """`deploy_psn.sh validat x.yml` reaches deploy with "validat" as the inventory: say so."""
    if inventory.exists():
        return
    close = difflib.get_close_matches(str(inventory), sorted(cli.commands), n=1, cutoff=0.6)
    if close:
        raise InputError(
            f"No such inventory or command: {inventory}",
            [
                Problem(
                    f"`{inventory}` is neither an inventory file nor a command",
                    fix=f"did you mean the command `{close[0]}`? (./deploy_psn.sh {close[0]} ...)",
                    file=str(inventory),
                )
            ],
        )


def _ask_passwords(args: list[str]) -> dict[str, str]:
    """Ask for the passwords of -k/-K on the terminal (none without one: the run says why)."""
    asked = ansible_args.normalise_args(args).asked_passwords
    if not asked or not sys.stdin.isatty():
        return {}
    return {
        option: click.prompt(ansible_args.ASKED_PASSWORDS[option][0], hide_input=True)
        for option in asked
    }


@server_command("deploy")
def deploy_cmd(servers: deploy.Servers, options: list[str]) -> None:
    """Install onto the servers of INVENTORY; other arguments go to Ansible (-t proxy, ...)."""
    _refuse_mistyped_command(servers.inventory)
    passwords = _ask_passwords(servers.ansible_args)
    deploy.deploy(servers, command_options=options, passwords=passwords)


@server_command("precheck")
def precheck_cmd(servers: deploy.Servers, options: list[str]) -> None:
    """Check every server of INVENTORY (OS, hardware, ports, clock, names); changes nothing."""
    passwords = _ask_passwords(servers.ansible_args)
    deploy.deploy(
        servers, playbook="playbooks/precheck.yml", command_options=options, passwords=passwords
    )


@server_command("status")
def status_cmd(servers: deploy.Servers, _options: list[str]) -> None:
    """Every deployed service of INVENTORY: replicas and health; exit 6 when degraded."""
    report = status.collect(servers)
    status.render(report, out)
    status.verdict(report)
    out.print(f"[green]✓ {status.summary(report)}[/]")


@server_command("verify")
def verify_cmd(servers: deploy.Servers, _options: list[str]) -> None:
    """The guide's acceptance check (§4.3.2) as a client runs it; exit 6 on any failed check."""
    results = verify.verify(servers)
    verify.render(results, out)
    verify.verdict(results)
    out.print(f"[green]✓ all {len(results)} checks passed[/]")


@cli.command("demo")
@click.argument("action", type=click.Choice(["up", "down"]), default="up")
@pass_state
def demo_cmd(state: State, action: str) -> None:
    """Deploy (up) or remove (down) the local all-in-one demo."""
    (demo.demo_up if action == "up" else demo.demo_down)(state.root, err)


for _group in ADMIN_GROUPS:
    cli.add_command(_group)


def run(argv: list[str]) -> int:
    """Run the CLI; typed errors become messages and exit codes, tracebacks only with --debug."""
    try:
        cli.main(argv, prog_name="deploy_psn", standalone_mode=False)
    except PsnError as exc:
        if "--debug" in argv:
            raise
        if exc.problems:
            render_problems(err, exc.problems)
        err.print(f"[red]✗ {escape(exc.title)}[/]")
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("[red]✗ interrupted[/]")
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


def main() -> None:
    """Console script `deploy_psn`."""
    sys.exit(run(sys.argv[1:]))
