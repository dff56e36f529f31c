"""Host counts per group (psn/topology.py): `validate` refuses each count the roles cannot
deploy, the precheck filter says the same, and no role keeps a count rule of its own."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from psn.cli import run
from psn.inventory import load_inventory, yaml_round_trip
from psn.topology import HOST_COUNTS, count_problems

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


CASES = [(group, count) for group in HOST_COUNTS for count in refused_counts(group)]


@pytest.mark.parametrize(("group", "count"), CASES, ids=[f"{g}-{n}" for g, n in CASES])
def test_validate_refuses_a_count_the_roles_cannot_deploy(
    group, count, valid_inventory, certs_root, capsys
):
    set_hosts(valid_inventory, group, count)
    code = run(
        ["--skip-checksum", "validate", str(valid_inventory), "--certs-dir", str(certs_root)]
    )
    output = capsys.readouterr()
    text = output.out + output.err
    assert code == 2, text
    allowed = HOST_COUNTS[group].describe()
    assert f"group `{group}` has {count} hosts; allowed: {allowed}" in text
    assert f"keep {allowed} " in text
    assert "Nothing was changed" in text


@pytest.mark.parametrize("group", list(HOST_COUNTS))
def test_validate_accepts_every_allowed_count(group, valid_inventory, certs_root, capsys):
    for count in HOST_COUNTS[group].allowed:
        set_hosts(valid_inventory, group, count)
        code = run(
            ["--skip-checksum", "validate", str(valid_inventory), "--certs-dir", str(certs_root)]
        )
        output = capsys.readouterr()
        assert code == 0, output.out + output.err


def load_filter():
    path = ROOT / "plugins/filter/psn_topology.py"
    spec = importlib.util.spec_from_file_location("psn_topology", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()["psn_topology_problems"]


def test_precheck_filter_refuses_what_validate_refuses():
    problems = load_filter()
    groups = {"all": ["a", "b", "c"], "mail": ["a", "b"], "etcd": ["a"], "proxy": ["a", "b"]}
    assert problems(groups) == [f"{p.message}; {p.fix}" for p in count_problems(groups)]
    assert len(problems(groups)) == 1
    assert "group `mail` has 2 hosts" in problems(groups)[0]
    assert problems(groups, ["etcd"]) == []
    assert problems({"etcd": ["a"], "ungrouped": []}) == []


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
