"""What a stack deployment decides: the service map's checks, secret names, hashes, the compose
document and which services to deploy or remove.

Plain functions over plain data, used by the `psn_stack` action plugin (roles/stack) and tested
in tests/unit/test_stack.py. Nothing here talks to a server: the plugin reads the registry's
digests and the deployed services and hands them in.

The hashes must stay stable across releases: a changed hash updates the service on the next run,
so a formula change restarts the whole suite. They are sha256 over JSON (`json.dumps`, default
separators, ASCII), the way the earlier Jinja implementation computed them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from psn.errors import Problem

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")

# Keys of a service in a role's service map (roles/stack/README.md), with what they hold.
SERVICE_KEYS = {
    "image": "the image component (psn/<image>)",
    "group": "the inventory group that runs it (all: every server)",
    "host": "one host of the group that alone runs it (per-host configuration)",
    "per_host": "one service per host of the group, pinned (expand_per_host)",
    "replicas": "number of tasks",
    "mode": "replicated, global, or every_host (global on a group of several hosts)",
    "hostname": "container host name",
    "networks": "overlay networks",
    "aliases": "other names of its tasks on its networks",
    "command": "command list",
    "user": "user of the container",
    "environment": "variables (never a secret)",
    "ports": "published ports",
    "volumes": "named volumes",
    "binds": "host directories",
    "configs": "rendered config files",
    "secrets": "Docker secrets",
    "health_interval": "health check interval",
    "stop_grace_period": "stop timeout",
    "memory_limit": "memory limit",
    "update_order": "stop-first or start-first",
    "constraints": "extra placement constraints",
}
# Keys of the list entries of a service, and which of them are required.
ITEM_KEYS = {
    "ports": ({"target", "published", "protocol"}, {"target"}),
    "volumes": ({"source", "target"}, {"source", "target"}),
    "binds": ({"source", "target", "read_only"}, {"source", "target"}),
    "configs": (
        {"src", "dest", "target", "owner", "group", "mode"},
        {"src", "dest", "target"},
    ),
    "secrets": ({"name", "uid", "gid", "mode"}, {"name"}),
}
# The label a service's wanted definition is hashed into; a differing deployed label deploys it.
SPEC_LABEL = "io.psn.spec-hash"
CONFIG_LABEL = "io.psn.config-hash"
# The label that pins a service with `host` to its node (set by the swarm role on every node).
HOST_LABEL = "psn-host"


@dataclass(frozen=True)
class StackInputs:
    """One stack as a role describes it, with what the plugin resolved for it."""

    name: str
    services: Mapping[str, Mapping[str, Any]]
    image_prefix: str
    version: str
    digests: Mapping[str, str]  # image component -> manifest digest
    config_hashes: Mapping[str, str]  # service -> config_hash()
    secret_names: Mapping[str, str]  # secret key -> Docker secret name
    volumes: Mapping[str, str] = field(default_factory=dict)
    networks: Sequence[str] = ("psn-db",)
    base_dir: str = "/opt/poseidon"
    health_interval: str = "10s"


@dataclass(frozen=True)
class Plan:
    """What a deployment changes: services to deploy (missing or changed) and to remove."""

    deploy: list[str]
    remove: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.deploy or self.remove)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _bool(value: object) -> bool:
    """Ansible's `bool` filter: yes/on/true/1 (any case) are true."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"yes", "on", "true", "1"}


def _close_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def member_names(name: str, hosts: Sequence[str]) -> dict[str, str]:
    """The service name of each host of a `per_host` service: `name` itself on one host,
    `name1`..`nameN` in the inventory's order on several (the guide's etcd1..etcd3)."""
    if len(hosts) == 1:
        return {hosts[0]: name}
    return {host: f"{name}{i}" for i, host in enumerate(hosts, 1)}


