"""Build the distribution archive and check an unpacked installer against its manifest.

Guide §4.1/§4.2.2.3: the operator gets `PSN_<version>.tgz` with a checksum file and runs
`md5sum -c` before unpacking; we also ship `.sha256`. Inside the archive,
`PSN_<version>/MANIFEST.sha256` lists every regular file so the installer can tell when its own
files were changed after unpacking (`sha256sum -c MANIFEST.sha256` works there too).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from psn import __version__
from psn.errors import InputError, IntegrityError, Problem, PsnError

MANIFEST = "MANIFEST.sha256"
CHUNK = 1024 * 1024  # the image archive is ~1.5 GB: never read a file at once

# Excluded wherever they appear.
_EXCLUDED_NAMES = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
# Excluded at the top of the tree only: `images/dist/` holds the image archive we must ship.
_EXCLUDED_AT_TOP = {"dist", "demo", MANIFEST}
# Operators' private files (keys, inventories full of passwords): only the placeholders ship.
_PRIVATE_DIRS = {"certificates", "inventories"}
_KEPT_IN_PRIVATE_DIRS = {"README.md", ".gitkeep"}
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+~-]*")
_GIT_LS_FILES = ("--cached", "--others", "--exclude-standard")
_MANIFEST_LINE_RE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
# `sha256sum` escapes these in file names; our manifests never need them.
_UNSAFE_NAME_CHARS = ("\n", "\r", "\\")


@dataclass(frozen=True)
class DistResult:
    """The files `build_distribution` wrote."""

    tgz: Path
    md5: Path
    sha256: Path


def build_distribution(
    root: Path, out_dir: Path, version: str, extra: Sequence[str] = ()
) -> DistResult:
    """Pack the installer tree at `root` into `out_dir/PSN_<version>.tgz` plus checksum files.

    The archive holds `distribution_files(root)` and the build artifacts `extra` (paths relative
    to `root`, packed even though git ignores them, e.g. the image archive) under
    `PSN_<version>/`, owned by root, with normalised modes and the files' own mtimes, plus
    `PSN_<version>/MANIFEST.sha256`.
    Raises InputError for a version unfit for a file name or file names the manifest cannot carry.
    """
    if not _VERSION_RE.fullmatch(version):
        raise InputError(
            "Invalid distribution version",
            [
                Problem(
                    "the version becomes part of file names",
                    fix="use letters, digits and . _ + ~ - only, e.g. 2.3.0",
                    value=version,
                )
            ],
        )
    base = f"PSN_{version}"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = DistResult(
        tgz=out_dir / f"{base}.tgz",
        md5=out_dir / f"{base}.md5",
        sha256=out_dir / f"{base}.sha256",
    )
    partial = result.tgz.with_name(result.tgz.name + ".part")
    # When out_dir lies inside the tree, never pack the archive (or a stale one) into itself.
    ours = _relative_inside(root, [result.tgz, result.md5, result.sha256, partial])
    files = sorted({*distribution_files(root), *extra} - ours)

    try:
        _write_archive(root, files, base, partial)
        partial.replace(result.tgz)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise

    md5, sha256 = _hexdigests(result.tgz, "md5", "sha256")
    result.md5.write_text(f"{md5}  {result.tgz.name}\n", encoding="utf-8")
    result.sha256.write_text(f"{sha256}  {result.tgz.name}\n", encoding="utf-8")
    return result


def distribution_files(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files and symlinks to ship, sorted.

    In a git checkout: tracked and untracked-but-not-ignored files that exist on disk;
    otherwise every file under `root`. The exclusions of `_excluded` apply in both cases.
    """
    candidates = _git_files(root) if (root / ".git").exists() else _walk(root, ())
    files = sorted(set(candidates))
    unsafe = [f for f in files if any(c in f for c in _UNSAFE_NAME_CHARS)]
    if unsafe:
        raise InputError(
            "File names the distribution manifest cannot carry",
            [
                Problem(
                    "the file name contains a newline or a backslash",
                    fix="rename the file",
                    file=name,
                )
                for name in unsafe
            ],
        )
    return files


def verify_tree(root: Path, version: str = __version__) -> int | None:
    """Check the installer at `root` against its MANIFEST.sha256.

    Returns None when there is no manifest (a development checkout: nothing to check), else
    the number of files verified. Files present but not listed (inventories, certificates,
    logs) are fine. Raises IntegrityError naming every changed or missing file and every
    malformed manifest line.
    """
    manifest = root / MANIFEST
    if not manifest.exists():
        return None
    fix = (
        f"restore the file from the original PSN_{version}.tgz (check it with md5sum -c first), "
        "or pass --skip-checksum if you changed it on purpose"
    )
    problems: list[Problem] = []
    verified = 0
    text = manifest.read_text(encoding="utf-8", errors="surrogateescape")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE_RE.fullmatch(line)
        if match is None or not _is_inside(match.group(2)):
            problems.append(
                Problem(
                    "malformed manifest line (expected '<sha256>  <relative path>')",
                    fix=fix,
                    file=MANIFEST,
                    line=lineno,
                    value=line,
                )
            )
            continue
        expected, name = match.group(1).lower(), match.group(2)
        path = root / name
        if not path.is_file():
            problems.append(Problem("missing", fix=fix, file=name))
            continue
        try:
            (actual,) = _hexdigests(path, "sha256")
        except OSError as err:
            problems.append(Problem(f"cannot be read: {err.strerror}", fix=fix, file=name))
            continue
        if actual != expected:
            problems.append(
                Problem("content differs from the distribution manifest", fix=fix, file=name)
            )
            continue
        verified += 1
    if problems:
        raise IntegrityError(
            f"The installer's files do not match its distribution manifest ({MANIFEST})",
            problems,
        )
    return verified


