"""The mapping file: which character parameter drives which actuator channel, and how safely.

    [channels.jaw]                       # one table per channel; its key names it in every error
    channel = 0                          # the MCU's channel index (0..N-1, each exactly once)
    param = "face.mouth_open"            # a CharacterParams field path (renderer/params.py), by name
    range = [0.0, 0.8]                   # parameter values mapped to the two ends of `limits`
    invert = false                       # true: `range` low drives limits high
    limits = [0.15, 0.85]                # travel, fractions of the servo's full travel (never exceeded)
    slew = 3.0                           # most travel per second (0: unlimited)
    safe = 0.15                          # travel when tracking is lost, the link is down or paused

Parameters are read by name (`face.yaw`, `left_hand.curls[1]`, `idle`) so firmware_bridge imports
nothing of the renderer; a name that does not exist is reported, with its key, on the first frame.
Every mistake is a UserError naming the file and the key. Example: firmware_bridge/puppet.toml.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from latentcast.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on JetPack
    import tomli as tomllib

PARAM_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*(\[\d+\])?$")
TOP_KEYS = {"version", "link", "tracking", "channels", "buttons", "actions", "status_led"}
CHANNEL_KEYS = {"channel", "param", "range", "invert", "limits", "slew", "safe"}
BUILTIN_ACTIONS = ("pause", "resume", "toggle_pause", "calibrate_neutral")


@dataclass(frozen=True)
class ChannelMap:
    name: str
    channel: int
    param: str
    range: tuple[float, float]
    invert: bool = False
    limits: tuple[float, float] = (0.0, 1.0)
    slew: float = 0.0  # travel per second; 0: unlimited
    safe: float = 0.5

    def travel(self, value: float) -> float:
        """A parameter value -> travel within `limits` (clamped: nothing maps outside them)."""
        lo, hi = self.range
        u = min(1.0, max(0.0, (value - lo) / (hi - lo)))
        if self.invert:
            u = 1.0 - u
        return self.limits[0] + u * (self.limits[1] - self.limits[0])


@dataclass
class Mapping:
    channels: list[ChannelMap]  # sorted by channel index, 0..N-1
    uri: str | None = None
    mcu_watchdog_ms: int = 500
    heartbeat_timeout_s: float = 0.5
    lost_when_idle_above: float = 0.5  # CharacterParams.idle above this: tracking lost -> safe pose
    buttons: dict[int, str] = field(default_factory=dict)  # button index -> action (on press)
    actions: dict[str, list[str]] = field(default_factory=dict)  # action -> command line it runs
    status_led: int | None = None
    source: str = "<mapping>"

    @property
    def safe_pose(self) -> list[float]:
        return [c.safe for c in self.channels]


class _Reader:
    """Typed access to one TOML table; every error names `file: key`."""

    def __init__(self, source: str, prefix: str, table: dict, allowed: set[str]) -> None:
        self.source, self.prefix, self.table = source, prefix, table
        for key in table:
            if key not in allowed:
                raise self.error(key, f"is not a known key (known: {', '.join(sorted(allowed))})")

    def error(self, key: str, what: str) -> UserError:
        return UserError(f"{self.source}: {self.prefix}{key} {what}")

    def number(self, key: str, default=None, lo: float | None = None, hi: float | None = None) -> float:
        v = self.table.get(key, default)
        if v is None:
            raise self.error(key, "is missing")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.error(key, f"must be a number, got {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.error(key, f"must be within [{lo}, {hi}], got {v!r}")
        return float(v)

    def integer(self, key: str, default=None, lo: int = 0, hi: int = 65535) -> int:
        v = self.table.get(key, default)
        if v is None:
            raise self.error(key, "is missing")
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.error(key, f"must be a whole number in {lo}..{hi}, got {v!r}")
        return v

    def pair(self, key: str, default=None, lo: float | None = None, hi: float | None = None) -> tuple[float, float]:
        v = self.table.get(key, default)
        ok = isinstance(v, list | tuple) and len(v) == 2 and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in v
        )
        if not ok:
            raise self.error(key, f"must be two numbers [low, high], got {v!r}")
        a, b = float(v[0]), float(v[1])
        if a == b:
            raise self.error(key, f"must have two different ends, got {v!r}")
        if (lo is not None and min(a, b) < lo) or (hi is not None and max(a, b) > hi):
            raise self.error(key, f"must lie within [{lo}, {hi}], got {v!r}")
        return a, b

    def string(self, key: str, default=None) -> str:
        v = self.table.get(key, default)
        if not isinstance(v, str) or not v:
            raise self.error(key, f"must be a non-empty string, got {v!r}")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self.table.get(key, default)
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {v!r}")
        return v

    def table_of(self, key: str) -> dict:
        v = self.table.get(key, {})
        if not isinstance(v, dict):
            raise self.error(key, "must be a table")
        return v


def parse_mapping(doc: dict, source: str = "<mapping>") -> Mapping:
    top = _Reader(source, "", doc, TOP_KEYS)
    if top.integer("version", 1, 1, 1) != 1:  # pragma: no cover - integer() already bounds it
        raise top.error("version", "must be 1")
    link = _Reader(source, "link.", top.table_of("link"), {"uri", "mcu_watchdog_ms", "heartbeat_timeout_s"})
    tracking = _Reader(source, "tracking.", top.table_of("tracking"), {"lost_when_idle_above"})
    channels_doc = top.table_of("channels")
    if not channels_doc:
        raise top.error("channels", "is missing: add at least one [channels.NAME] table")
    channels = []
    for name, table in channels_doc.items():
        if not isinstance(table, dict):
            raise top.error(f"channels.{name}", "must be a table")
        r = _Reader(source, f"channels.{name}.", table, CHANNEL_KEYS)
        param = r.string("param")
        if not PARAM_PATH.match(param):
            raise r.error("param", f"must be a field path like face.mouth_open or left_hand.curls[1], got {param!r}")
        limits = r.pair("limits", [0.0, 1.0], 0.0, 1.0)
        limits = (min(limits), max(limits))
        safe = r.number("safe")
        if not limits[0] <= safe <= limits[1]:
            raise r.error("safe", f"must lie within limits {list(limits)}, got {safe}")
        channels.append(
            ChannelMap(
                name=name,
                channel=r.integer("channel", None, 0, 31),
                param=param,
                range=r.pair("range"),
                invert=r.boolean("invert", False),
                limits=limits,
                slew=r.number("slew", 0.0, 0.0),
                safe=safe,
            )
        )
    channels.sort(key=lambda c: c.channel)
    for i, c in enumerate(channels):
        if c.channel != i:
            seen = [x.name for x in channels if x.channel == c.channel]
            what = f"is used by {', '.join(seen)}" if len(seen) > 1 else f"leaves channel {i} unmapped"
            raise UserError(f"{source}: channels.{c.name}.channel = {c.channel} {what}: number channels 0..N-1")
    actions_doc = top.table_of("actions")
    actions_r = _Reader(source, "actions.", actions_doc, set(actions_doc))
    actions = {}
    for name, cmd in actions_r.table.items():
        if name in ("pause", "resume", "toggle_pause"):
            raise actions_r.error(name, "is built in: it cannot run a command (calibrate_neutral or a new name can)")
        if not (isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd)):
            raise actions_r.error(name, f"must be a command line as a list of strings, got {cmd!r}")
        actions[name] = cmd
    buttons_r = _Reader(source, "buttons.", top.table_of("buttons"), set(top.table_of("buttons")))
    buttons = {}
    for key, action in buttons_r.table.items():
        if not key.isdigit() or int(key) > 255:
            raise buttons_r.error(key, "must be a button index 0..255")
        if action not in BUILTIN_ACTIONS and action not in actions:
            raise buttons_r.error(key, f"names unknown action {action!r} (known: {', '.join(BUILTIN_ACTIONS)}, "
                                  "or define it under [actions])")  # fmt: skip
        buttons[int(key)] = action
    led = _Reader(source, "status_led.", top.table_of("status_led"), {"index"})
    return Mapping(
        channels=channels,
        uri=link.string("uri") if "uri" in link.table else None,
        mcu_watchdog_ms=link.integer("mcu_watchdog_ms", 500, 0, 65535),
        heartbeat_timeout_s=link.number("heartbeat_timeout_s", 0.5, 0.05, 60.0),
        lost_when_idle_above=tracking.number("lost_when_idle_above", 0.5, 0.0, 1.0),
        buttons=buttons,
        actions=actions,
        status_led=led.integer("index", None, 0, 255) if "index" in led.table else None,
        source=source,
    )


def load_mapping(path: str | Path) -> Mapping:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"mapping file {path} not found: pass an existing --serial-map (see puppet.toml)") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"mapping file {path} is not valid TOML: {exc}") from None
    return parse_mapping(doc, str(path))


_INDEX = re.compile(r"^(.*)\[(\d+)\]$")


def param_getter(channel: ChannelMap, params, source: str = "<mapping>"):
    """A fast getter for `channel.param` on objects shaped like `params`; UserError naming the key if absent."""
    path, index = channel.param, None
    m = _INDEX.match(path)
    if m:
        path, index = m.group(1), int(m.group(2))
    names = path.split(".")
    obj = params
    for i, n in enumerate(names):
        if not hasattr(obj, n):
            known = sorted(k for k in getattr(obj, "__dataclass_fields__", {}) if not k.startswith("_"))
            where = ".".join(names[:i]) or "the parameters"
            raise UserError(f"{source}: channels.{channel.name}.param {channel.param!r}: {where} has no {n!r}"
                            f" (known: {', '.join(known)})")  # fmt: skip
        obj = getattr(obj, n)
    if index is not None:
        if not isinstance(obj, tuple | list) or index >= len(obj):
            raise UserError(f"{source}: channels.{channel.name}.param {channel.param!r}: index {index} out of range")
        obj = obj[index]
    if isinstance(obj, bool) or not isinstance(obj, int | float):
        raise UserError(f"{source}: channels.{channel.name}.param {channel.param!r} is not a number ({obj!r})")

    def get(p) -> float:
        for n in names:
            p = getattr(p, n)
        return float(p if index is None else p[index])

    return get


class SlewLimiter:
    """Moves each channel's travel towards its target by at most `slew * dt` per update."""

    def __init__(self, channels: list[ChannelMap]) -> None:
        self.channels = channels
        self.travel = [c.safe for c in channels]  # actuators are assumed at the safe pose at start
        self._last: float | None = None

    def step(self, targets: list[float], now: float) -> list[float]:
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        for i, (c, want) in enumerate(zip(self.channels, targets, strict=True)):
            want = min(c.limits[1], max(c.limits[0], want))
            if c.slew > 0:
                room = c.slew * dt
                want = min(self.travel[i] + room, max(self.travel[i] - room, want))
            self.travel[i] = want
        return list(self.travel)