def _every_host(svc: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> Mapping[str, Any]:
    """`mode: every_host`: global on a group of several hosts (a task on each, none to wait for
    when one fails), replicated on one, so that a standalone definition does not change."""
    if svc.get("mode") != "every_host":
        return svc
    several = len(groups.get(str(svc.get("group")), [])) > 1
    return {**svc, "mode": "global" if several else "replicated"}


def expand_per_host(
    services: Mapping[str, Any], groups: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The service map as these groups run it: each `per_host: true` service made one service
    per host of its group (`member_names`), each pinned with `host`; `{member}` in its `hostname`
    and in its secrets' names becomes the member's name. On one host the service keeps its name
    and is not pinned, so a standalone deployment's definition does not change. `mode:
    every_host` becomes global or replicated (`_every_host`). Other services pass unchanged."""
    expanded: dict[str, Any] = {}
    for name, svc in services.items():
        if isinstance(svc, Mapping):
            svc = _every_host(svc, groups)
        if not isinstance(svc, Mapping) or not _bool(svc.get("per_host")):
            expanded[name] = svc
            continue
        base = {k: v for k, v in svc.items() if k != "per_host"}
        members = member_names(name, list(groups.get(str(base.get("group")), [])))
        if not members:  # check_service_map names the group
            expanded[name] = base
        for host, member in members.items():
            one = dict(base)
            if len(members) > 1:
                one["host"] = host
            if isinstance(one.get("hostname"), str):
                one["hostname"] = one["hostname"].replace("{member}", member)
            if isinstance(one.get("secrets"), list):
                one["secrets"] = [
                    {**s, "name": str(s.get("name")).replace("{member}", member)}
                    if isinstance(s, Mapping)
                    else s
                    for s in one["secrets"]
                ]
            expanded[member] = one
    return expanded


def check_service_map(
    stack: str,
    services: Mapping[str, Any],
    secrets: Mapping[str, Any],
    volumes: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    role: str = "",
) -> list[Problem]:
    """Every problem of a service map, each naming the role, service and key and the fix."""
    where = f"role {role}, " if role else ""
    fix_map = f"fix the service map of role {role or stack} (roles/stack/README.md lists its keys)"
    problems: list[Problem] = []

    def bad(service: str, key: str, message: str, fix: str = fix_map) -> None:
        path = f"{service}.{key}" if key else service
        problems.append(Problem(f"{where}stack psn-{stack}, {path}: {message}", fix=fix))

    if not NAME.match(stack):
        bad("", "", "a stack name is lower-case letters, digits, - and _")
    if not services:
        bad("", "", "the service map is empty")
    for name, svc in services.items():
        if not NAME.match(str(name)):
            bad(str(name), "", "a service name is lower-case letters, digits, - and _")
        if not isinstance(svc, Mapping):
            bad(name, "", f"a service is a mapping of keys, not {type(svc).__name__}")
            continue
        for key in svc:
            if key not in SERVICE_KEYS:
                bad(name, key, "unknown key" + _close_key(key, list(SERVICE_KEYS)))
        if not svc.get("image"):
            bad(name, "image", "missing")
        group = svc.get("group")
        if not group:
            bad(name, "group", "missing (the inventory group that runs it)")
        elif group not in groups:
            bad(
                name,
                "group",
                f"{group!r} is not an inventory group",
                "add the group to the inventory",
            )
        host = svc.get("host")
        if host and group in groups and host not in groups[group]:
            bad(name, "host", f"{host!r} is not a host of group {group}")
        aliases = svc.get("aliases") or []
        if not isinstance(aliases, list) or not all(
            isinstance(a, str) and NAME.match(a) for a in aliases
        ):
            bad(name, "aliases", f"{aliases!r}: a list of lower-case names")
        if svc.get("mode", "replicated") not in ("replicated", "global"):
            bad(name, "mode", f"{svc['mode']!r}: replicated or global")
        for key, (allowed, required) in ITEM_KEYS.items():
            items = svc.get(key) or []
            if not isinstance(items, list):
                bad(name, key, f"a list, not {type(items).__name__}")
                continue
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):
                    bad(name, f"{key}[{i}]", "a mapping")
                    continue
                for missing in sorted(required - set(item)):
                    bad(name, f"{key}[{i}]", f"{missing} is missing")
                for unknown in sorted(set(item) - allowed):
                    bad(
                        name,
                        f"{key}[{i}]",
                        "unknown key " + unknown + _close_key(unknown, sorted(allowed)),
                    )
        for secret in svc.get("secrets") or []:
            if isinstance(secret, Mapping) and secret.get("name") not in secrets:
                bad(name, "secrets", f"{secret.get('name')} is not a secret of the stack")
        for volume in svc.get("volumes") or []:
            if isinstance(volume, Mapping) and volume.get("source") not in volumes:
                bad(name, "volumes", f"{volume.get('source')} is not a volume of the stack")
    empty = sorted(k for k, v in secrets.items() if not isinstance(v, str) or not v)
    if empty:
        problems.append(
            Problem(
                f"{where}stack psn-{stack}: no value for the secret(s) {', '.join(empty)}",
                fix="fill the matching passwords.* in the inventory (`./deploy_psn.sh genpwd "
                "<inventory>` fills every empty one) and deploy again",
            )
        )
    return problems