def _excluded(parts: tuple[str, ...], is_dir: bool = False) -> bool:
    """Whether a path (relative to the tree, split into parts) stays out of the archive."""
    name = parts[-1]
    if parts[0] in _EXCLUDED_AT_TOP:
        return True
    if any(p in _EXCLUDED_NAMES or p.endswith(".egg-info") for p in parts):
        return True
    if not is_dir and (name.endswith(".pyc") or fnmatch(name, "deploy_psn_*.log")):
        return True
    if parts[0] in _PRIVATE_DIRS:
        kept = len(parts) == 2 and not is_dir and name in _KEPT_IN_PRIVATE_DIRS
        return len(parts) > 1 and not kept
    return False


def _walk(root: Path, prefix: tuple[str, ...]) -> list[str]:
    """Files and symlinks under `root/prefix`, pruning excluded directories."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root.joinpath(*prefix)):
        rel = Path(dirpath).relative_to(root).parts
        for name in list(dirnames):
            parts = (*rel, name)
            if os.path.islink(os.path.join(dirpath, name)):
                filenames.append(name)  # shipped as a link, not followed
                dirnames.remove(name)
            elif _excluded(parts, is_dir=True):
                dirnames.remove(name)
        for name in filenames:
            parts = (*rel, name)
            path = os.path.join(dirpath, name)
            if not _excluded(parts) and (os.path.islink(path) or os.path.isfile(path)):
                found.append("/".join(parts))
    return found


def _git_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files of a git checkout that exist on disk."""
    try:
        listing = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", *_GIT_LS_FILES],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        detail = (
            err.stderr.decode(errors="replace").strip()
            if isinstance(err, subprocess.CalledProcessError)
            else str(err)
        )
        raise PsnError(
            "Cannot list the files of the git checkout",
            [
                Problem(
                    f"git ls-files failed: {detail}",
                    fix="install git, or build from a tree without .git",
                    file=str(root),
                )
            ],
        ) from err
    found: list[str] = []
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        name = os.fsdecode(entry)
        parts = tuple(name.split("/"))
        path = root / name
        if _excluded(parts):
            continue
        if path.is_dir() and not path.is_symlink():
            found.extend(_walk(root, parts))  # a submodule: git lists only its directory
        elif path.is_symlink() or path.is_file():
            found.append(name)
    return found


def _write_archive(root: Path, files: list[str], base: str, target: Path) -> None:
    """Write the gzipped tar of `files` plus the manifest to `target`, reproducibly."""
    infos = {name: _file_info(root / name, f"{base}/{name}") for name in files}
    # Directories get the newest file mtime: their own changes with every pytest run.
    newest = max((info.mtime for info in infos.values()), default=0)
    dirs = {PurePosixPath(name).parent for name in files} - {PurePosixPath(".")}
    dirs |= {parent for d in dirs for parent in d.parents if parent != PurePosixPath(".")}
    entries = sorted([*files, *(d.as_posix() for d in dirs)])

    manifest_lines: list[str] = []
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar,
    ):
        tar.addfile(_dir_info(base, newest))
        for name in entries:
            info = infos.get(name)
            if info is None:
                tar.addfile(_dir_info(f"{base}/{name}", newest))
            elif info.issym():
                tar.addfile(info)
            else:
                with (root / name).open("rb") as f:
                    # Hash what goes into the archive, so a file changed meanwhile can't slip by.
                    reader = _HashingReader(f)
                    tar.addfile(info, reader)
                manifest_lines.append(f"{reader.hexdigest()}  {name}\n")
        data = "".join(manifest_lines).encode("utf-8", errors="surrogateescape")
        manifest = _owned_by_root(tarfile.TarInfo(f"{base}/{MANIFEST}"))
        manifest.size, manifest.mode, manifest.mtime = len(data), 0o644, newest
        tar.addfile(manifest, io.BytesIO(data))


def _file_info(path: Path, arcname: str) -> tarfile.TarInfo:
    """A tar header for a regular file or symlink; hard links are stored as separate files."""
    st = path.lstat()
    info = _owned_by_root(tarfile.TarInfo(arcname))
    info.mtime = int(st.st_mtime)
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
    else:
        # Like git, keep only the executable bit: the operator's umask must not leak in.
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    return info


def _dir_info(arcname: str, mtime: int) -> tarfile.TarInfo:
    info = _owned_by_root(tarfile.TarInfo(arcname))
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
    return info


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


class _HashingReader:
    """Read-only file wrapper that feeds everything read through it into sha256."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _hexdigests(path: Path, *algorithms: str) -> list[str]:
    """Hex digests of a file for each algorithm, read once in chunks."""
    # md5 only checks transfers (guide §4.2.2.3); FIPS builds refuse it without this flag.
    hashes = [hashlib.new(a, usedforsecurity=False) for a in algorithms]
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            for h in hashes:
                h.update(chunk)
    return [h.hexdigest() for h in hashes]


def _relative_inside(root: Path, paths: list[Path]) -> set[str]:
    """The relative POSIX paths of those `paths` that lie inside `root`."""
    top = root.resolve()
    resolved = (p.resolve() for p in paths)
    return {p.relative_to(top).as_posix() for p in resolved if p.is_relative_to(top)}


def _is_inside(name: str) -> bool:
    """Whether a manifest path stays inside the tree (a tampered one must not read /etc)."""
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts
