"""The edge service: `python -m edge.run --source csi://0 --bundle BUNDLE --endpoint tcp://127.0.0.1:5555`.

Reads the TOML config (`--config`, defaults in edge/default.toml), lets the common flags override
it, builds capture -> MediaPipe -> encoders -> publisher, and runs until the source ends,
`--frames N` frames were published, or SIGINT/SIGTERM (systemd stop) arrives, then shuts down
cleanly. Without a bundle it still publishes presence and pose (y/z empty).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from edge.capture import Capture, open_reader
from edge.config import EdgeConfig, load_config
from edge.loop import EdgeLoop, StatusLine
from edge.publisher import CurveServerKeys, Publisher
from latentcast.errors import UserError, run_cli
from latentcast.signing import add_trust_arguments, set_trust_from_args

log = logging.getLogger("edge.run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge.run", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML config (see edge/default.toml)")
    parser.add_argument("--source", help="csi://N, v4l2:///dev/videoN, camera index, file://clip.mp4, image, folder")
    parser.add_argument("--bundle", help="exported bundle folder or .tar.gz (omit: landmarks only)")
    parser.add_argument("--endpoint", help="ZeroMQ PUB endpoint, e.g. tcp://*:5555")
    parser.add_argument("--frames", type=int, default=None, help="stop after N published frames")
    parser.add_argument("--fast", action="store_true", help="files: every frame as fast as possible (no pacing)")
    parser.add_argument("--loop-source", action="store_true", help="restart a file or folder at its end")
    parser.add_argument("--no-face", action="store_true", help="hands only")
    parser.add_argument("--no-hands", action="store_true", help="face only")
    parser.add_argument("--neutral", help="per-user neutral calibration JSON (python -m calibration.neutral)")
    parser.add_argument("--preview", action="store_true", help="also publish JPEG previews (demo)")
    parser.add_argument("--preview-endpoint", help="PUB endpoint for previews, e.g. tcp://*:5556")
    parser.add_argument("--insecure", action="store_true", help="allow an off-device endpoint without CurveZMQ keys")
    parser.add_argument("--quiet", action="store_true", help="no live status line")
    add_trust_arguments(parser)
    return parser


def overrides_from(args: argparse.Namespace) -> dict:
    pairs = {
        "source.uri": args.source,
        "bundle.path": args.bundle,
        "stream.endpoint": args.endpoint,
        "source.pace": "fast" if args.fast else None,
        "source.loop": True if args.loop_source else None,
        "parts.face": False if args.no_face else None,
        "parts.face_neutral": args.neutral,
        "parts.hands": False if args.no_hands else None,
        "stream.preview": True if args.preview else None,
        "stream.preview_endpoint": args.preview_endpoint,
        "stream.insecure": True if args.insecure else None,
    }
    return {key: value for key, value in pairs.items() if value is not None}


@dataclass
class EdgeParts:
    """Everything `run` builds, so benchmarks and tests can build the same thing."""

    capture: Capture
    loop: EdgeLoop
    publisher: Publisher


def build(cfg: EdgeConfig, stack: ExitStack, keep_timings: bool = False, status: bool = True) -> EdgeParts:
    """Construct the pipeline from a config; every part is closed by `stack`."""
    from edge.onnx_landmarks.stage import build_landmark_stage
    from edge.stages import BundleEncoders

    parts = [p for p, on in (("face", cfg.parts.face), ("hands", cfg.parts.hands)) if on]
    encoders = None
    if cfg.bundle.path:
        encoders = BundleEncoders(cfg.bundle.path, cfg.bundle.precision, cfg.bundle.providers or None, parts)
    landmarks = build_landmark_stage(  # landmarks.backend: mediapipe, or onnx (falls back without models)
        face=cfg.parts.face,
        hands=cfg.parts.hands,
        landmarks=cfg.landmarks,
        face_neutral=cfg.parts.face_neutral or None,
        bundle=encoders.bundle if encoders else None,
        providers=cfg.bundle.providers or None,
        face_model=encoders.landmark_model("face") if encoders else None,
        hand_model=encoders.landmark_model("hand") if encoders else None,
    )
    stack.callback(landmarks.close)
    curve = None
    if cfg.curve.server_secret_key:
        curve = CurveServerKeys.from_files(cfg.curve.server_secret_key, cfg.curve.authorized_clients or None)
    publisher = Publisher(cfg.stream.endpoint, curve=curve, insecure=cfg.stream.insecure)
    stack.callback(publisher.close)
    preview = None
    if cfg.stream.preview:
        preview = Publisher(cfg.stream.preview_endpoint, curve=curve, insecure=cfg.stream.insecure)
        stack.callback(preview.close)
    reader = open_reader(cfg.source.uri, cfg.source)
    capture = Capture(reader, cfg.source.pace, cfg.source.loop, open_timeout_s=cfg.source.open_timeout_s)
    loop = EdgeLoop(
        capture,
        landmarks,
        publisher,
        encoders=encoders,
        filter_params=cfg.filter if cfg.filter.enabled else None,
        labels=cfg.labels,
        source_id=cfg.stream.source_id,
        max_hands=cfg.landmarks.max_hands,
        preview=preview,
        keep_timings=keep_timings,
        status=StatusLine(capture) if status else None,
    )
    stack.callback(loop.close)
    stack.enter_context(capture)  # started last, stopped first
    return EdgeParts(capture, loop, publisher)


def install_stop_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM (systemd) only set a flag: the loop finishes its frame and everything closes."""

    def handler(signum, _frame) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = load_config(args.config, overrides_from(args))
    set_trust_from_args(args, cfg.bundle.trusted_keys, cfg.bundle.allow_unsigned)  # which bundles to accept
    stop = threading.Event()
    install_stop_signals(stop)
    with ExitStack() as stack:
        edge = build(cfg, stack, status=not args.quiet)
        log.info(
            "publishing on %s from %s (%s)",
            edge.publisher.bound_endpoint,
            cfg.source.uri,
            f"bundle {cfg.bundle.path}" if cfg.bundle.path else "no bundle: presence and pose only",
        )
        stats = edge.loop.run(max_frames=args.frames, stop=stop)
        cap = edge.capture.stats
        if edge.capture.error:  # the job failed, however many frames came before: exit non-zero
            after = f" after {stats.frames} frame(s)" if stats.frames else ""
            raise UserError(f"source {cfg.source.uri} failed{after} ({edge.capture.error}): check the file or camera")
    print(file=sys.stderr)
    log.info(
        "stopped: %d frames published, %d dropped at capture, %d source failures, %d frame errors",
        stats.frames,
        cap.dropped,
        cap.failures,
        stats.errors,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))  # run_cli sets up logging
