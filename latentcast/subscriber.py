"""A small subscriber for renderers: the newest latent message, never a queue of stale ones.

Why latest-value: a renderer draws at its own rate; if it fell behind and read a queue it would
animate the past. The SUB socket is CONFLATE (and RCVHWM=1), so ZeroMQ itself keeps only the
newest frame, and `latest()` never blocks. Malformed or other-version messages are counted and
logged (once per kind, then every 1000th), never raised into the render loop.

    with LatentSubscriber("tcp://jetson.local:5555") as sub:
        while running:
            msg = sub.latest()          # LatentMessage or None if nothing new
            ...

pyzmq is imported lazily so `latentcast` stays numpy-only for those who just parse bytes.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from latentcast.protocol import (
    TOPIC_LATENTS,
    TOPIC_PREVIEW,
    LatentMessage,
    PreviewMessage,
    ProtocolError,
    ProtocolValueError,
    ProtocolVersionError,
    decode_latents,
    decode_preview,
)

log = logging.getLogger(__name__)


@dataclass
class CurveClientKeys:
    """CurveZMQ client side: the server's public key plus this client's key pair (Z85 bytes)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def from_files(cls, server_public_file: str | Path, client_secret_file: str | Path) -> CurveClientKeys:
        """Load keys written by `python -m edge.keys` (ZeroMQ certificate files)."""
        import zmq.auth

        from latentcast.errors import UserError

        for what, path in (("server public key", server_public_file), ("client secret key", client_secret_file)):
            if not Path(path).is_file():
                raise UserError(f"CurveZMQ {what} {path} not found: pass the file made by `python -m edge.keys`")
        try:
            server_public, _ = zmq.auth.load_certificate(str(server_public_file))
            client_public, client_secret = zmq.auth.load_certificate(str(client_secret_file))
        except (ValueError, OSError) as exc:
            raise UserError(f"not a ZeroMQ key file ({exc}): pass the files made by `python -m edge.keys`") from None
        if client_secret is None:
            raise UserError(f"{client_secret_file} holds no secret key: pass the .key_secret file")
        return cls(server_public, client_public, client_secret)


@dataclass
class SubscriberStats:
    received: int = 0
    malformed: int = 0
    wrong_version: int = 0
    invalid_values: int = 0  # well-formed but a value outside its valid range (NaN, Inf, huge): dropped


class LatentSubscriber:
    """SUB socket on one topic with latest-value semantics; counts what it had to reject."""

    def __init__(
        self,
        endpoint: str,
        topic: bytes = TOPIC_LATENTS,
        curve: CurveClientKeys | None = None,
        context=None,
        conflate: bool = True,
    ) -> None:
        """conflate=False for several devices behind one proxy: CONFLATE would keep only the newest
        message of ALL devices; then use `latest_per_source()` (RCVHWM stays small, so still no backlog)."""
        import zmq

        if topic not in (TOPIC_LATENTS, TOPIC_PREVIEW):
            raise ValueError(f"topic must be {TOPIC_LATENTS!r} or {TOPIC_PREVIEW!r}")
        self._zmq = zmq
        self._decode = decode_latents if topic == TOPIC_LATENTS else decode_preview
        self.stats = SubscriberStats()
        self._owns_context = context is None
        self._context = context or zmq.Context()
        self.socket = self._context.socket(zmq.SUB)
        # CONFLATE must be set before connect; it keeps one single-part message, the newest.
        if conflate:
            self.socket.setsockopt(zmq.CONFLATE, 1)
            self.socket.setsockopt(zmq.RCVHWM, 1)
        else:
            self.socket.setsockopt(zmq.RCVHWM, 16)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self.socket.curve_serverkey = curve.server_public
            self.socket.curve_publickey = curve.client_public
            self.socket.curve_secretkey = curve.client_secret
        self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        self.socket.connect(endpoint)

    def _parse(self, frame: bytes) -> LatentMessage | PreviewMessage | None:
        try:
            msg = self._decode(frame)
        except ProtocolVersionError as exc:
            self.stats.wrong_version += 1
            if self.stats.wrong_version % 1000 == 1:
                log.warning("dropped %d message(s) of another protocol version: %s", self.stats.wrong_version, exc)
            return None
        except ProtocolValueError as exc:
            self.stats.invalid_values += 1
            if self.stats.invalid_values % 1000 == 1:
                log.warning("dropped %d message(s) with invalid values: %s", self.stats.invalid_values, exc)
            return None
        except ProtocolError as exc:
            self.stats.malformed += 1
            if self.stats.malformed % 1000 == 1:
                log.warning("dropped %d malformed message(s): %s", self.stats.malformed, exc)
            return None
        self.stats.received += 1
        return msg

    def _drain(self):
        """Every valid message waiting in the socket, oldest first, without blocking."""
        while True:
            try:
                frame = self.socket.recv(self._zmq.NOBLOCK)
            except self._zmq.Again:
                return
            msg = self._parse(frame)
            if msg is not None:
                yield msg

    def latest(self):
        """The newest valid message received since the last call, or None. Never blocks."""
        last = deque(self._drain(), maxlen=1)
        return last[0] if last else None

    def latest_per_source(self) -> dict:
        """{source_id: newest message} of everything received since the last call. Never blocks."""
        return {msg.source_id: msg for msg in self._drain()}

    def recv(self, timeout_ms: int):
        """Wait up to timeout_ms for the next valid message; None on timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            left_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.socket.poll(left_ms, self._zmq.POLLIN):
                return None
            msg = self._parse(self.socket.recv())
            if msg is not None:
                return msg

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._owns_context:
            self._context.term()

    def __enter__(self) -> LatentSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
