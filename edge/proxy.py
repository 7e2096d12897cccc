"""Several devices into one renderer: `python -m edge.proxy --device tcp://jetson1:5555 --device tcp://jetson2:5555`.

Each edge binds its own PUB; the proxy's XSUB connects to every device (and/or binds
`--frontend` for publishers that connect to it), and its XPUB binds `--backend` where renderers
subscribe. Messages carry their source id, so the renderer tells the devices apart.
Subscriptions travel upstream, so each device still only sends what someone wants.

CurveZMQ on both sides (`--curve-secret`, the proxy's key pair from `python -m edge.keys`):
- backend: the proxy is the CURVE server renderers connect to (they pass its public key);
  `--authorized-clients DIR` admits only the renderer keys in DIR.
- frontend: the proxy is the CURVE server publishers connect to; `--authorized-devices DIR` is
  required there, otherwise any host holding the (public) server key could inject messages with
  a spoofed source id.
- `--device`: the proxy is a CURVE client of each device; `--device-key` (one per `--device`, in
  order) is that device's public key, and the device's `curve.authorized_clients` must hold the
  proxy's public key.

Endpoints other hosts can reach are refused without keys unless `--insecure` (logged loudly), as
on the edge (`edge.keys.check_exposure`). The default backend is this host only.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge.keys import CurveGate, check_exposure, curve_server
from latentcast.errors import UserError, run_cli

log = logging.getLogger("edge.proxy")  # not __name__: "__main__" under python -m

DEFAULT_BACKEND = "tcp://127.0.0.1:5561"


@dataclass
class ProxyConfig:
    """What `python -m edge.proxy` runs: device endpoints in, one renderer endpoint out, and their keys."""

    devices: list[str] = field(default_factory=list)  # edge PUB endpoints the XSUB connects to
    device_keys: list[Path] = field(default_factory=list)  # each device's public .key (CurveZMQ), same order
    frontend: str | None = None  # endpoint the XSUB binds, for publishers that connect
    backend: str = DEFAULT_BACKEND  # endpoint the XPUB binds, where renderers subscribe
    curve_secret: Path | None = None  # the proxy's .key_secret: server on both sides, client towards devices
    authorized_devices: Path | None = None  # client keys allowed to publish into the frontend
    authorized_clients: Path | None = None  # client keys allowed to subscribe at the backend (None: any)
    insecure: bool = False  # allow off-host endpoints without CurveZMQ (logged loudly)

    def check(self) -> None:
        """Every refusal before a socket opens, each one line naming the fix."""
        if not self.devices and not self.frontend:
            raise UserError("no devices: pass --device tcp://HOST:PORT (repeatable) and/or --frontend tcp://*:PORT")
        curve = self.curve_secret is not None
        if not curve and (self.device_keys or self.authorized_devices or self.authorized_clients):
            raise UserError("--device-key and --authorized-* need --curve-secret (the proxy's .key_secret)")
        if curve and self.devices and len(self.device_keys) != len(self.devices):
            raise UserError(
                f"{len(self.devices)} --device but {len(self.device_keys)} --device-key: give each device's public "
                "key, in the same order"
            )
        for endpoint in self.devices:
            check_exposure(endpoint, "device", curve, self.insecure, "pass --curve-secret and --device-key")
        if self.frontend:
            fix = "pass --curve-secret and --authorized-devices DIR (the publishers' .key files)"
            check_exposure(self.frontend, "frontend", curve and self.authorized_devices is not None, self.insecure, fix)
        check_exposure(self.backend, "backend", curve, self.insecure, "pass --curve-secret (python -m edge.keys)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge.proxy", description=__doc__.splitlines()[0])
    p.add_argument("--device", action="append", default=[], help="edge PUB endpoint to connect to (repeat)")
    p.add_argument("--device-key", action="append", default=[], type=Path, help="that device's public .key (repeat)")
    p.add_argument("--frontend", default=None, help="endpoint to bind for publishers that connect (optional)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, help="endpoint renderers subscribe to")
    p.add_argument("--curve-secret", type=Path, help="CurveZMQ: the proxy's .key_secret (python -m edge.keys)")
    p.add_argument("--authorized-devices", type=Path, help="folder of publisher .key files allowed into --frontend")
    p.add_argument("--authorized-clients", type=Path, help="folder of renderer .key files allowed at --backend")
    p.add_argument("--insecure", action="store_true", help="allow off-host endpoints without CurveZMQ (dev only)")
    return p


def config_from_args(args: argparse.Namespace) -> ProxyConfig:
    return ProxyConfig(
        devices=args.device,
        device_keys=args.device_key,
        frontend=args.frontend,
        backend=args.backend,
        curve_secret=args.curve_secret,
        authorized_devices=args.authorized_devices,
        authorized_clients=args.authorized_clients,
        insecure=args.insecure,
    )


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path.is_file():
        raise UserError(f"key file {path} not found: create keys with `python -m edge.keys --out DIR`")
    public, secret_key = zmq.auth.load_certificate(str(path))
    if secret and secret_key is None:
        raise UserError(f"{path} holds no secret key: pass the proxy's .key_secret file")
    return public, secret_key


def run(cfg: ProxyConfig) -> int:
    """Open the sockets and forward until interrupted."""
    import zmq

    cfg.check()
    context = zmq.Context.instance()
    xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
    gates: list[CurveGate] = []
    for sock in (xsub, xpub):
        sock.setsockopt(zmq.LINGER, 0)
    # Latest-value all the way: a slow renderer must not grow the proxy either.
    xpub.setsockopt(zmq.SNDHWM, 2)
    xsub.setsockopt(zmq.RCVHWM, 2)
    try:
        if cfg.curve_secret is not None:
            public, secret = _load(cfg.curve_secret, secret=True)
            for endpoint, key_file in zip(cfg.devices, cfg.device_keys, strict=True):
                # One XSUB connects to every device: each connect takes the options set at that moment
                # (this device's server key, client role), so the connects come before the server role below.
                xsub.curve_serverkey = _load(key_file, secret=False)[0]
                xsub.curve_publickey, xsub.curve_secretkey = public, secret
                xsub.connect(endpoint)
            gates.append(curve_server(xpub, public, secret, "renderers", cfg.authorized_clients))
            if cfg.frontend:
                gates.append(curve_server(xsub, public, secret, "devices", cfg.authorized_devices))
        else:
            for endpoint in cfg.devices:
                xsub.connect(endpoint)
        if cfg.frontend:
            xsub.bind(cfg.frontend)
        xpub.bind(cfg.backend)
    except zmq.ZMQError as exc:
        _close(xsub, xpub, gates)
        raise UserError(f"proxy endpoint problem: {exc}: check --device/--frontend/--backend") from None
    except BaseException:
        _close(xsub, xpub, gates)
        raise
    secured = "CurveZMQ" if cfg.curve_secret else "no encryption"
    log.info("proxy (%s): %s -> %s", secured, cfg.devices + ([cfg.frontend] if cfg.frontend else []), cfg.backend)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if _main_thread() else None
    dropped = 0
    try:
        dropped = forward(xsub, xpub, stop)
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _close(xsub, xpub, gates)
    log.info("proxy stopped (%d message(s) dropped at a full queue)", dropped)
    return 0


def forward(xsub, xpub, stop: threading.Event, poll_ms: int = 200) -> int:
    """XSUB <-> XPUB until `stop` is set: data downstream, subscriptions upstream, never blocking.

    Not `zmq.proxy`: that blocks inside libzmq, and a SIGINT delivered to another thread (the ZAP
    authenticator's) would then never wake it. Polling with a timeout keeps signals and `stop` prompt.
    Returns how many messages were dropped because a queue was full (latest value wins, as on a PUB).
    """
    import zmq

    poller = zmq.Poller()
    poller.register(xsub, zmq.POLLIN)
    poller.register(xpub, zmq.POLLIN)
    dropped = 0
    while not stop.is_set():
        for sock, _ in poller.poll(poll_ms):
            other = xpub if sock is xsub else xsub
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    other.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    dropped += 1
    return dropped


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _close(xsub, xpub, gates: list[CurveGate]) -> None:
    xsub.close(linger=0)
    xpub.close(linger=0)
    for gate in gates:
        gate.release()


def main(argv: Sequence[str] | None = None) -> int:
    return run(config_from_args(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(run_cli(main))
