"""The edge loop's one configuration file (TOML), validated key by key.

Why strict: on a headless device a typo must fail at start with the key's name, not run with a
default nobody chose. `edge/default.toml` holds every key with its default; a user file only
overrides what it names; unknown keys are errors too.

    cfg = load_config("my.toml", overrides={"source.uri": "file://clip.mp4"})
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentcast.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 on JetPack 6
    import tomli as tomllib

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


@dataclass
class SourceConfig:
    uri: str
    width: int
    height: int
    fps: float
    pace: str
    loop: bool


@dataclass
class BundleConfig:
    path: str
    precision: str
    providers: list[str]


@dataclass
class PartsConfig:
    face: bool
    hands: bool
    max_hands: int
    face_neutral: str


@dataclass
class BudgetConfig:
    profile: str


@dataclass
class StreamConfig:
    endpoint: str
    source_id: str
    preview: bool
    preview_endpoint: str


@dataclass
class FilterConfig:
    enabled: bool
    min_cutoff: float
    beta: float
    d_cutoff: float


@dataclass
class CurveConfig:
    server_secret_key: str
    authorized_clients: str


@dataclass
class EdgeConfig:
    source: SourceConfig
    bundle: BundleConfig
    parts: PartsConfig
    budget: BudgetConfig
    stream: StreamConfig
    filter: FilterConfig
    curve: CurveConfig
    path: str | None = field(default=None)  # the file it came from, for messages


def _fail(key: str, want: str, got: Any) -> UserError:
    shown = f'"{got}"' if isinstance(got, str) else repr(got)
    return UserError(f"config: {key} must be {want}, got {shown}")


def _check(key: str, value: Any, kind: type) -> Any:
    """Type-check one value; numbers accept ints where floats are wanted, never bools."""
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(key, "a number", value)
        return float(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(key, "an integer", value)
    if kind is bool and not isinstance(value, bool):
        raise _fail(key, "true or false", value)
    if kind is str and not isinstance(value, str):
        raise _fail(key, "a string", value)
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise _fail(key, "a list of strings", value)
    return value


_SECTIONS = {
    "source": SourceConfig,
    "bundle": BundleConfig,
    "parts": PartsConfig,
    "budget": BudgetConfig,
    "stream": StreamConfig,
    "filter": FilterConfig,
    "curve": CurveConfig,
}
_KINDS = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list}


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise UserError(f"config file {path} not found: pass an existing --config or omit it") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None


def _merge(base: dict, user: dict, origin: str) -> None:
    for section, values in user.items():
        if section not in base:
            raise UserError(f"config: unknown section [{section}] in {origin}: known are {', '.join(base)}")
        if not isinstance(values, dict):
            raise UserError(f"config: {section} must be a [{section}] table in {origin}")
        for key, value in values.items():
            if key not in base[section]:
                known = ", ".join(base[section])
                raise UserError(f"config: unknown key {section}.{key} in {origin}: known keys are {known}")
            base[section][key] = value


def _validate_ranges(cfg: EdgeConfig) -> None:
    rules = [
        ("source.width", cfg.source.width > 0, "an integer > 0"),
        ("source.height", cfg.source.height > 0, "an integer > 0"),
        ("source.fps", cfg.source.fps > 0, "a number > 0"),
        ("source.pace", cfg.source.pace in ("native", "fast"), '"native" or "fast"'),
        ("bundle.precision", cfg.bundle.precision in ("auto", "int8", "fp32"), '"auto", "int8" or "fp32"'),
        ("source.uri", bool(cfg.source.uri), "a source URI (csi://0, v4l2:///dev/video0, file://clip.mp4, ...)"),
        ("parts.max_hands", 1 <= cfg.parts.max_hands <= 4, "an integer from 1 to 4"),
        ("stream.endpoint", "://" in cfg.stream.endpoint, "a ZeroMQ endpoint like tcp://*:5555"),
        ("stream.preview_endpoint", "://" in cfg.stream.preview_endpoint, "a ZeroMQ endpoint like tcp://*:5556"),
        ("stream.source_id", 0 < len(cfg.stream.source_id.encode()) <= 255, "1 to 255 bytes of text"),
        ("filter.min_cutoff", cfg.filter.min_cutoff > 0, "a number > 0"),
        ("filter.beta", cfg.filter.beta >= 0, "a number >= 0"),
        ("filter.d_cutoff", cfg.filter.d_cutoff > 0, "a number > 0"),
    ]
    for key, ok, want in rules:
        if not ok:
            section, name = key.split(".")
            raise _fail(key, want, getattr(getattr(cfg, section), name))
    if not (cfg.parts.face or cfg.parts.hands):
        raise UserError("config: parts.face and parts.hands are both false: enable at least one")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> EdgeConfig:
    """Defaults <- the user's TOML file <- `overrides` ({"section.key": value}, e.g. from the CLI)."""
    raw = _read_toml(DEFAULT_CONFIG)
    if path is not None:
        _merge(raw, _read_toml(Path(path)), str(path))
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _merge(raw, {section: {key: value}}, "the command line")
    sections = {}
    for name, cls in _SECTIONS.items():
        values = {}
        for key, spec in cls.__annotations__.items():
            kind = _KINDS[spec.replace(" ", "")]
            values[key] = _check(f"{name}.{key}", raw[name][key], kind)
        sections[name] = cls(**values)
    cfg = EdgeConfig(**sections, path=str(path) if path else None)
    _validate_ranges(cfg)
    return cfg
