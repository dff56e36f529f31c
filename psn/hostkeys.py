"""What to tell an operator whose run stopped at an unknown or changed SSH host key."""

from __future__ import annotations

import re
import shlex
import subprocess

# Ansible's ssh connection and Mitogen's say it differently.
HOST_KEY_FAILURE = re.compile(
    r"Host key verification failed|unrecognized or mismatching host key", re.IGNORECASE
)


def fingerprints(address: str, port: int, timeout: int = 5) -> list[str]:
    """`<type> <SHA256 fingerprint>` of each host key the server offers ([] when it does not
    answer): ssh-keyscan piped into ssh-keygen -l."""
    try:
        scan = subprocess.run(
            ["ssh-keyscan", "-T", str(timeout), "-p", str(port), address],
            capture_output=True,
            text=True,
            timeout=timeout * 3,
            check=False,
        )
        listed = subprocess.run(
            ["ssh-keygen", "-l", "-f", "-"],
            input=scan.stdout,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    # "256 SHA256:abc… 10.0.0.5 (ED25519)" → "ED25519 SHA256:abc…"
    found = re.findall(r"^\d+ (\S+) .*\((\S+)\)$", listed.stdout, re.MULTILINE)
    return [f"{kind} {fingerprint}" for fingerprint, kind in found]


def advice(host: str, address: str, port: int = 22) -> str:
    """The server's fingerprints and the commands that check and accept its key."""
    target = address if port == 22 else f"[{address}]:{port}"
    scan = shlex.join(["ssh-keyscan", *(["-p", str(port)] if port != 22 else []), address])
    offered = fingerprints(address, port)
    lines = [f"{host} ({address}, port {port}) is not in known_hosts, or its key changed."]
    if offered:
        lines.append("It offers: " + "; ".join(offered) + ".")
    else:
        lines.append(f"It did not answer `{scan}`: check the address and that sshd runs.")
    lines += [
        "Compare with the server's own key, on its console: "
        "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`. If they match, accept it:",
        f"  {scan} >> ~/.ssh/known_hosts",
        f"(a key that changed on purpose, a reinstalled server: first `ssh-keygen -R '{target}'`).",
        "Or keep host keys out of the question as with Ansible itself: "
        "`ansible_host_key_checking: false` or ansible_ssh_common_args in the inventory.",
    ]
    return "\n".join(lines)
