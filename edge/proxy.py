"""Several devices into one renderer: `python -m edge.proxy --device tcp://jetson1:5555 --device tcp://jetson2:5555`.

Each edge binds its own PUB; the proxy's XSUB connects to every device (and/or binds
`--frontend` for devices that connect to it), and its XPUB binds `--backend` where renderers
subscribe. Messages carry their source id, so the renderer tells the devices apart.
Subscriptions travel upstream, so each device still only sends what someone wants.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from latentcast.errors import UserError, run_cli

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    import zmq

    parser = argparse.ArgumentParser(description="XSUB/XPUB proxy: several edge devices into one renderer endpoint")
    parser.add_argument("--device", action="append", default=[], help="edge PUB endpoint to connect to (repeat)")
    parser.add_argument("--frontend", default=None, help="endpoint to bind for devices that connect (optional)")
    parser.add_argument("--backend", default="tcp://*:5561", help="endpoint renderers subscribe to")
    args = parser.parse_args(argv)
    if not args.device and not args.frontend:
        raise UserError("no devices: pass --device tcp://HOST:PORT (repeatable) and/or --frontend tcp://*:PORT")
    context = zmq.Context.instance()
    xsub, xpub = context.socket(zmq.XSUB), context.socket(zmq.XPUB)
    for sock in (xsub, xpub):
        sock.setsockopt(zmq.LINGER, 0)
    # Latest-value all the way: a slow renderer must not grow the proxy either.
    xpub.setsockopt(zmq.SNDHWM, 2)
    xsub.setsockopt(zmq.RCVHWM, 2)
    try:
        for endpoint in args.device:
            xsub.connect(endpoint)
        if args.frontend:
            xsub.bind(args.frontend)
        xpub.bind(args.backend)
    except zmq.ZMQError as exc:
        raise UserError(f"proxy endpoint problem: {exc}: check --device/--frontend/--backend") from None
    log.info("proxy: %s -> %s", args.device + ([args.frontend] if args.frontend else []), args.backend)
    try:
        zmq.proxy(xsub, xpub)
    except (KeyboardInterrupt, zmq.ContextTerminated):
        pass
    finally:
        xsub.close(linger=0)
        xpub.close(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
