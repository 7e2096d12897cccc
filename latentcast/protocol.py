"""THE wire format between the edge loop and renderers (specified byte by byte in docs/PROTOCOL.md).

Why this shape: ZMQ_CONFLATE keeps only single-part messages, so every message is ONE ZeroMQ
frame whose first four bytes are the topic (SUB sockets filter on that prefix). Everything after
is a fixed little-endian header plus length-prefixed float32 blocks, so a C#/C++ consumer needs
nothing but the document; no pickle, no schema compiler. numpy + stdlib only.

Version 2 (this writer) adds, per part, the edge's open-set decision (label after hysteresis,
calibrated confidence, unknown flag) and, in the face block, eye gaze. Version 1 messages are still
decoded (their blocks have no decision and no gaze); other versions raise ProtocolVersionError.

Two topics:
- ``LCLT`` (latents): sequence, timestamps, model identity, tracking status, the face block and
  the hand blocks. This is what renderers animate from.
- ``LCPV`` (preview): sequence + JPEG bytes of the input frame with landmarks drawn; only for the
  demo's side-by-side view, published on its own socket.

Decoding anything malformed, truncated, with trailing bytes or of another version raises
``ProtocolError`` (``ProtocolVersionError`` for a version mismatch, ``ProtocolValueError`` for a
value outside its documented range: NaN, Inf, huge), never anything else.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)  # what this reader decodes; the writer always writes PROTOCOL_VERSION
TOPIC_LATENTS = b"LCLT"
TOPIC_PREVIEW = b"LCPV"
MODEL_ID_SIZE = 8
NO_MODEL = bytes(MODEL_ID_SIZE)

# topic, version, tracking, source id length, seq, capture_ns, publish_ns, model id
_HEADER = struct.Struct("<4sHBBQqq8s")
# present, handedness (0 for the face), K, C, then three float32: face pose or hand wrist
_BLOCK = struct.Struct("<BBHH3f")
# v2, after each block header: label (int16, -1 unknown), flags (bit 0 decided, 1 unknown, 2 gaze), confidence
_DECISION = struct.Struct("<hBf")
_GAZE_COUNT = 4  # v2 face block, after z: left yaw, left pitch, right yaw, right pitch (radians)
FLAG_DECIDED, FLAG_UNKNOWN, FLAG_GAZE = 1, 2, 4
NO_LABEL = -1  # the label of an unknown (or undecided) part
_COUNT = struct.Struct("<B")
# topic, version, source id length, reserved, seq, capture_ns, jpeg length
_PREVIEW = struct.Struct("<4sHBBQqI")
_F32 = np.dtype("<f4")


class ProtocolError(ValueError):
    """A message that is not a valid latentcast message of this version."""


class ProtocolVersionError(ProtocolError):
    """A well-formed latentcast message of another protocol version."""


class ProtocolValueError(ProtocolError):
    """A well-formed message carrying a value outside the documented valid range (NaN, Inf, huge)."""


# Valid values (docs/PROTOCOL.md, "Valid values"): every float must be finite and within these
# bounds, so nothing downstream (smoothing state, drawing, VMC) can be poisoned by one bad frame.
POSE_LIMIT_DEG = 180.0  # |yaw|, |pitch|, |roll|
WRIST_RANGE = (-1.0, 2.0)  # normalised image coordinates; MediaPipe reports a little outside the frame
PROBABILITY_SLACK = 1e-3  # y: class probabilities in [0 - slack, 1 + slack] (float32 rounding)
CODE_LIMIT = 1000.0  # |z| (style codes follow N(0, I); 1000 sigma is never a real code) and the reserved float
GAZE_LIMIT_RAD = 1.5708  # |gaze yaw|, |gaze pitch|: asin's range, pi/2 rounded up
TIMESTAMP_MAX_NS = 2**62  # capture_ns / publish_ns are CLOCK_MONOTONIC: never negative, never near int64 max


class TrackingStatus(enum.IntEnum):
    """What the edge could see this frame; renderers fall back to idle motion unless OK."""

    OK = 0  # at least one enabled part (face or a hand) was found
    NO_SUBJECT = 1  # the camera works but nothing was found
    SOURCE_LOST = 2  # the camera failed; the edge is retrying


class Handedness(enum.IntEnum):
    """MediaPipe's geometric label: the anatomical hand as it appears in the captured frame."""

    UNKNOWN = 0
    LEFT = 1
    RIGHT = 2


