"""psn.runner: role order from site.yml, argument normalisation, masking and real Ansible runs."""

from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import pytest
from rich.console import Console

from psn.ansible_args import AnsibleArgs, normalise_args, resume_args
from psn.errors import InputError, IntegrityError
from psn.run_display import render_summary
from psn.runner import Masker, ansible_environment, run_playbook
from psn.site import SiteRole, read_site, role_order

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-s3cret!"


def _console(terminal: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=200), out


# --- site.yml -------------------------------------------------------------------------------


def test_site_order_is_the_guide_order():
    assert role_order(ROOT) == [
        "precheck",
        "common",
        "sysctl",
        "timezone",
        "chrony",
        "swarm",
        "certificates",
        "docker_registry",
        "etcd",
        "postgres",
        "redis",
        "ldap",
        "syslog",
        "mail",
        "backend",
        "frontend",
        "proxy",
        "stack_wait",
    ]


# Roles that other roles include; they have no playbook of their own.
INTERNAL_ROLES = {"stack"}
# Site entries that run an internal role's tasks, not a role of their own.
INTERNAL_PLAYS = {"stack_wait": "name: stack\n        tasks_from: wait_at_end\n"}


def test_site_roles_are_the_role_directories():
    directories = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()}
    assert set(role_order(ROOT)) == directories - INTERNAL_ROLES | INTERNAL_PLAYS.keys()


def test_every_role_playbook_applies_its_role():
    for role in read_site(ROOT):
        assert role.plays, role.name
        text = (ROOT / "playbooks" / f"{role.name}.yml").read_text()
        assert INTERNAL_PLAYS.get(role.name, f"role: {role.name}\n") in text


def test_the_wait_at_the_end_runs_whatever_the_tags():
    tags = {role.name: role.tags for role in read_site(ROOT)}
    assert role_order(ROOT)[-1] == "stack_wait"
    assert "always" in tags["stack_wait"]


def test_proxy_answers_to_the_guides_nginx_tag():
    tags = {role.name: role.tags for role in read_site(ROOT)}
    assert tags["proxy"] == ("proxy", "nginx")
    assert tags["mail"] == ("mail",)


def test_site_import_without_its_role_tag_is_refused(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "site.yml").write_text(
        "- ansible.builtin.import_playbook: web.yml\n  tags: [proxy]\n"
    )
    (tmp_path / "playbooks" / "web.yml").write_text("- name: Web\n  hosts: all\n")
    with pytest.raises(IntegrityError) as err:
        read_site(tmp_path)
    assert "not tagged 'web'" in err.value.problems[0].message


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        ["-t", "nginx,", "mail"],
        ["-t", "nginx", ",mail"],
        ["-t", "nginx", ",", "mail"],
        ["--tags=nginx,", "mail"],
        ["-tnginx,mail"],
        ["-t", "nginx", "--tags", "mail"],
    ],
)
def test_split_tag_lists_are_joined(given):
    assert normalise_args(given).to_list() == ["-t", "nginx,mail"]


def test_supported_options_pass_through():
    args = normalise_args(
        [
            *("-l", "mx1, ", "mx2", "-e", "a=1", "--check", "-D", "-vv", "-v"),
            *("--skip-tags=ldap", "--start-at-task", "Deploy the stack"),
        ]
    )
    assert args.tags == ()
    assert args.to_list() == [
        "--skip-tags",
        "ldap",
        "--limit",
        "mx1,mx2",
        "-e",
        "a=1",
        "--check",
        "--diff",
        "--start-at-task",
        "Deploy the stack",
        "-vvv",
    ]
    assert args.cmdline.endswith("--start-at-task 'Deploy the stack' -vvv")


