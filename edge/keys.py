"""Create CurveZMQ key pairs for streaming off the device: `python -m edge.keys --out keys/`.

Writes ZeroMQ certificate files: NAME.key (public, give it to the other side) and
NAME.key_secret (keep it where it is). Run once for the device (server) and once per renderer
(client); copy client .key files into the folder named by curve.authorized_clients to restrict
who may subscribe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from latentcast.errors import UserError, run_cli


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
