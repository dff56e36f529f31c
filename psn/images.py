"""Container images of the suite: discover, build in dependency order, save as one archive.

Every image is built here from Debian packages (see images/README.md): first the base
`psn/base:<version>` (debootstrap, by images/base/build.sh), then one image per directory
`images/<component>/` holding a Dockerfile, tagged `psn/<component>:<version>`. A Dockerfile
whose FROM names another `psn/...` image is built after it. The docker CLI does the work
(arguments as lists, never a shell); its layer cache makes a second build fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from psn.errors import ImageBuildError, Problem

BASE = "base"
NAMESPACE = "psn"
TAIL_LINES = 40

_FROM = re.compile(
    r"^\s*FROM\s+(?:--platform=\S+\s+)?" + NAMESPACE + r"/([a-z0-9][a-z0-9._-]*)(?=[:@\s]|$)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Component:
    """One image directory: `images/<name>/Dockerfile` (or the base, built by its script)."""

    name: str
    directory: Path
    depends: tuple[str, ...] = ()  # other psn images named in FROM lines

    def tag(self, version: str) -> str:
        return image_tag(self.name, version)


@dataclass(frozen=True)
class Progress:
    """One step of a build or save, handed to the `progress` callback."""

    image: str  # component name ("base", "registry", ...) or "" for the archive
    event: str  # "start" | "built" | "cached" | "saved"
    index: int  # 1-based position in this run
    total: int
    seconds: float = 0.0
    detail: str = ""


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class BuildResult:
    name: str
    tag: str
    cached: bool  # base: kept as it was; others: every step came from the layer cache
    seconds: float
    size: int  # bytes, as `docker image inspect` reports


def image_tag(name: str, version: str) -> str:
    """`psn/<name>:<version>`, the local tag of a component's image."""
    return f"{NAMESPACE}/{name}:{version}"


def images_dir(root: Path) -> Path:
    return Path(root) / "images"


def discover(root: Path) -> dict[str, Component]:
    """Every component under `<root>/images`: the base plus each directory with a Dockerfile."""
    base_dir = images_dir(root) / BASE
    if not (base_dir / "build.sh").is_file():
        raise ImageBuildError(
            "the base image recipe is missing",
            [Problem(f"{base_dir / 'build.sh'} does not exist", fix="run from a PSN source tree")],
            image=BASE,
        )
    found = {BASE: Component(BASE, base_dir)}
    for dockerfile in sorted(images_dir(root).glob("*/Dockerfile")):
        name = dockerfile.parent.name
        if name == BASE:
            continue
        deps = tuple(dict.fromkeys(_FROM.findall(dockerfile.read_text(encoding="utf-8"))))
        found[name] = Component(name, dockerfile.parent, deps)
    for comp in found.values():
        for dep in comp.depends:
            if dep not in found:
                raise ImageBuildError(
                    f"image {comp.name} is built FROM an unknown image {NAMESPACE}/{dep}",
                    [
                        Problem(
                            f"{comp.directory / 'Dockerfile'} names {NAMESPACE}/{dep}",
                            fix=f"add images/{dep}/ or correct the FROM line",
                        )
                    ],
                    image=comp.name,
                )
    return found


def build_order(
    components: dict[str, Component], only: Iterable[str] | None = None
) -> list[Component]:
    """Components in dependency order (base first, then alphabetical among equals).

    With `only`, just those components and what they are built FROM (transitively).
    """
    wanted = set(components)
    if only:
        names = list(only)
        unknown = [n for n in names if n not in components]
        if unknown:
            raise ImageBuildError(
                f"unknown image {', '.join(unknown)}",
                [Problem(f"known images: {', '.join(sorted(components))}", fix="check --only")],
                image=unknown[0],
            )
        wanted = set()
        stack = names
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(components[name].depends)
    ordered: list[Component] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise ImageBuildError(
                f"images depend on each other in a cycle through {name}", image=name
            )
        visiting.add(name)
        for dep in sorted(components[name].depends):
            visit(dep)
        visiting.discard(name)
        done.add(name)
        ordered.append(components[name])

    for name in [BASE, *sorted(wanted - {BASE})]:
        if name in wanted:
            visit(name)
    return ordered


def engine_answers(docker: str = "docker") -> bool:
    """True when a Docker engine answers `docker info`."""
    if shutil.which(docker) is None:
        return False
    try:
        res = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and bool(res.stdout.strip())


