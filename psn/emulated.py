"""Emulated servers: containers that behave like fresh Debian 12 servers, for tests and the demo.

Each server is a container of `psn/emulated-server:<version>` (built from `emulated/`): systemd
as PID 1, sshd with host keys generated at first boot, root login by an SSH key this module
generates, python3 — and no Docker engine, which the installer's `common` role installs. The
servers sit on a private bridge network with fixed addresses, resolve each other by name
(`/etc/hosts`), use this machine's name servers (as a real server would; Docker's embedded
resolver could not serve the Docker engine inside), and keep `/var/lib/docker` on a volume of
their own. They run with the flags of
ARCHITECTURE.md §5, plus `--cap-drop SYS_TIME` so that a time daemon inside can never set the
clock of the machine running them.

Everything this module creates carries the label `io.psn.emulated=<network>`, and
`stop_servers(network)` removes exactly that. The module only ever connects to addresses of the
network it created. State (SSH key, known_hosts, ssh_config) lives in a state directory (0700).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from psn import __version__
from psn.errors import DeployError, Problem
from psn.images import engine_answers

IMAGE_NAME = "psn/emulated-server"
LABEL = "io.psn.emulated"
DEFAULT_NETWORK = "psn-emulated"
# Candidate subnets when none is given: outside 10.0.0.0/8 (Swarm's default address pool inside
# the servers) and outside 172.17-18.0.0/16 (docker0 and docker_gwbridge inside the servers).
SUBNET_CANDIDATES = tuple(f"192.168.{n}.0/24" for n in range(240, 256))
FIRST_HOST = 10  # servers get .10, .11, ... of their subnet
SSH_USER = "root"
KEY_FILE = "id_ed25519"
PYTHON = "/usr/bin/python3"
DEFAULT_STATE_DIR = Path(".psn-emulated")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# ARCHITECTURE.md §5: what a container needs here to run systemd and a Docker engine inside.
RUN_FLAGS = (
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--cap-drop",
    "SYS_TIME",  # ours: chrony inside must not step the clock of the machine itself
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--cgroupns=host",
    "-v",
    "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs",
    "/run",
    "--tmpfs",
    "/run/lock",
)

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_NETWORK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}$")


class EmulationError(DeployError):
    """An emulated server could not be built, started, reached or removed."""

    def __str__(self) -> str:
        # What a test shows: the title with what the failed command said (a CI run's only clue).
        return "; ".join([self.title, *(p.message for p in self.problems if p.message)])


@dataclass(frozen=True)
class Server:
    """One emulated server: its host name, fixed address and the Docker objects behind it."""

    name: str
    address: str
    network: str
    container: str
    volume: str


# --- state: key, known_hosts, ssh_config ---------------------------------------------------------


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ssh_key(state_dir: Path) -> Path:
    """The private key root logs in with (`<state_dir>/id_ed25519`, 0600); made on first use."""
    key_path = _private_dir(Path(state_dir).resolve()) / KEY_FILE
    pub_path = key_path.with_suffix(".pub")
    if not key_path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        pub_path.unlink(missing_ok=True)
    key_path.chmod(0o600)
    if not pub_path.exists():
        key = serialization.load_ssh_private_key(key_path.read_bytes(), password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        pub_path.write_bytes(public + b" psn-emulated\n")
        pub_path.chmod(0o644)
    return key_path


def known_hosts_path(state_dir: Path, network: str = DEFAULT_NETWORK) -> Path:
    """The known_hosts file of one emulated network's servers."""
    return Path(state_dir).resolve() / f"{network}.known_hosts"


def ssh_config_path(state_dir: Path, network: str = DEFAULT_NETWORK) -> Path:
    """The ssh_config of one emulated network: `ssh -F <it> <server name>` logs in as root."""
    return Path(state_dir).resolve() / f"{network}.ssh_config"


def ssh_options(state_dir: Path, network: str = DEFAULT_NETWORK) -> list[str]:
    """ssh options that authenticate the servers by their recorded host keys (checking ON)."""
    return [
        "-o",
        f"UserKnownHostsFile={known_hosts_path(state_dir, network)}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
    ]


def hostvars(server: Server, state_dir: Path) -> dict[str, str]:
    """Inventory host variables that let Ansible reach `server` over SSH, host keys checked."""
    return {
        "ansible_host": server.address,
        "ansible_user": SSH_USER,
        "ansible_ssh_private_key_file": str(Path(state_dir).resolve() / KEY_FILE),
        "ansible_ssh_common_args": shlex.join(ssh_options(state_dir, server.network)),
        "ansible_python_interpreter": PYTHON,
    }