def _vec(values, n: int | None = None) -> np.ndarray:
    array = np.ascontiguousarray(values if values is not None else (), dtype=np.float32).reshape(-1)
    if n is not None and array.size != n:
        raise ValueError(f"expected {n} values, got {array.size}")
    return array


@dataclass
class Decision:
    """The edge's open-set decision for one part (docs/PROTOCOL.md, "Decision")."""

    label: int = NO_LABEL  # class index after hysteresis, NO_LABEL = unknown (draw nothing)
    confidence: float = 0.0  # this frame's calibrated max-probability
    unknown: bool = False  # this frame's open-set verdict (before hysteresis)


@dataclass
class FaceBlock:
    """Expression latents and head pose; y/z are empty when no expression model is loaded."""

    present: bool = False
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    pose: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # yaw, pitch, roll (degrees)
    decision: Decision | None = None  # None: no open-set rule ran (no model, or a v1 message)
    gaze: np.ndarray | None = None  # [4] radians: left yaw, left pitch, right yaw, right pitch (None: not measured)


@dataclass
class HandBlock:
    """Gesture latents and wrist position (normalised image x, y in [0, 1], then 0: reserved)."""

    present: bool = False
    handedness: Handedness = Handedness.UNKNOWN
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    wrist: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    decision: Decision | None = None  # None: no open-set rule ran (no model, or a v1 message)


@dataclass
class LatentMessage:
    """One frame's worth of animation latents. Timestamps are CLOCK_MONOTONIC ns of the edge host."""

    source_id: str
    seq: int
    capture_ns: int
    publish_ns: int
    model_id: bytes = NO_MODEL
    tracking: TrackingStatus = TrackingStatus.NO_SUBJECT
    face: FaceBlock = field(default_factory=FaceBlock)
    hands: list[HandBlock] = field(default_factory=list)


@dataclass
class PreviewMessage:
    """The input frame (landmarks drawn) as JPEG, for side-by-side demos only."""

    source_id: str
    seq: int
    capture_ns: int
    jpeg: bytes


def model_id_from_manifest(manifest_bytes: bytes) -> bytes:
    """The 8-byte model identity: the first bytes of sha256(manifest.json) of the bundle.

    The manifest lists the sha256 of every model file, so the same id means the same decoders.
    """
    return hashlib.sha256(manifest_bytes).digest()[:MODEL_ID_SIZE]


def _source_bytes(source_id: str) -> bytes:
    raw = source_id.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"source id must be at most 255 UTF-8 bytes, got {len(raw)}")
    return raw


def _pack_block(
    parts: list[bytes], version: int, present: bool, side: int, y, z, extra, decision=None, gaze=None, face=False
) -> None:
    y, z = _vec(y), _vec(z)
    parts.append(_BLOCK.pack(int(bool(present)), side, y.size, z.size, *_vec(extra, 3).tolist()))
    if version >= 2:
        flags = (FLAG_DECIDED if decision is not None else 0) | (FLAG_GAZE if face and gaze is not None else 0)
        label, confidence = NO_LABEL, 0.0
        if decision is not None:
            flags |= FLAG_UNKNOWN if decision.unknown else 0
            label, confidence = int(decision.label), float(decision.confidence)
        parts.append(_DECISION.pack(label, flags, confidence))
    parts.append(y.astype(_F32, copy=False).tobytes())
    parts.append(z.astype(_F32, copy=False).tobytes())
    if version >= 2 and face:
        parts.append(_vec(gaze if gaze is not None else np.zeros(_GAZE_COUNT), _GAZE_COUNT).astype(_F32).tobytes())