def test_password_prompts_of_the_guide_are_accepted():
    args = normalise_args(["-K", "-t", "ldap", "-k"])
    assert args.to_list() == ["-t", "ldap", "--ask-become-pass", "--ask-pass"]
    assert args.asked_passwords == ["--ask-pass", "--ask-become-pass"]
    assert normalise_args(["--ask-pass"]).asked_passwords == ["--ask-pass"]
    assert normalise_args(["--check"]).asked_passwords == []


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["-X"], "-X"),
        (["--become-password-file", "f"], "--become-password-file"),
        (["-i", "other.yml"], "-i"),
        (["-t", "proxy", "stray"], "stray"),
        (["-t"], "-t"),
        (["--check=yes"], "--check=yes"),
    ],
)
def test_bad_arguments_are_refused(given, named):
    with pytest.raises(InputError) as err:
        normalise_args(given)
    problem = err.value.problems[0]
    assert problem.value == named
    assert named in problem.message


# --- masking and resuming ---------------------------------------------------------------------


def test_masker_replaces_longest_secret_first_and_skips_empty():
    mask = Masker(["abc", "", "abcdef", 'q"uote'])
    assert mask("abcdef abc xyz") == "******** ******** xyz"
    assert mask('{"msg": "q\\"uote"}') == '{"msg": "********"}'
    assert Masker([""])("text") == "text"


SITE = (
    SiteRole("common", ("common",), ()),
    SiteRole("ldap", ("ldap",), ()),
    SiteRole("mail", ("mail",), ()),
    SiteRole("proxy", ("proxy", "nginx"), ()),
    SiteRole("monitoring", ("monitoring",), ()),
)


def test_resume_runs_the_failed_role_and_every_later_one():
    args = normalise_args(["--limit", "mx1", "--start-at-task", "Some task", "-v"])
    assert resume_args(args, "ldap", SITE).to_list() == [
        "-t",
        "ldap,mail,proxy,monitoring",
        "--limit",
        "mx1",
        "-v",
    ]


def test_resume_keeps_the_operators_role_selection():
    args = normalise_args(["-t", "nginx,", "mail", "--check"])
    assert resume_args(args, "mail", SITE) == AnsibleArgs(
        tags=("mail", "proxy"), options=(("--check", None),)
    )


# --- real Ansible runs ------------------------------------------------------------------------


