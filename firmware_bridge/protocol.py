"""The microcontroller link, version 1: typed messages, frames and a resynchronising deframer.

One frame on the wire is `COBS(header | payload | crc) 0x00` (docs/FIRMWARE.md, byte by byte):

    header  version u8 | type u8 | seq u16 | length u16      (little-endian, 6 bytes)
    payload `length` bytes, the message's fixed layout
    crc     CRC-16/CCITT-FALSE of header + payload, u16 little-endian

Pure Python, no numpy: the same module runs on the device, on the renderer host and in the
benchmark. The C twin (firmware/messages.c) must produce the same bytes; the tests check both
against tests/data/firmware_v1_vectors.json.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from firmware_bridge import cobs
from firmware_bridge.crc import crc16_ccitt_false

VERSION = 1
HEADER = struct.Struct("<BBHH")
CRC = struct.Struct("<H")
MAX_PAYLOAD = 240  # so a raw frame (<= 248 bytes) needs one COBS code byte: <= 250 bytes on the wire
MAX_CHANNELS = 32
MAX_TEXT = 64
MAX_WIRE_FRAME = HEADER.size + MAX_PAYLOAD + CRC.size + 2  # + COBS code byte + delimiter


class ProtocolError(ValueError):
    """A frame that passed COBS but is not a valid version-1 message (counted by the deframer)."""


def q16(fraction: float) -> int:
    """A 0..1 travel fraction as the actuator frame's unsigned Q0.16 (0 and 65535 are the two ends)."""
    return round(min(1.0, max(0.0, fraction)) * 65535)


def from_q16(value: int) -> float:
    return value / 65535


def q14(x: float) -> int:
    """A -2..2 value (quaternion component) as signed Q2.14."""
    return round(min(32767, max(-32768, x * 16384)))


class MsgType:
    HELLO = 0x01
    HEARTBEAT = 0x02
    TIME_REQUEST = 0x03
    TIME_REPLY = 0x04
    ACTUATORS = 0x05
    LED = 0x06
    BUTTON = 0x07
    IMU = 0x08
    FAULT = 0x09
    CONFIG = 0x0A
    ACK = 0x0F


# Sent until acknowledged (retried with the same seq; receivers drop duplicates but ack them again).
# HELLO from the host is answered by the MCU's HELLO instead of an ACK.
RELIABLE = frozenset({MsgType.HELLO, MsgType.LED, MsgType.CONFIG, MsgType.BUTTON, MsgType.FAULT})


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not ASCII") from None


@dataclass
class Hello:
    """Both directions: who is talking and what it has. The host sends role 0, the MCU answers role 1."""

    TYPE: ClassVar[int] = MsgType.HELLO
    _S: ClassVar[struct.Struct] = struct.Struct("<BBBBBHHB")
    ROLE_HOST: ClassVar[int] = 0
    ROLE_MCU: ClassVar[int] = 1
    FLAG_IMU: ClassVar[int] = 0x01

    role: int = 0
    channels: int = 0
    leds: int = 0
    buttons: int = 0
    flags: int = 0
    max_rate_hz: int = 0
    firmware_version: int = 0
    name: str = ""

    def pack(self) -> bytes:
        name = self.name.encode("ascii")[:32]
        return self._S.pack(
            self.role, self.channels, self.leds, self.buttons, self.flags, self.max_rate_hz,
            self.firmware_version, len(name),
        ) + name  # fmt: skip

    @classmethod
    def unpack(cls, p: bytes) -> Hello:
        if len(p) < cls._S.size:
            raise ProtocolError("HELLO payload too short")
        *fields_, n = cls._S.unpack_from(p)
        if len(p) != cls._S.size + n or n > 32:
            raise ProtocolError("HELLO name length does not match the payload")
        return cls(*fields_, name=_text(p[cls._S.size :], "HELLO name"))


@dataclass
class Heartbeat:
    """Both directions, every 100 ms: a silent peer for longer than the timeout is a lost link."""

    TYPE: ClassVar[int] = MsgType.HEARTBEAT
    _S: ClassVar[struct.Struct] = struct.Struct("<IBH")
    OK: ClassVar[int] = 0
    SAFE: ClassVar[int] = 1  # actuators at the safe pose (its own watchdog fired, or not configured)
    FAULTED: ClassVar[int] = 2

    uptime_ms: int = 0
    state: int = 0
    rx_errors: int = 0  # frames the sender discarded (CRC, COBS, length), saturating at 65535

    def pack(self) -> bytes:
        return self._S.pack(self.uptime_ms & 0xFFFFFFFF, self.state, min(self.rx_errors, 0xFFFF))

    @classmethod
    def unpack(cls, p: bytes) -> Heartbeat:
        return cls(*_exact(cls, p))


