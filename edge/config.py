"""The edge loop's one configuration file (TOML), validated key by key.

Why strict: on a headless device a typo must fail at start with the key's name, not run with a
default nobody chose. Each `[section]` IS the dataclass its component takes (LeRobot's way), so
every knob has exactly one default, in that dataclass:

    [source]     edge.capture.SourceSettings        [landmarks]  edge.landmarks.LandmarkerConfig
    [filter]     edge.filters.OneEuroParams          [labels]     latentcast.hysteresis.HysteresisConfig
    [bundle] [parts] [stream] [curve]  below

A knob is a field whose default is not None (None-valued fields, such as the landmark model paths,
are set by code, e.g. from the bundle). `edge/default.toml` documents every knob with its default
(tests/test_edge_config.py keeps it equal to the dataclasses); a user file overrides only what it
names; unknown keys are errors. Latency budgets are the benchmark's (benchmarks/budgets.toml).

    cfg = load_config("my.toml", overrides={"source.uri": "file://clip.mp4"})
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.capture import SourceSettings
from edge.filters import OneEuroParams
from edge.landmarks import LandmarkerConfig
from latentcast.errors import UserError
from latentcast.hysteresis import HysteresisConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 on JetPack 6
    import tomli as tomllib

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")  # documentation of the defaults, checked by a test
MOVED = {"parts.max_hands": "landmarks.max_hands"}  # old key -> new key, named in the error


@dataclass
class BundleConfig:
    """`[bundle]`: which exported bundle the encoders (edge.stages.BundleEncoders) load."""

    path: str = ""  # "" runs landmarks only (present flags + pose, empty y/z)
    precision: str = "auto"  # "auto": INT8 where TensorRT runs it, else FP32; "int8"; "fp32"
    providers: list[str] = field(default_factory=list)  # onnxruntime providers; [] = all available
    trusted_keys: str = ""  # folder of trusted .pub keys; "" = $LATENTCAST_TRUSTED_KEYS or ~/.config/latentcast/...
    allow_unsigned: bool = False  # load unsigned/untrusted bundles when trusted keys exist (development only)


@dataclass
class PartsConfig:
    """`[parts]`: what edge.stages.MediaPipeStage tracks, and the face's neutral calibration."""

    face: bool = True
    hands: bool = True
    face_neutral: str = ""  # per-user neutral calibration JSON (python -m calibration.neutral); "" = none


@dataclass
class StreamConfig:
    """`[stream]`: the publisher's sockets (edge.publisher.Publisher)."""

    endpoint: str = "tcp://127.0.0.1:5555"  # this host only; off-device needs [curve] keys or insecure = true
    source_id: str = "edge0"  # carried in every message; tells devices apart behind a proxy
    preview: bool = False  # also publish JPEG previews (demo only) ...
    preview_endpoint: str = "tcp://127.0.0.1:5556"  # ... on this separate socket
    insecure: bool = False  # true: allow an off-device endpoint without CurveZMQ (logged loudly at every start)


@dataclass
class CurveConfig:
    """`[curve]`: CurveZMQ keys (edge.publisher.CurveServerKeys); "" = no encryption."""

    server_secret_key: str = ""  # path to the device's .key_secret (python -m edge.keys)
    authorized_clients: str = ""  # folder of client .key files; "" = any client with the server key


