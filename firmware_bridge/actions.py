"""Named actions shared by the MCU's buttons and the command line: one code path for both.

`pause`, `resume` and `toggle_pause` switch the bridge's own pause (actuators go to the safe pose).
Any other action runs a command line from the mapping file's [actions] table, e.g.

    [actions]
    calibrate_neutral = ["{python}", "-m", "calibration.neutral", "--source", "v4l2:///dev/video0",
                         "--out", "me.neutral.json"]

that is, the very CLI a user would type (`{python}` is this interpreter). Commands run in the
background, one at a time per action, so a button never blocks the link or the loop;
`python -m firmware_bridge.run action NAME --map FILE` runs the same `Actions.run`.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from latentcast.errors import UserError

log = logging.getLogger(__name__)

BUILTIN = ("pause", "resume", "toggle_pause")


@dataclass
class ActionStats:
    runs: int = 0
    busy: int = 0  # pressed again while its command was still running
    failed: int = 0  # a command that exited non-zero or could not start
    unconfigured: int = 0


class Actions:
    def __init__(self, commands: dict[str, list[str]] | None = None) -> None:
        self.commands = dict(commands or {})
        self.paused = False
        self.on_pause: list[Callable[[bool], None]] = []
        self.handlers: dict[str, Callable[[], None]] = {}
        self.running: dict[str, subprocess.Popen] = {}
        self.stats = ActionStats()

    def names(self) -> list[str]:
        return [*BUILTIN, *self.commands, *self.handlers]

    def register(self, name: str, handler: Callable[[], None]) -> None:
        """Let the host run `name` in-process instead of a command (e.g. its own calibration)."""
        self.handlers[name] = handler

    def set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            log.info("bridge %s", "paused: actuators to the safe pose" if paused else "resumed")
            for cb in self.on_pause:
                cb(paused)

    def run(self, name: str) -> subprocess.Popen | None:
        """Run one action now; command actions start in the background and are returned."""
        self.poll()
        self.stats.runs += 1
        if name in ("pause", "resume", "toggle_pause"):
            self.set_paused({"pause": True, "resume": False}.get(name, not self.paused))
            return None
        if name in self.handlers:
            self.handlers[name]()
            return None
        if name not in self.commands:
            self.stats.unconfigured += 1
            raise UserError(f"action {name!r} has no command: add it under [actions] in the mapping file "
                            f"(known: {', '.join(self.names())})")  # fmt: skip
        if name in self.running:
            self.stats.busy += 1
            log.warning("action %s is still running: press ignored", name)
            return None
        argv = [sys.executable if a == "{python}" else a for a in self.commands[name]]
        log.info("action %s: %s", name, " ".join(argv))
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        except OSError as exc:
            self.stats.failed += 1
            log.error("action %s could not start %s: %s", name, argv[0], exc)
            return None
        self.running[name] = proc
        return proc

    def poll(self) -> None:
        """Reap finished commands (called by every run and every output update)."""
        for name, proc in list(self.running.items()):
            rc = proc.poll()
            if rc is not None:
                del self.running[name]
                if rc != 0:
                    self.stats.failed += 1
                    log.error("action %s exited with status %d", name, rc)
                else:
                    log.info("action %s finished", name)
