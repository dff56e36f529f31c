"""psn.emulated's error: what a failed end-to-end setup shows."""

from __future__ import annotations

from psn.emulated import EmulationError
from psn.errors import Problem


def test_an_emulation_error_says_what_the_failed_command_said():
    error = EmulationError(
        "writing resolv.conf on node3 failed (exit 1)",
        [Problem("Error response from daemon: container abc is not running", value="docker exec")],
    )
    assert str(error) == (
        "writing resolv.conf on node3 failed (exit 1); "
        "Error response from daemon: container abc is not running"
    )
    assert error.title == "writing resolv.conf on node3 failed (exit 1)"
