"""Build the reference firmware for this host and run it as an MCU simulator on a pseudo-terminal.

The simulator is the C firmware itself (firmware/lc_link.c and the codec) with a host "board" whose
UART is a pty (firmware/host/mcu_sim.c), so the tests, the benchmark and `python -m
firmware_bridge.run simulate` exercise the same code a microcontroller runs.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

from latentcast.errors import UserError

log = logging.getLogger(__name__)

FIRMWARE_DIR = Path(__file__).resolve().parent / "firmware"
DEFAULT_BUILD_DIR = FIRMWARE_DIR.parents[1] / "runs" / "firmware"


def build_host_tools(build_dir: Path | str = DEFAULT_BUILD_DIR) -> dict[str, Path]:
    """Compile `lc_tool` (codec driver) and `mcu_sim` with the host C compiler; returns their paths."""
    build_dir = Path(build_dir).resolve()
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise UserError("building the firmware simulator needs a C compiler: install gcc (build-essential)")
    if shutil.which("make"):
        commands = [["make", "-s", "-C", str(FIRMWARE_DIR), f"BUILD={build_dir}"]]
    else:  # the same rules as firmware/Makefile, without make
        build_dir.mkdir(parents=True, exist_ok=True)
        core = [str(FIRMWARE_DIR / f) for f in ("lc_cobs.c", "lc_crc16.c", "lc_messages.c")]
        flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
        commands = [
            [cc, *flags, "-pedantic", "-o", str(build_dir / "lc_tool"), str(FIRMWARE_DIR / "host/lc_tool.c"), *core],
            [cc, *flags, "-o", str(build_dir / "mcu_sim"), str(FIRMWARE_DIR / "host/mcu_sim.c"),
             str(FIRMWARE_DIR / "lc_link.c"), *core],
        ]  # fmt: skip
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"firmware host build failed ({' '.join(cmd[:3])} ...):\n{proc.stdout}{proc.stderr}")
    return {"lc_tool": build_dir / "lc_tool", "mcu_sim": build_dir / "mcu_sim"}


class Simulator:
    """An `mcu_sim` process: its pty appears at `link` (a symlink, like a udev rule's /dev/ttyMCU)."""

    def __init__(
        self, binary: Path, link: Path | str, channels: int = 6, imu_hz: int = 0, clock_offset_us: int = 0
    ) -> None:
        self.link = Path(link)
        argv = [str(binary), "--link", str(self.link), "--channels", str(channels), "--imu-hz", str(imu_hz),
                "--clock-offset-us", str(clock_offset_us)]  # fmt: skip
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self.targets: list[dict] = []  # every applied actuator frame, in order
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="mcu-sim-stdout", daemon=True)
        self._reader.start()
        self.wait_for("ready", 5.0)

    @property
    def uri(self) -> str:
        return f"serial://{self.link}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if event["ev"] == "targets":
                with self._lock:
                    self.targets.append(event)
            self.events.put(event)

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, kind: str, timeout: float, where=lambda e: True) -> dict:
        """The next event of `kind` (others are skipped); TimeoutError if none comes in time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"mcu_sim sent no {kind!r} event within {timeout} s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["ev"] == kind and where(event):
                return event

    def stats(self, timeout: float = 2.0) -> dict:
        self.command("stats")
        return self.wait_for("stats", timeout)

    def last_targets(self) -> dict | None:
        with self._lock:
            return self.targets[-1] if self.targets else None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
                self.proc.wait(timeout=2)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
