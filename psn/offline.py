"""The offline part of the distribution: a local apt repository and the installer's wheels.

`deploy_psn dist build --offline` writes two git-ignored build artifacts into the installer
tree and packs them into the archive:

- `offline/apt/`: a flat apt repository (the .deb files, `Packages`, `Packages.gz`, `Release`,
  plus `psn-offline.json` describing the build and `SHA256SUMS` over every other file) with the
  Debian 12 packages the servers need before containers can run. The `common` role copies it to
  every server and makes it apt's only source when the inventory says `offline: "True"`.
- `wheels/`: wheels of the installer's own Python dependencies (and of the build backend that
  `pip install --editable` needs), for the Python running this command; `deploy_psn.sh` builds
  its virtualenv from them with `--no-index`.

Which packages: the names in `roles/common/vars/Debian.yml` (`PACKAGE_KEYS`, one list for the
role and this module), plus any `extra` ones. Their FULL dependency closure is computed by apt
inside a clean container of `psn/base:<version>` (Debian 12 minbase + bookworm-updates and
bookworm-security): `apt-cache depends --recurse` over Depends and Pre-Depends (never
Recommends/Suggests), every alternative of an `a | b` dependency included. Virtual packages
(`<name>` in that output) have no .deb of their own and are skipped; their providers are in the
closure already. Nothing else is skipped, not even the Essential/required packages a minimal
Debian always has (about 6 MB of ~110 MB): with them, a server installed from an older 12.x
point release can still satisfy a versioned dependency on a newer library. apt installs only
what is missing or too old, so carrying them costs disk space, not changes.

The container needs the Debian mirror; the installer machine needs nothing but Docker. Reuse:
when the requested list, the base image and the mirror's candidate versions (name, version,
SHA256) equal those of the repository already there and every file matches `SHA256SUMS`,
nothing is downloaded or rewritten. Otherwise only the .deb files that changed are fetched and
stale ones removed; `rebuild=True` empties the directory first. When the mirror cannot be
reached, an intact repository built from the same list is reused (its versions may be old).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from psn import images
from psn.errors import InputError, Problem, PsnError

APT_DIR = "offline/apt"
WHEELS_DIR = "wheels"
STATE_FILE = "psn-offline.json"
SUMS_FILE = "SHA256SUMS"
WHEELS_STATE_FILE = "psn-wheels.json"
INDEX_FILES = ("Packages", "Packages.gz", "Release")
ROLE_VARS = "roles/common/vars/Debian.yml"
# The lists of ROLE_VARS whose packages the repository carries, in this order.
PACKAGE_KEYS = (
    "common__os_packages",
    "common__docker_packages",
    "common__python_packages",
    "common__offline_packages",
)
SUITE = "bookworm"
FORMAT = 1
CLOSURE_RULE = (
    "apt-cache depends --recurse over Depends and Pre-Depends (all alternatives); "
    "virtual packages skipped; nothing else skipped"
)
TAIL_LINES = 30

_DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_CONTAINER_REPO = "/repo"
# apt-get update fails on any missing index (apt >= 2.3), instead of warning and carrying on.
_APT_UPDATE = ("apt-get", "update", "-q", "--error-on=any")
# Downloads land in a bind mount the _apt user may not read: download as root, quietly.
_APT_AS_ROOT = ("-o", "APT::Sandbox::User=root")

Progress = Callable[[str], None]


@dataclass(frozen=True, order=True)
class Deb:
    """One binary package of the repository, as the mirror's index describes it."""

    name: str
    version: str
    architecture: str
    sha256: str
    size: int
    priority: str = ""
    essential: bool = False

    @property
    def file(self) -> str:
        """The file name `apt-get download` gives it (an epoch's `:` is written `%3a`)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.architecture}.deb"

    def key(self) -> tuple[str, str, str]:
        """What must be equal for a reused file: name, version and content."""
        return (self.name, self.version, self.sha256)


@dataclass(frozen=True)
class Plan:
    """What turns the directory's .deb files into the wanted set."""

    keep: tuple[Deb, ...]
    fetch: tuple[Deb, ...]
    remove: tuple[str, ...]  # file names: stale versions, damaged files, strangers


