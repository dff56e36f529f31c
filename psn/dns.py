"""`deploy_psn dns`: the DNS records of guide §4.2.6 as a BIND zone snippet."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from psn.inventory import Inventory, as_text
from psn.names import SERVICE_PREFIXES, UNSERVED_PREFIXES, service_hostname

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
    for prefix in (p for p in SERVICE_PREFIXES if p not in UNSERVED_PREFIXES):
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


# The mail role copies each domain's DKIM public record here, under the certificate directory:
# `<domain>.<selector>.txt` holding the TXT value ("v=DKIM1; k=rsa; p=…").
DKIM_DIR = "dkim"
# Longest character-string of a TXT record (RFC 1035 §3.3); longer values are split.
TXT_CHUNK = 255


def dkim_values(cert_dir: Path) -> dict[str, str]:
    """`<selector>._domainkey.<domain>.` → TXT value, from the keys the last deployment made."""
    values = {}
    for path in sorted((cert_dir / DKIM_DIR).glob("*.txt")):
        domain, _, selector = path.name.removesuffix(".txt").rpartition(".")
        if domain and selector:
            values[f"{selector}._domainkey.{domain}."] = path.read_text("utf-8").strip()
    return values


def txt_data(value: str) -> str:
    """A TXT value as quoted character-strings of at most 255 characters."""
    chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
    return " ".join(f'"{c}"' for c in chunks)


def dkim_records(inv: Inventory, cert_dir: Path) -> list[Record]:
    """The DKIM TXT records, or a placeholder telling the operator to deploy the mail role."""
    values = dkim_values(cert_dir)
    if not values:
        return [
            Record(
                f"psn._domainkey.{inv.external_domain}.",
                "TXT",
                '"v=DKIM1; k=rsa; p=<not generated yet>"',
                "the mail role generates the DKIM key: deploy, then run `deploy_psn dns` again",
            )
        ]
    return [Record(name, "TXT", txt_data(value)) for name, value in values.items()]


def render_zone(inv: Inventory, cert_dir: Path | None = None) -> str:
    """The records as a BIND zone snippet with aligned columns and comments; with the
    certificate directory, also the DKIM records of the last deployment."""
    records = dns_records(inv)
    if cert_dir is not None:
        records += dkim_records(inv, cert_dir)
    width = max(len(r.name) for r in records)
    lines = [
        f"; DNS records for {inv.external_domain} (PSN, install guide §4.2.6)",
        "; Web names point at the proxy hosts; imap and smtp at the mail hosts.",
        f"; {' and '.join(UNSERVED_PREFIXES)}: not served by this release, no record needed.",
        "$TTL 3600",
    ]
    for r in records:
        line = f"{r.name:<{width}}  IN  {r.type:<5} {r.data}"
        lines.append(f"{line}  ; {r.comment}" if r.comment else line)
    return "\n".join(lines) + "\n"