def write_ssh_config(servers: Sequence[Server], state_dir: Path) -> Path:
    """Write the ssh_config of the servers' network (one `Host` block per server)."""
    if not servers:
        raise ValueError("no servers")
    network = servers[0].network
    key = ssh_key(state_dir)
    blocks = [f"# Emulated servers of the Docker network {network} (psn/emulated.py).\n"]
    for server in servers:
        blocks.append(
            f"Host {server.name} {server.address}\n"
            f"  HostName {server.address}\n"
            f"  User {SSH_USER}\n"
            f"  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {known_hosts_path(state_dir, network)}\n"
            "  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n"
        )
    path = ssh_config_path(state_dir, network)
    path.write_text("\n".join(blocks), encoding="utf-8")
    path.chmod(0o600)
    return path


# --- docker ---------------------------------------------------------------------------------------


def _docker(
    docker: str, *args: str, check: bool = True, timeout: float = 120, what: str = ""
) -> subprocess.CompletedProcess[str]:
    argv = [docker, *args]
    try:
        res = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulationError(
            f"{what or 'docker ' + args[0]} failed", [Problem(str(exc), value=shlex.join(argv))]
        ) from exc
    if check and res.returncode != 0:
        raise EmulationError(
            f"{what or 'docker ' + args[0]} failed (exit {res.returncode})",
            [Problem((res.stderr or res.stdout).strip(), value=shlex.join(argv))],
        )
    return res


def require_engine(docker: str = "docker") -> None:
    """Raise EmulationError unless a Docker engine answers."""
    if not engine_answers(docker):
        raise EmulationError(
            "no Docker engine answers",
            [Problem("`docker info` failed", fix="start one: bash .ci/docker-engine.sh")],
        )


def _image_exists(tag: str, docker: str) -> bool:
    return _docker(docker, "image", "inspect", tag, check=False).returncode == 0


def _ensure_base(root: Path, version: str, docker: str) -> str:
    """The Debian 12 base to build on: the project's `psn/base:<version>` when its recipe is
    here (images/base/build.sh keeps an up-to-date one), else a debootstrap of our own."""
    script = root / "images" / "base" / "build.sh"
    if script.is_file():
        tag = f"psn/base:{version}"
        res = subprocess.run(
            ["bash", str(script), tag],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if res.returncode != 0:
            raise EmulationError(
                f"building {tag} failed (exit {res.returncode})",
                [Problem("\n".join(res.stderr.splitlines()[-20:]), value=str(script))],
            )
        return tag
    tag = f"{IMAGE_NAME}-base:{version}"
    if _image_exists(tag, docker):
        return tag
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise EmulationError(
            "cannot make a Debian 12 base image",
            [
                Problem(
                    "debootstrap (as root) is needed",
                    fix="run as root: apt-get install debootstrap",
                )
            ],
        )
    with tempfile.TemporaryDirectory(prefix="psn-emulated-", dir="/var/tmp") as work:
        rootfs = Path(work) / "rootfs"
        argv = ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR]
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise EmulationError(
                "debootstrap failed",
                [Problem("\n".join((res.stdout + res.stderr).splitlines()[-20:]))],
            )
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
        (rootfs / "etc/resolv.conf").write_text("")
        (rootfs / "etc/hostname").write_text("")
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        imp = subprocess.run(
            [docker, "import", "--change", 'CMD ["/bin/bash"]', "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise EmulationError("importing the base image failed", [Problem(imp.stderr.strip())])
    return tag


def image_tag(version: str = __version__) -> str:
    """`psn/emulated-server:<version>`."""
    return f"{IMAGE_NAME}:{version}"


def build_image(
    root: Path,
    version: str = __version__,
    *,
    log_file: Path | None = None,
    docker: str = "docker",
) -> str:
    """Build `psn/emulated-server:<version>` from `emulated/` (and the base image it needs).

    The base `psn/base:<version>` comes from images/base/build.sh (kept when up to date); the
    Docker layer cache makes a second build take seconds. Returns the tag.
    """
    require_engine(docker)
    base = _ensure_base(Path(root), version, docker)
    tag = image_tag(version)
    argv = [
        docker,
        "build",
        "--build-arg",
        f"BASE_IMAGE={base}",
        "--tag",
        tag,
        str(Path(root) / "emulated"),
    ]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}  # Debian's docker.io has no buildx
    res = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=env, stdin=subprocess.DEVNULL
    )
    if log_file:
        log_file.write_text(res.stdout + res.stderr, encoding="utf-8")
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
        raise EmulationError(
            f"building {tag} failed (exit {res.returncode})",
            [Problem(f"last lines of the output:\n{tail}", value=shlex.join(argv))],
        )
    return tag


