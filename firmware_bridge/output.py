"""Character parameters -> actuator frames: the bridge as an output of the renderer or the edge loop.

    out = FirmwareOutput.open("serial:///dev/ttyACM0", "firmware_bridge/puppet.toml")
    out.update(params, capture_ns)     # every frame; a few microseconds, never any I/O
    out.close()

Each update reads the mapped parameters by name, decides between tracking and the safe pose
(tracking lost: `params.idle` above the mapping's threshold; link down: the heartbeat watchdog;
paused: a button or the CLI), limits the slew and hands the newest targets to the link's
latest-value slot. The link's writer thread does the I/O, so a stalled port never slows the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_bridge.actions import Actions
from firmware_bridge.link import LinkConfig, SerialLink
from firmware_bridge.mapping import Mapping, SlewLimiter, load_mapping, param_getter
from firmware_bridge.protocol import Button, Config, Led, q16
from latentcast.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class OutputStats:
    updates: int = 0
    tracked: int = 0
    safe: int = 0  # updates that sent the safe pose (lost, link down or paused)
    button_actions: int = 0
    action_errors: int = 0


class FirmwareOutput:
    def __init__(self, link: SerialLink, mapping: Mapping, actions: Actions | None = None) -> None:
        self.link, self.mapping = link, mapping
        self.actions = actions or Actions(mapping.actions)
        self.limiter = SlewLimiter(mapping.channels)
        self.stats = OutputStats()
        self._getters: list | None = None
        self._alive_at_close: bool | None = None
        self.link.on_button.append(self._on_button)
        self.link.on_alive.append(lambda _alive: self._show_status())
        self.actions.on_pause.append(lambda _paused: self._show_status())
        self.link.configure(Config(mapping.mcu_watchdog_ms, tuple(q16(t) for t in mapping.safe_pose)))
        self._show_status()

    @classmethod
    def open(cls, uri: str | None, mapping: str | Path | Mapping, actions: Actions | None = None) -> FirmwareOutput:
        """Load the mapping, open the link (URI argument first, else the mapping's [link] uri) and start it."""
        m = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
        uri = uri or m.uri
        if not uri:
            raise UserError(f"no serial port: pass --serial serial:///dev/ttyACM0 or set [link] uri in {m.source}")
        link = SerialLink(LinkConfig(uri, heartbeat_timeout_s=m.heartbeat_timeout_s))
        out = cls(link, m, actions)
        link.start()
        return out

    def check_params(self, sample) -> None:
        """Resolve every channel's parameter name on `sample` now (UserError naming the key), so a typo
        stops the program at start rather than on its first frame."""
        self._getters = [param_getter(c, sample, self.mapping.source) for c in self.mapping.channels]

    def update(self, params, capture_ns: int | None = None, now: float | None = None) -> list[float]:
        """Send the travel for these parameters (or the safe pose); returns the travel sent."""
        if self._getters is None:  # names are checked against the first real parameters
            self.check_params(params)
        now = time.monotonic() if now is None else now
        lost = float(getattr(params, "idle", 0.0)) > self.mapping.lost_when_idle_above
        safe = lost or self.actions.paused or not self.link.alive
        if safe:
            want = self.mapping.safe_pose
            self.stats.safe += 1
        else:
            want = [c.travel(get(params)) for c, get in zip(self.mapping.channels, self._getters, strict=True)]
            self.stats.tracked += 1
        travel = self.limiter.step(want, now)
        capture_us = (time.monotonic_ns() if capture_ns is None else capture_ns) // 1000
        self.link.set_targets(tuple(q16(t) for t in travel), capture_us)
        self.stats.updates += 1
        self.actions.poll()
        return travel

    def _on_button(self, button: Button) -> None:
        action = self.mapping.buttons.get(button.button)
        if action is None or button.event != Button.PRESS:
            return
        self.stats.button_actions += 1
        try:
            self.actions.run(action)
        except Exception:  # runs on the link's reader thread: log with traceback, count, keep the link
            self.stats.action_errors += 1
            log.exception("button %d action %s failed", button.button, action)

    def _show_status(self) -> None:
        """Status LED: green when driving, amber blink when paused, red blink when the link is down."""
        if self.mapping.status_led is None:
            return
        i = self.mapping.status_led
        if not self.link.alive:
            led = Led(i, Led.BLINK, 255, 0, 0, 250)
        elif self.actions.paused:
            led = Led(i, Led.BLINK, 255, 160, 0, 1000)
        else:
            led = Led(i, Led.ON, 0, 255, 0, 0)
        if self.link.connected:
            self.link.send_reliable(led)

    def summary(self) -> dict:
        from dataclasses import asdict

        return {
            "uri": self.link.config.uri,
            "alive": self._alive_at_close if self._alive_at_close is not None else self.link.alive,
            "paused": self.actions.paused,
            "output": asdict(self.stats),
            "link": asdict(self.link.stats),
            "deframer": asdict(self.link.deframer.stats),
            "rtt_us": self.link.time.rtt_us,
            "clock_offset_us": self.link.time.offset_us,
        }

    def close(self) -> None:
        self._alive_at_close = self.link.alive
        self.link.close()


class ParamsTap:
    """Wraps an object whose `update(msg, ...)` returns character parameters (the renderer's Animator)
    so every result also goes to `output.update`; every other attribute passes through unchanged.

    `capture_ns(msg)` turns the message's capture time into this host's monotonic clock (the renderer
    adds its clock-offset estimate); without it, or for frames without a message, the time of the
    update stands in.
    """

    def __init__(self, inner, output: FirmwareOutput, capture_ns: Callable[[Any], int] | None = None) -> None:
        self._inner, self._output, self._capture_ns = inner, output, capture_ns

    def update(self, *args, **kwargs):
        params = self._inner.update(*args, **kwargs)
        msg = args[0] if args else kwargs.get("msg")
        capture = self._capture_ns(msg) if msg is not None and self._capture_ns is not None else None
        self._output.update(params, capture)
        return params

    def __getattr__(self, name: str):
        return getattr(self._inner, name)
