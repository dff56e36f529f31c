"""The DNS records a mail domain needs, in the shapes of the installer's `deploy_psn dns`."""

from __future__ import annotations

from psnweb.api.models import DnsRecordOut
from psnweb.api.settings import Settings

# (record name, port, host of the target) as the installer's psn/dns.py (guide Table 8).
SRV_RECORDS = (
    ("_caldavs._tcp", 443, "mail"),
    ("_carddavs._tcp", 443, "mail"),
    ("_imap._tcp", 143, "imap"),
    ("_imaps._tcp", 993, "imap"),
    ("_smtps._tcp", 465, "smtp"),
    ("_submission._tcp", 587, "smtp"),
    ("_submissions._tcp", 465, "smtp"),
)
# Longest character-string of a TXT record (RFC 1035 §3.3); longer values are split.
TXT_CHUNK = 255


def txt_data(value: str) -> str:
    """A TXT value as quoted character-strings of at most 255 characters."""
    chunks = [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]
    return " ".join(f'"{c}"' for c in chunks)


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


def domain_records(settings: Settings, domain: str) -> list[DnsRecordOut]:
    """MX, SPF, DMARC, DKIM, the SRV records of the client protocols and autoconfig's name."""
    hosts = settings.hosts
    records = [
        DnsRecordOut(name=f"{domain}.", type="MX", data=f"10 {_fqdn(settings.mx)}", comment=""),
        DnsRecordOut(
            name=f"{domain}.",
            type="TXT",
            data=txt_data("v=spf1 mx -all"),
            comment="only the MX hosts send mail",
        ),
        DnsRecordOut(
            name=f"_dmarc.{domain}.",
            type="TXT",
            data=txt_data(f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}"),
            comment="raise p= to quarantine or reject once the reports look clean",
        ),
    ]
    dkim_name = f"{settings.dkim_selector}._domainkey.{domain}."
    if domain in settings.dkim:
        records.append(
            DnsRecordOut(
                name=dkim_name, type="TXT", data=txt_data(settings.dkim[domain]), comment=""
            )
        )
    else:
        records.append(
            DnsRecordOut(
                name=dkim_name,
                type="TXT",
                data=txt_data("v=DKIM1; k=rsa; p=<not generated yet>"),
                comment=(
                    f"no DKIM key of {domain} yet: `./deploy_psn.sh <inventory> -t mail,backend` "
                    "makes it and shows its record here"
                ),
            )
        )
    for name, port, host in SRV_RECORDS:
        records.append(
            DnsRecordOut(
                name=f"{name}.{domain}.",
                type="SRV",
                data=f"0 1 {port} {_fqdn(hosts[host])}",
                comment="",
            )
        )
    autoconfig = _fqdn(hosts["autoconfig"])
    if autoconfig != f"autoconfig.{domain}.":  # the installation's own domain has its A record
        records.append(
            DnsRecordOut(
                name=f"autoconfig.{domain}.",
                type="CNAME",
                data=autoconfig,
                comment="Thunderbird's automatic account setup",
            )
        )
    records.append(
        DnsRecordOut(
            name=f"_autodiscover._tcp.{domain}.",
            type="SRV",
            data=f"0 1 443 {autoconfig}",
            comment="Outlook's automatic account setup",
        )
    )
    return records