def encode_latents(msg: LatentMessage, version: int = PROTOCOL_VERSION) -> bytes:
    """Serialise to the one ZeroMQ frame (topic first); `version` 1 only to test old readers."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"can write protocol versions {SUPPORTED_VERSIONS}, not {version}")
    if len(msg.model_id) != MODEL_ID_SIZE:
        raise ValueError(f"model_id must be {MODEL_ID_SIZE} bytes, got {len(msg.model_id)}")
    if len(msg.hands) > 255:
        raise ValueError("at most 255 hand blocks")
    source = _source_bytes(msg.source_id)
    parts = [
        _HEADER.pack(
            TOPIC_LATENTS,
            version,
            int(msg.tracking),
            len(source),
            msg.seq,
            msg.capture_ns,
            msg.publish_ns,
            msg.model_id,
        ),
        source,
    ]
    face = msg.face
    _pack_block(parts, version, face.present, 0, face.y, face.z, face.pose, face.decision, face.gaze, face=True)
    parts.append(_COUNT.pack(len(msg.hands)))
    for hand in msg.hands:
        _pack_block(parts, version, hand.present, int(hand.handedness), hand.y, hand.z, hand.wrist, hand.decision)
    return b"".join(parts)


def encode_preview(msg: PreviewMessage) -> bytes:
    source = _source_bytes(msg.source_id)
    head = _PREVIEW.pack(TOPIC_PREVIEW, PROTOCOL_VERSION, len(source), 0, msg.seq, msg.capture_ns, len(msg.jpeg))
    return b"".join((head, source, bytes(msg.jpeg)))


class _Reader:
    """Bounds-checked cursor: every short read becomes a ProtocolError."""

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = memoryview(buf).cast("B")
        self.pos = 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise ProtocolError(f"truncated message: need {n} bytes at offset {self.pos}, have {len(self.buf)}")
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: struct.Struct) -> tuple:
        return fmt.unpack(self.take(fmt.size))

    def floats(self, n: int) -> np.ndarray:
        return np.frombuffer(self.take(4 * n), dtype=_F32).astype(np.float32)

    def text(self, n: int) -> str:
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"source id is not UTF-8: {exc}") from None

    def finish(self) -> None:
        if self.pos != len(self.buf):
            raise ProtocolError(f"{len(self.buf) - self.pos} trailing bytes after the message")


def _check_topic_version(topic: bytes, version: int, expected: bytes) -> None:
    if topic != expected:
        raise ProtocolError(f"unknown topic {topic!r}, expected {expected!r}")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolVersionError(f"protocol version {version}, this reader speaks {SUPPORTED_VERSIONS}")


def _read_block(reader: _Reader, version: int, face: bool = False) -> tuple:
    """(present, side, y, z, extra, decision or None, gaze or None) of one block of `version`."""
    present, side, k, c, a, b, d = reader.unpack(_BLOCK)
    if present > 1:
        raise ProtocolError(f"present flag must be 0 or 1, got {present}")
    extra = np.array((a, b, d), np.float32)
    if version < 2:
        return bool(present), side, reader.floats(k), reader.floats(c), extra, None, None
    label, flags, confidence = reader.unpack(_DECISION)
    if flags & ~(FLAG_DECIDED | FLAG_UNKNOWN | FLAG_GAZE) or (flags & FLAG_GAZE and not face):
        raise ProtocolError(f"unknown block flags {flags:#04x}")
    if label < NO_LABEL or (label != NO_LABEL and label >= k):
        raise ProtocolError(f"label {label} is not a class index of this block's {k} classes (or -1)")
    decision = Decision(label, confidence, bool(flags & FLAG_UNKNOWN)) if flags & FLAG_DECIDED else None
    y, z = reader.floats(k), reader.floats(c)
    gaze = reader.floats(_GAZE_COUNT) if face else None
    return bool(present), side, y, z, extra, decision, gaze if flags & FLAG_GAZE else None


def _check_range(name: str, values: np.ndarray, lo: float, hi: float) -> None:
    """ProtocolValueError unless every value is finite and within [lo, hi] (finite bounds).

    Plain Python comparisons, because the arrays are a few dozen floats: per-array numpy calls cost
    more than the arithmetic, and every renderer runs this on every message. NaN fails every comparison
    and +-inf lies outside finite bounds, so one test covers both.
    """
    lo32, hi32 = float(np.float32(lo)), float(np.float32(hi))  # compared as float32, like the values on the wire
    for value in np.asarray(values, np.float32).ravel().tolist():
        if not lo32 <= value <= hi32:
            raise ProtocolValueError(f"{name} value {value!r} outside the valid range [{lo}, {hi}]")


def check_values(msg: LatentMessage) -> None:
    """Raise ProtocolValueError unless every value of `msg` is in its documented valid range.

    Called by `decode_latents`; an edge may call it before sending to catch its own bugs.
    """
    for name, ns in (("capture_ns", msg.capture_ns), ("publish_ns", msg.publish_ns)):
        if not 0 <= ns <= TIMESTAMP_MAX_NS:
            raise ProtocolValueError(f"{name} {ns} outside the valid range [0, 2**62]")
    blocks = [("face", msg.face.y, msg.face.z)] + [(f"hand {i}", h.y, h.z) for i, h in enumerate(msg.hands)]
    lo_p, hi_p = -PROBABILITY_SLACK, 1.0 + PROBABILITY_SLACK
    for name, y, z in blocks:
        _check_range(f"{name} y", np.asarray(y, np.float32), lo_p, hi_p)
        _check_range(f"{name} z", np.asarray(z, np.float32), -CODE_LIMIT, CODE_LIMIT)
    _check_range("face pose", np.asarray(msg.face.pose, np.float32), -POSE_LIMIT_DEG, POSE_LIMIT_DEG)
    for i, hand in enumerate(msg.hands):
        wrist = np.asarray(hand.wrist, np.float32)
        _check_range(f"hand {i} wrist", wrist[:2], *WRIST_RANGE)
        _check_range(f"hand {i} reserved", wrist[2:], -CODE_LIMIT, CODE_LIMIT)
    # v2 fields (layout: issue 10): confidence is a probability, gaze an angle in [-pi/2, pi/2]
    decided = [(f"hand {i}", h.decision) for i, h in enumerate(msg.hands)] + [("face", msg.face.decision)]
    for name, decision in decided:
        if decision is not None:
            _check_range(f"{name} confidence", [decision.confidence], lo_p, hi_p)
    if msg.face.gaze is not None:
        _check_range("face gaze", np.asarray(msg.face.gaze, np.float32), -GAZE_LIMIT_RAD, GAZE_LIMIT_RAD)


def decode_latents(buf: bytes | memoryview) -> LatentMessage:
    """Parse one LCLT frame of a supported version; raises ProtocolError on anything else."""
    reader = _Reader(buf)
    topic, version, tracking, n_source, seq, capture_ns, publish_ns, model_id = reader.unpack(_HEADER)
    _check_topic_version(topic, version, TOPIC_LATENTS)
    try:
        status = TrackingStatus(tracking)
    except ValueError:
        raise ProtocolError(f"unknown tracking status {tracking}") from None
    source_id = reader.text(n_source)
    present, _, y, z, pose, decision, gaze = _read_block(reader, version, face=True)
    face = FaceBlock(present, y, z, pose, decision, gaze)
    (n_hands,) = reader.unpack(_COUNT)
    hands = []
    for _ in range(n_hands):
        present, side, y, z, wrist, decision, _ = _read_block(reader, version)
        try:
            handedness = Handedness(side)
        except ValueError:
            raise ProtocolError(f"unknown handedness {side}") from None
        hands.append(HandBlock(present, handedness, y, z, wrist, decision))
    reader.finish()
    msg = LatentMessage(source_id, seq, capture_ns, publish_ns, bytes(model_id), status, face, hands)
    check_values(msg)
    return msg


def decode_preview(buf: bytes | memoryview) -> PreviewMessage:
    reader = _Reader(buf)
    topic, version, n_source, _reserved, seq, capture_ns, n_jpeg = reader.unpack(_PREVIEW)
    _check_topic_version(topic, version, TOPIC_PREVIEW)
    source_id = reader.text(n_source)
    jpeg = bytes(reader.take(n_jpeg))
    reader.finish()
    return PreviewMessage(source_id, seq, capture_ns, jpeg)


def decode(buf: bytes | memoryview) -> LatentMessage | PreviewMessage:
    """Dispatch on the topic prefix."""
    head = bytes(memoryview(buf)[:4])
    if head == TOPIC_PREVIEW:
        return decode_preview(buf)
    return decode_latents(buf)