def _network_subnets(docker: str) -> list[ipaddress.IPv4Network]:
    ids = _docker(docker, "network", "ls", "-q").stdout.split()
    if not ids:
        return []
    info = json.loads(_docker(docker, "network", "inspect", *ids).stdout or "[]")
    found = []
    for net in info:
        for conf in (net.get("IPAM") or {}).get("Config") or []:
            try:
                found.append(ipaddress.IPv4Network(conf.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return found


def _route_subnets() -> list[ipaddress.IPv4Network]:
    """Networks this machine routes to (not the default route), from /proc/net/route."""
    found = []
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 8 or fields[1] == "00000000":
            continue
        dest = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        found.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return found


def _network_info(network: str, docker: str) -> dict[str, Any] | None:
    res = _docker(docker, "network", "inspect", network, check=False)
    if res.returncode != 0:
        return None
    return json.loads(res.stdout)[0]


def _ensure_network(network: str, subnet: str | None, docker: str) -> ipaddress.IPv4Network:
    """Create the bridge network (or reuse ours); returns its subnet."""
    info = _network_info(network, docker)
    if info is not None:
        if (info.get("Labels") or {}).get(LABEL) != network:
            raise EmulationError(
                f"the Docker network {network} exists and is not an emulated-server network",
                [
                    Problem(
                        "refusing to use a network this module did not create",
                        fix="choose another network name",
                    )
                ],
            )
        existing = ipaddress.IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
        if subnet and ipaddress.IPv4Network(subnet) != existing:
            raise EmulationError(
                f"the emulated network {network} already uses {existing}, not {subnet}",
                [Problem("servers are running on it", fix=f"stop_servers({network!r}) first")],
            )
        return existing
    candidates = [subnet] if subnet else list(SUBNET_CANDIDATES)
    taken = _network_subnets(docker) + _route_subnets()
    last_error = ""
    for candidate in candidates:
        net = ipaddress.IPv4Network(candidate)
        if not subnet and any(net.overlaps(t) for t in taken):
            continue
        res = _docker(
            docker,
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            str(net),
            "--label",
            f"{LABEL}={network}",
            network,
            check=False,
        )
        if res.returncode == 0:
            return net
        last_error = res.stderr.strip()
        if subnet or "overlap" not in last_error.lower():
            break
    raise EmulationError(
        f"cannot create the Docker network {network}",
        [
            Problem(
                last_error or "no free subnet among the candidates",
                value=subnet or ", ".join(SUBNET_CANDIDATES),
                fix="pass a free subnet, e.g. subnet='192.168.250.0/24'",
            )
        ],
    )


def _check_names(names: Sequence[str]) -> None:
    bad = [n for n in names if not _NAME.match(n)]
    if bad or not names or len(set(names)) != len(names):
        raise EmulationError(
            "invalid emulated server names",
            [
                Problem(
                    "names must be distinct host names (a-z, 0-9, - and dots)",
                    value=", ".join(bad or names),
                )
            ],
        )


# --- lifecycle ------------------------------------------------------------------------------------


def start_servers(
    names: Sequence[str],
    network: str = DEFAULT_NETWORK,
    subnet: str | None = None,
    state_dir: Path = DEFAULT_STATE_DIR,
    *,
    image: str | None = None,
    timeout: float = 180,
    docker: str = "docker",
) -> list[Server]:
    """Start one emulated server per name on the private bridge `network` and wait for SSH.

    Addresses are fixed: .10, .11, ... of `subnet` (a free 192.168.240-255.0/24 when None).
    Every server has the others in `/etc/hosts` and its own volume on `/var/lib/docker`. On
    return, `ssh -F ssh_config_path(state_dir, network) <name>` works with host key checking on.
    Servers already running on the network are kept; on failure, what this call created is
    removed. Raises EmulationError.
    """
    _check_names(names)
    if not _NETWORK.match(network):
        raise EmulationError(
            "invalid network name", [Problem("use letters, digits, - _ .", value=network)]
        )
    require_engine(docker)
    image = image or image_tag()
    if not _image_exists(image, docker):
        raise EmulationError(
            f"the image {image} is not built",
            [Problem("emulated servers run from it", fix="psn.emulated.build_image(root)")],
        )
    key = ssh_key(state_dir)
    existing = {s.name: s for s in list_servers(network, docker=docker)}
    net = _ensure_network(network, subnet, docker)
    hosts = list(net.hosts())
    taken = {s.address for s in existing.values()}
    servers: list[Server] = []
    for name in names:
        if name in existing:
            servers.append(existing[name])
            continue
        address = next(str(a) for a in hosts[FIRST_HOST - 1 :] if str(a) not in taken)
        taken.add(address)
        servers.append(
            Server(name, address, network, f"{network}-{name}", f"{network}-{name}-docker")
        )
    everyone = {**{s.name: s for s in servers}, **existing}
    created = [s for s in servers if s.name not in existing]
    try:
        for server in created:
            _create(server, everyone.values(), image, key, docker)
        for server in created:
            _docker(docker, "start", server.container, what=f"starting {server.name}")
        # A stopped server (its engine died, the machine rebooted) boots again with its disk.
        for server in servers:
            if server.name in existing and not _running(server, docker):
                _docker(docker, "start", server.container, what=f"starting {server.name} again")
        if existing:
            _add_host_entries(list(everyone.values()), docker)
        _use_upstream_dns(created, docker)
        wait_ssh(list(everyone.values()), state_dir, timeout=timeout, docker=docker)
    except BaseException:
        for server in created:
            _remove(server, docker)
        if not existing:
            _docker(docker, "network", "rm", network, check=False)
        raise
    return servers


def _create(server: Server, everyone: Iterable[Server], image: str, key: Path, docker: str) -> None:
    _docker(docker, "volume", "create", "--label", f"{LABEL}={server.network}", server.volume)
    add_hosts = [
        arg
        for other in everyone
        if other.name != server.name
        for arg in ("--add-host", f"{other.name}:{other.address}")
    ]
    _docker(
        docker,
        "create",
        "--name",
        server.container,
        "--hostname",
        server.name,
        "--network",
        server.network,
        "--ip",
        server.address,
        "--label",
        f"{LABEL}={server.network}",
        "--label",
        f"{LABEL}.name={server.name}",
        *RUN_FLAGS,
        "-v",
        f"{server.volume}:/var/lib/docker",
        *add_hosts,
        image,
        what=f"creating {server.name}",
    )
    authorized = key.with_suffix(".pub")
    _docker(
        docker,
        "cp",
        str(authorized),
        f"{server.container}:/root/.ssh/authorized_keys",
        what=f"installing the SSH key on {server.name}",
    )


def _add_host_entries(servers: Sequence[Server], docker: str) -> None:
    """Add every server's name to every server's /etc/hosts (servers started earlier lack the
    later ones; Docker sets the entries only when it creates a container)."""
    for server in servers:
        hosts = exec_on(server, ["cat", "/etc/hosts"], docker=docker).stdout.split()
        missing = [f"{o.address}\t{o.name}\n" for o in servers if o.name not in hosts]
        if missing:
            script = 'printf "%s" "$1" >>/etc/hosts'
            exec_on(server, ["sh", "-c", script, "sh", "".join(missing)], docker=docker)


def _host_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The non-loopback name servers of this machine."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                if not ipaddress.ip_address(fields[1]).is_loopback:
                    found.append(fields[1])
            except ValueError:
                continue
    return found


def _use_upstream_dns(servers: Sequence[Server], docker: str) -> None:
    """Point the servers' resolv.conf at this machine's name servers, as on a real server.

    Docker gives containers on a user-defined network its embedded resolver 127.0.0.11, which
    a Docker engine inside the server cannot pass on to its own containers (it drops loopback
    resolvers and falls back to 8.8.8.8). The servers find each other through /etc/hosts.
    """
    upstream = _host_nameservers()
    if not upstream:
        return
    content = "".join(f"nameserver {ns}\n" for ns in upstream)
    for server in servers:
        script = 'printf "%s" "$1" >/etc/resolv.conf'
        exec_on(server, ["sh", "-c", script, "sh", content], docker=docker)


def _remove(server: Server, docker: str) -> None:
    _docker(docker, "rm", "-f", "-v", server.container, check=False, timeout=60)
    _docker(docker, "volume", "rm", "-f", server.volume, check=False, timeout=60)


def list_servers(network: str = DEFAULT_NETWORK, *, docker: str = "docker") -> list[Server]:
    """The emulated servers (running or not) of `network`, in address order."""
    ids = _docker(
        docker, "ps", "-aq", "--filter", f"label={LABEL}={network}", check=False
    ).stdout.split()
    if not ids:
        return []
    servers = []
    for info in json.loads(_docker(docker, "inspect", *ids).stdout):
        name = info["Config"]["Labels"].get(f"{LABEL}.name") or info["Config"]["Hostname"]
        endpoint = (info["NetworkSettings"]["Networks"] or {}).get(network) or {}
        address = (endpoint.get("IPAMConfig") or {}).get("IPv4Address") or endpoint.get(
            "IPAddress", ""
        )
        volume = next(
            (m["Name"] for m in info["Mounts"] if m.get("Destination") == "/var/lib/docker"), ""
        )
        servers.append(Server(name, address, network, info["Name"].lstrip("/"), volume))
    return sorted(servers, key=lambda s: ipaddress.IPv4Address(s.address or "0.0.0.0"))


def _running(server: Server, docker: str) -> bool:
    res = _docker(docker, "inspect", "-f", "{{.State.Running}}", server.container, check=False)
    return res.stdout.strip() == "true"


def _boot_state(server: Server, docker: str) -> str:
    res = exec_on(server, ["systemctl", "is-system-running"], check=False, docker=docker)
    return res.stdout.strip() or "unknown"


def _host_keys(server: Server, docker: str) -> list[str]:
    res = exec_on(
        server,
        ["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"],
        check=False,
        docker=docker,
    )
    return [
        line.split()[0] + " " + line.split()[1]
        for line in res.stdout.splitlines()
        if len(line.split()) >= 2
    ]


def _check_address(server: Server, docker: str) -> None:
    info = _network_info(server.network, docker)
    if info is None or (info.get("Labels") or {}).get(LABEL) != server.network:
        raise EmulationError(
            f"{server.network} is not an emulated-server network",
            [Problem("refusing to connect outside the private network", value=server.address)],
        )
    subnet = ipaddress.IPv4Network(info["IPAM"]["Config"][0]["Subnet"])
    if ipaddress.IPv4Address(server.address) not in subnet:
        raise EmulationError(
            f"{server.name}: {server.address} is outside {server.network} ({subnet})",
            [Problem("refusing to connect outside the private network", value=server.address)],
        )


def wait_ssh(
    servers: Sequence[Server],
    state_dir: Path,
    *,
    timeout: float = 180,
    docker: str = "docker",
) -> None:
    """Wait until each server has booted and root logs in over SSH with its recorded host key.

    The host keys are read from the servers over `docker exec` (a trusted channel) into the
    network's known_hosts; the ssh_config is written. Raises EmulationError on timeout.
    """
    if not servers:
        return
    network = servers[0].network
    for server in servers:
        _check_address(server, docker)
    deadline = time.monotonic() + timeout
    entries: list[str] = []
    for server in servers:
        state = "unknown"
        while True:
            state = _boot_state(server, docker)
            keys = _host_keys(server, docker) if state in ("running", "degraded") else []
            if keys:
                break
            if time.monotonic() > deadline:
                raise EmulationError(
                    f"{server.name} did not finish booting within {timeout:.0f}s",
                    [
                        Problem(
                            f"systemd state: {state}",
                            fix=f"docker exec {server.container} systemctl --failed",
                        )
                    ],
                )
            time.sleep(0.5)
        entries += [f"{server.name},{server.address} {key}" for key in keys]
    path = known_hosts_path(_private_dir(state_dir), network)
    path.write_text("\n".join(entries) + "\n", encoding="utf-8")
    path.chmod(0o600)
    write_ssh_config(servers, state_dir)
    for server in servers:
        last = ""
        while True:
            res = ssh_run(server, state_dir, "true", check=False, timeout=20)
            if res.returncode == 0:
                break
            last = (res.stderr or res.stdout).strip()
            if time.monotonic() > deadline:
                raise EmulationError(
                    f"SSH to {server.name} ({server.address}) failed for {timeout:.0f}s",
                    [
                        Problem(
                            last, fix=f"ssh -F {ssh_config_path(state_dir, network)} {server.name}"
                        )
                    ],
                )
            time.sleep(0.5)


# Files Docker writes into a container each time it starts it; a real server's disk keeps them.
RESOLVER_FILES = ("/etc/hosts", "/etc/resolv.conf")


def power_off(server: Server, *, docker: str = "docker") -> dict[str, str]:
    """Cut the server's power (`docker kill`: no shutdown, as in a power loss). Returns what
    `power_on` needs to give the server its own name resolution files back."""
    kept = {path: exec_on(server, ["cat", path], docker=docker).stdout for path in RESOLVER_FILES}
    _docker(docker, "kill", server.container, what=f"powering off {server.name}")
    return kept


def power_on(
    server: Server,
    kept: dict[str, str],
    state_dir: Path,
    *,
    timeout: float = 180,
    docker: str = "docker",
) -> None:
    """Boot a server that `power_off` stopped, with its /etc/hosts and /etc/resolv.conf as they
    were, and wait until it has booted and SSH answers with its recorded host key."""
    _docker(docker, "start", server.container, what=f"powering on {server.name}")
    for path, text in kept.items():
        script = f'printf "%s" "$1" >{path}'
        exec_on(server, ["sh", "-c", script, "sh", text], docker=docker)
    deadline = time.monotonic() + timeout
    while _boot_state(server, docker) not in ("running", "degraded"):
        if time.monotonic() > deadline:
            raise EmulationError(f"{server.name} did not boot within {timeout:.0f}s", [])
        time.sleep(0.5)
    while ssh_run(server, state_dir, "true", check=False, timeout=20).returncode != 0:
        if time.monotonic() > deadline:
            raise EmulationError(f"SSH to {server.name} did not answer within {timeout:.0f}s", [])
        time.sleep(0.5)


def replace_server(
    server: Server,
    everyone: Sequence[Server],
    state_dir: Path,
    *,
    image: str | None = None,
    timeout: float = 180,
    docker: str = "docker",
) -> None:
    """Destroy `server` with its disk and boot a new, empty one under the same name and address,
    as new hardware in place of a dead server: new host keys, nothing installed but the OS.

    `everyone` are the network's servers, `server` among them: the known_hosts of the network
    is written again for all of them. Raises EmulationError.
    """
    require_engine(docker)
    _remove(server, docker)
    _create(server, everyone, image or image_tag(), ssh_key(state_dir), docker)
    _docker(docker, "start", server.container, what=f"starting the new {server.name}")
    _use_upstream_dns([server], docker)
    wait_ssh(everyone, state_dir, timeout=timeout, docker=docker)


def stop_servers(network: str = DEFAULT_NETWORK, *, docker: str = "docker") -> list[str]:
    """Remove every emulated server of `network`, their volumes and the network itself.

    Only objects labelled by this module are touched. Returns the removed containers' names.
    """
    removed = []
    for server in list_servers(network, docker=docker):
        _remove(server, docker)
        removed.append(server.container)
    volumes = _docker(
        docker, "volume", "ls", "-q", "--filter", f"label={LABEL}={network}", check=False
    ).stdout.split()
    if volumes:
        _docker(docker, "volume", "rm", "-f", *volumes, check=False, timeout=60)
    info = _network_info(network, docker)
    if info is not None and (info.get("Labels") or {}).get(LABEL) == network:
        _docker(docker, "network", "rm", network, what=f"removing the network {network}")
    return removed


# --- running commands on a server ---------------------------------------------------------------


def exec_on(
    server: Server,
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 120,
    docker: str = "docker",
) -> subprocess.CompletedProcess[str]:
    """Run `argv` in the server's container (`docker exec`, as root)."""
    return _docker(
        docker,
        "exec",
        server.container,
        *argv,
        check=check,
        timeout=timeout,
        what=f"{shlex.join(argv)} on {server.name}",
    )


def ssh_run(
    server: Server,
    state_dir: Path,
    command: str,
    *,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a shell `command` on the server over SSH as root, host key checked."""
    argv = [
        "ssh",
        "-i",
        str(Path(state_dir).resolve() / KEY_FILE),
        *ssh_options(state_dir, server.network),
        "-o",
        "ConnectTimeout=5",
        f"{SSH_USER}@{server.address}",
        command,
    ]
    try:
        res = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        res = subprocess.CompletedProcess(argv, 255, "", f"timed out after {exc.timeout}s")
    if check and res.returncode != 0:
        raise EmulationError(
            f"{command!r} failed on {server.name} (exit {res.returncode})",
            [Problem((res.stderr or res.stdout).strip())],
        )
    return res
