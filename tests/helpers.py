"""Small checks shared by several test files: a free loopback port, the one-line CLI error rule,
and the float arguments of OSC bundles."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """The project's rule for a user mistake: exit 2, no traceback, exactly one `error: ` line,
    which names every needle. Returns that line."""
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def osc_floats(built) -> list[float]:
    """Every float argument in what `VMCSender.build` returned (one OSC bundle or a list of them, bytes or objects)."""
    from pythonosc.osc_bundle import OscBundle

    values = []
    for packet in built if isinstance(built, list) else [built]:
        dgram = packet if isinstance(packet, (bytes, bytearray)) else packet.dgram
        for content in OscBundle(dgram):
            values += [float(v) for v in content.params if isinstance(v, float)]
    return values
