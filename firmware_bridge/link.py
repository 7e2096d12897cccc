"""The host end of the microcontroller link: one port by URI, two threads, never blocking the caller.

    link = SerialLink(LinkConfig("serial:///dev/ttyTHS1?baud=1000000")); link.start()
    link.set_targets(targets_q16, capture_us)   # from the edge or render loop: a slot write, never I/O
    link.send_reliable(Led(0, Led.ON, 0, 255, 0))

The reader thread owns the connection: it opens the port (reconnecting with exponential backoff when
it disappears), resynchronises on bad bytes (counted in `deframer.stats`), answers the MCU's reliable
messages with ACKs, keeps the heartbeat watchdog and the time-sync estimate. The writer thread owns
every write: ACKs and reliable commands first (retried until acked), then heartbeats and time-sync
requests, then the newest actuator frame only (a value replaced before it went out is counted as
superseded, never queued), paced to the wire time at the URI's baud so the OS transmit buffer holds
no backlog of stale targets either. A stalled port stalls the writer thread alone.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from firmware_bridge.protocol import (
    RELIABLE,
    Ack,
    Actuators,
    Button,
    Config,
    Deframer,
    Fault,
    Frame,
    Heartbeat,
    Hello,
    Imu,
    Message,
    TimeReply,
    TimeRequest,
    encode_frame,
)
from latentcast.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_BAUD = 1_000_000


def parse_serial_uri(uri: str) -> tuple[str, int]:
    """`serial:///dev/ttyTHS1?baud=1000000` -> ("/dev/ttyTHS1", 1000000); baud defaults to 1 Mbaud."""
    parts = urlsplit(uri)
    if parts.scheme != "serial" or parts.netloc or not parts.path.startswith("/"):
        raise UserError(f"serial URI {uri!r}: write serial:///dev/ttyACM0 or serial:///dev/ttyTHS1?baud=1000000")
    query = parse_qs(parts.query)
    unknown = set(query) - {"baud"}
    if unknown:
        raise UserError(f"serial URI {uri!r}: unknown option {sorted(unknown)[0]!r} (only baud=N is known)")
    try:
        baud = int(query.get("baud", [DEFAULT_BAUD])[0])
    except ValueError:
        raise UserError(f"serial URI {uri!r}: baud must be a whole number, e.g. ?baud=115200") from None
    if baud <= 0:
        raise UserError(f"serial URI {uri!r}: baud must be positive")
    return parts.path, baud


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass
class LinkConfig:
    uri: str
    heartbeat_period_s: float = 0.1
    heartbeat_timeout_s: float = 0.5  # MCU silent this long: link down, actuators go to the safe pose
    retry_s: float = 0.05  # reliable commands: resend after this long without an ACK
    max_tries: int = 10
    essential_retry_s: float = 1.0  # HELLO and CONFIG start over at this pace after max_tries
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 2.0
    time_sync_period_s: float = 1.0
    write_timeout_s: float = 0.05  # the writer thread's limit per write; the caller never waits
    read_timeout_s: float = 0.02


class Pending:
    """A reliable command in flight: `wait()` for the ACK if you want to (the loop never does)."""

    def __init__(self, message: Message, seq: int) -> None:
        self.message, self.seq = message, seq
        self.tries = 0
        self.due = 0.0
        self.status: int | None = None  # Ack status, or -1 when given up
        self._done = threading.Event()

    def finish(self, status: int) -> None:
        self.status = status
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True when acknowledged with status OK."""
        return self._done.wait(timeout) and self.status == Ack.OK

    @property
    def done(self) -> bool:
        return self._done.is_set()


@dataclass
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    open_failures: int = 0
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    heartbeats: int = 0
    watchdog_trips: int = 0
    actuator_updates: int = 0  # set_targets calls
    actuator_sent: int = 0
    actuator_superseded: int = 0  # replaced by a newer value before the writer got to it
    reliable_sent: int = 0
    retries: int = 0
    reliable_failed: int = 0
    acks_sent: int = 0
    duplicates: int = 0
    write_stalls: int = 0
    callback_errors: int = 0
    unexpected: int = 0  # valid frames of a type the host does not expect from an MCU
    mcu_reboots: int = 0  # unasked MCU HELLOs (CONFIG is sent again)