@dataclass
class TimeRequest:
    """Host -> MCU: t1, the host's monotonic clock in microseconds when sent."""

    TYPE: ClassVar[int] = MsgType.TIME_REQUEST
    _S: ClassVar[struct.Struct] = struct.Struct("<Q")
    t1_us: int = 0

    def pack(self) -> bytes:
        return self._S.pack(self.t1_us)

    @classmethod
    def unpack(cls, p: bytes) -> TimeRequest:
        return cls(*_exact(cls, p))


@dataclass
class TimeReply:
    """MCU -> host: t1 echoed, t2 (MCU clock at receive), t3 (MCU clock at send), microseconds."""

    TYPE: ClassVar[int] = MsgType.TIME_REPLY
    _S: ClassVar[struct.Struct] = struct.Struct("<QQQ")
    t1_us: int = 0
    t2_us: int = 0
    t3_us: int = 0

    def pack(self) -> bytes:
        return self._S.pack(self.t1_us, self.t2_us, self.t3_us)

    @classmethod
    def unpack(cls, p: bytes) -> TimeReply:
        return cls(*_exact(cls, p))

    def estimate(self, t4_us: int) -> tuple[float, float]:
        """(offset_us, round_trip_us): MCU clock = host clock + offset (NTP's four-timestamp rule)."""
        offset = ((self.t2_us - self.t1_us) + (self.t3_us - t4_us)) / 2
        rtt = (t4_us - self.t1_us) - (self.t3_us - self.t2_us)
        return offset, rtt


@dataclass
class Actuators:
    """Host -> MCU: the newest targets, latest value only (never acked, never queued or retried)."""

    TYPE: ClassVar[int] = MsgType.ACTUATORS
    _S: ClassVar[struct.Struct] = struct.Struct("<QB")
    capture_us: int = 0  # the camera frame's capture time, host monotonic clock, microseconds
    targets: tuple[int, ...] = ()  # per channel, Q0.16 fraction of travel (q16())

    def pack(self) -> bytes:
        if len(self.targets) > MAX_CHANNELS:
            raise ValueError(f"{len(self.targets)} channels: at most {MAX_CHANNELS}")
        return self._S.pack(self.capture_us, len(self.targets)) + struct.pack(f"<{len(self.targets)}H", *self.targets)

    @classmethod
    def unpack(cls, p: bytes) -> Actuators:
        if len(p) < cls._S.size:
            raise ProtocolError("ACTUATORS payload too short")
        capture, n = cls._S.unpack_from(p)
        if n > MAX_CHANNELS or len(p) != cls._S.size + 2 * n:
            raise ProtocolError(f"ACTUATORS says {n} channels but carries {len(p) - cls._S.size} bytes")
        return cls(capture, struct.unpack_from(f"<{n}H", p, cls._S.size))


@dataclass
class Led:
    """Host -> MCU, acked: one LED's colour and mode."""

    TYPE: ClassVar[int] = MsgType.LED
    _S: ClassVar[struct.Struct] = struct.Struct("<BBBBBH")
    OFF: ClassVar[int] = 0
    ON: ClassVar[int] = 1
    BLINK: ClassVar[int] = 2
    PULSE: ClassVar[int] = 3

    index: int = 0
    mode: int = 0
    r: int = 0
    g: int = 0
    b: int = 0
    period_ms: int = 0

    def pack(self) -> bytes:
        return self._S.pack(self.index, self.mode, self.r, self.g, self.b, self.period_ms)

    @classmethod
    def unpack(cls, p: bytes) -> Led:
        return cls(*_exact(cls, p))


@dataclass
class Button:
    """MCU -> host, acked: a debounced button or pedal event."""

    TYPE: ClassVar[int] = MsgType.BUTTON
    _S: ClassVar[struct.Struct] = struct.Struct("<BBI")
    RELEASE: ClassVar[int] = 0
    PRESS: ClassVar[int] = 1
    LONG_PRESS: ClassVar[int] = 2

    button: int = 0
    event: int = 0
    mcu_ms: int = 0

    def pack(self) -> bytes:
        return self._S.pack(self.button, self.event, self.mcu_ms & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, p: bytes) -> Button:
        return cls(*_exact(cls, p))


