"""`./deploy_psn.sh demo`: the guide's "virtual appliance" — an all-in-one deployment made from
the shipped template with generated secrets and a self-signed certificate set."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from psn import deploy
from psn.certs import generate_self_signed
from psn.dns import render_zone
from psn.genpwd import fill_secrets
from psn.inventory import load_inventory, yaml_round_trip
from psn.names import certificate_names, default_domain, service_hostname

DEMO_DIR = "demo"
DEMO_DOMAIN = "psn.test"  # RFC 2606: never a real domain
DEMO_HOST = "localhost"
TEMPLATE_HOST = "host.example.com"


def demo_dir(root: Path) -> Path:
    """Where the demo keeps its inventory, certificates and logs."""
    return root / DEMO_DIR


def write_demo_inventory(root: Path) -> Path:
    """`demo/hosts.yml`: the template with every role on this machine, reached locally.

    An existing file is kept, so a re-run deploys with the same secrets.
    """
    path = demo_dir(root) / "hosts.yml"
    if path.exists():
        return path
    yaml = yaml_round_trip()
    text = (root / "inventory" / "hosts.yml").read_text("utf-8")
    doc = yaml.load(text.replace(f"{TEMPLATE_HOST}:", f"{DEMO_HOST}:"))
    variables = doc["all"]["vars"]
    variables["setup"]["external_domain"] = DEMO_DOMAIN
    # The demo's server is this machine itself, with Debian's own Python for Ansible's modules.
    variables.insert(0, "ansible_connection", "local")
    variables.insert(1, "ansible_python_interpreter", "/usr/bin/python3")
    path.parent.mkdir(mode=0o700, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(doc, handle)
    return path


def demo_up(root: Path, console: Console) -> None:
    """Prepare the demo inventory, secrets and certificates, then deploy it."""
    inventory = write_demo_inventory(root)
    fill_secrets(inventory)
    inv = load_inventory(inventory)
    certs_root = demo_dir(root) / "certificates"
    cert_dir = certs_root / default_domain(inv.external_domain)
    if not (cert_dir / "server.crt").exists():
        generate_self_signed(cert_dir, certificate_names(inv.external_domain, inv.domain_module))
    console.print(f"[bold]Demo inventory:[/] {inventory}")
    console.print(render_zone(inv), markup=False, highlight=False)
    # One small machine holds every role: below the guide's production minimums by design.
    deploy.deploy(
        root,
        inventory,
        ["-e", "precheck__hardware=warn"],
        certs_root=certs_root,
        log_dir=demo_dir(root),
        console=console,
    )
    mail = service_hostname("mail", inv.external_domain, inv.domain_module)
    console.print(
        f"[green]✓[/] demo deployed from {inventory}\n"
        f"  web address (once the mail suite is installed): https://{mail}/\n"
        f"  admin login: admin@{inv.external_domain}, password: "
        f"passwords.default_tenant_admin_user in {inventory}\n"
        f"  trust {cert_dir / 'ca.crt'} in your browser; remove everything with "
        "`./deploy_psn.sh demo down`"
    )


def demo_down(root: Path, console: Console) -> None:
    """Remove everything the demo created."""
    path = demo_dir(root)
    if path.exists():
        shutil.rmtree(path)
        console.print(f"[green]✓[/] removed {path}")
    else:
        console.print("nothing to remove: no demo here")