@dataclass(frozen=True)
class AptRepoResult:
    """The apt repository `build_apt_repo` left behind."""

    path: Path
    packages: int
    size: int  # bytes of every file of the repository
    downloaded: int  # .deb files fetched in this run
    cached: bool  # nothing was downloaded or rewritten
    seconds: float
    note: str = ""


@dataclass(frozen=True)
class WheelsResult:
    """The wheels directory `build_wheels` left behind."""

    path: Path
    wheels: int
    size: int
    cached: bool
    seconds: float


@dataclass
class RepoState:
    """Contents of `psn-offline.json`: what a repository was built from and holds."""

    requested: list[str]
    image: str
    architecture: str
    packages: list[dict[str, Any]]
    suite: str = SUITE
    rule: str = CLOSURE_RULE
    built: str = ""
    format: int = FORMAT

    def debs(self) -> list[Deb]:
        return [
            Deb(p["name"], p["version"], p["architecture"], p["sha256"], int(p["size"]))
            for p in self.packages
        ]


# --- the package list ---------------------------------------------------------------------


def package_list(root: Path, extra: Iterable[str] = ()) -> list[str]:
    """The packages the repository must carry: PACKAGE_KEYS of the role's vars, then `extra`.

    Order kept, duplicates dropped. Raises InputError for a name that is no Debian package name
    or a missing list.
    """
    path = Path(root) / ROLE_VARS
    try:
        data = YAML(typ="safe").load(path.read_text("utf-8")) or {}
    except OSError as exc:
        raise InputError(
            "Cannot read the package lists of the common role",
            [Problem(str(exc), fix="run from a PSN source tree", file=str(path))],
        ) from exc
    problems: list[Problem] = []
    names: list[str] = []
    for key in PACKAGE_KEYS:
        value = data.get(key)
        if not isinstance(value, list):
            problems.append(
                Problem(
                    "must be a list of Debian package names",
                    fix=f"define {key} in {ROLE_VARS}",
                    file=str(path),
                    path=key,
                    value=repr(value),
                )
            )
            continue
        names.extend(str(v) for v in value)
    names.extend(extra)
    for name in names:
        if not _DEB_NAME.fullmatch(name):
            problems.append(
                Problem(
                    "not a Debian package name",
                    fix="use lower-case letters, digits and + . - (e.g. xfsprogs)",
                    value=name,
                )
            )
    if problems:
        raise InputError("Invalid package list for the offline apt repository", problems)
    return list(dict.fromkeys(names))


# --- commands run in the build container, and the parsing of their output -----------------


def closure_command(packages: Sequence[str]) -> list[str]:
    """`apt-cache depends` listing every package the given ones need, recursively."""
    return [
        "apt-cache",
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
        *packages,
    ]


def parse_closure(output: str) -> list[str]:
    """Real package names of `apt-cache depends --recurse` output, sorted.

    Package names start a line; dependency lines are indented; `<name>` is a virtual package.
    """
    names = set()
    for line in output.splitlines():
        if not line or line[0].isspace() or line.startswith("<"):
            continue
        name = line.strip().split(":", 1)[0]  # "libc6:amd64" on multi-arch systems
        if _DEB_NAME.fullmatch(name):
            names.add(name)
    return sorted(names)


def show_command(names: Sequence[str]) -> list[str]:
    """`apt-cache show` of the candidate version of each package."""
    return ["apt-cache", "show", "--no-all-versions", *names]


def parse_records(output: str) -> list[Deb]:
    """The packages of `apt-cache show` (deb822 stanzas), sorted by name."""
    debs: dict[str, Deb] = {}
    for stanza in _stanzas(output):
        fields = _fields(stanza)
        if "Package" not in fields or "SHA256" not in fields:
            continue
        deb = Deb(
            name=fields["Package"],
            version=fields["Version"],
            architecture=fields["Architecture"],
            sha256=fields["SHA256"].lower(),
            size=int(fields.get("Size", "0")),
            priority=fields.get("Priority", ""),
            essential=fields.get("Essential", "no") == "yes",
        )
        debs.setdefault(deb.name, deb)
    return sorted(debs.values())