@dataclass
class Imu:
    """MCU -> host, latest value: orientation quaternion (Q2.14), accel (milli-g), gyro (milli-rad/s)."""

    TYPE: ClassVar[int] = MsgType.IMU
    _S: ClassVar[struct.Struct] = struct.Struct("<Q4h3h3h")
    t_us: int = 0  # MCU clock
    quat: tuple[int, int, int, int] = (16384, 0, 0, 0)  # w, x, y, z
    accel_mg: tuple[int, int, int] = (0, 0, 1000)
    gyro_mrad_s: tuple[int, int, int] = (0, 0, 0)

    def pack(self) -> bytes:
        return self._S.pack(self.t_us, *self.quat, *self.accel_mg, *self.gyro_mrad_s)

    @classmethod
    def unpack(cls, p: bytes) -> Imu:
        v = _exact(cls, p)
        return cls(v[0], tuple(v[1:5]), tuple(v[5:8]), tuple(v[8:11]))

    @property
    def quaternion(self) -> tuple[float, float, float, float]:
        return tuple(q / 16384 for q in self.quat)  # type: ignore[return-value]


@dataclass
class Fault:
    """MCU -> host, acked: something the firmware could not do (channel 0xFF: not channel-specific)."""

    TYPE: ClassVar[int] = MsgType.FAULT
    _S: ClassVar[struct.Struct] = struct.Struct("<HBBB")
    INFO: ClassVar[int] = 0
    WARNING: ClassVar[int] = 1
    ERROR: ClassVar[int] = 2

    code: int = 0
    severity: int = 0
    channel: int = 0xFF
    text: str = ""

    def pack(self) -> bytes:
        text = self.text.encode("ascii")[:MAX_TEXT]
        return self._S.pack(self.code, self.severity, self.channel, len(text)) + text

    @classmethod
    def unpack(cls, p: bytes) -> Fault:
        if len(p) < cls._S.size:
            raise ProtocolError("FAULT payload too short")
        code, sev, ch, n = cls._S.unpack_from(p)
        if n > MAX_TEXT or len(p) != cls._S.size + n:
            raise ProtocolError("FAULT text length does not match the payload")
        return cls(code, sev, ch, _text(p[cls._S.size :], "FAULT text"))


@dataclass
class Config:
    """Host -> MCU, acked: the MCU's own watchdog and the safe pose it moves to when the host goes silent."""

    TYPE: ClassVar[int] = MsgType.CONFIG
    _S: ClassVar[struct.Struct] = struct.Struct("<HB")
    watchdog_ms: int = 500  # host silent this long -> MCU applies safe_targets (0: MCU watchdog off)
    safe_targets: tuple[int, ...] = ()  # Q0.16 per channel

    def pack(self) -> bytes:
        n = len(self.safe_targets)
        if n > MAX_CHANNELS:
            raise ValueError(f"{n} channels: at most {MAX_CHANNELS}")
        return self._S.pack(self.watchdog_ms, n) + struct.pack(f"<{n}H", *self.safe_targets)

    @classmethod
    def unpack(cls, p: bytes) -> Config:
        if len(p) < cls._S.size:
            raise ProtocolError("CONFIG payload too short")
        wd, n = cls._S.unpack_from(p)
        if n > MAX_CHANNELS or len(p) != cls._S.size + 2 * n:
            raise ProtocolError(f"CONFIG says {n} channels but carries {len(p) - cls._S.size} bytes")
        return cls(wd, struct.unpack_from(f"<{n}H", p, cls._S.size))


@dataclass
class Ack:
    """Either direction: the reliable message (type, seq) arrived and was handled (status 0) or refused."""

    TYPE: ClassVar[int] = MsgType.ACK
    _S: ClassVar[struct.Struct] = struct.Struct("<BHB")
    OK: ClassVar[int] = 0
    UNSUPPORTED: ClassVar[int] = 1
    BAD_PAYLOAD: ClassVar[int] = 2

    acked_type: int = 0
    acked_seq: int = 0
    status: int = 0

    def pack(self) -> bytes:
        return self._S.pack(self.acked_type, self.acked_seq, self.status)

    @classmethod
    def unpack(cls, p: bytes) -> Ack:
        return cls(*_exact(cls, p))


Message = Hello | Heartbeat | TimeRequest | TimeReply | Actuators | Led | Button | Imu | Fault | Config | Ack
MESSAGES: dict[int, type] = {
    m.TYPE: m for m in (Hello, Heartbeat, TimeRequest, TimeReply, Actuators, Led, Button, Imu, Fault, Config, Ack)
}


def _exact(cls, p: bytes) -> tuple:
    if len(p) != cls._S.size:
        raise ProtocolError(f"{cls.__name__} payload is {len(p)} bytes, expected {cls._S.size}")
    return cls._S.unpack(p)


