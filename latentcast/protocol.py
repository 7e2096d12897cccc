"""THE wire format between the edge loop and renderers (specified byte by byte in docs/PROTOCOL.md).

Why this shape: ZMQ_CONFLATE keeps only single-part messages, so every message is ONE ZeroMQ
frame whose first four bytes are the topic (SUB sockets filter on that prefix). Everything after
is a fixed little-endian header plus length-prefixed float32 blocks, so a C#/C++ consumer needs
nothing but the document; no pickle, no schema compiler. numpy + stdlib only.

Two topics:
- ``LCLT`` (latents): sequence, timestamps, model identity, tracking status, the face block and
  the hand blocks. This is what renderers animate from.
- ``LCPV`` (preview): sequence + JPEG bytes of the input frame with landmarks drawn; only for the
  demo's side-by-side view, published on its own socket.

Decoding anything malformed, truncated, with trailing bytes or of another version raises
``ProtocolError`` (``ProtocolVersionError`` for a version mismatch), never anything else.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1
TOPIC_LATENTS = b"LCLT"
TOPIC_PREVIEW = b"LCPV"
MODEL_ID_SIZE = 8
NO_MODEL = bytes(MODEL_ID_SIZE)

# topic, version, tracking, source id length, seq, capture_ns, publish_ns, model id
_HEADER = struct.Struct("<4sHBBQqq8s")
# present, handedness (0 for the face), K, C, then three float32: face pose or hand wrist
_BLOCK = struct.Struct("<BBHH3f")
_COUNT = struct.Struct("<B")
# topic, version, source id length, reserved, seq, capture_ns, jpeg length
_PREVIEW = struct.Struct("<4sHBBQqI")
_F32 = np.dtype("<f4")


class ProtocolError(ValueError):
    """A message that is not a valid latentcast message of this version."""


class ProtocolVersionError(ProtocolError):
    """A well-formed latentcast message of another protocol version."""


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
class FaceBlock:
    """Expression latents and head pose; y/z are empty when no expression model is loaded."""

    present: bool = False
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    pose: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # yaw, pitch, roll (degrees)


@dataclass
class HandBlock:
    """Gesture latents and wrist position (normalised image x, y in [0, 1], then 0: reserved)."""

    present: bool = False
    handedness: Handedness = Handedness.UNKNOWN
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    z: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    wrist: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))


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


def _pack_block(parts: list[bytes], present: bool, side: int, y, z, extra) -> None:
    y, z = _vec(y), _vec(z)
    parts.append(_BLOCK.pack(int(bool(present)), side, y.size, z.size, *_vec(extra, 3).tolist()))
    parts.append(y.astype(_F32, copy=False).tobytes())
    parts.append(z.astype(_F32, copy=False).tobytes())


def encode_latents(msg: LatentMessage) -> bytes:
    """Serialise to the one ZeroMQ frame (topic first)."""
    if len(msg.model_id) != MODEL_ID_SIZE:
        raise ValueError(f"model_id must be {MODEL_ID_SIZE} bytes, got {len(msg.model_id)}")
    if len(msg.hands) > 255:
        raise ValueError("at most 255 hand blocks")
    source = _source_bytes(msg.source_id)
    parts = [
        _HEADER.pack(
            TOPIC_LATENTS,
            PROTOCOL_VERSION,
            int(msg.tracking),
            len(source),
            msg.seq,
            msg.capture_ns,
            msg.publish_ns,
            msg.model_id,
        ),
        source,
    ]
    _pack_block(parts, msg.face.present, 0, msg.face.y, msg.face.z, msg.face.pose)
    parts.append(_COUNT.pack(len(msg.hands)))
    for hand in msg.hands:
        _pack_block(parts, hand.present, int(hand.handedness), hand.y, hand.z, hand.wrist)
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
    if version != PROTOCOL_VERSION:
        raise ProtocolVersionError(f"protocol version {version}, this reader speaks {PROTOCOL_VERSION}")


def _read_block(reader: _Reader) -> tuple[bool, int, np.ndarray, np.ndarray, np.ndarray]:
    present, side, k, c, a, b, d = reader.unpack(_BLOCK)
    if present > 1:
        raise ProtocolError(f"present flag must be 0 or 1, got {present}")
    extra = np.array((a, b, d), np.float32)
    return bool(present), side, reader.floats(k), reader.floats(c), extra


def decode_latents(buf: bytes | memoryview) -> LatentMessage:
    """Parse one LCLT frame; raises ProtocolError on anything but a valid v1 message."""
    reader = _Reader(buf)
    topic, version, tracking, n_source, seq, capture_ns, publish_ns, model_id = reader.unpack(_HEADER)
    _check_topic_version(topic, version, TOPIC_LATENTS)
    try:
        status = TrackingStatus(tracking)
    except ValueError:
        raise ProtocolError(f"unknown tracking status {tracking}") from None
    source_id = reader.text(n_source)
    present, _, y, z, pose = _read_block(reader)
    face = FaceBlock(present, y, z, pose)
    (n_hands,) = reader.unpack(_COUNT)
    hands = []
    for _ in range(n_hands):
        present, side, y, z, wrist = _read_block(reader)
        try:
            handedness = Handedness(side)
        except ValueError:
            raise ProtocolError(f"unknown handedness {side}") from None
        hands.append(HandBlock(present, handedness, y, z, wrist))
    reader.finish()
    return LatentMessage(source_id, seq, capture_ns, publish_ns, bytes(model_id), status, face, hands)


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
