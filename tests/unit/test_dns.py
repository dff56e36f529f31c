"""`deploy_psn dns`: the records of guide §4.2.6 (Tables 7 and 8) as a zone snippet."""

from __future__ import annotations

from pathlib import Path

import yaml

from psn.cli import run
from psn.dns import MAIL_PREFIXES
from psn.inventory import yaml_round_trip
from psn.names import SERVICE_PREFIXES, UNSERVED_PREFIXES

ROOT = Path(__file__).resolve().parents[2]


def _inventory(tmp_path: Path, module: str = "{service}-{domain}") -> Path:
    yaml = yaml_round_trip()
    doc = yaml.load((ROOT / "inventory" / "hosts.yml").read_text())
    doc["all"]["vars"]["setup"]["external_domain"] = "test.example.com"
    doc["all"]["vars"]["setup"]["domain_module"] = module
    proxy = doc["all"]["children"]["frontend"]["children"]["proxy"]["hosts"]
    proxy.clear()
    proxy["psn1.example.com"] = {"ansible_host": "192.0.2.1"}
    proxy["psn2.example.com"] = {"ansible_host": "192.0.2.2"}
    doc["all"]["children"]["mail"]["hosts"] = {"198.51.100.7": None}
    path = tmp_path / "hosts.yml"
    with path.open("w") as handle:
        yaml.dump(doc, handle)
    return path


def _zone(tmp_path: Path, capsys, **kwargs: str) -> str:
    assert run(["--skip-checksum", "dns", str(_inventory(tmp_path, **kwargs))]) == 0
    return capsys.readouterr().out


def _records(zone: str) -> set[tuple[str, ...]]:
    return {tuple(line.split(";")[0].split()) for line in zone.splitlines() if " IN " in line}


def test_every_prefix_points_at_the_proxies_or_mail_hosts(tmp_path: Path, capsys) -> None:
    records = _records(_zone(tmp_path, capsys))
    for prefix in ("admin", "autoconfig", "mail", "psnapi"):
        assert (f"{prefix}-test.example.com.", "IN", "A", "192.0.2.1") in records
        assert (f"{prefix}-test.example.com.", "IN", "A", "192.0.2.2") in records
    for prefix in ("imap", "smtp"):
        assert (f"{prefix}-test.example.com.", "IN", "A", "198.51.100.7") in records
    # cab. and pbn. answer the proxy's 404: no record offers them.
    assert not [r for r in records if r[0].startswith(("cab-", "pbn-"))]


def test_unserved_prefixes_are_those_without_a_route() -> None:
    """The proxy routes every prefix the zone offers (mail protocols go to the mail hosts)."""
    routes = yaml.safe_load((ROOT / "roles/proxy/defaults/main.yml").read_text())["proxy__routes"]
    served = set(routes) | MAIL_PREFIXES
    assert set(UNSERVED_PREFIXES) == set(SERVICE_PREFIXES) - served


def test_srv_mx_spf_dmarc(tmp_path: Path, capsys) -> None:
    zone = _zone(tmp_path, capsys, module="{service}.{domain}")
    records = _records(zone)
    assert (
        "_submission._tcp.test.example.com.",
        "IN",
        "SRV",
        "0",
        "1",
        "587",
        "smtp.test.example.com.",
    ) in records
    assert (
        "_imaps._tcp.test.example.com.",
        "IN",
        "SRV",
        "0",
        "1",
        "993",
        "imap.test.example.com.",
    ) in records
    assert (
        "_carddavs._tcp.test.example.com.",
        "IN",
        "SRV",
        "0",
        "1",
        "443",
        "test.example.com.",
    ) in records
    assert (
        "_caldavs._tcp.test.example.com.",
        "IN",
        "SRV",
        "0",
        "1",
        "443",
        "mail.test.example.com.",
    ) in records
    assert ("test.example.com.", "IN", "MX", "10", "smtp.test.example.com.") in records
    assert '"v=spf1 mx -all"' in zone and "_dmarc.test.example.com." in zone
    assert len([r for r in records if r[2] == "SRV"]) == 7


def test_host_without_ip_gets_a_marked_placeholder(tmp_path: Path, capsys) -> None:
    zone = _zone(tmp_path, capsys)
    line = next(
        line for line in zone.splitlines() if line.startswith("test.example.com.") and " A " in line
    )
    assert "192.0.2.1" in line  # proxies have ansible_host
    assert "<public IP of" not in line
    full = ROOT / "inventory" / "hosts.yml"
    assert run(["--skip-checksum", "dns", str(full)]) == 0
    template_zone = capsys.readouterr().out
    assert (
        "<public IP of host.example.com>" in template_zone
        and "replace the placeholder" in template_zone
    )


def test_broken_domain_is_refused(tmp_path: Path, capsys) -> None:
    path = _inventory(tmp_path)
    path.write_text(path.read_text().replace('"test.example.com"', '"not a domain"'))
    assert run(["--skip-checksum", "dns", str(path)]) == 2
    assert "external_domain" in capsys.readouterr().err


def test_host_variables_merge_across_groups(tmp_path: Path, capsys) -> None:
    yaml = yaml_round_trip()
    doc = yaml.load((ROOT / "inventory" / "hosts.yml").read_text())
    registry = doc["all"]["children"]["infra"]["children"]["docker_registry"]["hosts"]
    registry["host.example.com"] = {"ansible_host": "203.0.113.9"}  # set once, as Ansible allows
    path = tmp_path / "hosts.yml"
    with path.open("w") as handle:
        yaml.dump(doc, handle)
    assert run(["--skip-checksum", "dns", str(path)]) == 0
    records = _records(capsys.readouterr().out)
    assert ("mail.example.com.", "IN", "A", "203.0.113.9") in records


def test_host_variables_under_all_hosts_count(tmp_path: Path, capsys) -> None:
    yaml = yaml_round_trip()
    doc = yaml.load((ROOT / "inventory" / "hosts.yml").read_text())
    doc["all"]["hosts"] = {"host.example.com": {"ansible_host": "203.0.113.10"}}
    path = tmp_path / "hosts.yml"
    with path.open("w") as handle:
        yaml.dump(doc, handle)
    assert run(["--skip-checksum", "dns", str(path)]) == 0
    records = _records(capsys.readouterr().out)
    assert ("smtp.example.com.", "IN", "A", "203.0.113.10") in records


def test_dkim_record_from_the_last_deployment(tmp_path: Path, capsys) -> None:
    inventory = _inventory(tmp_path, module="{service}.{domain}")
    certs = tmp_path / "certs"
    dkim_dir = certs / "example.com" / "dkim"
    dkim_dir.mkdir(parents=True)
    value = "v=DKIM1; k=rsa; p=" + "A" * 392  # a 2048-bit key is longer than one string
    (dkim_dir / "test.example.com.psn.txt").write_text(value + "\n")
    assert run(["--skip-checksum", "dns", str(inventory), "--certs-dir", str(certs)]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if "_domainkey" in x]
    name, _, rtype, data = line.split(maxsplit=3)
    assert (name, rtype) == ("psn._domainkey.test.example.com.", "TXT")
    strings = data.split('" "')
    assert all(len(s.strip('"')) <= 255 for s in strings)
    assert "".join(s.strip('"') for s in strings) == value


def test_dkim_placeholder_before_the_first_deployment(tmp_path: Path, capsys) -> None:
    inventory = _inventory(tmp_path)
    assert run(["--skip-checksum", "dns", str(inventory), "--certs-dir", str(tmp_path)]) == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if "_domainkey" in x]
    assert "not generated yet" in line and "deploy, then run `deploy_psn dns` again" in line