def require_engine(docker: str = "docker") -> None:
    if not engine_answers(docker):
        raise ImageBuildError(
            "no Docker engine answers",
            [
                Problem(
                    "`docker info` failed",
                    fix="start the engine (on a Debian test machine: bash .ci/docker-engine.sh)",
                )
            ],
        )


def image_exists(tag: str, docker: str = "docker") -> bool:
    res = subprocess.run(
        [docker, "image", "inspect", tag], capture_output=True, text=True, check=False
    )
    return res.returncode == 0


def image_size(tag: str, docker: str = "docker") -> int:
    res = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return int(res.stdout.strip())
    except ValueError:
        return 0


def _docker_env() -> dict[str, str]:
    env = dict(os.environ)
    # The classic builder works with every engine (Debian's docker.io has no buildx plugin).
    env.setdefault("DOCKER_BUILDKIT", "0")
    return env


def _run_logged(argv: list[str], image: str, title: str, log_file: Path | None) -> list[str]:
    """Run a build command and return its output lines (also written to `log_file`).

    Raises ImageBuildError with the last lines of the output when the command fails.
    """
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    log = log_file.open("w", encoding="utf-8") if log_file else None
    try:
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env=_docker_env(),
            )
        except OSError as exc:
            raise ImageBuildError(
                f"{title}: cannot run {argv[0]}", [Problem(str(exc))], image=image
            ) from exc
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            lines.append(line)
            if log:
                log.write(line + "\n")
        rc = proc.wait()
    finally:
        if log:
            log.close()
    if rc != 0:
        output = "\n".join(tail)
        fix = f"see the full output in {log_file}" if log_file else "see the output above"
        raise ImageBuildError(
            f"{title} failed (exit {rc})",
            [Problem(f"last lines of the output:\n{output}", fix=fix)],
            image=image,
            output=output,
        )
    return lines


def build_base(
    root: Path,
    version: str,
    *,
    rebuild: bool = False,
    log_dir: Path | None = None,
    docker: str = "docker",
) -> bool:
    """Build `psn/base:<version>` unless it exists built from the same files. True if built."""
    script = images_dir(root) / BASE / "build.sh"
    argv = ["bash", str(script)]
    if rebuild:
        argv.append("--rebuild")
    argv.append(image_tag(BASE, version))
    log_file = log_dir / "base.log" if log_dir else None
    lines = _run_logged(argv, BASE, f"building {image_tag(BASE, version)}", log_file)
    return "cached" not in [ln.strip() for ln in lines[-3:]]


def build_component(
    comp: Component,
    version: str,
    *,
    no_cache: bool = False,
    log_dir: Path | None = None,
    docker: str = "docker",
) -> bool:
    """`docker build` one component's directory. True when at least one step ran (not cached)."""
    argv = [
        docker,
        "build",
        "--build-arg",
        f"PSN_VERSION={version}",
        "--tag",
        comp.tag(version),
        "--force-rm",  # no stopped intermediate containers left behind by a failed step
    ]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(comp.directory))
    log_file = log_dir / f"{comp.name}.log" if log_dir else None
    lines = _run_logged(argv, comp.name, f"building {comp.tag(version)}", log_file)
    # The classic builder prints "---> Running in <id>" for each step it executes.
    return any("Running in " in ln for ln in lines)


