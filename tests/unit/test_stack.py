"""psn.stack: the decisions of a stack deployment (checks, names, hashes, compose, plan)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from psn import stack

GROUPS = {"mail": ["psn1", "psn2"], "ldap": ["psn1"]}
SECRETS = {"ldap_password": "s3cret", "tls_key": "KEY"}


def service_map() -> dict:
    return {
        "postfix": {
            "image": "postfix",
            "group": "mail",
            "hostname": "postfix",
            "ports": [{"target": 25}, {"target": 587, "published": "1587"}],
            "configs": [{"src": "main.cf.j2", "dest": "main.cf", "target": "/etc/postfix/main.cf"}],
            "secrets": [{"name": "ldap_password"}, {"name": "tls_key", "mode": "0440"}],
            "memory_limit": "512M",
        },
        "dovecot": {
            "image": "dovecot",
            "group": "mail",
            "binds": [{"source": "/srv/mail", "target": "/var/mail", "read_only": "false"}],
            "volumes": [{"source": "index", "target": "/var/index"}],
            "secrets": [{"name": "ldap_password", "uid": 0}],
            "networks": ["psn-mail", "psn-db"],
        },
        "ldap": {"image": "ldap", "group": "ldap", "replicas": "1", "environment": {"A": "b"}},
    }


def inputs(services: dict | None = None, secrets: dict | None = None, texts: dict | None = None):
    services = service_map() if services is None else services
    names = stack.secret_names("mail", SECRETS if secrets is None else secrets)
    texts = texts or {}
    return stack.StackInputs(
        name="mail",
        services=services,
        image_prefix="reg:5001/psn",
        version="1.0",
        digests={"postfix": "sha256:aa", "dovecot": "sha256:bb", "ldap": "sha256:cc"},
        config_hashes={
            name: stack.config_hash(
                texts.get(name, []), [names[s["name"]] for s in svc.get("secrets", [])]
            )
            for name, svc in services.items()
        },
        secret_names=names,
        volumes={"index": "psn-mail-index"},
    )


def deployed(doc: dict) -> dict:
    """Labels of a stack deployed exactly as `doc` says."""
    return {f"psn-mail_{n}": dict(s["deploy"]["labels"]) for n, s in doc["services"].items()}


# --- the service map's checks ---------------------------------------------------------------------


def test_a_valid_map_has_no_problems():
    assert stack.check_service_map("mail", service_map(), SECRETS, {"index": "v"}, GROUPS) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["postfix"].pop("image"), "postfix.image: missing"),
        (lambda m: m["postfix"].pop("group"), "postfix.group: missing"),
        (lambda m: m["postfix"].update(group="nope"), "postfix.group: 'nope' is not an inventory"),
        (
            lambda m: m["postfix"].update(imgae="x"),
            "postfix.imgae: unknown key (did you mean image?)",
        ),
        (
            lambda m: m["postfix"].update(host="psn9"),
            "postfix.host: 'psn9' is not a host of group mail",
        ),
        (lambda m: m["postfix"].update(mode="daemon"), "postfix.mode: 'daemon'"),
        (
            lambda m: m["postfix"]["ports"].append({"publihsed": 1}),
            "postfix.ports[2]: target is missing",
        ),
        (
            lambda m: m["postfix"]["ports"].append({"target": 1, "publihsed": 1}),
            "did you mean published",
        ),
        (
            lambda m: m["postfix"].update(secrets=[{"name": "nope"}]),
            "postfix.secrets: nope is not a secret",
        ),
        (
            lambda m: m["dovecot"].update(volumes=[{"source": "x", "target": "/x"}]),
            "x is not a volume",
        ),
        (
            lambda m: m.update({"Bad Name": {"image": "x", "group": "mail"}}),
            "Bad Name: a service name",
        ),
        (lambda m: m["ldap"].update(binds={"source": "/x"}), "ldap.binds: a list, not dict"),
        (lambda m: m["ldap"].update(aliases="ldap"), "ldap.aliases: 'ldap': a list of"),
    ],
)
def test_map_problems_name_role_service_and_key(change, expected):
    services = service_map()
    change(services)
    problems = stack.check_service_map("mail", services, SECRETS, {"index": "v"}, GROUPS, "mail")
    rendered = [p.render() for p in problems]
    assert any(expected in r for r in rendered), rendered
    assert all(r.startswith("role mail, stack psn-mail, ") for r in rendered)
    assert all(p.fix for p in problems)


def test_empty_secrets_are_named_without_their_values():
    problems = stack.check_service_map(
        "mail", service_map(), {"ldap_password": "", "tls_key": None}, {"index": "v"}, GROUPS
    )
    assert len(problems) == 1
    assert "ldap_password, tls_key" in problems[0].message
    assert "genpwd" in problems[0].fix


# --- names and hashes -----------------------------------------------------------------------------


def test_secret_names_follow_the_value():
    first = stack.secret_names("mail", SECRETS)
    assert first["ldap_password"].startswith("psn-mail_ldap_password_")
    assert len(first["ldap_password"].rsplit("_", 1)[1]) == 8
    changed = stack.secret_names("mail", {**SECRETS, "ldap_password": "other"})
    assert changed["ldap_password"] != first["ldap_password"]
    assert changed["tls_key"] == first["tls_key"]
    # Same value in another stack: another secret (stacks never share one).
    assert stack.secret_names("ldap", SECRETS)["tls_key"] != first["tls_key"]


HASH_SCRIPT = """
import json, sys
from psn import stack
print(json.dumps([stack.secret_names("mail", {"k": "v\u00e9"}),
                  stack.config_hash(["a\u00e9"], ["n"]),
                  stack.spec_hash({"b": [1, {"z": 1, "a": "\u00e9"}], "a": True})]))
