"""ZeroMQ PUB for latents (and the optional preview), built so it can never stall the edge loop.

Why these options: PUB drops instead of blocking when a subscriber is slow, CONFLATE keeps only
the newest message per subscriber (so a slow or absent renderer costs no memory), SNDHWM is small
for the same reason, LINGER 0 so shutdown never waits on the network. Sends are NOBLOCK; a send
that would block is counted, never retried. Latents and previews go on separate sockets because
CONFLATE would otherwise let a big preview replace a latent in the per-subscriber queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import zmq

from edge.keys import check_exposure, curve_server
from latentcast.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class CurveServerKeys:
    """CurveZMQ server side: this device's key pair, and optionally the client keys allowed in."""

    public: bytes
    secret: bytes
    authorized_clients_dir: Path | None = None

    @classmethod
    def from_files(cls, secret_file: str | Path, authorized_clients_dir: str | Path | None = None) -> CurveServerKeys:
        import zmq.auth

        path = Path(secret_file)
        if not path.is_file():
            raise UserError(f"curve secret key {path} not found: create one with `python -m edge.keys --out DIR`")
        public, secret = zmq.auth.load_certificate(str(path))
        if secret is None:
            raise UserError(f"{path} holds no secret key: pass the server's .key_secret file")
        clients = Path(authorized_clients_dir) if authorized_clients_dir else None
        if clients is not None and not clients.is_dir():
            raise UserError(f"authorized clients folder {clients} not found: put the clients' .key files there")
        return cls(public, secret, clients)


@dataclass
class PublisherStats:
    sent: int = 0
    would_block: int = 0
    bytes_sent: int = 0


@dataclass
class Publisher:
    """Bind one PUB socket; `send(frame)` returns at once whatever the subscribers do."""

    endpoint: str
    curve: CurveServerKeys | None = None
    sndhwm: int = 2
    insecure: bool = False  # allow an off-host endpoint without CurveZMQ (logged loudly; edge.keys.check_exposure)
    stats: PublisherStats = field(default_factory=PublisherStats)

    def __post_init__(self) -> None:
        check_exposure(
            self.endpoint,
            "stream endpoint",
            secured=self.curve is not None,
            insecure=self.insecure,
            fix="set curve.server_secret_key (python -m edge.keys), bind 127.0.0.1 or set stream.insecure = true",
        )
        self._context = zmq.Context.instance()
        self._gate = None
        self.socket = self._context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, self.sndhwm)
        self.socket.setsockopt(zmq.CONFLATE, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            # One ZAP authenticator per context, shared by the latent and preview sockets (edge.keys.CurveGate).
            clients = self.curve.authorized_clients_dir
            self._gate = curve_server(self.socket, self.curve.public, self.curve.secret, "edge", clients)
        try:
            self.socket.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise UserError(f"cannot bind {self.endpoint}: {exc}: pick another stream.endpoint / --endpoint") from None
        # tcp://*:0 style endpoints get a real port: report the one actually bound.
        self.bound_endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, frame: bytes) -> bool:
        try:
            self.socket.send(frame, zmq.NOBLOCK)
        except zmq.Again:
            self.stats.would_block += 1
            return False
        self.stats.sent += 1
        self.stats.bytes_sent += len(frame)
        return True

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._gate is not None:
            self._gate.release()
            self._gate = None
