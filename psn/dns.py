"""`deploy_psn dns`: the DNS records of guide §4.2.6 as a BIND zone snippet."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from psn.inventory import Inventory, as_text
from psn.names import SERVICE_PREFIXES, service_hostname

# Published mail protocols run on the mail hosts (ports in `mode: host`), not behind the web proxy.
MAIL_PREFIXES = frozenset({"imap", "smtp"})

# Guide Table 8: (record name, port, prefix of the target; None = the bare domain).
SRV_RECORDS = (
    ("_caldavs._tcp", 443, "mail"),
    ("_carddavs._tcp", 443, None),
    ("_imap._tcp", 143, "imap"),
    ("_imaps._tcp", 993, "imap"),
    ("_smtps._tcp", 465, "smtp"),
    ("_submission._tcp", 587, "smtp"),
    ("_submissions._tcp", 465, "smtp"),
)


@dataclass(frozen=True)
class Record:
    """One resource record; `comment` explains a placeholder the operator must replace."""

    name: str
    type: str
    data: str
    comment: str = ""


def _address(host: str, hostvars: dict[str, object]) -> tuple[str, str, str]:
    """(record type, address, comment) of an inventory host: its IP, or a placeholder."""
    for candidate in (as_text(hostvars.get("ansible_host")), host):
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        return ("AAAA" if ip.version == 6 else "A", str(ip), "")
    return (
        "A",
        f"<public IP of {host}>",
        f"{host} has no IP in the inventory: replace the placeholder",
    )


def _address_records(inv: Inventory, name: str, hosts: list[str]) -> list[Record]:
    records = []
    for host in hosts:
        rtype, address, comment = _address(host, inv.host_vars(host))
        records.append(Record(f"{name}.", rtype, address, comment))
    return records


def dns_records(inv: Inventory) -> list[Record]:
    """Every record an installation needs, in the order of the guide."""
    domain, module = inv.external_domain, inv.domain_module
    proxies, mail_hosts = list(inv.hosts("proxy")), list(inv.hosts("mail"))
    records = _address_records(inv, domain, proxies)
    for prefix in SERVICE_PREFIXES:
        hosts = mail_hosts if prefix in MAIL_PREFIXES else proxies
        records += _address_records(inv, service_hostname(prefix, domain, module), hosts)
    smtp = service_hostname("smtp", domain, module)
    records.append(Record(f"{domain}.", "MX", f"10 {smtp}."))
    for name, port, prefix in SRV_RECORDS:
        target = service_hostname(prefix, domain, module) if prefix else domain
        records.append(Record(f"{name}.{domain}.", "SRV", f"0 1 {port} {target}."))
    records.append(Record(f"{domain}.", "TXT", '"v=spf1 mx -all"', "only the MX hosts send mail"))
    records.append(
        Record(
            f"_dmarc.{domain}.",
            "TXT",
            f'"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"',
            "raise p= to quarantine or reject once the reports look clean",
        )
    )
    return records


def render_zone(inv: Inventory) -> str:
    """The records as a BIND zone snippet with aligned columns and comments."""
    records = dns_records(inv)
    width = max(len(r.name) for r in records)
    lines = [
        f"; DNS records for {inv.external_domain} (PSN, install guide §4.2.6)",
        "; Web names point at the proxy hosts; imap and smtp at the mail hosts.",
        "$TTL 3600",
    ]
    for r in records:
        line = f"{r.name:<{width}}  IN  {r.type:<5} {r.data}"
        lines.append(f"{line}  ; {r.comment}" if r.comment else line)
    return "\n".join(lines) + "\n"
