#!/usr/bin/python3
"""Wait until Docker Swarm services run all their replicas, up to date and healthy."""

from __future__ import annotations

import json
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: psn_stack_wait
short_description: Wait until Docker Swarm services run all their replicas healthy
description:
  - Polls C(docker service inspect) and the services' tasks on a swarm manager until every
    service has as many running tasks of its current spec as it wants replicas (a task with a
    healthcheck counts as running only once healthy) and no update is in progress.
  - Fails at once when an update paused or rolled back, or when new tasks of a service failed
    I(max_failures) times since its last update (and since the wait began: failures of an
    earlier moment, such as a new server's tasks placed before its files existed, do not
    count); fails after I(timeout) seconds otherwise.
  - On failure returns the failing service's C(docker service ps --no-trunc) and its last
    I(log_lines) log lines. Never changes anything.
options:
  services:
    description: Full service names (psn-<stack>_<service>).
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds to wait.
    type: int
    default: 300
  max_failures:
    description: Failed or rejected tasks since the last update that end the wait early.
    type: int
    default: 4
  log_lines:
    description: Log lines of the failing service to return.
    type: int
    default: 50
  interval:
    description: Seconds between two polls.
    type: int
    default: 3
author: PSN contributors
"""

RETURN = r"""
ready:
  description: Whether every service runs all its replicas healthy.
  type: bool
  returned: always
service:
  description: The first service that is not ready.
  type: str
  returned: when not ready
state:
  description: Service name -> running/desired replicas, e.g. "1/1".
  type: dict
  returned: always
tasks_lines:
  description: Output of docker service ps --no-trunc of the failing service.
  type: list
  returned: always
log_lines:
  description: Last log lines of the failing service.
  type: list
  returned: always
"""

FAILED_UPDATE = {"paused", "rollback_started", "rollback_paused", "rollback_completed"}
TASK_FAILED = {"failed", "rejected"}


def docker_json(module: AnsibleModule, *args: str) -> list:
    rc, out, err = module.run_command(["docker", *args])
    if rc != 0:
        raise RuntimeError(err.strip() or out.strip())
    return json.loads(out or "[]")


def snapshot(module: AnsibleModule, names: list[str]) -> tuple[dict, dict]:
    """Every named service that exists (name -> inspect) and its tasks (service ID -> tasks), in
    three docker calls for all of them."""
    # Prints the services it finds even when some do not exist (and then exits non-zero).
    _rc, out, _err = module.run_command(["docker", "service", "inspect", *names])
    services = {s["Spec"]["Name"]: s for s in json.loads(out or "[]")}
    tasks: dict[str, list] = {}
    if services:
        rc, out, err = module.run_command(
            ["docker", "service", "ps", "-q", "--no-trunc", *services]
        )
        if rc != 0:
            raise RuntimeError(err.strip() or out.strip())
        ids = sorted(set(out.split()))
        for task in docker_json(module, "inspect", *ids) if ids else []:
            tasks.setdefault(task.get("ServiceID"), []).append(task)
    return services, tasks


def desired_replicas(module: AnsibleModule, spec: dict, tasks: list) -> int:
    mode = spec.get("Mode", {})
    if "Replicated" in mode:
        return int(mode["Replicated"].get("Replicas", 1))
    # Global: one task per eligible node, i.e. per node that has a task meant to run.
    return len({t.get("NodeID") for t in tasks if t.get("DesiredState") == "running"})


def check(
    module: AnsibleModule, name: str, services: dict, tasks_by_service: dict, started: str = ""
) -> tuple[str, str, str]:
    """(status, message, replicas) with status ready | waiting | failed.

    Failed tasks count from the service's last update or from `started` (UTC, the wait's
    start), whichever is later: a task that failed before this run made its files (a new server
    in place of a dead one, scheduled as soon as it joined) is history, not a crash loop.
    """
    service = services.get(name)
    if service is None:
        return "failed", f"service {name} does not exist", "0/0"
    spec = service["Spec"]
    tasks = tasks_by_service.get(service["ID"], [])
    want = desired_replicas(module, spec, tasks)
    template = spec.get("TaskTemplate", {}).get("ContainerSpec", {})
    since = max((service.get("UpdatedAt") or service.get("CreatedAt") or "")[:19], started[:19])
    current = [
        t
        for t in tasks
        if t.get("Spec", {}).get("ContainerSpec", {}).get("Image") == template.get("Image")
        and t.get("Spec", {}).get("ContainerSpec", {}).get("Labels") == template.get("Labels")
    ]
    running = [
        t
        for t in current
        if t.get("DesiredState") == "running" and t.get("Status", {}).get("State") == "running"
    ]
    replicas = f"{len(running)}/{want}"
    update = (service.get("UpdateStatus") or {}).get("State", "")
    if update in FAILED_UPDATE:
        message = (service.get("UpdateStatus") or {}).get("Message", "")
        return "failed", f"the update of {name} is {update}: {message}", replicas
    failures = [
        t
        for t in current
        if t.get("Status", {}).get("State") in TASK_FAILED and t.get("CreatedAt", "")[:19] >= since
    ]
    if len(failures) >= module.params["max_failures"]:
        last = failures[-1].get("Status", {})
        detail = last.get("Err") or last.get("Message") or last.get("State")
        return (
            "failed",
            f"{len(failures)} tasks of {name} failed since its last update (last: {detail})",
            replicas,
        )
    if update == "updating" or len(running) < want or want == 0:
        return "waiting", f"{name} runs {replicas} healthy replicas", replicas
    return "ready", "", replicas


def output_lines(module: AnsibleModule, argv: list[str]) -> list[str]:
    _rc, out, err = module.run_command(argv)
    return (out + err).splitlines()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "services": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "int", "default": 300},
            "max_failures": {"type": "int", "default": 4},
            "log_lines": {"type": "int", "default": 50},
            "interval": {"type": "int", "default": 3},
        },
        supports_check_mode=True,
    )
    params = module.params
    deadline = time.monotonic() + params["timeout"]
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    state: dict[str, str] = {}
    while True:
        pending = None
        try:
            services, tasks = snapshot(module, params["services"])
        except (RuntimeError, ValueError) as exc:
            services, tasks, error = None, {}, str(exc)
        for name in params["services"]:
            if services is None:
                status, message, replicas = "waiting", f"{name}: {error}", "?"
            else:
                status, message, replicas = check(module, name, services, tasks, started)
            state[name] = replicas
            if status != "ready" and pending is None:
                pending = (status, message, name)
        if pending is None:
            module.exit_json(changed=False, ready=True, state=state, tasks_lines=[], log_lines=[])
        status, message, name = pending
        if status == "failed" or time.monotonic() >= deadline:
            if status != "failed":
                message = f"timeout after {params['timeout']} s: {message}"
            ps = ["docker", "service", "ps", "--no-trunc", name]
            logs = [
                "docker",
                "service",
                "logs",
                "--tail",
                str(params["log_lines"]),
                "--timestamps",
                name,
            ]
            module.exit_json(
                changed=False,
                ready=False,
                service=name,
                state=state,
                msg=f"Service {name} is not running healthy: {message}.",
                tasks_lines=output_lines(module, ps),
                log_lines=output_lines(module, logs),
            )
        time.sleep(params["interval"])


if __name__ == "__main__":
    main()