@dataclass
class EdgeConfig:
    source: SourceSettings = field(default_factory=SourceSettings)
    bundle: BundleConfig = field(default_factory=BundleConfig)
    parts: PartsConfig = field(default_factory=PartsConfig)
    landmarks: LandmarkerConfig = field(default_factory=LandmarkerConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    filter: OneEuroParams = field(default_factory=OneEuroParams)
    labels: HysteresisConfig = field(default_factory=HysteresisConfig)
    curve: CurveConfig = field(default_factory=CurveConfig)
    path: str | None = field(default=None)  # the file it came from, for messages


def sections() -> dict[str, type]:
    """{TOML section: the dataclass it fills}, in file order."""
    return {f.name: f.default_factory for f in dataclasses.fields(EdgeConfig) if f.name != "path"}


def knobs(cls: type) -> dict[str, Any]:
    """{key: default} of the fields a TOML file may set (those whose default is not None)."""
    defaults = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    return {key: value for key, value in defaults.items() if value is not None}


def defaults() -> dict[str, dict[str, Any]]:
    """Every knob of every section with its one default: what edge/default.toml must say."""
    return {name: knobs(cls) for name, cls in sections().items()}


def _fail(key: str, want: str, got: Any) -> UserError:
    shown = f'"{got}"' if isinstance(got, str) else repr(got)
    return UserError(f"config: {key} must be {want}, got {shown}")


def _check(key: str, value: Any, kind: type) -> Any:
    """Type-check one value against its default's type; floats accept ints, nothing accepts bools but bool."""
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
                moved = MOVED.get(f"{section}.{key}")
                hint = f"it is now {moved}" if moved else f"known keys are {', '.join(base[section])}"
                raise UserError(f"config: unknown key {section}.{key} in {origin}: {hint}")
            base[section][key] = value


_RULES = [  # (key, test on the type-checked value, what it must be)
    ("source.width", lambda v: v > 0, "an integer > 0"),
    ("source.height", lambda v: v > 0, "an integer > 0"),
    ("source.fps", lambda v: v > 0, "a number > 0"),
    ("source.pace", lambda v: v in ("native", "fast"), '"native" or "fast"'),
    ("bundle.precision", lambda v: v in ("auto", "int8", "fp32"), '"auto", "int8" or "fp32"'),
    ("source.uri", bool, "a source URI (csi://0, v4l2:///dev/video0, file://clip.mp4, ...)"),
    ("landmarks.max_hands", lambda v: 1 <= v <= 4, "an integer from 1 to 4"),
    ("landmarks.max_input_side", lambda v: v >= 64, "an integer >= 64"),
    ("landmarks.mode", lambda v: v in ("video", "image"), '"video" or "image"'),
    ("landmarks.color_order", lambda v: v in ("bgr", "rgb"), '"bgr" or "rgb"'),
    ("landmarks.backend", lambda v: v in ("mediapipe", "onnx"), '"mediapipe" or "onnx"'),
    ("landmarks.detect_interval_s", lambda v: v > 0, "a number > 0"),
    ("stream.endpoint", lambda v: "://" in v, "a ZeroMQ endpoint like tcp://*:5555"),
    ("stream.preview_endpoint", lambda v: "://" in v, "a ZeroMQ endpoint like tcp://*:5556"),
    ("stream.source_id", lambda v: 0 < len(v.encode()) <= 255, "1 to 255 bytes of text"),
    ("filter.min_cutoff", lambda v: v > 0, "a number > 0"),
    ("filter.beta", lambda v: v >= 0, "a number >= 0"),
    ("filter.d_cutoff", lambda v: v > 0, "a number > 0"),
    ("labels.dwell_frames", lambda v: v >= 1, "an integer >= 1"),
    ("labels.hold_frames", lambda v: v >= 1, "an integer >= 1"),
    ("labels.leave_margin", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("labels.recon_leave", lambda v: v >= 1, "a number >= 1"),
]


def _validate_ranges(values: dict[str, dict[str, Any]]) -> None:
    for key, ok, want in _RULES:
        section, name = key.split(".")
        if name in values[section] and not ok(values[section][name]):
            raise _fail(key, want, values[section][name])
    if values["labels"]["hold_frames"] < values["labels"]["dwell_frames"]:
        raise _fail("labels.hold_frames", "at least labels.dwell_frames", values["labels"]["hold_frames"])
    if not (values["parts"]["face"] or values["parts"]["hands"]):
        raise UserError("config: parts.face and parts.hands are both false: enable at least one")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> EdgeConfig:
    """Defaults (the dataclasses) <- the user's TOML file <- `overrides` ({"section.key": value}, e.g. the CLI)."""
    base = defaults()
    raw = {name: dict(values) for name, values in base.items()}
    if path is not None:
        _merge(raw, _read_toml(Path(path)), str(path))
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        _merge(raw, {section: {key: value}}, "the command line")
    checked = {
        name: {key: _check(f"{name}.{key}", raw[name][key], type(default)) for key, default in section.items()}
        for name, section in base.items()
    }
    _validate_ranges(checked)
    built = {name: cls(**checked[name]) for name, cls in sections().items()}
    return EdgeConfig(**built, path=str(path) if path else None)