def build_images(
    root: Path,
    version: str,
    only: Iterable[str] | None = None,
    progress: ProgressCallback | None = None,
    *,
    rebuild_base: bool = False,
    no_cache: bool = False,
    jobs: int = 2,
    log_dir: Path | None = None,
    docker: str = "docker",
) -> list[BuildResult]:
    """Build the base and every component image (or `only` those, plus what they need).

    Images are built in dependency order, the base first; with `jobs` > 1 that many images
    whose parents are built go at once (apt downloads overlap). The Docker layer cache is
    used unless `no_cache`. `progress` is called before and after each image (from the
    calling thread). Full build output goes to `log_dir/<name>.log` when given. Returns one
    BuildResult per image in build order. Raises ImageBuildError naming the first failing
    image with the last lines of its output (images already running are finished first).
    """
    require_engine(docker)
    components = discover(Path(root))
    order = build_order(components, only)
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    total = len(order)
    index = {comp.name: i for i, comp in enumerate(order, start=1)}
    results: dict[str, BuildResult] = {}

    def build_one(comp: Component) -> BuildResult:
        started = time.monotonic()
        if comp.name == BASE:
            ran = build_base(root, version, rebuild=rebuild_base, log_dir=log_dir, docker=docker)
        else:
            ran = build_component(comp, version, no_cache=no_cache, log_dir=log_dir, docker=docker)
        tag = comp.tag(version)
        return BuildResult(
            comp.name, tag, not ran, time.monotonic() - started, image_size(tag, docker)
        )

    def report(result: BuildResult) -> None:
        results[result.name] = result
        if progress:
            event = "cached" if result.cached else "built"
            n = index[result.name]
            progress(Progress(result.name, event, n, total, result.seconds, result.tag))

    def announce(comp: Component) -> None:
        if progress:
            progress(
                Progress(comp.name, "start", index[comp.name], total, detail=comp.tag(version))
            )

    pending = list(order)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        running: dict[Future[BuildResult], Component] = {}
        failure: ImageBuildError | None = None
        while pending or running:
            if failure is None:
                for comp in list(pending):
                    if len(running) >= max(1, jobs):
                        break
                    if all(dep in results for dep in comp.depends if dep in index):
                        pending.remove(comp)
                        announce(comp)
                        running[pool.submit(build_one, comp)] = comp
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                try:
                    report(future.result())
                except ImageBuildError as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure
    return [results[comp.name] for comp in order]


def archive_path(root: Path, version: str) -> Path:
    """Where `images save` writes the archive that `dist build` packs and the registry loads."""
    return Path(root) / "images" / "dist" / f"psn-images-{version}.tar"


def ids_path(archive: Path) -> Path:
    """The record of which image IDs an archive holds, written beside it by save_images."""
    return archive.with_name(archive.name + ".ids.json")


def image_ids(tags: Sequence[str], docker: str = "docker") -> dict[str, str]:
    """Tag -> image ID of every tag; {} when any of them is missing."""
    res = subprocess.run(
        [docker, "image", "inspect", "--format", "{{.Id}}", *tags],
        capture_output=True,
        text=True,
        check=False,
    )
    ids = res.stdout.split()
    if res.returncode != 0 or len(ids) != len(tags):
        return {}
    return dict(zip(tags, ids, strict=True))


