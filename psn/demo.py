"""`./deploy_psn.sh demo`: the guide's "virtual appliance" — the shipped template deployed with
generated secrets and a self-signed certificate set onto one emulated server on this machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from psn import __version__, deploy, emulated, images, verify
from psn.certs import generate_self_signed
from psn.dns import render_zone
from psn.errors import DeployError, Problem
from psn.genpwd import fill_secrets
from psn.inventory import load_inventory, yaml_round_trip
from psn.names import certificate_names, default_domain, service_hostname

DEMO_DIR = "demo"
DEMO_DOMAIN = "psn.test"  # RFC 2606: never a real domain
DEMO_HOST = "psn-demo"
DEMO_NETWORK = "psn-demo"
TEMPLATE_HOST = "host.example.com"
# ClamAV needs signatures and the demo reaches no mirror: the test database (EICAR and a few
# test patterns) stands in; a real installation supplies the official ones (README, ClamAV).
DEMO_CLAMAV_DB = "tests/images/fixtures/clamav/db"


def demo_dir(root: Path) -> Path:
    """Where the demo keeps its inventory, certificates, SSH key and logs."""
    return root / DEMO_DIR


def write_demo_inventory(root: Path, hostvars: dict[str, str]) -> Path:
    """`demo/hosts.yml`: the template with every role on the demo server.

    An existing file keeps its secrets; only the connection variables are brought up to date.
    """
    path = demo_dir(root) / "hosts.yml"
    yaml = yaml_round_trip()
    if path.exists():
        doc = yaml.load(path.read_text("utf-8"))
    else:
        text = (root / "inventory" / "hosts.yml").read_text("utf-8")
        doc = yaml.load(text.replace(f"{TEMPLATE_HOST}:", f"{DEMO_HOST}:"))
        doc["all"]["vars"]["setup"]["external_domain"] = DEMO_DOMAIN
    # Host variables apply wherever the host is listed: set them once, on the registry entry.
    registry = doc["all"]["children"]["infra"]["children"]["docker_registry"]["hosts"]
    registry[DEMO_HOST] = dict(hostvars)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(doc, handle)
    path.chmod(0o600)
    return path


def _ensure_engine(root: Path, console: Console) -> None:
    """A Docker engine on this machine, installed and started when missing (as root)."""
    if emulated.engine_answers():
        return
    console.print("Starting a Docker engine on this machine (Debian's docker.io)…")
    result = subprocess.run(["bash", str(root / ".ci" / "docker-engine.sh")], check=False)
    if result.returncode != 0:
        raise DeployError(
            "No Docker engine for the demo",
            [
                Problem(
                    "installing or starting docker.io failed",
                    fix="run the demo as root on Debian 12",
                )
            ],
        )


def demo_up(root: Path, console: Console) -> None:
    """Start the demo server, prepare inventory, secrets and certificates, deploy, verify."""
    _ensure_engine(root, console)
    console.print("Building the images and their archive (cached after the first time)…")
    images.ensure_archive(
        root,
        __version__,
        lambda step: (
            console.print(f"  {step.event} {step.image or 'archive'} {step.detail}")
            if step.event != "start"
            else None
        ),
    )
    image = emulated.build_image(root)
    state = demo_dir(root) / "emulated"
    if not (state / emulated.KEY_FILE).exists():
        # A server left from a demo whose state is gone would not know our SSH key.
        emulated.stop_servers(DEMO_NETWORK)
    state.mkdir(parents=True, exist_ok=True)
    server = emulated.start_servers([DEMO_HOST], DEMO_NETWORK, state_dir=state, image=image)[0]
    inventory = write_demo_inventory(root, emulated.hostvars(server, state))
    fill_secrets(inventory)
    inv = load_inventory(inventory)
    certs_root = demo_dir(root) / "certificates"
    cert_dir = certs_root / default_domain(inv.external_domain)
    if not (cert_dir / "server.crt").exists():
        generate_self_signed(cert_dir, certificate_names(inv.external_domain, inv.domain_module))
    console.print(f"[bold]Demo server:[/] {DEMO_HOST} at {server.address}; inventory {inventory}")
    console.print(render_zone(inv, cert_dir), markup=False, highlight=False)
    # One small machine holds every role: below the guide's production minimums by design.
    args = [
        *("-e", "precheck__hardware=warn"),
        *("-e", f"mail__clamav_databases_dir={root / DEMO_CLAMAV_DB}"),
    ]
    deploy.deploy(deploy.Servers(root, inventory, args, certs_root, demo_dir(root), console))
    results = verify.verify(
        deploy.Servers(root, inventory, [], certs_root, demo_dir(root), console)
    )
    verify.render(results, console)
    names = " ".join(certificate_names(inv.external_domain, inv.domain_module))
    web = service_hostname("mail", inv.external_domain, inv.domain_module)
    imap = service_hostname("imap", inv.external_domain, inv.domain_module)
    smtp = service_hostname("smtp", inv.external_domain, inv.domain_module)
    admin = service_hostname("admin", inv.external_domain, inv.domain_module)
    console.print(
        f"[green]✓[/] demo deployed onto {DEMO_HOST} ({server.address})\n"
        f"  reach it from this machine: add `{server.address} {names}` to /etc/hosts, trust "
        f"{cert_dir / 'ca.crt'}\n"
        f"  webmail, calendar, contacts: https://{web}/\n"
        f"  login: admin@{inv.external_domain}, password: "
        f"passwords.default_tenant_admin_user in {inventory}\n"
        f"  mail client: IMAP {imap}:993 (TLS), SMTP {smtp}:587 (STARTTLS)\n"
        f"  admin panel: https://{admin}/ (login psnapi, password "
        f"passwords.psnapi_admin_user in {inventory})\n"
        f"  users from the command line: ./deploy_psn.sh users -i {inventory} --certs-dir "
        f"{certs_root} --address {server.address} list\n"
        f"  check again: ./deploy_psn.sh verify {inventory} --certs-dir {certs_root}\n"
        f"  DNS records with DKIM: ./deploy_psn.sh dns {inventory} --certs-dir {certs_root}\n"
        f"  shell: ssh -F {emulated.ssh_config_path(state, DEMO_NETWORK)} {DEMO_HOST}\n"
        "  remove everything: ./deploy_psn.sh demo down"
    )
    verify.verdict(results)


def demo_down(root: Path, console: Console) -> None:
    """Remove the demo server, its network and volume, and everything under demo/."""
    removed = emulated.stop_servers(DEMO_NETWORK) if emulated.engine_answers() else []
    path = demo_dir(root)
    if path.exists():
        shutil.rmtree(path)
        removed.append(str(path))
    console.print(f"[green]✓[/] removed {', '.join(removed)}" if removed else "no demo here")