def _project(root: Path) -> Path:
    """A tiny project: role alpha prints a secret, play beta fails, role gamma never runs."""
    shutil.copy(ROOT / "ansible.cfg", root / "ansible.cfg")
    files = {
        "playbooks/site.yml": """\
            - ansible.builtin.import_playbook: alpha.yml
              tags: [alpha]
            - ansible.builtin.import_playbook: beta.yml
              tags: [beta]
            - ansible.builtin.import_playbook: gamma.yml
              tags: [gamma]
            """,
        "playbooks/alpha.yml": """\
            - name: Alpha play
              hosts: all
              gather_facts: false
              roles: [alpha]
            """,
        "playbooks/beta.yml": """\
            - name: Beta play
              hosts: all
              gather_facts: false
              tasks:
                - name: Touch a file
                  ansible.builtin.file:
                    path: "{{ marker }}"
                    state: touch
                - name: Break on purpose
                  ansible.builtin.fail:
                    msg: "the disk is full, password {{ password }}"
            """,
        "playbooks/gamma.yml": """\
            - name: Gamma play
              hosts: all
              gather_facts: false
              roles: [gamma]
            """,
        "roles/alpha/tasks/main.yml": """\
            - name: Print the password
              ansible.builtin.debug:
                msg: "the password is {{ password }}"
            - name: Skip this one
              ansible.builtin.debug:
                msg: never
              when: false
            """,
        "roles/gamma/tasks/main.yml": """\
            - name: Never reached
              ansible.builtin.debug:
                msg: gamma
            """,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    inventory = root / "hosts.yml"
    inventory.write_text(
        textwrap.dedent(f"""\
            all:
              hosts:
                localhost:
                  ansible_connection: local
                  ansible_python_interpreter: {sys.executable}
                  password: "{SECRET}"
                  marker: {root / "marker"}
            """)
    )
    return inventory


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's directory, to see that the runner leaves nothing behind."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


def test_failed_run_is_logged_masked_and_summarised(tmp_path, private_tmp):
    project = tmp_path / "project"
    project.mkdir()
    inventory = _project(project)
    log_path = tmp_path / "deploy_psn_test.log"
    console, out = _console()

    summary = run_playbook(
        project,
        inventory,
        ["--limit", "localhost"],
        secrets=[SECRET, ""],
        log_path=log_path,
        console=console,
    )

    assert not summary.succeeded
    assert summary.status == "failed"
    assert list(private_tmp.iterdir()) == []

    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    log = log_path.read_text()
    assert "TASK [alpha : Print the password]" in log
    assert "the password is ********" in log
    assert "PLAY RECAP" in log
    assert SECRET not in log
    assert "\x1b[" not in log

    roles = {role.name: role for role in summary.roles}
    assert list(roles) == ["alpha", "beta"]
    assert (roles["alpha"].counts.ok, roles["alpha"].counts.skipped) == (1, 1)
    assert roles["alpha"].hosts == {"localhost"}
    beta = roles["beta"].counts
    assert (beta.ok, beta.changed, beta.failed) == (1, 1, 1)
    assert roles["beta"].duration.total_seconds() > 0
    assert summary.hosts["localhost"].failed == 1
    assert summary.hosts["localhost"].ok == 2

    [failure] = summary.failures
    assert (failure.role, failure.task, failure.host) == ("beta", "Break on purpose", "localhost")
    assert failure.message == "the disk is full, password ********"
    assert summary.resume_command == (
        f"./deploy_psn.sh {inventory} -t beta,gamma --limit localhost"
    )

    progress = out.getvalue()
    assert "Alpha play | alpha : Print the password" in progress
    assert "FAILED localhost: Break on purpose" in progress
    assert SECRET not in progress

    console, out = _console()
    render_summary(summary, console)
    shown = out.getvalue()
    assert "beta / Break on purpose failed on localhost" in shown
    assert "-t beta,gamma --limit localhost" in shown
    assert SECRET not in shown


def test_ask_become_pass_is_answered_and_masked(tmp_path, private_tmp):
    """-K: ansible-playbook's prompt gets the password given; it never reaches the log."""
    project = tmp_path / "project"
    project.mkdir()
    inventory = _project(project)
    log_path = tmp_path / "run.log"
    console, _ = _console()
    become = "Bec0me-pass!"
    with pytest.raises(InputError, match="No password for --ask-become-pass"):
        run_playbook(project, inventory, ["-K"], secrets=[], log_path=log_path, console=console)

    summary = run_playbook(
        project,
        inventory,
        ["-t", "alpha", "-K", "-e", f"shown={become}"],
        secrets=[],
        log_path=log_path,
        console=console,
        passwords={"--ask-become-pass": become},
    )

    assert summary.succeeded, summary.output_tail
    assert [role.name for role in summary.roles] == ["alpha"]
    assert become not in log_path.read_text()


def test_error_outside_any_task_is_shown_from_the_output(tmp_path, private_tmp):
    project = tmp_path / "project"
    project.mkdir()
    inventory = _project(project)
    shutil.rmtree(project / "roles" / "alpha")
    console, _ = _console()

    summary = run_playbook(
        project, inventory, [], secrets=[SECRET], log_path=tmp_path / "run.log", console=console
    )

    assert not summary.succeeded
    assert (summary.roles, summary.failures, summary.resume_command) == ([], [], None)
    assert "the role 'alpha' was not found" in "\n".join(summary.output_tail)
    console, out = _console()
    render_summary(summary, console)
    assert "the role 'alpha' was not found" in out.getvalue()


def test_interrupt_stops_ansible_and_resumes_from_the_current_role(tmp_path, private_tmp):
    project = tmp_path / "project"
    project.mkdir()
    inventory = _project(project)
    (project / "roles" / "alpha" / "tasks" / "main.yml").write_text(
        "- name: Take a long time\n  ansible.builtin.command: sleep 31.5\n  changed_when: false\n"
    )
    console, _ = _console()
    handler = signal.getsignal(signal.SIGINT)
    stop = threading.Event()

    def interrupt_once_the_task_runs() -> None:
        # Wait for the task's process itself and for its start event in the log: a fixed delay
        # is too short on a loaded machine, and the process can start before the event arrives.
        while not stop.wait(0.2):
            started = "Take a long time" in _reads(tmp_path / "run.log").decode()
            if started and _sleepers():
                os.kill(os.getpid(), signal.SIGINT)
                return

    watcher = threading.Thread(target=interrupt_once_the_task_runs, daemon=True)
    watcher.start()
    try:
        summary = run_playbook(
            project, inventory, [], secrets=[], log_path=tmp_path / "run.log", console=console
        )
    finally:
        stop.set()
        watcher.join()

    assert summary.status == "canceled"
    assert summary.elapsed.total_seconds() < 31  # the task was stopped, not waited for
    assert summary.resume_command == f"./deploy_psn.sh {inventory} -t alpha,beta,gamma"
    assert signal.getsignal(signal.SIGINT) is handler
    assert list(private_tmp.iterdir()) == []
    assert "User interrupted execution" in (tmp_path / "run.log").read_text()
    # The command already started on the server is not killed: Mitogen runs it in a session of
    # its own, where it ends by itself (a re-run repeats it, every task being idempotent).


def _sleepers() -> list[Path]:
    return [p for p in Path("/proc").glob("[0-9]*/cmdline") if _reads(p) == b"sleep\x0031.5\x00"]


def _reads(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_guide_tags_select_proxy_and_mail_from_the_real_site(tmp_path, private_tmp):
    """The guide's split tag list ("-t nginx, mail") on the real site.yml, tasks listed only so
    that nothing changes on this machine."""
    groups = ["docker_registry", "etcd", "postgres", "redis", "ldap", "mail", "backend", "proxy"]
    inventory = tmp_path / "hosts.yml"
    children = "".join(f"    {g}:\n      hosts:\n        localhost:\n" for g in groups)
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"  children:\n    frontend:\n      children:\n        proxy:\n{children}"
    )
    console, _ = _console(terminal=True)

    summary = run_playbook(
        ROOT,
        inventory,
        ["--list-tasks", "-t", "nginx,", "mail"],
        secrets=[],
        log_path=tmp_path / "run.log",
        console=console,
    )

    assert summary.succeeded, summary.output_tail
    log = (tmp_path / "run.log").read_text()
    assert "proxy : Check the proxy settings" in log
    assert "mail : Check the mail settings" in log
    # Roles outside the tags list only their always-run argument validation.
    assert "ldap : Check the LDAP settings" not in log
    assert "backend : Check the backend settings" not in log
    assert "-t nginx,mail" in log.splitlines()[0]
    assert list(private_tmp.iterdir()) == []


def test_group_vars_version_is_the_installer_version():
    from ruamel.yaml import YAML

    from psn import __version__

    group_vars = YAML(typ="safe").load((ROOT / "group_vars" / "all" / "main.yml").read_text())
    assert group_vars["psn_version"] == __version__


def test_runs_use_mitogens_strategy_unless_turned_off(tmp_path, monkeypatch):
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    monkeypatch.delenv("PSN_MITOGEN", raising=False)
    env = ansible_environment(ROOT)
    assert env["ANSIBLE_STRATEGY"] == "psn_linear"
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "psn_linear.py").is_file()

    monkeypatch.setenv("PSN_MITOGEN", "0")
    assert "ANSIBLE_STRATEGY" not in ansible_environment(tmp_path)
    monkeypatch.delenv("PSN_MITOGEN")
    monkeypatch.setenv("ANSIBLE_STRATEGY", "free")  # the operator's own choice stays
    assert "ANSIBLE_STRATEGY" not in ansible_environment(tmp_path)
