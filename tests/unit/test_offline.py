"""The pure logic of the offline distribution: package list, apt output, reuse decisions."""

from __future__ import annotations

import json
import sys
import tarfile
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from psn import offline
from psn.cli import run
from psn.errors import InputError
from psn.offline import Deb, RepoState

ROOT = Path(__file__).resolve().parents[2]

DEPENDS = """\
docker.io
  Depends: adduser
 |Depends: iptables
  Depends: <iptables-legacy>
  PreDepends: init-system-helpers
adduser
  Depends: passwd
<iptables-legacy>
  iptables
iptables
  Depends: libc6
libc6:amd64
  Depends: libgcc-s1
passwd
init-system-helpers
"""

SHOW = """\
Package: adduser
Version: 3.134
Architecture: all
Priority: important
Depends: passwd
Description: add and remove users and groups
 This package includes the 'adduser' and 'deluser' commands.
 .
 Size: 1 (a description line is no field)
Filename: pool/main/a/adduser/adduser_3.134_all.deb
Size: 183272
SHA256: C24FE4EB8E60D8632D72ED104CCE7C92CFF200847C897DC8BA764B6C47B519E0

Package: libc6
Version: 2.36-9+deb12u10
Architecture: amd64
Priority: optional
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb
Size: 2759320
SHA256: 1111111111111111111111111111111111111111111111111111111111111111

Package: dpkg
Essential: yes
Version: 1:1.21.22
Architecture: amd64
Priority: required
Size: 1567804
SHA256: 2222222222222222222222222222222222222222222222222222222222222222
"""


def deb(name: str, version: str = "1.0", digest: str = "a" * 64) -> Deb:
    return Deb(name, version, "amd64", digest, 10)


# --- the package list -----------------------------------------------------------------------


def test_package_list_follows_the_common_role() -> None:
    names = offline.package_list(ROOT)
    role = yaml.safe_load((ROOT / offline.ROLE_VARS).read_text())
    assert names == list(dict.fromkeys(n for key in offline.PACKAGE_KEYS for n in role[key]))
    # What the servers need before containers run, and what later roles install from apt.
    for name in ("docker.io", "python3-docker", "python3-yaml", "python3-jsondiff"):
        assert name in names
    for name in ("chrony", "rsync", "ca-certificates", "tzdata", "python3-apt", "apparmor"):
        assert name in names
    assert len(names) == len(set(names))


def test_package_list_appends_extra_names_once() -> None:
    names = offline.package_list(ROOT, ["xfsprogs", "rsync", "xfsprogs"])
    assert names[-1] == "xfsprogs" and names.count("rsync") == 1 and names.count("xfsprogs") == 1


@pytest.mark.parametrize("bad", ["Docker.io", "-rf", "foo bar", "a", "x;rm"])
def test_package_list_refuses_what_is_no_package_name(bad: str) -> None:
    with pytest.raises(InputError) as caught:
        offline.package_list(ROOT, [bad])
    assert caught.value.problems[0].value == bad


def test_package_list_needs_every_list_of_the_role(tmp_path: Path) -> None:
    vars_file = tmp_path / offline.ROLE_VARS
    vars_file.parent.mkdir(parents=True)
    vars_file.write_text("common__os_packages: [rsync]\n")
    with pytest.raises(InputError) as caught:
        offline.package_list(tmp_path)
    assert {p.path for p in caught.value.problems} == set(offline.PACKAGE_KEYS[1:])


# --- commands and their output ----------------------------------------------------------------


def test_closure_follows_depends_only() -> None:
    argv = offline.closure_command(["docker.io", "chrony"])
    assert argv[:3] == ["apt-cache", "depends", "--recurse"]
    for flag in ("recommends", "suggests", "conflicts", "breaks", "replaces", "enhances"):
        assert f"--no-{flag}" in argv
    assert argv[-2:] == ["docker.io", "chrony"]


def test_parse_closure_skips_virtual_packages_and_dependency_lines() -> None:
    assert offline.parse_closure(DEPENDS) == [
        "adduser",
        "docker.io",
        "init-system-helpers",
        "iptables",
        "libc6",
        "passwd",
    ]


def test_parse_records_reads_the_candidate_of_each_package() -> None:
    debs = offline.parse_records(SHOW)
    assert [d.name for d in debs] == ["adduser", "dpkg", "libc6"]
    adduser, dpkg, _ = debs
    assert adduser.sha256 == "c24fe4eb8e60d8632d72ed104cce7c92cff200847c897dc8ba764b6c47b519e0"
    assert (adduser.size, adduser.priority, adduser.essential) == (183272, "important", False)
    assert dpkg.essential and dpkg.priority == "required"
    # apt-get download writes an epoch's colon as %3a.
    assert dpkg.file == "dpkg_1%3a1.21.22_amd64.deb"
    assert adduser.file == "adduser_3.134_all.deb"


