"""The mail host whose DKIM key every mail host signs with (psn/dkim.py)."""

from __future__ import annotations

from psn.dkim import key_holders


def test_a_key_one_host_has_wins_over_making_a_new_one():
    hosts = ["mail1", "mail2"]
    keys = {"mail1": [], "mail2": ["example.com"]}
    assert key_holders(hosts, keys, ["example.com", "new.example"]) == {
        "example.com": "mail2",
        "new.example": "mail1",
    }


def test_the_first_host_holding_a_key_is_its_source():
    keys = {"mail1": ["example.com"], "mail2": ["example.com"]}
    assert key_holders(["mail1", "mail2"], keys, ["example.com"]) == {"example.com": "mail1"}


def test_no_hosts_hold_nothing():
    assert key_holders([], {}, ["example.com"]) == {}