@dataclass
class Frame:
    seq: int
    message: Message
    version: int = VERSION


def encode_raw(message: Message, seq: int) -> bytes:
    """Header + payload + CRC, before COBS (what the CRC and the golden vectors' `raw` cover)."""
    payload = message.pack()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload {len(payload)} bytes: at most {MAX_PAYLOAD}")
    head = HEADER.pack(VERSION, message.TYPE, seq & 0xFFFF, len(payload)) + payload
    return head + CRC.pack(crc16_ccitt_false(head))


def encode_frame(message: Message, seq: int) -> bytes:
    """The bytes on the wire: COBS(raw) followed by the 0x00 delimiter."""
    return cobs.encode(encode_raw(message, seq)) + b"\x00"


class UnknownTypeError(ProtocolError):
    """A valid frame of a type this version does not know (counted separately: newer peers may send it)."""


class VersionError(ProtocolError):
    """A valid frame of another protocol version."""


class CrcError(ProtocolError):
    """The CRC does not match: bytes were corrupted on the way."""


def decode_raw(raw: bytes) -> Frame:
    """Check the CRC, header and payload of one un-stuffed frame."""
    if len(raw) < HEADER.size + CRC.size:
        raise ProtocolError(f"frame of {len(raw)} bytes is shorter than header + CRC")
    (crc,) = CRC.unpack_from(raw, len(raw) - CRC.size)
    if crc16_ccitt_false(raw[: -CRC.size]) != crc:
        raise CrcError("CRC mismatch")
    version, mtype, seq, length = HEADER.unpack_from(raw)
    if version != VERSION:
        raise VersionError(f"protocol version {version}, this side speaks {VERSION}")
    if length != len(raw) - HEADER.size - CRC.size:
        raise ProtocolError(f"header length {length} but {len(raw) - HEADER.size - CRC.size} payload bytes")
    cls = MESSAGES.get(mtype)
    if cls is None:
        raise UnknownTypeError(f"unknown message type 0x{mtype:02x}")
    return Frame(seq, cls.unpack(raw[HEADER.size : -CRC.size]), version)


def decode_frame(wire: bytes) -> Frame:
    """One frame as on the wire (a trailing 0x00 is allowed)."""
    return decode_raw(cobs.decode(wire[:-1] if wire.endswith(b"\x00") else wire))


@dataclass
class DeframerStats:
    """Every discarded byte run is counted under exactly one reason."""

    frames: int = 0
    cobs_errors: int = 0
    crc_errors: int = 0
    length_errors: int = 0  # header length vs bytes, payload layout
    version_errors: int = 0
    unknown_types: int = 0
    overflows: int = 0  # no delimiter within MAX_WIRE_FRAME bytes: discarded up to the next 0x00
    discarded_bytes: int = 0

    @property
    def errors(self) -> int:
        return (
            self.cobs_errors + self.crc_errors + self.length_errors + self.version_errors
            + self.unknown_types + self.overflows
        )  # fmt: skip


@dataclass
class Deframer:
    """Bytes in any chunking -> whole frames; bad runs are dropped at the next 0x00 and counted."""

    stats: DeframerStats = field(default_factory=DeframerStats)
    _buf: bytearray = field(default_factory=bytearray)
    _skipping: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                return frames
            self._append(data[start:end])
            block, skipping = bytes(self._buf), self._skipping
            self._buf.clear()
            self._skipping = False
            start = end + 1
            if skipping:
                continue
            if block:  # an empty block (0x00 0x00) is a harmless resync
                frame = self._decode(block)
                if frame is not None:
                    frames.append(frame)

    def _append(self, chunk: bytes) -> None:
        if self._skipping:
            self.stats.discarded_bytes += len(chunk)
            return
        self._buf += chunk
        if len(self._buf) >= MAX_WIRE_FRAME:  # the delimiter is not in the buffer
            self.stats.overflows += 1
            self.stats.discarded_bytes += len(self._buf)
            self._buf.clear()
            self._skipping = True

    def _decode(self, block: bytes) -> Frame | None:
        s = self.stats
        try:
            raw = cobs.decode(block)
        except cobs.CobsError:
            s.cobs_errors += 1
            s.discarded_bytes += len(block) + 1
            return None
        try:
            frame = decode_raw(raw)
        except CrcError:
            s.crc_errors += 1
        except VersionError:
            s.version_errors += 1
        except UnknownTypeError:
            s.unknown_types += 1
        except ProtocolError:
            s.length_errors += 1
        else:
            s.frames += 1
            return frame
        s.discarded_bytes += len(block) + 1
        return None
