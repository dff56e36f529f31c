"""Which mail host's DKIM key of each domain every mail host signs with (the mail role)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def key_holders(
    hosts: Sequence[str], keys: Mapping[str, Sequence[str]], domains: Sequence[str]
) -> dict[str, str]:
    """Domain -> the host whose key of it every mail host uses: the first of `hosts` that has
    one (`keys`: host -> domains it has a key of), else the first host, which makes it. A key
    already published in DNS is thus never replaced by another host's new one."""
    if not hosts:
        return {}
    return {
        domain: next((h for h in hosts if domain in keys.get(h, ())), hosts[0])
        for domain in domains
    }
