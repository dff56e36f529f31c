"""The stack role's wait (roles/stack/library/psn_stack_wait.py): when a service's failed tasks
make the run stop."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "psn_stack_wait", ROOT / "roles" / "stack" / "library" / "psn_stack_wait.py"
)
assert spec and spec.loader
wait = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wait)

MODULE = SimpleNamespace(params={"max_failures": 4})
IMAGE = "psn-private-registry:5001/psn/etcd:0.1.0"
UPDATED = "2026-12-07T23:30:00.123456789Z"


def service() -> dict:
    return {
        "ID": "s1",
        "UpdatedAt": UPDATED,
        "Spec": {
            "Name": "psn-etcd_etcd3",
            "Mode": {"Replicated": {"Replicas": 1}},
            "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Labels": {"h": "1"}}},
        },
    }


def task(state: str, created: str, desired: str = "shutdown") -> dict:
    return {
        "ServiceID": "s1",
        "CreatedAt": created,
        "DesiredState": desired,
        "Status": {"State": state, "Err": "bind source path does not exist"},
        "Spec": {"ContainerSpec": {"Image": IMAGE, "Labels": {"h": "1"}}},
    }


def judge(tasks: list[dict], started: str) -> tuple[str, str, str]:
    return wait.check(
        MODULE, "psn-etcd_etcd3", {"psn-etcd_etcd3": service()}, {"s1": tasks}, started
    )


def failed_at(*seconds: int) -> list[dict]:
    return [task("rejected", f"2026-12-07T23:50:{s:02d}.5Z") for s in seconds]


def test_four_failures_during_the_wait_stop_it():
    status, message, _ = judge(failed_at(10, 20, 30, 40), "2026-12-07T23:50:00")
    assert status == "failed"
    assert "4 tasks of psn-etcd_etcd3 failed" in message and "bind source" in message


def test_failures_before_the_wait_began_do_not_count():
    # A new server's task placed before the run wrote its config file, then started.
    tasks = [*failed_at(10, 20, 30, 40), task("running", "2026-12-07T23:51:10Z", "running")]
    assert judge(tasks, "2026-12-07T23:51:00") == ("ready", "", "1/1")
    assert judge(failed_at(10, 20, 30, 40), "2026-12-07T23:51:00")[0] == "waiting"


def test_failures_before_the_last_update_do_not_count():
    tasks = [task("failed", "2026-12-07T23:29:59Z")] * 4
    assert judge(tasks, "2026-12-07T23:20:00")[0] == "waiting"