def secret_names(stack: str, secrets: Mapping[str, str]) -> dict[str, str]:
    """Docker secret name of each secret: psn-<stack>_<key>_<hash8> of its value.

    An unchanged value keeps its secret; a new one makes a new name, so a changed spec of exactly
    the services that use it.
    """
    return {
        key: f"psn-{stack}_{key}_{_sha256(f'psn-{stack}/{key}/{value}')[:8]}"
        for key, value in secrets.items()
    }


def config_hash(config_texts: Sequence[str], secret_names_used: Sequence[str]) -> str:
    """Hash of a service's rendered config files and the names of the secrets it uses."""
    return _sha256(json.dumps([*config_texts, *secret_names_used]))[:16]


def spec_hash(service: Mapping[str, Any]) -> str:
    """Hash of one compose service definition (key order does not matter)."""
    return _sha256(json.dumps(service, sort_keys=True))[:16]


def _service(name: str, svc: Mapping[str, Any], inputs: StackInputs) -> dict[str, Any]:
    """One compose service, without its spec-hash label."""
    image = svc["image"]
    out: dict[str, Any] = {
        "image": f"{inputs.image_prefix}/{image}:{inputs.version}@{inputs.digests[image]}"
    }
    for key in ("hostname", "command"):
        if svc.get(key):
            out[key] = svc[key]
    if svc.get("user"):
        out["user"] = str(svc["user"])
    out["environment"] = dict(svc.get("environment") or {})
    out["labels"] = {CONFIG_LABEL: inputs.config_hashes[name]}
    networks = list(svc.get("networks", inputs.networks))
    if svc.get("aliases"):
        out["networks"] = {n: {"aliases": list(svc["aliases"])} for n in networks}
    else:
        out["networks"] = networks
    if svc.get("ports"):
        out["ports"] = [
            {
                "target": int(p["target"]),
                "published": int(p.get("published", p["target"])),
                "protocol": p.get("protocol", "tcp"),
                "mode": "host",
            }
            for p in svc["ports"]
        ]
    mounts = [
        {
            "type": "bind",
            "source": f"{inputs.base_dir}/{name}/{c['dest']}",
            "target": c["target"],
            "read_only": True,
        }
        for c in svc.get("configs") or []
    ]
    mounts += [
        {"type": "volume", "source": v["source"], "target": v["target"]}
        for v in svc.get("volumes") or []
    ]
    mounts += [
        {
            "type": "bind",
            "source": b["source"],
            "target": b["target"],
            "read_only": _bool(b.get("read_only", True)),
        }
        for b in svc.get("binds") or []
    ]
    if mounts:
        out["volumes"] = mounts
    if svc.get("secrets"):
        out["secrets"] = [
            {
                "source": s["name"],
                "target": s["name"],
                "uid": str(s.get("uid", "0")),
                "gid": str(s.get("gid", "0")),
                "mode": int(str(s.get("mode", "0400")), 8),
            }
            for s in svc["secrets"]
        ]
    interval = svc.get("health_interval", inputs.health_interval)
    if interval:
        out["healthcheck"] = {"interval": interval}
    if svc.get("stop_grace_period"):
        out["stop_grace_period"] = svc["stop_grace_period"]
    mode = svc.get("mode", "replicated")
    deploy: dict[str, Any] = {"mode": mode}
    if mode == "replicated":
        deploy["replicas"] = int(svc.get("replicas", 1))
    # The swarm's nodes are the inventory's servers: `all` needs no group label.
    constraints = [] if svc["group"] == "all" else [f"node.labels.{svc['group']} == true"]
    if svc.get("host"):
        constraints.append(f"node.labels.{HOST_LABEL} == {svc['host']}")
    deploy.update(
        {
            "endpoint_mode": "dnsrr",
            "labels": {CONFIG_LABEL: inputs.config_hashes[name]},
            "placement": {"constraints": constraints + list(svc.get("constraints") or [])},
            "restart_policy": {"condition": "any", "delay": "5s"},
            "update_config": {
                "order": svc.get("update_order", "stop-first"),
                "failure_action": "pause",
                "monitor": "20s",
            },
        }
    )
    if svc.get("memory_limit"):
        deploy["resources"] = {"limits": {"memory": svc["memory_limit"]}}
    out["deploy"] = deploy
    return out