@dataclass
class TimeSync:
    """Offset and round trip from the last few exchanges; the minimum-RTT sample is the best one."""

    samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=8))
    rtts_us: list[float] = field(default_factory=list)  # every round trip, for the benchmark

    def add(self, offset_us: float, rtt_us: float) -> None:
        self.samples.append((rtt_us, offset_us))
        self.rtts_us.append(rtt_us)
        if len(self.rtts_us) > 10000:
            del self.rtts_us[:5000]

    @property
    def offset_us(self) -> float | None:
        return min(self.samples)[1] if self.samples else None

    @property
    def rtt_us(self) -> float | None:
        return min(self.samples)[0] if self.samples else None

    def to_mcu_us(self, host_us: int) -> int | None:
        """A host monotonic time on the MCU's clock (e.g. a capture timestamp), once synced."""
        off = self.offset_us
        return None if off is None else int(host_us + off)


class SerialLink:
    """See the module docstring. Thread-safe; callbacks run on the reader thread and must be quick."""

    def __init__(self, config: LinkConfig) -> None:
        self.config = config
        self.path, self.baud = parse_serial_uri(config.uri)
        try:
            import serial  # noqa: F401  (checked here so a missing install is one clear error, not a dead thread)
        except ImportError:
            raise UserError("the serial link needs pyserial: pip install pyserial==3.5 (extra: firmware)") from None
        self.stats = LinkStats()
        self.deframer = Deframer()
        self.time = TimeSync()
        self.mcu: Hello | None = None  # the MCU's capabilities (its HELLO)
        self.mcu_state: int | None = None
        self.mcu_rx_errors = 0
        self.imu: Imu | None = None  # latest sample
        self.faults: collections.deque[Fault] = collections.deque(maxlen=32)
        self.on_button: list[Callable[[Button], None]] = []
        self.on_fault: list[Callable[[Fault], None]] = []
        self.on_alive: list[Callable[[bool], None]] = []
        self._cond = threading.Condition()
        self._port = None
        self._stop = threading.Event()
        self._seq = 0
        self._pending: dict[int, Pending] = {}
        self._control: collections.deque[bytes] = collections.deque(maxlen=256)  # ACKs to send
        self._latest: Actuators | None = None
        self._latest_fresh = False
        self._latest_in_flight: Actuators | None = None  # writer thread: the actuator frame in this write
        self._config_msg: Config | None = None
        self._hello: Pending | None = None
        self._last_heartbeat = float("-inf")
        self._alive = False
        self._wd_lock = threading.Lock()
        self._seen: collections.deque[tuple[int, int]] = collections.deque(maxlen=16)
        self._need_delimiter = False
        self._wire_free_at = 0.0  # writer thread: when the UART will have sent everything written so far
        self._threads: list[threading.Thread] = []

    # ---- the caller's side: none of these touch the port ----

    def start(self) -> SerialLink:
        for name, target in (("serial-reader", self._read_loop), ("serial-writer", self._write_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def set_targets(self, targets: tuple[int, ...], capture_us: int = 0) -> None:
        """Replace the actuator slot with the newest Q0.16 targets. Never blocks on I/O.

        `capture_us`: the camera frame's capture time on this host's monotonic clock (0: unknown); the
        writer converts it to the MCU's clock with the time-sync offset.
        """
        with self._cond:
            if self._latest_fresh:
                self.stats.actuator_superseded += 1
            self._latest = Actuators(capture_us, tuple(targets))
            self._latest_fresh = True
            self.stats.actuator_updates += 1
            self._cond.notify()

    def send_reliable(self, message: Message) -> Pending:
        """Queue a command that must arrive (LED, CONFIG): retried until acked or max_tries."""
        if message.TYPE not in RELIABLE:
            raise ValueError(f"{type(message).__name__} is not a reliable message type")
        with self._cond:
            pending = Pending(message, self._next_seq())
            self._pending[pending.seq] = pending
            self._cond.notify()
        return pending

    def configure(self, config: Config) -> Pending:
        """Send the MCU's watchdog and safe pose now and again after every reconnect."""
        with self._cond:
            self._config_msg = config
        return self.send_reliable(config)

    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def alive(self) -> bool:
        """Connected and the MCU's heartbeat is recent (the watchdog's verdict)."""
        return self._check_watchdog()

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=2)
        self._drop_port("closed", expected=True)

    def __enter__(self) -> SerialLink:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- connection ----

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        return seq

    def _open(self) -> bool:
        import serial

        try:
            port = serial.Serial(
                self.path, self.baud, timeout=self.config.read_timeout_s, write_timeout=self.config.write_timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            self.stats.open_failures += 1
            if self.stats.open_failures in (1, 10) or self.stats.open_failures % 100 == 0:
                log.warning("cannot open %s (%s): retrying with backoff", self.path, exc)
            return False
        with self._cond:
            self._port = port
            self.deframer = Deframer(stats=self.deframer.stats)  # keep counting across reconnects
            self._seen.clear()  # the MCU may have restarted its seq counter: old (type, seq) pairs mean nothing
            self.stats.connects += 1
            self._need_delimiter = True  # flush whatever half-frame the MCU saw before us
            self._last_heartbeat = float("-inf")  # alive only once this MCU's heartbeat arrives
            self._hello = Pending(Hello(Hello.ROLE_HOST, firmware_version=0x0100, name="latentcast"), self._next_seq())
            self._pending[self._hello.seq] = self._hello
            for p in self._pending.values():
                p.tries, p.due = 0, 0.0
            if self._config_msg is not None and not any(
                isinstance(p.message, Config) for p in self._pending.values()
            ):
                p = Pending(self._config_msg, self._next_seq())
                self._pending[p.seq] = p
            self._cond.notify_all()
        log.info("connected to %s at %d baud", self.path, self.baud)
        return True

    def _drop_port(self, why: str, expected: bool = False) -> None:
        with self._cond:
            port, self._port = self._port, None
            if port is None:
                return
            self._pending.pop(self._hello.seq if self._hello else -1, None)
            self.mcu = None
            if not expected:
                self.stats.disconnects += 1
        try:
            port.close()
        except OSError as exc:  # closing a port whose device vanished can fail; it is gone either way
            log.debug("closing %s: %s", self.path, exc)
        if not expected:
            log.warning("lost %s (%s): reconnecting", self.path, why)
        self._check_watchdog()

    def _check_watchdog(self) -> bool:
        alive = self._port is not None and time.monotonic() - self._last_heartbeat < self.config.heartbeat_timeout_s
        with self._wd_lock:
            changed, self._alive = alive != self._alive, alive
        if changed and self._stop.is_set():
            return alive  # closing: not a watchdog event
        if changed:
            if not alive:
                self.stats.watchdog_trips += 1
                log.warning("MCU heartbeat lost (> %.2f s): safe pose", self.config.heartbeat_timeout_s)
            else:
                log.info("MCU heartbeat back")
            self._call(self.on_alive, alive)
        return alive

    def _call(self, callbacks: list, arg) -> None:
        for cb in callbacks:
            try:
                cb(arg)
            except Exception:  # a user's callback must not kill the link; counted and logged with traceback
                self.stats.callback_errors += 1
                log.exception("firmware_bridge callback %r failed", cb)

    # ---- reader thread ----

    def _read_loop(self) -> None:
        import serial

        backoff = self.config.reconnect_min_s
        while not self._stop.is_set():
            port = self._port
            if port is None:
                if self._open():
                    backoff = self.config.reconnect_min_s
                else:
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.config.reconnect_max_s)
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:  # TypeError: pyserial on a closed fd
                self._drop_port(f"read failed: {exc}")
                continue
            if data:
                self.stats.bytes_in += len(data)
                for frame in self.deframer.feed(data):
                    self._handle(frame)
            self._check_watchdog()

    def _handle(self, frame: Frame) -> None:
        m = frame.message
        self.stats.frames_in += 1
        if isinstance(m, Heartbeat):
            self.stats.heartbeats += 1
            self._last_heartbeat = time.monotonic()
            self.mcu_state, self.mcu_rx_errors = m.state, m.rx_errors
            return
        if isinstance(m, TimeReply):
            offset, rtt = m.estimate(monotonic_us())
            self.time.add(offset, rtt)
            return
        if isinstance(m, Imu):
            self.imu = m
            return
        if isinstance(m, Ack):
            with self._cond:
                p = self._pending.get(m.acked_seq)
                if p is not None and m.acked_type == p.message.TYPE:
                    del self._pending[m.acked_seq]
                    p.finish(m.status)
            return
        if isinstance(m, Hello):
            if m.role == Hello.ROLE_MCU:
                self.mcu = m
                with self._cond:
                    if self._hello is not None and self._pending.pop(self._hello.seq, None) is not None:
                        self._hello.finish(Ack.OK)
                    else:  # an unasked HELLO: the MCU rebooted behind a port that stayed open
                        self.stats.mcu_reboots += 1
                        self._seen.clear()  # its seq counter restarted
                        if self._config_msg is not None and not any(
                            isinstance(p.message, Config) for p in self._pending.values()
                        ):  # configure it again
                            p = Pending(self._config_msg, self._next_seq())
                            self._pending[p.seq] = p
                            self._cond.notify()
            return
        if isinstance(m, Button | Fault):
            with self._cond:
                self._control.append(encode_frame(Ack(m.TYPE, frame.seq, Ack.OK), self._next_seq()))
                self._cond.notify()
            key = (m.TYPE, frame.seq)
            if key in self._seen:
                self.stats.duplicates += 1
                return
            self._seen.append(key)
            if isinstance(m, Fault):
                self.faults.append(m)
                log.warning("MCU fault %d (severity %d, channel %d): %s", m.code, m.severity, m.channel, m.text)
                self._call(self.on_fault, m)
            else:
                self._call(self.on_button, m)
            return
        self.stats.unexpected += 1

    # ---- writer thread ----

    def _next_write(self, now: float, next_hb: float, next_sync: float) -> tuple[list[bytes], float | None]:
        """Under the lock: what to write now, or how long to sleep."""
        out: list[bytes] = []
        while self._control:
            out.append(self._control.popleft())
            self.stats.acks_sent += 1
        wake = min(next_hb, next_sync) - now
        for p in list(self._pending.values()):
            if p.due <= now:
                if p.tries >= self.config.max_tries:
                    del self._pending[p.seq]
                    self.stats.reliable_failed += 1
                    log.warning("%s seq %d not acknowledged after %d tries", type(p.message).__name__, p.seq, p.tries)
                    p.finish(-1)
                    if p is self._hello or (self._config_msg is not None and p.message is self._config_msg):
                        # The handshake and the MCU's safety configuration are never abandoned while
                        # connected: try again, slowly, under a new seq.
                        again = Pending(p.message, self._next_seq())
                        again.due = now + self.config.essential_retry_s
                        self._pending[again.seq] = again
                        if p is self._hello:
                            self._hello = again
                        wake = min(wake, self.config.essential_retry_s)
                    continue
                if p.tries:
                    self.stats.retries += 1
                else:
                    self.stats.reliable_sent += 1
                p.tries += 1
                p.due = now + self.config.retry_s
                out.append(encode_frame(p.message, p.seq))
            wake = min(wake, p.due - now)
        if self._latest_fresh and self._latest is not None:
            if now >= self._wire_free_at:
                # On the wire, capture_us is on the MCU's clock (time sync); 0 until the first TIME_REPLY.
                mcu_us = self.time.to_mcu_us(self._latest.capture_us) if self._latest.capture_us else None
                wire_msg = Actuators(max(0, mcu_us or 0), self._latest.targets)
                out.append(encode_frame(wire_msg, self._next_seq()))
                self._latest_fresh = False
                self._latest_in_flight = self._latest
                self.stats.actuator_sent += 1
            else:  # the UART is still busy with earlier bytes: wait, and let newer values replace this one
                wake = min(wake, self._wire_free_at - now)
        return out, (None if out else max(wake, 0.0))

    def _write_loop(self) -> None:
        import serial

        next_hb = next_sync = 0.0
        while not self._stop.is_set():
            with self._cond:
                self._latest_in_flight = None
                port = self._port
                if port is None:
                    self._cond.wait(0.05)
                    continue
                now = time.monotonic()
                frames, sleep = self._next_write(now, next_hb, next_sync)
                if sleep is not None and now < next_hb and now < next_sync:
                    self._cond.wait(min(sleep, 0.05))
                    continue
                if now >= next_hb:
                    frames.append(encode_frame(Heartbeat(int(now * 1000), Heartbeat.OK, self.deframer.stats.errors),
                                               self._next_seq()))  # fmt: skip
                    next_hb = now + self.config.heartbeat_period_s
                if now >= next_sync:
                    frames.append(encode_frame(TimeRequest(monotonic_us()), self._next_seq()))
                    next_sync = now + self.config.time_sync_period_s
                if self._need_delimiter:
                    frames.insert(0, b"\x00")
                    self._need_delimiter = False
            data = b"".join(frames)
            try:
                port.write(data)
            except serial.SerialTimeoutException:
                self.stats.write_stalls += 1
                self._need_delimiter = True  # a partial frame may be on the wire: end it before the next
                with self._cond:  # the newest targets may not have gone out whole: send them again
                    if self._latest_in_flight is not None and not self._latest_fresh:
                        self._latest_fresh = True
                        self.stats.actuator_sent -= 1
                    self._latest_in_flight = None
                continue
            except (serial.SerialException, OSError, TypeError) as exc:
                self._drop_port(f"write failed: {exc}")
                continue
            self.stats.frames_out += len(frames)
            self.stats.bytes_out += len(data)
            # Pace actuator frames to what the wire carries at this baud (8N1: 10 bits a byte), so the
            # OS transmit buffer never holds a queue of stale targets.
            self._wire_free_at = max(self._wire_free_at, now) + len(data) * 10 / self.baud