def download_command(debs: Iterable[Deb]) -> list[str]:
    """`apt-get download` of exactly these versions, into the current directory."""
    return ["apt-get", "download", "-q", *_APT_AS_ROOT, *(f"{d.name}={d.version}" for d in debs)]


def release_command(architecture: str) -> list[str]:
    """`apt-ftparchive release` of the flat repository in the current directory (to stdout)."""
    fields = {
        "Origin": "PSN",
        "Label": "PSN offline",
        "Suite": SUITE,
        "Codename": SUITE,
        "Architectures": architecture,
        "Description": "Debian 12 packages for PSN servers without a mirror",
    }
    options = [f"-oAPT::FTPArchive::Release::{k}={v}" for k, v in fields.items()]
    return ["apt-ftparchive", *options, "release", "."]


def sorted_packages_index(text: str) -> str:
    """A `Packages` index with its stanzas sorted by package and version (stable output)."""

    def sort_key(stanza: str) -> tuple[str, str]:
        fields = _fields(stanza)
        return fields.get("Package", ""), fields.get("Version", "")

    stanzas = sorted(_stanzas(text), key=sort_key)
    return "".join(s.rstrip("\n") + "\n\n" for s in stanzas)


def _stanzas(text: str) -> list[str]:
    return [s for s in re.split(r"\n\s*\n", text.strip("\n")) if s.strip()]


def _fields(stanza: str) -> dict[str, str]:
    """The single-line fields of a deb822 stanza (continuation lines are ignored)."""
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        if line and not line[0].isspace() and ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


# --- deciding what to do --------------------------------------------------------------------


def plan(wanted: Sequence[Deb], existing: dict[str, str]) -> Plan:
    """Compare the wanted packages with the .deb files there (`file name -> sha256`).

    A file is kept when its name and content are the wanted ones; every other .deb is removed,
    every wanted package without a good file is fetched.
    """
    by_file = {d.file: d for d in wanted}
    keep = tuple(d for d in wanted if existing.get(d.file) == d.sha256)
    fetch = tuple(d for d in wanted if existing.get(d.file) != d.sha256)
    remove = tuple(
        sorted(
            f for f, digest in existing.items() if f not in by_file or by_file[f].sha256 != digest
        )
    )
    return Plan(keep, fetch, remove)


def is_current(
    state: RepoState | None,
    requested: Sequence[str],
    image: str,
    wanted: Sequence[Deb],
    sums_ok: bool,
) -> bool:
    """Whether the repository there can be reused as it is.

    It can when it was built from the same list and base image, holds exactly the wanted
    versions (same content) and every file matches its SHA256SUMS.
    """
    if state is None or not sums_ok:
        return False
    return (
        state.format == FORMAT
        and list(state.requested) == list(requested)
        and state.image == image
        and sorted(d.key() for d in state.debs()) == sorted(d.key() for d in wanted)
    )


# --- files of the repository ----------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def existing_debs(directory: Path) -> dict[str, str]:
    """`file name -> sha256` of the .deb files in `directory`."""
    if not directory.is_dir():
        return {}
    return {p.name: sha256_file(p) for p in sorted(directory.glob("*.deb")) if p.is_file()}


def read_state(directory: Path) -> RepoState | None:
    """The repository's `psn-offline.json`, or None when missing or unreadable."""
    try:
        data = json.loads((directory / STATE_FILE).read_text("utf-8"))
        return RepoState(**data)
    except (OSError, ValueError, TypeError):
        return None


def verify_sums(directory: Path) -> bool:
    """Whether `SHA256SUMS` lists exactly the other files there, all with matching content."""
    try:
        text = (directory / SUMS_FILE).read_text("utf-8")
    except OSError:
        return False
    listed: dict[str, str] = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if not name or "/" in name:
            return False
        listed[name] = digest
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name != SUMS_FILE}
    if set(listed) != present:
        return False
    return all(sha256_file(directory / name) == digest for name, digest in listed.items())