def compose_document(inputs: StackInputs) -> dict[str, Any]:
    """The stack's compose document; each service labelled with the hash of its definition."""
    services = {}
    for name, svc in inputs.services.items():
        service = _service(name, svc, inputs)
        service["deploy"]["labels"][SPEC_LABEL] = spec_hash(service)
        services[name] = service
    networks = sorted(
        {n for svc in inputs.services.values() for n in svc.get("networks", inputs.networks)}
    )
    doc: dict[str, Any] = {
        "version": "3.8",
        "services": services,
        "networks": {n: {"external": True} for n in networks},
    }
    if inputs.volumes:
        doc["volumes"] = {key: {"name": name} for key, name in inputs.volumes.items()}
    if inputs.secret_names:
        doc["secrets"] = {
            key: {"external": True, "name": name} for key, name in inputs.secret_names.items()
        }
    return doc


def only_services(doc: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The document with only these services (`docker stack deploy` leaves the others alone)."""
    return {**doc, "services": {k: v for k, v in doc["services"].items() if k in names}}


def stack_file(doc: Mapping[str, Any], stack: str, path: str, role: str) -> str:
    """The text of /opt/poseidon/psn-<stack>-stack.yml."""
    body = yaml.safe_dump(
        doc, indent=2, width=1000, default_flow_style=False, allow_unicode=True, sort_keys=True
    )
    return (
        f"# Stack psn-{stack}, written by the PSN installer ({role} role); edits are overwritten.\n"
        f"# Deploy by hand: docker stack deploy -c {path} psn-{stack}\n{body}"
    )


def service_names(stack: str, doc: Mapping[str, Any]) -> list[str]:
    """Full Swarm names of the document's services: psn-<stack>_<service>."""
    return [f"psn-{stack}_{name}" for name in doc["services"]]


def plan(
    stack: str,
    doc: Mapping[str, Any],
    deployed_labels: Mapping[str, Mapping[str, str]],
    force: bool = False,
) -> Plan:
    """Services to deploy (missing, or their deployed spec-hash differs) and to remove.

    `deployed_labels` maps each deployed service of the stack (full name) to its labels.
    """
    prefix = f"psn-{stack}_"
    deploy = [
        name
        for name, svc in doc["services"].items()
        if force
        or (deployed_labels.get(prefix + name) or {}).get(SPEC_LABEL)
        != svc["deploy"]["labels"][SPEC_LABEL]
    ]
    remove = sorted(set(deployed_labels) - set(service_names(stack, doc)))
    return Plan(deploy=deploy, remove=remove)


def service_diffs(
    stack: str,
    previous_file: str,
    doc: Mapping[str, Any],
    planned: Plan,
) -> list[dict[str, str]]:
    """Ansible `--diff` entries, one per service that changes: its definition before and after.

    "Before" is the service in the stack file written by the last run (empty when new).
    """
    try:
        before_doc = yaml.safe_load(previous_file) if previous_file else {}
    except yaml.YAMLError:
        before_doc = {}
    before = (before_doc or {}).get("services") or {}

    def text(service: Mapping[str, Any] | None) -> str:
        return yaml.safe_dump(service, default_flow_style=False, width=1000) if service else ""

    prefix = f"psn-{stack}_"
    diffs = [
        {
            "before_header": f"{prefix}{name} (deployed)",
            "after_header": f"{prefix}{name} (wanted)",
            "before": text(before.get(name)),
            "after": text(doc["services"][name]),
        }
        for name in planned.deploy
    ]
    diffs += [
        {
            "before_header": f"{full} (deployed)",
            "after_header": f"{full} (removed)",
            "before": text(before.get(full[len(prefix) :])),
            "after": "",
        }
        for full in planned.remove
    ]
    return diffs
