"""Host counts per group and what replicated groups need (psn/topology.py): `validate` refuses
each topology the roles cannot deploy, the precheck filter says the same, and no role keeps a
count rule of its own."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from psn.cli import run
from psn.inventory import load_inventory, yaml_round_trip
from psn.topology import HOST_COUNTS, NEEDS, topology_problems

ROOT = Path(__file__).resolve().parents[2]


def refused_counts(group: str) -> list[int]:
    """Counts of 1..4 hosts the rule refuses (the ones an operator would write)."""
    return [n for n in range(1, 5) if n not in HOST_COUNTS[group].allowed]


def set_hosts(inventory: Path, group: str, count: int) -> None:
    """Give `group` of the inventory file the hosts h1..h<count>."""
    keys = load_inventory(inventory).group_path(group)
    yaml = yaml_round_trip()
    doc = yaml.load(inventory.read_text())
    node = doc
    for key in keys:
        if node.get(key) is None:  # the template has syslog commented out
            node[key] = {}
        node = node[key]
    node["hosts"] = {f"h{i}.example.com": None for i in range(1, count + 1)}
    with inventory.open("w") as handle:
        yaml.dump(doc, handle)


def validate(inventory: Path, certs_root: Path, capsys) -> tuple[int, str]:
    code = run(["--skip-checksum", "validate", str(inventory), "--certs-dir", str(certs_root)])
    output = capsys.readouterr()
    return code, output.out + output.err


CASES = [(group, count) for group in HOST_COUNTS for count in refused_counts(group)]


@pytest.mark.parametrize(("group", "count"), CASES, ids=[f"{g}-{n}" for g, n in CASES])
def test_validate_refuses_a_count_the_roles_cannot_deploy(
    group, count, valid_inventory, certs_root, capsys
):
    set_hosts(valid_inventory, group, count)
    code, text = validate(valid_inventory, certs_root, capsys)
    assert code == 2, text
    allowed = HOST_COUNTS[group].describe()
    assert f"group `{group}` has {count} hosts; allowed: {allowed}" in text
    assert f"keep {allowed} " in text
    assert "Nothing was changed" in text


@pytest.mark.parametrize("group", list(HOST_COUNTS))
def test_validate_accepts_every_allowed_count(group, valid_inventory, certs_root, capsys):
    for count in HOST_COUNTS[group].allowed:
        set_hosts(valid_inventory, group, count)
        if count > 1 and group in NEEDS:
            set_hosts(valid_inventory, NEEDS[group].other, NEEDS[group].count)
        code, text = validate(valid_inventory, certs_root, capsys)
        assert code == 0, text


@pytest.mark.parametrize("group", list(NEEDS))
def test_validate_refuses_a_replicated_group_without_what_it_needs(
    group, valid_inventory, certs_root, capsys
):
    needs = NEEDS[group]
    set_hosts(valid_inventory, group, 2)
    set_hosts(valid_inventory, needs.other, 1)
    code, text = validate(valid_inventory, certs_root, capsys)
    assert code == 2, text
    assert (
        f"group `{group}` has 2 hosts, which needs {needs.count} hosts in group `{needs.other}` "
        "(found 1)"
    ) in text
    assert f"list {needs.count} hosts under `{needs.other}.hosts`, or keep 1 host" in text
    set_hosts(valid_inventory, needs.other, needs.count)
    assert validate(valid_inventory, certs_root, capsys)[0] == 0


def load_filter():
    path = ROOT / "plugins/filter/psn_topology.py"
    spec = importlib.util.spec_from_file_location("psn_topology", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["psn_topology_problems"]


def test_precheck_filter_refuses_what_validate_refuses():
    problems = load_filter()
    groups = {"all": ["a", "b", "c"], "mail": ["a", "b", "c"], "etcd": ["a"], "redis": ["a", "b"]}
    assert problems(groups) == [f"{p.message}; {p.fix}" for p in topology_problems(groups)]
    assert len(problems(groups)) == 2
    assert "group `mail` has 3 hosts" in problems(groups)[0]
    assert "group `redis` has 2 hosts, which needs 3 hosts in group `etcd`" in problems(groups)[1]
    assert problems({"etcd": ["a"], "redis": ["a"], "ungrouped": []}) == []
    assert problems({"etcd": ["a", "b", "c"], "redis": ["a", "b"]}) == []


def test_precheck_runs_the_filter_once_before_anything_else():
    tasks = (ROOT / "roles/precheck/tasks/main.yml").read_text()
    first_task = tasks.split("\n- name:")[1]
    assert "groups | psn_topology_problems" in first_task
    assert "run_once: true" in first_task


def test_no_role_keeps_a_host_count_rule_of_its_own():
    count_rule = re.compile(r"groups\[['\"]?(\w+)['\"]?\][^\n]*\|\s*length\s*(==|<|>|!=)")
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / "roles").glob("*/tasks/*.yml")
        for match in count_rule.finditer(path.read_text())
        if match.group(1) in HOST_COUNTS
    ]
    assert found == [], "count rules belong in psn/topology.py"