def test_download_names_exact_versions_and_runs_as_root() -> None:
    argv = offline.download_command([deb("dpkg", "1:1.21.22"), deb("rsync", "3.2.7-1")])
    assert argv[:2] == ["apt-get", "download"]
    assert "APT::Sandbox::User=root" in argv
    assert argv[-2:] == ["dpkg=1:1.21.22", "rsync=3.2.7-1"]


def test_release_describes_the_flat_repository() -> None:
    argv = offline.release_command("amd64")
    assert argv[0] == "apt-ftparchive" and argv[-2:] == ["release", "."]
    assert "-oAPT::FTPArchive::Release::Suite=bookworm" in argv
    assert "-oAPT::FTPArchive::Release::Architectures=amd64" in argv


def test_packages_index_is_sorted_and_stable() -> None:
    index = "Package: b\nVersion: 1\n\nPackage: a\nVersion: 2\nDescription: x\n more\n"
    assert offline.sorted_packages_index(index) == (
        "Package: a\nVersion: 2\nDescription: x\n more\n\nPackage: b\nVersion: 1\n\n"
    )
    assert offline.sorted_packages_index(offline.sorted_packages_index(index)) == (
        offline.sorted_packages_index(index)
    )


# --- what to fetch, keep and remove -------------------------------------------------------------


def test_plan_keeps_good_files_fetches_the_rest_and_removes_strangers() -> None:
    wanted = [deb("a"), deb("b", "2.0"), deb("c")]
    existing = {
        "a_1.0_amd64.deb": "a" * 64,  # good
        "b_1.0_amd64.deb": "a" * 64,  # an old version
        "c_1.0_amd64.deb": "f" * 64,  # damaged
        "z_9_amd64.deb": "a" * 64,  # no longer wanted
    }
    todo = offline.plan(wanted, existing)
    assert [d.name for d in todo.keep] == ["a"]
    assert [d.name for d in todo.fetch] == ["b", "c"]
    assert todo.remove == ("b_1.0_amd64.deb", "c_1.0_amd64.deb", "z_9_amd64.deb")


def test_plan_of_an_empty_directory_fetches_everything() -> None:
    todo = offline.plan([deb("a"), deb("b")], {})
    assert (len(todo.fetch), todo.keep, todo.remove) == (2, (), ())


def state_for(wanted: list[Deb], requested: list[str], image: str = "psn/base:1") -> RepoState:
    return RepoState(
        requested=requested,
        image=image,
        architecture="amd64",
        packages=[{**asdict(d), "file": d.file} for d in wanted],
    )


def test_repository_is_reused_only_when_nothing_changed() -> None:
    wanted = [deb("a"), deb("b")]
    state = state_for(wanted, ["a"])
    assert offline.is_current(state, ["a"], "psn/base:1", wanted, sums_ok=True)
    # A new version on the mirror, a security rebuild with the same version, a longer list,
    # another base, damaged files, no repository: build.
    assert not offline.is_current(state, ["a"], "psn/base:1", [deb("a"), deb("b", "1.1")], True)
    assert not offline.is_current(
        state, ["a"], "psn/base:1", [deb("a"), deb("b", "1.0", "b" * 64)], True
    )
    assert not offline.is_current(state, ["a", "c"], "psn/base:1", wanted, True)
    assert not offline.is_current(state, ["a"], "psn/base:2", wanted, True)
    assert not offline.is_current(state, ["a"], "psn/base:1", wanted, sums_ok=False)
    assert not offline.is_current(None, ["a"], "psn/base:1", wanted, True)


def test_state_file_round_trip(tmp_path: Path) -> None:
    wanted = [deb("a")]
    state = state_for(wanted, ["a"])
    (tmp_path / offline.STATE_FILE).write_text(json.dumps(asdict(state)))
    again = offline.read_state(tmp_path)
    assert again is not None and again.debs() == [Deb("a", "1.0", "amd64", "a" * 64, 10)]
    (tmp_path / offline.STATE_FILE).write_text('{"unknown": 1}')
    assert offline.read_state(tmp_path) is None


def test_checksums_cover_every_file_exactly(tmp_path: Path) -> None:
    (tmp_path / "a_1_all.deb").write_bytes(b"deb")
    (tmp_path / "Packages").write_text("Package: a\n")
    assert not offline.verify_sums(tmp_path)  # no SHA256SUMS yet
    offline.write_sums(tmp_path)
    assert offline.verify_sums(tmp_path)
    listed = (tmp_path / offline.SUMS_FILE).read_text().splitlines()
    assert [line.split("  ")[1] for line in listed] == ["Packages", "a_1_all.deb"]
    (tmp_path / "a_1_all.deb").write_bytes(b"changed")
    assert not offline.verify_sums(tmp_path)
    offline.write_sums(tmp_path)
    (tmp_path / "extra.deb").write_bytes(b"stranger")
    assert not offline.verify_sums(tmp_path)


