"""Create CurveZMQ key pairs for streaming off the device: `python -m edge.keys --out keys/`.

Writes ZeroMQ certificate files: NAME.key (public, give it to the other side) and
NAME.key_secret (keep it where it is). Run once for the device (server) and once per renderer
(client); copy client .key files into the folder named by curve.authorized_clients to restrict
who may subscribe.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from latentcast.errors import UserError, run_cli

log = logging.getLogger(__name__)


def create_keys(out_dir: Path, name: str) -> tuple[Path, Path]:
    import zmq.auth

    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / f"{name}.key_secret").exists():
        raise UserError(f"{out_dir / (name + '.key_secret')} already exists: choose another --name or folder")
    public, secret = zmq.auth.create_certificates(str(out_dir), name)
    return Path(public), Path(secret)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the key files")
    parser.add_argument("--name", default="server", help="file name stem (server, or a renderer's name)")
    args = parser.parse_args(argv)
    public, secret = create_keys(args.out, args.name)
    print(f"public key: {public}\nsecret key: {secret}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))


# -- authorisation and exposure, shared by edge.publisher and edge.proxy -------------------------
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints other hosts cannot reach: ipc://, inproc://, tcp on a loopback address."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = endpoint.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def check_exposure(endpoint: str, what: str, secured: bool, insecure: bool, fix: str) -> None:
    """Refuse an off-host endpoint that is not `secured` (CurveZMQ keys, and client keys where a peer could inject),
    unless the user opted in with `insecure`, which is logged loudly every start."""
    if secured or is_local_endpoint(endpoint):
        return
    if not insecure:
        raise UserError(f"{what} {endpoint} is reachable from other hosts without CurveZMQ: {fix}")
    log.warning("INSECURE: %s %s is open to the network without CurveZMQ (insecure opt-in): anyone who can reach "
                "it can read or inject messages", what, endpoint)  # fmt: skip


class CurveGate:
    """The one ZAP authenticator of a ZeroMQ context, with a client-key allow list per ZAP domain.

    Why one: ZAP is a single inproc endpoint per context, so a second authenticator (say, one for
    the latent socket and one for the preview socket) fails to bind and crashes the edge. Every
    CURVE server socket of the context registers its domain here: `allow(domain, folder)` admits the
    client keys in `folder` (ZeroMQ .key certificates), `allow(domain, None)` any client that holds
    the server's public key. Reference-counted: the authenticator stops with its last socket.
    """

    _gates: ClassVar[dict[int, CurveGate]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, context) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.context = context
        self.domains: dict[str, set[bytes] | None] = {}
        self.users = 0
        self.auth = ThreadAuthenticator(context, log=logging.getLogger("edge.zap"))
        self.auth.start()

    @classmethod
    def acquire(cls, context, domain: str, clients_dir: str | Path | None) -> CurveGate:
        """Register `domain` (see the class docstring) on `context`'s gate, starting it if needed."""
        keys = None
        if clients_dir is not None:
            import zmq.auth

            keys = set(zmq.auth.load_certificates(str(clients_dir)))
            if not keys:
                raise UserError(f"authorized clients folder {clients_dir} holds no .key files: copy the clients' keys")
        with cls._lock:
            gate = cls._gates.get(id(context))
            if gate is None:
                gate = cls._gates[id(context)] = cls(context)
            if domain in gate.domains and gate.domains[domain] != keys:
                raise UserError(f"two different client lists for ZAP domain {domain!r}: use one authorized folder")
            gate.domains[domain] = keys
            gate.auth.configure_curve_callback(domain, gate)  # pyzmq looks providers up by the socket's domain
            gate.users += 1
            return gate

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users == 0:
                self._gates.pop(id(self.context), None)
                self.auth.stop()

    def callback(self, domain: str, client_key: bytes) -> bool:
        """pyzmq's credentials-provider hook: may this client key connect to a socket of `domain`?"""
        if domain not in self.domains:
            log.warning("CurveZMQ client refused: unknown ZAP domain %r", domain)
            return False
        keys = self.domains[domain]
        allowed = keys is None or client_key in keys
        if not allowed:
            log.warning("CurveZMQ client %s refused on %s: not in the authorized keys", client_key.decode(), domain)
        return allowed


def curve_server(socket, public: bytes, secret: bytes, domain: str, clients_dir: str | Path | None) -> CurveGate:
    """Make `socket` a CURVE server admitting the clients of `clients_dir` (None: any); call before bind."""
    gate = CurveGate.acquire(socket.context, domain, clients_dir)
    socket.zap_domain = domain.encode()
    socket.curve_server = True
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    return gate
