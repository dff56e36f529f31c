"""Distribution archive: content, checksum files, manifest and the integrity check."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from psn.dist import MANIFEST, DistResult, build_distribution, verify_tree
from psn.errors import InputError, IntegrityError

VERSION = "1.2.3"
TOP = f"PSN_{VERSION}"

# Files that must be shipped (regular files, relative to the tree).
SHIPPED = {
    "deploy_psn.sh": "#!/bin/sh\necho deploy\n",
    "deploy_psn.py": "print('deploy')\n",
    "psn/__init__.py": "",
    "inventory/hosts.yml": "all:\n  hosts: {}\n",
    "roles/proxy/tasks/main.yml": "- name: Proxy\n  ansible.builtin.debug:\n",
    "images/dist/images.tar": "not really an image archive\n",  # nested dist/ is shipped
    "certificates/README.md": "Put server.crt here.\n",
    "certificates/.gitkeep": "",
    "inventories/README.md": "Your inventories.\n",
    "docs/dist/notes.md": "notes\n",
}
# Files that must never be shipped.
EXCLUDED = {
    "psn/__pycache__/x.cpython-311.pyc": "bytecode",
    "psn/stale.pyc": "bytecode",
    "certificates/example.com/server.nopass.key": "PRIVATE KEY",
    "certificates/example.com/server.crt": "CERT",
    "certificates/ca.key": "PRIVATE KEY",
    # An operator's inventory holds every password (untracked, not in .gitignore here).
    "inventories/my-mail.yml": "passwords: {redis_user: secret}\n",
    ".venv/bin/python": "venv",
    "dist/PSN_0.9.tgz": "old archive",
    "demo/hosts.yml": "demo",
    ".pytest_cache/v/cache": "cache",
    ".ruff_cache/x": "cache",
    "psn.egg-info/PKG-INFO": "egg",
    "deploy_psn_2024-01-01_10-00.log": "log",
    MANIFEST: "0" * 64 + "  stale\n",
}
SYMLINK = ("run.sh", "deploy_psn.sh")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _make_tree(root: Path, with_git: bool) -> None:
    _write(root, SHIPPED | EXCLUDED)
    (root / "deploy_psn.sh").chmod(0o755)
    (root / SYMLINK[0]).symlink_to(SYMLINK[1])
    if with_git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        # Ignored and deleted files must stay out; the other exclusions are not in .gitignore
        # on purpose, so that the filter itself is what keeps them out.
        _write(root, {".gitignore": "ignored.txt\n", "ignored.txt": "ignored", "gone.txt": "x"})
        subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
        (root / "gone.txt").unlink()
        _write(root, {"untracked.yml": "new: true\n"})


def _expected(with_git: bool) -> set[str]:
    extra = {".gitignore", "untracked.yml"} if with_git else set()
    return set(SHIPPED) | extra


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=[True, False], ids=["git", "plain"])
def with_git(request: pytest.FixtureRequest) -> bool:
    return request.param


@pytest.fixture
def tree(tmp_path: Path, with_git: bool) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    _make_tree(root, with_git)
    return root


@pytest.fixture
def built(tree: Path, tmp_path: Path) -> DistResult:
    return build_distribution(tree, tmp_path / "out", VERSION)


@pytest.fixture
def unpacked(built: DistResult, tmp_path: Path) -> Path:
    """The archive unpacked the way the guide tells the operator to (§4.2.2.3)."""
    target = tmp_path / "install"
    target.mkdir()
    subprocess.run(["tar", "xzf", str(built.tgz), "-C", str(target)], check=True)
    return target / TOP


def _members(result: DistResult) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(result.tgz) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_result_paths(built: DistResult, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert built == DistResult(out / f"{TOP}.tgz", out / f"{TOP}.md5", out / f"{TOP}.sha256")
    assert sorted(p.name for p in out.iterdir()) == [f"{TOP}.md5", f"{TOP}.sha256", f"{TOP}.tgz"]


def test_archive_holds_exactly_the_installer_files(built: DistResult, with_git: bool) -> None:
    members = _members(built)
    files = {n.removeprefix(f"{TOP}/") for n, m in members.items() if m.isfile()}
    assert files == _expected(with_git) | {MANIFEST}
    assert all(n == TOP or n.startswith(f"{TOP}/") for n in members)
    assert not any("certificates/example.com" in n or n.endswith(".key") for n in members)


def test_members_are_owned_by_root_and_symlinks_stay_links(built: DistResult) -> None:
    members = _members(built)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "root", "root")}
    link = members[f"{TOP}/{SYMLINK[0]}"]
    assert link.issym()
    assert link.linkname == SYMLINK[1]


def test_manifest_lists_every_other_file_with_its_hash(built: DistResult, with_git: bool) -> None:
    with tarfile.open(built.tgz) as tar:
        manifest = tar.extractfile(f"{TOP}/{MANIFEST}").read().decode()
        content = {
            m.name.removeprefix(f"{TOP}/"): tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.isfile() and not m.name.endswith(MANIFEST)
        }
    lines = manifest.splitlines()
    assert lines == sorted(lines, key=lambda line: line.split("  ", 1)[1])
    assert lines == [f"{_sha256(content[name])}  {name}" for name in sorted(content)]
    assert set(content) == _expected(with_git)
    assert content["deploy_psn.sh"] == SHIPPED["deploy_psn.sh"].encode()


@pytest.mark.parametrize("tool,suffix", [("md5sum", "md5"), ("sha256sum", "sha256")])
def test_checksum_file_passes_the_real_tool(built: DistResult, tool: str, suffix: str) -> None:
    run = subprocess.run(
        [tool, "-c", f"{TOP}.{suffix}"], cwd=built.tgz.parent, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout == f"{TOP}.tgz: OK\n"
    digest = hashlib.new(suffix, built.tgz.read_bytes()).hexdigest()
    assert (built.tgz.parent / f"{TOP}.{suffix}").read_text() == f"{digest}  {TOP}.tgz\n"


def test_checksum_file_detects_a_damaged_archive(built: DistResult) -> None:
    with built.tgz.open("ab") as f:
        f.write(b"x")
    run = subprocess.run(
        ["md5sum", "-c", built.md5.name], cwd=built.tgz.parent, capture_output=True
    )
    assert run.returncode != 0


def test_manifest_passes_sha256sum_in_the_unpacked_tree(unpacked: Path) -> None:
    run = subprocess.run(
        ["sha256sum", "--strict", "-c", MANIFEST], cwd=unpacked, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_verify_tree_passes_on_the_unpacked_tree(unpacked: Path, with_git: bool) -> None:
    assert verify_tree(unpacked) == len(_expected(with_git))


def test_executable_bit_is_kept(built: DistResult, unpacked: Path) -> None:
    members = _members(built)
    assert members[f"{TOP}/deploy_psn.sh"].mode == 0o755
    assert members[f"{TOP}/deploy_psn.py"].mode == 0o644
    assert os.access(unpacked / "deploy_psn.sh", os.X_OK)
    assert not os.access(unpacked / "deploy_psn.py", os.X_OK)
    run = subprocess.run([str(unpacked / SYMLINK[0])], capture_output=True, text=True, check=True)
    assert run.stdout == "deploy\n"


def test_a_modified_file_is_named(unpacked: Path) -> None:
    (unpacked / "roles/proxy/tasks/main.yml").write_text("- name: Changed\n")
    with pytest.raises(IntegrityError) as caught:
        verify_tree(unpacked, version=VERSION)
    [problem] = caught.value.problems
    assert problem.file == "roles/proxy/tasks/main.yml"
    assert problem.message == "content differs from the distribution manifest"
    assert f"PSN_{VERSION}.tgz" in problem.fix
    assert "md5sum -c" in problem.fix
    assert "--skip-checksum" in problem.fix
    assert caught.value.exit_code == 3


def test_missing_and_modified_files_are_all_named(unpacked: Path) -> None:
    (unpacked / "inventory/hosts.yml").unlink()
    (unpacked / "deploy_psn.py").write_text("print('patched')\n")
    with pytest.raises(IntegrityError) as caught:
        verify_tree(unpacked)
    found = {(p.file, p.message) for p in caught.value.problems}
    assert found == {
        ("inventory/hosts.yml", "missing"),
        ("deploy_psn.py", "content differs from the distribution manifest"),
    }


def test_files_added_by_the_operator_are_fine(unpacked: Path, with_git: bool) -> None:
    _write(
        unpacked,
        {
            "inventory/prod.yml": "all: {}\n",
            "certificates/example.com/server.nopass.key": "KEY",
            "deploy_psn_2025-01-01.log": "log",
        },
    )
    assert verify_tree(unpacked) == len(_expected(with_git))


def test_a_development_tree_is_not_checked(tmp_path: Path) -> None:
    _write(tmp_path, {"deploy_psn.py": "anything\n"})
    assert verify_tree(tmp_path) is None


@pytest.mark.parametrize(
    "line",
    [
        "not a checksum line",
        f"{'a' * 63}  short.txt",
        f"{'a' * 64}  ../../etc/passwd",
        f"{'a' * 64}  /etc/passwd",
    ],
)
def test_a_malformed_manifest_line_is_a_problem(tmp_path: Path, line: str) -> None:
    good = b"content\n"
    _write(tmp_path, {"good.txt": good.decode(), MANIFEST: f"{_sha256(good)}  good.txt\n{line}\n"})
    with pytest.raises(IntegrityError) as caught:
        verify_tree(tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (MANIFEST, 2)
    assert problem.message.startswith("malformed manifest line")


def test_the_archive_is_never_packed_into_itself(tree: Path, with_git: bool) -> None:
    first = build_distribution(tree, tree / "out", VERSION)
    second = build_distribution(tree, tree / "out", VERSION)
    names = {n.removeprefix(f"{TOP}/") for n, m in _members(second).items() if m.isfile()}
    assert names == _expected(with_git) | {MANIFEST}
    assert first.tgz.read_bytes() == second.tgz.read_bytes()


def test_builds_are_reproducible(tree: Path, tmp_path: Path) -> None:
    first = build_distribution(tree, tmp_path / "a", VERSION)
    second = build_distribution(tree, tmp_path / "b", VERSION)
    assert first.tgz.read_bytes() == second.tgz.read_bytes()
    # Two builds may fall in the same second: check gzip's own timestamp directly.
    assert first.tgz.read_bytes()[4:8] == bytes(4)


@pytest.mark.parametrize("version", ["", "../1.0", "1 0", "1/0"])
def test_a_version_unfit_for_a_file_name_is_refused(tmp_path: Path, version: str) -> None:
    with pytest.raises(InputError):
        build_distribution(tmp_path, tmp_path / "out", version)
    assert not (tmp_path / "out").exists()


def test_build_artifacts_are_packed_even_when_git_ignores_them(tree: Path, tmp_path: Path) -> None:
    _write(
        tree,
        {".gitignore": "ignored.txt\nimages/dist/\n", "images/dist/psn-images.tar.gz": "layers"},
    )
    result = build_distribution(tree, tmp_path / "out", VERSION, ["images/dist/psn-images.tar.gz"])
    members = _members(result)
    assert f"{TOP}/images/dist/psn-images.tar.gz" in members
    with tarfile.open(result.tgz) as tar:
        manifest = tar.extractfile(f"{TOP}/{MANIFEST}").read().decode()
    assert f"{_sha256(b'layers')}  images/dist/psn-images.tar.gz" in manifest