def ensure_archive(root: Path, version: str, progress: ProgressCallback | None = None) -> Path:
    """Build what is missing or outdated (layer cache on) and save the archive unless it holds
    exactly the images there are now (an image rebuilt since, even by another command, counts)."""
    build_images(root, version, progress=progress)
    path = archive_path(root, version)
    try:
        recorded = json.loads(ids_path(path).read_text("utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        recorded = None
    if recorded != image_ids(image_tags(root, version)):
        save_images(root, version, path, progress)
    return path


def image_tags(root: Path, version: str) -> list[str]:
    """Tags of every image of the suite, base first, in build order."""
    return [c.tag(version) for c in build_order(discover(Path(root)))]


def save_images(
    root: Path,
    version: str,
    out_path: Path,
    progress: ProgressCallback | None = None,
    *,
    only: Sequence[str] = (),
    docker: str = "docker",
) -> Path:
    """Write the images of the suite into ONE archive, laid out as the registry stores them.

    The images are pushed into a throwaway psn/registry on this machine, and the archive (a
    plain tar: the layers in it are compressed already) holds that registry's storage `docker/`,
    `registry-image.tar.gz` (`docker save` of psn/registry, which the registry host loads to
    run the registry) and `images.json` (tag -> image ID). The docker_registry role unpacks the
    storage into the registry's volume instead of loading and pushing every image at deployment.
    `only` names components to save instead of all (psn/registry is always added). The file
    appears only when complete.
    """
    require_engine(docker)
    registry_tag = image_tag("registry", version)
    tags = image_tags(root, version)
    if only:
        wanted = {image_tag(name, version) for name in (*only, "registry")}
        unknown = sorted(wanted - set(tags))
        if unknown:
            raise ImageBuildError(
                f"no such image: {', '.join(unknown)}",
                [Problem("`only` names a component without images/<name>/", fix="check the name")],
            )
        tags = [t for t in tags if t in wanted]
    missing = [t for t in tags if not image_exists(t, docker)]
    if missing:
        raise ImageBuildError(
            f"{len(missing)} image(s) are not built: {', '.join(missing)}",
            [Problem("an archive needs every image", fix="build them first (images build)")],
            image=missing[0],
        )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if progress:
        progress(Progress("", "start", 1, 1, detail=str(out_path)))
    started = time.monotonic()
    ids = image_ids(tags, docker)
    fd, tmp_name = tempfile.mkstemp(prefix=out_path.name + ".", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix="psn-save-", dir=out_path.parent) as work:
            staging = Path(work)
            _registry_storage(tags, registry_tag, staging, docker)
            (staging / "images.json").write_text(json.dumps(ids, indent=1) + "\n", "utf-8")
            _save_gzip([registry_tag], staging / "registry-image.tar.gz", docker)
            with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as archive:
                for name in ("images.json", "registry-image.tar.gz", "docker"):
                    archive.add(staging / name, arcname=name, filter=_root_owned)
        tmp.chmod(0o644)
        tmp.replace(out_path)
        ids_path(out_path).write_text(json.dumps(ids, indent=1) + "\n", "utf-8")
    finally:
        tmp.unlink(missing_ok=True)
    if progress:
        progress(
            Progress(
                "", "saved", 1, 1, time.monotonic() - started, f"{out_path.stat().st_size} bytes"
            )
        )
    return out_path


def _root_owned(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive members carry no owner of this machine; the role sets the registry's."""
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    return member


def _docker(argv: list[str], title: str, docker: str) -> str:
    """Run one docker command of the save: its stdout, or ImageBuildError with its stderr."""
    res = subprocess.run(
        [docker, *argv], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).strip()
        raise ImageBuildError(
            f"saving the image archive failed: {title}",
            [Problem(detail or f"docker {argv[0]} exit {res.returncode}")],
            output=detail,
        )
    return res.stdout


def _registry_storage(tags: Sequence[str], registry_tag: str, into: Path, docker: str) -> None:
    """Push `tags` into a throwaway registry (psn/registry with its image's configuration: plain
    HTTP, which Docker allows on 127.0.0.1) and copy its storage to `into`/docker."""
    name = f"psn-save-{os.getpid()}-{int(time.time())}"
    pushed: list[str] = []
    try:
        _docker(["volume", "create", name], "a volume for the throwaway registry", docker)
        _docker(
            [
                "run",
                "-d",
                "--name",
                name,
                "-v",
                f"{name}:/var/lib/docker-registry",
                "-p",
                "127.0.0.1::5001",
                registry_tag,
            ],
            "starting a throwaway registry",
            docker,
        )
        port = _docker(["port", name, "5001/tcp"], "its port", docker).split(":")[-1].strip()
        _wait_for_registry(f"http://127.0.0.1:{port}/v2/")
        for tag in tags:
            local = f"127.0.0.1:{port}/{tag}"
            _docker(["tag", tag, local], f"tagging {tag}", docker)
            pushed.append(local)
            _docker(["push", "-q", local], f"pushing {tag}", docker)
        _docker(["stop", name], "stopping the throwaway registry", docker)
        _docker(
            ["cp", f"{name}:/var/lib/docker-registry/docker", str(into)],
            "copying the registry's storage",
            docker,
        )
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, check=False)
        subprocess.run([docker, "volume", "rm", "-f", name], capture_output=True, check=False)
        if pushed:
            subprocess.run([docker, "rmi", *pushed], capture_output=True, check=False)


def _wait_for_registry(url: str, timeout: float = 60.0) -> None:
    """Return once `url` answers 200; ImageBuildError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ImageBuildError(
                    "saving the image archive failed: the throwaway registry does not answer",
                    [Problem(f"{url}: {exc}", fix="see `docker logs` of the psn-save-* container")],
                ) from exc
        time.sleep(0.5)


def _save_gzip(tags: Sequence[str], out: Path, docker: str) -> None:
    """`docker save` of `tags` through gzip (pigz when present) into `out`."""
    compressor = [shutil.which("pigz") or "gzip", "-c", "-6"]
    with out.open("wb") as sink:
        save = subprocess.Popen(
            [docker, "save", *tags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert save.stdout is not None
        gz = subprocess.Popen(compressor, stdin=save.stdout, stdout=sink, stderr=subprocess.PIPE)
        save.stdout.close()  # gzip holds the pipe now
        _, gz_err = gz.communicate()
        save_err = save.stderr.read() if save.stderr else b""
        save_rc = save.wait()
    if save_rc != 0 or gz.returncode != 0:
        detail = (save_err or gz_err).decode(errors="replace").strip()
        raise ImageBuildError(
            "saving the image archive failed",
            [Problem(detail or f"docker save exit {save_rc}, gzip exit {gz.returncode}")],
            output=detail,
        )