def test_artifact_files_are_relative_to_the_tree(tmp_path: Path) -> None:
    (tmp_path / "offline" / "apt").mkdir(parents=True)
    (tmp_path / "offline" / "apt" / "Packages").write_text("")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "click-8.1-py3-none-any.whl").write_bytes(b"")
    assert offline.artifact_files(tmp_path) == [
        "offline/apt/Packages",
        "wheels/click-8.1-py3-none-any.whl",
    ]
    assert offline.artifact_files(tmp_path / "nothing") == []


# --- wheels -------------------------------------------------------------------------------------


def test_requirements_are_the_dependencies_and_the_build_backend() -> None:
    reqs = offline.requirements(ROOT)
    assert any(r.startswith("ansible") for r in reqs)
    assert any(r.startswith("setuptools") for r in reqs)  # pip install --editable builds psn
    assert not any(r.startswith(("pytest", "ruff")) for r in reqs)  # test extras stay out


def test_wheels_command_collects_wheels_for_this_python(tmp_path: Path) -> None:
    argv = offline.wheels_command("/usr/bin/python3", ["click>=8"], tmp_path)
    assert argv[:4] == ["/usr/bin/python3", "-m", "pip", "wheel"]
    assert argv[argv.index("--wheel-dir") + 1] == str(tmp_path)
    assert argv[-1] == "click>=8"


def test_python_tag_names_interpreter_and_machine() -> None:
    tag = offline.python_tag(sys.executable)
    assert tag.startswith(f"cp{sys.version_info[0]}{sys.version_info[1]}-")


def test_wheels_are_reused_only_for_the_same_requirements_and_python(tmp_path: Path) -> None:
    wheel = tmp_path / "click-8.1-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    state = {
        "requirements": ["click>=8"],
        "python": "cp311-x86_64",
        "files": {wheel.name: offline.sha256_file(wheel)},
    }
    assert offline.wheels_current(state, ["click>=8"], "cp311-x86_64", tmp_path)
    assert not offline.wheels_current(state, ["click>=9"], "cp311-x86_64", tmp_path)
    assert not offline.wheels_current(state, ["click>=8"], "cp312-x86_64", tmp_path)
    assert not offline.wheels_current(None, ["click>=8"], "cp311-x86_64", tmp_path)
    (tmp_path / "rich-13-py3-none-any.whl").write_bytes(b"stranger")
    assert not offline.wheels_current(state, ["click>=8"], "cp311-x86_64", tmp_path)


# --- the dist build command -----------------------------------------------------------------------


def test_dist_build_offline_packs_the_repository_and_the_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    (tree / "playbooks").mkdir(parents=True)
    (tree / "playbooks" / "site.yml").write_text("---\n")
    calls: list[str] = []

    def fake_repo(root: Path, version: str, **kwargs) -> offline.AptRepoResult:
        calls.append(f"apt {version} {list(kwargs['extra_packages'])} {kwargs['rebuild']}")
        repo = root / offline.APT_DIR
        repo.mkdir(parents=True)
        (repo / "Packages").write_text("Package: rsync\n")
        (repo / "rsync_3_amd64.deb").write_bytes(b"deb")
        return offline.AptRepoResult(repo, 1, 20, 1, False, 0.1)

    def fake_wheels(root: Path, **kwargs) -> offline.WheelsResult:
        calls.append(f"wheels {kwargs['rebuild']}")
        wheels = root / offline.WHEELS_DIR
        wheels.mkdir()
        (wheels / "click-8-py3-none-any.whl").write_bytes(b"whl")
        return offline.WheelsResult(wheels, 1, 3, False, 0.1)

    monkeypatch.setattr(offline, "build_apt_repo", fake_repo)
    monkeypatch.setattr(offline, "build_wheels", fake_wheels)
    out = tmp_path / "out"
    args = ["--root", str(tree), "dist", "build", "--without-images", "--out", str(out)]
    assert run([*args, "--version", "9.9", "--offline", "--offline-package", "xfsprogs"]) == 0
    assert calls == ["apt 9.9 ['xfsprogs'] False", "wheels False"]
    with tarfile.open(out / "PSN_9.9.tgz") as tar:
        names = set(tar.getnames())
        manifest = tar.extractfile("PSN_9.9/MANIFEST.sha256").read().decode()
    for name in ("offline/apt/Packages", "offline/apt/rsync_3_amd64.deb"):
        assert f"PSN_9.9/{name}" in names and name in manifest
    assert "PSN_9.9/wheels/click-8-py3-none-any.whl" in names


def test_dist_build_options_of_offline_need_offline(tmp_path: Path) -> None:
    args = ["--root", str(tmp_path), "dist", "build", "--without-images", "--out", str(tmp_path)]
    assert run([*args, "--rebuild"]) == 2
    assert run([*args, "--offline-package", "xfsprogs"]) == 2
    assert not list(tmp_path.glob("*.tgz"))