def write_sums(directory: Path) -> None:
    """Write `SHA256SUMS` (`sha256sum -c` format) over every other file of the directory."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != SUMS_FILE)
    lines = [f"{sha256_file(directory / n)}  {n}\n" for n in names]
    _write_atomic(directory / SUMS_FILE, "".join(lines).encode())


def artifact_files(root: Path) -> list[str]:
    """Relative paths of the offline artifacts under `root` (for `build_distribution` extra)."""
    found: list[str] = []
    for top in (APT_DIR, WHEELS_DIR):
        directory = Path(root) / top
        if directory.is_dir():
            found += [p.relative_to(root).as_posix() for p in directory.rglob("*") if p.is_file()]
    return sorted(found)


def directory_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    tmp.replace(path)


# --- the build container ---------------------------------------------------------------------


class _Container:
    """A running `psn/base` container with the repository directory mounted at /repo."""

    def __init__(self, image: str, directory: Path, docker: str) -> None:
        self.docker = docker
        self.name = f"psn-offline-apt-{os.getpid()}-{int(time.time())}"
        self._run(
            [
                docker,
                "run",
                "--detach",
                "--rm",
                "--name",
                self.name,
                "--network",
                "bridge",
                "--volume",
                f"{directory}:{_CONTAINER_REPO}",
                "--workdir",
                _CONTAINER_REPO,
                "--env",
                "DEBIAN_FRONTEND=noninteractive",
                image,
                "sleep",
                "infinity",
            ],
            "starting the build container",
        )

    def exec(self, argv: Sequence[str], title: str, *, check: bool = True) -> str:
        """Run a command in the container; its stdout. Raises PsnError when it fails."""
        return self._run([self.docker, "exec", self.name, *argv], title, check=check)

    def remove(self) -> None:
        subprocess.run([self.docker, "rm", "--force", self.name], capture_output=True, check=False)

    def _run(self, argv: list[str], title: str, *, check: bool = True) -> str:
        try:
            res = subprocess.run(
                argv, capture_output=True, text=True, errors="replace", check=False
            )
        except OSError as exc:
            raise PsnError(f"{title}: cannot run {argv[0]}", [Problem(str(exc))]) from exc
        if check and res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-TAIL_LINES:])
            raise _BuildFailed(title, res.returncode, tail)
        return res.stdout


class _BuildFailed(PsnError):
    def __init__(self, title: str, code: int, output: str) -> None:
        super().__init__(
            f"Building the offline apt repository failed: {title} (exit {code})",
            [
                Problem(
                    f"last lines of the output:\n{output}",
                    fix="check that the build machine reaches the Debian mirror "
                    "(images/base/build.sh: PSN_DEBIAN_MIRROR), then run again",
                )
            ],
        )
        self.step = title
        self.output = output


# --- the apt repository ----------------------------------------------------------------------


def build_apt_repo(
    root: Path,
    version: str,
    *,
    out_dir: Path | None = None,
    extra_packages: Iterable[str] = (),
    rebuild: bool = False,
    progress: Progress | None = None,
    docker: str = "docker",
) -> AptRepoResult:
    """Build or refresh the flat apt repository at `out_dir` (default `<root>/offline/apt`).

    Runs apt in a container of `psn/base:<version>` (built first when missing). See the module
    docstring for the package rule and the reuse rule. Raises InputError for bad package names
    or packages the mirror does not have, PsnError when a build step fails.
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    root = Path(root)
    directory = (Path(out_dir) if out_dir else root / APT_DIR).resolve()
    requested = package_list(root, extra_packages)
    images.require_engine(docker)
    image = images.image_tag(images.BASE, version)
    if images.build_base(root, version, docker=docker):
        say(f"built the base image {image}")
    directory.mkdir(parents=True, exist_ok=True)
    state = None if rebuild else read_state(directory)

    say(f"resolving {len(requested)} packages and their dependencies in {image}")
    box = _Container(image, directory, docker)
    try:
        uid, gid = os.getuid(), os.getgid()
        if uid != 0:  # let this user write the index files next to root-owned downloads
            box.exec(["chown", f"{uid}:{gid}", _CONTAINER_REPO], "chown")
        try:
            box.exec(list(_APT_UPDATE), "apt-get update")
        except _BuildFailed:
            reusable = state and state.requested == requested and state.image == image
            if not (reusable and verify_sums(directory)):
                raise
            assert state is not None
            return AptRepoResult(
                directory,
                len(state.packages),
                directory_size(directory),
                0,
                True,
                time.monotonic() - started,
                "the Debian mirror is unreachable: reused the repository built "
                f"{state.built or 'earlier'} as it is",
            )
        architecture = box.exec(["dpkg", "--print-architecture"], "dpkg").strip()
        wanted = _resolve(box, requested)
        sums_ok = verify_sums(directory)
        if not rebuild and is_current(state, requested, image, wanted, sums_ok):
            return AptRepoResult(
                directory,
                len(wanted),
                directory_size(directory),
                0,
                True,
                time.monotonic() - started,
            )

        if rebuild:
            box.exec(["find", _CONTAINER_REPO, "-mindepth", "1", "-delete"], "emptying")
        else:  # a half-written repository must never look current; Release is rewritten
            box.exec(["rm", "-f", STATE_FILE, SUMS_FILE, "Release"], "rm")
        todo = plan(wanted, existing_debs(directory))
        if todo.remove:
            box.exec(["rm", "-f", "--", *todo.remove], "removing stale packages")
        if todo.fetch:
            mb = sum(d.size for d in todo.fetch) / 1e6
            say(f"downloading {len(todo.fetch)} of {len(wanted)} packages ({mb:.0f} MB)")
            box.exec(download_command(todo.fetch), "apt-get download")
        bad = [d.file for d in todo.fetch if _digest_or_none(directory / d.file) != d.sha256]
        if bad:
            raise PsnError(
                "Downloaded packages do not match the mirror's index",
                [
                    Problem(f"{name}: SHA256 differs", fix="run again with --rebuild")
                    for name in bad
                ],
            )

        say("writing the repository index (apt-ftparchive)")
        box.exec(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "apt-utils"],
            "installing apt-utils",
        )
        index = box.exec(["apt-ftparchive", "packages", "."], "apt-ftparchive packages")
        index = sorted_packages_index(index)
        _write_atomic(directory / "Packages", index.encode())
        _write_atomic(directory / "Packages.gz", gzip.compress(index.encode(), 9, mtime=0))
        # Release hashes the index files (no old Release is left to be hashed into it).
        release = box.exec(release_command(architecture), "apt-ftparchive release")
        _write_atomic(directory / "Release", release.encode())
        new_state = RepoState(
            requested=requested,
            image=image,
            architecture=architecture,
            packages=[_state_entry(d) for d in wanted],
            built=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        data = json.dumps(asdict(new_state), indent=2, sort_keys=True) + "\n"
        _write_atomic(directory / STATE_FILE, data.encode())
        write_sums(directory)
        if uid != 0:
            box.exec(["chown", "-R", f"{uid}:{gid}", _CONTAINER_REPO], "chown")
        return AptRepoResult(
            directory,
            len(wanted),
            directory_size(directory),
            len(todo.fetch),
            False,
            time.monotonic() - started,
        )
    finally:
        box.remove()


def _resolve(box: _Container, requested: Sequence[str]) -> list[Deb]:
    """The candidate versions of the requested packages and their dependency closure."""
    known = {d.name for d in parse_records(box.exec(show_command(requested), "", check=False))}
    missing = [name for name in requested if name not in known]
    if missing:
        raise InputError(
            "Packages the Debian 12 mirror does not have",
            [
                Problem(
                    "no such package (or only a virtual one) in bookworm",
                    fix="correct the name, or name the real package that provides it",
                    value=name,
                )
                for name in missing
            ],
        )
    names = parse_closure(box.exec(closure_command(requested), "apt-cache depends"))
    wanted = parse_records(box.exec(show_command(names), "apt-cache show"))
    lost = sorted(set(names) - {d.name for d in wanted})
    if lost:
        raise PsnError(
            "apt named packages it cannot show",
            [Problem(", ".join(lost), fix="run again; report it if it persists")],
        )
    return wanted


def _state_entry(deb: Deb) -> dict[str, Any]:
    return {
        "name": deb.name,
        "version": deb.version,
        "architecture": deb.architecture,
        "file": deb.file,
        "sha256": deb.sha256,
        "size": deb.size,
    }


def _digest_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


# --- the installer's wheels -----------------------------------------------------------------


def requirements(root: Path) -> list[str]:
    """The installer's runtime dependencies and build backend, from pyproject.toml."""
    path = Path(root) / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(
            "Cannot read the installer's dependencies",
            [Problem(str(exc), fix="run from a PSN source tree", file=str(path))],
        ) from exc
    deps = list(data.get("project", {}).get("dependencies", []))
    build = list(data.get("build-system", {}).get("requires", []))
    return list(dict.fromkeys([*deps, *build]))


def python_tag(python: str = sys.executable) -> str:
    """`cp311-x86_64` style tag of an interpreter: the wheels fit only such a Python."""
    code = (
        "import platform, sys; v = sys.version_info; "
        "print(sys.implementation.name, f'{v[0]}{v[1]}', platform.machine())"
    )
    try:
        out = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PsnError(
            f"Cannot run the Python the wheels are for: {python}",
            [Problem(str(exc), fix="pass the path of a working python3")],
        ) from exc
    impl, ver, machine = out
    return f"{'cp' if impl == 'cpython' else impl}{ver}-{machine}"


def wheels_command(python: str, reqs: Sequence[str], dest: Path) -> list[str]:
    """`pip wheel` of the requirements into `dest` (existing wheels are saved, sdists built)."""
    return [
        python,
        "-m",
        "pip",
        "wheel",
        "--disable-pip-version-check",
        "--quiet",
        "--prefer-binary",
        "--wheel-dir",
        str(dest),
        *reqs,
    ]


def wheels_current(
    state: dict[str, Any] | None, reqs: Sequence[str], tag: str, directory: Path
) -> bool:
    """Whether the wheels there were made for these requirements and this Python, intact."""
    if not state or state.get("requirements") != list(reqs) or state.get("python") != tag:
        return False
    files: dict[str, str] = state.get("files", {})
    present = {p.name for p in directory.glob("*.whl")}
    if not files or set(files) != present:
        return False
    return all(sha256_file(directory / n) == d for n, d in files.items())


def build_wheels(
    root: Path,
    *,
    out_dir: Path | None = None,
    rebuild: bool = False,
    python: str = sys.executable,
    progress: Progress | None = None,
) -> WheelsResult:
    """Fill `out_dir` (default `<root>/wheels`) with wheels of the installer's dependencies.

    Reused when made for the same requirements and Python and intact, unless `rebuild`.
    New wheels are collected in a sibling directory that replaces the old one when complete.
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    root = Path(root)
    directory = (Path(out_dir) if out_dir else root / WHEELS_DIR).resolve()
    reqs = requirements(root)
    tag = python_tag(python)
    state = _read_json(directory / WHEELS_STATE_FILE)
    if not rebuild and wheels_current(state, reqs, tag, directory):
        return WheelsResult(
            directory,
            len(state["files"]),
            directory_size(directory),
            True,
            time.monotonic() - started,
        )
    say(f"collecting wheels of {len(reqs)} requirements for {tag}")
    fresh = directory.with_name(f".{directory.name}.new")
    _remove_tree(fresh)
    fresh.mkdir(parents=True)
    try:
        res = subprocess.run(
            wheels_command(python, reqs, fresh), capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-TAIL_LINES:])
            raise PsnError(
                f"pip wheel failed (exit {res.returncode})",
                [
                    Problem(
                        f"last lines of the output:\n{tail}",
                        fix="check that this machine reaches the Python package index "
                        "(pip config list), then run again",
                    )
                ],
            )
        files = {p.name: sha256_file(p) for p in sorted(fresh.glob("*.whl"))}
        new_state = {"requirements": reqs, "python": tag, "files": files}
        text = json.dumps(new_state, indent=2, sort_keys=True) + "\n"
        _write_atomic(fresh / WHEELS_STATE_FILE, text.encode())
        old = directory.with_name(f".{directory.name}.old")
        _remove_tree(old)
        if directory.exists():
            directory.replace(old)
        fresh.replace(directory)
        _remove_tree(old)
    finally:
        _remove_tree(fresh)
    return WheelsResult(
        directory, len(files), directory_size(directory), False, time.monotonic() - started
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