"""


def test_hashes_are_stable_across_runs_and_interpreters():
    # Fixed values: a changed formula would update every service of every deployed suite.
    expected = [{"k": "psn-mail_k_aa6d182c"}, "01c852e7ce097624", "f2a2411d6ef4e1d9"]
    here = [
        stack.secret_names("mail", {"k": "vé"}),
        stack.config_hash(["aé"], ["n"]),
        stack.spec_hash({"a": True, "b": [1, {"a": "é", "z": 1}]}),
    ]
    assert here == expected
    other = subprocess.run(
        [sys.executable, "-X", "utf8=0", "-c", HASH_SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(other.stdout) == expected


def test_hashes_equal_the_earlier_jinja_formulas():
    # Deployed suites carry hashes made by roles/stack's Jinja (to_json | hash('sha256')): equal
    # values mean that upgrading to this code restarts nothing.
    from ansible.plugins.filter.core import get_hash, to_json

    svc = {"b": [1, {"z": 1, "a": "é"}], "a": True}
    assert stack.spec_hash(svc) == get_hash(to_json(svc, sort_keys=True), "sha256")[:16]
    assert stack.config_hash(["x é"], ["n"]) == get_hash(to_json(["x é", "n"]), "sha256")[:16]
    digest = get_hash("psn-mail/k/vé", "sha256")[:8]
    assert stack.secret_names("mail", {"k": "vé"}) == {"k": f"psn-mail_k_{digest}"}


def test_config_hash_changes_with_text_or_secret_name():
    base = stack.config_hash(["a"], ["s1"])
    assert stack.config_hash(["a"], ["s1"]) == base
    assert stack.config_hash(["b"], ["s1"]) != base
    assert stack.config_hash(["a"], ["s2"]) != base
    assert stack.config_hash(["a", ""], ["s1"]) != base


# --- the compose document -------------------------------------------------------------------------


def test_compose_document_follows_the_runtime_rules():
    doc = stack.compose_document(inputs())
    postfix = doc["services"]["postfix"]
    assert postfix["image"] == "reg:5001/psn/postfix:1.0@sha256:aa"
    assert postfix["ports"] == [
        {"target": 25, "published": 25, "protocol": "tcp", "mode": "host"},
        {"target": 587, "published": 1587, "protocol": "tcp", "mode": "host"},
    ]
    assert postfix["deploy"]["endpoint_mode"] == "dnsrr"
    assert postfix["deploy"]["placement"]["constraints"] == ["node.labels.mail == true"]
    assert postfix["volumes"] == [
        {
            "type": "bind",
            "source": "/opt/poseidon/postfix/main.cf",
            "target": "/etc/postfix/main.cf",
            "read_only": True,
        }
    ]
    assert postfix["secrets"][1] == {
        "source": "tls_key",
        "target": "tls_key",
        "uid": "0",
        "gid": "0",
        "mode": 0o440,
    }
    assert postfix["deploy"]["resources"] == {"limits": {"memory": "512M"}}
    assert postfix["healthcheck"] == {"interval": "10s"}
    assert "environment" in postfix and "secret" not in json.dumps(postfix["environment"])
    dovecot = doc["services"]["dovecot"]
    assert dovecot["volumes"][1] == {
        "type": "bind",
        "source": "/srv/mail",
        "target": "/var/mail",
        "read_only": False,
    }
    assert dovecot["networks"] == ["psn-mail", "psn-db"]
    assert doc["networks"] == {"psn-db": {"external": True}, "psn-mail": {"external": True}}
    assert doc["volumes"] == {"index": {"name": "psn-mail-index"}}
    assert doc["secrets"]["tls_key"] == {
        "external": True,
        "name": stack.secret_names("mail", SECRETS)["tls_key"],
    }
    assert doc["services"]["ldap"]["deploy"]["replicas"] == 1
    # No secret value anywhere in the document.
    assert "s3cret" not in json.dumps(doc) and "KEY" not in json.dumps(doc)


def test_spec_hash_label_is_the_hash_of_the_rest_of_the_service():
    for svc in stack.compose_document(inputs())["services"].values():
        without = copy.deepcopy(svc)
        label = without["deploy"]["labels"].pop(stack.SPEC_LABEL)
        assert label == stack.spec_hash(without)


def test_aliases_name_the_service_on_each_of_its_networks():
    services = service_map()
    services["ldap"].update(networks=["psn-db", "psn-mail"], aliases=["directory"])
    doc = stack.compose_document(inputs(services))
    assert doc["services"]["ldap"]["networks"] == {
        "psn-db": {"aliases": ["directory"]},
        "psn-mail": {"aliases": ["directory"]},
    }
    assert doc["services"]["postfix"]["networks"] == ["psn-db"]  # no alias: a plain list


def test_global_mode_has_no_replicas_and_host_pins_to_one_node():
    services = service_map()
    services["ldap"]["mode"] = "global"
    services["postfix"]["host"] = "psn2"
    doc = stack.compose_document(inputs(services))
    assert "replicas" not in doc["services"]["ldap"]["deploy"]
    assert doc["services"]["postfix"]["deploy"]["placement"]["constraints"] == [
        "node.labels.mail == true",
        "node.labels.psn-host == psn2",
    ]


def test_stack_file_is_the_document_with_a_header():
    doc = stack.compose_document(inputs())
    text = stack.stack_file(doc, "mail", "/opt/poseidon/psn-mail-stack.yml", "mail")
    first, second, rest = text.split("\n", 2)
    assert (
        first
        == "# Stack psn-mail, written by the PSN installer (mail role); edits are overwritten."
    )
    assert (
        second
        == "# Deploy by hand: docker stack deploy -c /opt/poseidon/psn-mail-stack.yml psn-mail"
    )
    assert yaml.safe_load(rest) == doc
    assert stack.stack_file(doc, "mail", "/x", "mail") == stack.stack_file(
        stack.compose_document(inputs()), "mail", "/x", "mail"
    )


# --- the plan: what changes -----------------------------------------------------------------------


def test_nothing_changed_deploys_nothing():
    doc = stack.compose_document(inputs())
    planned = stack.plan("mail", doc, deployed(doc))
    assert planned == stack.Plan(deploy=[], remove=[])
    assert not planned.changed


def test_a_fresh_stack_deploys_every_service():
    doc = stack.compose_document(inputs())
    assert stack.plan("mail", doc, {}).deploy == ["postfix", "dovecot", "ldap"]


def test_force_deploys_every_service():
    doc = stack.compose_document(inputs())
    assert stack.plan("mail", doc, deployed(doc), force=True).deploy == [
        "postfix",
        "dovecot",
        "ldap",
    ]


def test_a_changed_secret_rolls_exactly_the_services_that_use_it():
    before = stack.compose_document(inputs())
    after = stack.compose_document(inputs(secrets={**SECRETS, "tls_key": "NEW"}))
    assert stack.plan("mail", after, deployed(before)).deploy == ["postfix"]
    after = stack.compose_document(inputs(secrets={**SECRETS, "ldap_password": "NEW"}))
    assert stack.plan("mail", after, deployed(before)).deploy == ["postfix", "dovecot"]


def test_a_changed_config_file_rolls_exactly_its_services():
    before = stack.compose_document(inputs(texts={"postfix": ["myhostname = a"]}))
    after = stack.compose_document(inputs(texts={"postfix": ["myhostname = b"]}))
    assert stack.plan("mail", after, deployed(before)).deploy == ["postfix"]


def test_a_changed_image_digest_or_setting_rolls_only_that_service():
    base = inputs()
    before = stack.compose_document(base)
    digests = {**base.digests, "ldap": "sha256:dd"}
    after = stack.compose_document(stack.StackInputs(**{**base.__dict__, "digests": digests}))
    assert stack.plan("mail", after, deployed(before)).deploy == ["ldap"]
    services = service_map()
    services["dovecot"]["stop_grace_period"] = "30s"
    assert stack.plan(
        "mail", stack.compose_document(inputs(services)), deployed(before)
    ).deploy == ["dovecot"]


def test_services_that_left_the_map_are_removed():
    before = stack.compose_document(inputs())
    services = service_map()
    del services["ldap"]
    planned = stack.plan("mail", stack.compose_document(inputs(services)), deployed(before))
    assert planned == stack.Plan(deploy=[], remove=["psn-mail_ldap"])


def test_diffs_show_each_changing_service_before_and_after():
    before = stack.compose_document(inputs())
    previous = stack.stack_file(before, "mail", "/x", "mail")
    services = service_map()
    services["postfix"]["memory_limit"] = "1G"
    del services["ldap"]
    after = stack.compose_document(inputs(services))
    planned = stack.plan("mail", after, deployed(before))
    diffs = stack.service_diffs("mail", previous, after, planned)
    assert [(d["before_header"], d["after_header"]) for d in diffs] == [
        ("psn-mail_postfix (deployed)", "psn-mail_postfix (wanted)"),
        ("psn-mail_ldap (deployed)", "psn-mail_ldap (removed)"),
    ]
    assert "memory: 512M" in diffs[0]["before"] and "memory: 1G" in diffs[0]["after"]
    assert diffs[1]["after"] == ""
    # No previous stack file (first deployment): every service is new.
    assert stack.service_diffs("mail", "", after, stack.plan("mail", after, {}))[0]["before"] == ""


def per_host_member() -> dict:
    return {
        "image": "ldap",  # an image with a digest in inputs()
        "group": "etcd",
        "per_host": "true",
        "hostname": "{member}",
        "secrets": [{"name": "{member}_peer_key", "uid": 902}],
        "ports": [{"target": 2380}],
    }


def test_a_per_host_service_becomes_one_pinned_service_per_host():
    groups = {"etcd": ["psn1", "psn2", "psn3"]}
    services = {"etcd": per_host_member(), "browser": {"image": "ldap", "group": "etcd"}}
    expanded = stack.expand_per_host(services, groups)
    assert list(expanded) == ["etcd1", "etcd2", "etcd3", "browser"]
    assert expanded["browser"] == services["browser"]
    assert expanded["etcd2"]["host"] == "psn2"
    assert expanded["etcd2"]["hostname"] == "etcd2"
    assert expanded["etcd2"]["secrets"] == [{"name": "etcd2_peer_key", "uid": 902}]
    assert "per_host" not in expanded["etcd2"]
    assert stack.member_names("etcd", groups["etcd"]) == {
        "psn1": "etcd1",
        "psn2": "etcd2",
        "psn3": "etcd3",
    }
    doc = stack.compose_document(
        inputs(expanded, secrets={f"etcd{i}_peer_key": "K" for i in (1, 2, 3)})
    )
    for i, host in enumerate(groups["etcd"], 1):
        svc = doc["services"][f"etcd{i}"]
        assert f"node.labels.psn-host == {host}" in svc["deploy"]["placement"]["constraints"]
        assert svc["hostname"] == f"etcd{i}"
    assert not stack.check_service_map(
        "etcd", expanded, {f"etcd{i}_peer_key": "K" for i in (1, 2, 3)}, {}, groups
    )


def test_a_per_host_service_on_one_host_keeps_its_name_and_definition():
    groups = {"etcd": ["psn1"]}
    member = per_host_member()
    expanded = stack.expand_per_host({"etcd": member}, groups)
    plain = {k: v for k, v in member.items() if k != "per_host"}
    plain["hostname"] = "etcd"
    plain["secrets"] = [{"name": "etcd_peer_key", "uid": 902}]
    assert expanded == {"etcd": plain}
    assert stack.member_names("etcd", ["psn1"]) == {"psn1": "etcd"}


def test_every_host_mode_is_global_on_several_hosts_and_replicated_on_one():
    service = {"image": "ldap", "group": "mail", "mode": "every_host"}
    several = stack.expand_per_host({"postfix": service}, {"mail": ["psn1", "psn2"]})
    assert several == {"postfix": {**service, "mode": "global"}}
    one = stack.expand_per_host({"postfix": service}, {"mail": ["psn1"]})
    assert one == {"postfix": {**service, "mode": "replicated"}}
    replicated = stack.compose_document(inputs(one))["services"]["postfix"]["deploy"]
    assert (replicated["mode"], replicated["replicas"]) == ("replicated", 1)
    everywhere = stack.compose_document(inputs(several))["services"]["postfix"]["deploy"]
    assert everywhere["mode"] == "global" and "replicas" not in everywhere
    assert not stack.check_service_map("mail", several, {}, {}, {"mail": ["psn1", "psn2"]})


def test_a_service_of_group_all_runs_on_every_server_without_a_group_label():
    groups = {"all": ["psn1", "psn2", "psn3"], "syslog": ["psn1"]}
    services = {
        "relay": {"image": "ldap", "group": "all", "mode": "every_host"},
        "syslog-ng": {"image": "ldap", "group": "syslog"},
    }
    expanded = stack.expand_per_host(services, groups)
    assert not stack.check_service_map("syslog_ng", expanded, {}, {}, groups)
    doc = stack.compose_document(inputs(expanded))["services"]
    assert doc["relay"]["deploy"]["mode"] == "global"
    assert doc["relay"]["deploy"]["placement"]["constraints"] == []
    assert doc["syslog-ng"]["deploy"]["placement"]["constraints"] == ["node.labels.syslog == true"]
