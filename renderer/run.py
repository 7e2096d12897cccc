"""Renderer CLI: subscribe to an edge, animate the built-in character and/or drive VMC software.

    python -m renderer.run --endpoint tcp://jetson.local:5555 --bundle runs/bundles/latentcast-bundle-X
    python -m renderer.run --endpoint tcp://127.0.0.1:5555 --bundle B --vmc 127.0.0.1:39539
    python -m renderer.run --endpoint tcp://127.0.0.1:5555 --bundle B --out runs/render.mp4 --frames 300 \
        --side-by-side --summary runs/render.json
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from latentcast.errors import UserError, run_cli
from latentcast.signing import add_trust_arguments, set_trust_from_args
from latentcast.subscriber import CurveClientKeys
from renderer.app import RendererConfig, RendererHost, write_summary
from renderer.vmc import VMCConfig
from renderer.web import WebConfig


def preview_endpoint_for(endpoint: str) -> str:
    """The edge's default preview socket: same host, port + 1 (edge/default.toml: 5555 -> 5556)."""
    head, _, port = endpoint.rpartition(":")
    if not port.isdigit():
        raise UserError(f"cannot derive the preview endpoint from {endpoint}: pass --preview-endpoint")
    return f"{head}:{int(port) + 1}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m renderer.run", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="the edge's latent socket (tcp://HOST:PORT)")
    p.add_argument("--bundle", type=Path, help="bundle directory or .tar.gz (its decoders); without: pose + idle only")
    p.add_argument("--vmc", metavar="HOST:PORT", help="also send VMC over OSC/UDP (VSeeFace, Warudo, ...; port 39539)")
    p.add_argument("--web", type=int, metavar="PORT", help="also serve the 3D browser renderer at http://HOST:PORT/")
    p.add_argument("--web-host", default="127.0.0.1", help="--web: address to listen on (0.0.0.0: other machines)")
    p.add_argument("--web-avatar", type=Path, help="--web: the page's default .vrm (default: the generated avatar)")
    p.add_argument("--vmc-avatar", type=Path, help="VMC: the receiver's .vrm (rest pose, expressions; 0.x or 1.0)")
    p.add_argument("--vmc-mirror", action="store_true", help="VMC: the avatar moves as the user's mirror image")
    p.add_argument("--vmc-root", action="store_true", help="VMC: also send /VMC/Ext/Root/Pos (identity)")
    p.add_argument(
        "--vmc-blendshapes", default="auto", choices=("auto", "presets", "perfect-sync", "both"),
        help="VMC blendshape names: VRM presets, PerfectSync (ARKit), both, or auto (by the avatar's own)",
    )  # fmt: skip
    p.add_argument("--no-perfect-sync", action="store_true", help="VMC: same as --vmc-blendshapes presets")
    p.add_argument("--out", help="display://0, a .mp4/.avi file or a folder of PNGs (default: a window if any)")
    p.add_argument("--side-by-side", action="store_true", help="input frame with landmarks | character")
    p.add_argument("--preview-endpoint", help="the edge's preview socket (default: endpoint port + 1)")
    p.add_argument("--frames", type=int, help="stop after N rendered frames")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--exit-after-silence", type=float, help="stop when no message came for this many seconds")
    p.add_argument("--start-on-message", action="store_true", help="render nothing until the first message")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate when idle and of the video file")
    p.add_argument("--size", default="640x360", help="character canvas WIDTHxHEIGHT")
    p.add_argument("--no-mirror", action="store_true", help="draw the character as the camera sees the user")
    p.add_argument("--still", type=Path, help="also save one tracked frame as PNG")
    p.add_argument("--summary", type=Path, help="write the run summary (latency percentiles, counts) as JSON")
    p.add_argument("--serial", metavar="URI", help="also drive a microcontroller, e.g. serial:///dev/ttyACM0")
    p.add_argument("--serial-map", type=Path, help="parameter -> actuator mapping TOML (firmware_bridge/puppet.toml)")
    p.add_argument("--curve-server-key", type=Path, help="CurveZMQ: the edge's public key file")
    p.add_argument("--curve-client-key", type=Path, help="CurveZMQ: this renderer's .key_secret file")
    add_trust_arguments(p)
    return p


def web_config(args: argparse.Namespace) -> WebConfig | None:
    """--web PORT: the browser renderer, mirrored like the 2D character unless --no-mirror."""
    if args.web is None:
        return None
    if not 0 <= args.web < 65536:
        raise UserError(f"--web {args.web}: use a port in 1..65535 (0: any free port)")
    if args.web_avatar is not None and not args.web_avatar.is_file():
        raise UserError(f"--web-avatar {args.web_avatar} does not exist: pass a .vrm file")
    return WebConfig(port=args.web, host=args.web_host, mirror=not args.no_mirror, avatar=args.web_avatar)


ENDPOINT = re.compile(r"^(tcp://(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]*]+):(?P<port>\d{1,5})|ipc://\S+|inproc://\S+)$")
MIN_SIZE, MAX_SIZE = 32, 7680


def check_endpoint(flag: str, endpoint: str) -> str:
    """A ZeroMQ endpoint a SUB can connect to, or a UserError naming the flag and the form."""
    match = ENDPOINT.match(endpoint)
    if not match or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise UserError(f"{flag} {endpoint!r} is not an endpoint to connect to: write tcp://HOST:PORT (e.g. "
                        "tcp://127.0.0.1:5555), ipc://PATH or inproc://NAME")  # fmt: skip
    return endpoint


def config_from_args(args: argparse.Namespace) -> RendererConfig:
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {args.size!r}: write WIDTHxHEIGHT, e.g. 640x360") from None
    if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
        raise UserError(f"--size {args.size!r}: width and height must be {MIN_SIZE}..{MAX_SIZE} pixels, e.g. 640x360")
    if args.fps <= 0 or (args.frames is not None and args.frames <= 0):
        raise UserError("--fps and --frames must be positive")
    for flag, value in (("--duration", args.duration), ("--exit-after-silence", args.exit_after_silence)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UserError(f"{flag} {value:g}: give a positive number of seconds")
    check_endpoint("--endpoint", args.endpoint)
    if args.preview_endpoint:
        check_endpoint("--preview-endpoint", args.preview_endpoint)
    if bool(args.curve_server_key) != bool(args.curve_client_key):
        raise UserError("CurveZMQ needs both --curve-server-key and --curve-client-key")
    curve = CurveClientKeys.from_files(args.curve_server_key, args.curve_client_key) if args.curve_server_key else None
    if args.bundle is not None and not args.bundle.exists():
        raise UserError(f"bundle {args.bundle} does not exist: build one with `python -m export.bundle build`")
    vmc = None
    if args.vmc:
        vmc = VMCConfig.parse(args.vmc)
        vmc.avatar, vmc.mirror, vmc.root = args.vmc_avatar, args.vmc_mirror, args.vmc_root
        vmc.blendshapes = "presets" if args.no_perfect_sync else args.vmc_blendshapes
    preview = args.preview_endpoint or (preview_endpoint_for(args.endpoint) if args.side_by_side else None)
    return RendererConfig(
        endpoint=args.endpoint,
        bundle=args.bundle,
        preview_endpoint=preview,
        side_by_side=args.side_by_side,
        vmc=vmc,
        web=web_config(args),
        out=args.out,
        still=args.still,
        frames=args.frames,
        duration_s=args.duration,
        exit_after_silence_s=args.exit_after_silence,
        start_on_message=args.start_on_message,
        fps=args.fps,
        width=width,
        height=height,
        mirror=not args.no_mirror,
        curve=curve,
    )


def attach_serial(host: RendererHost, uri: str | None, mapping: Path | None):
    """--serial/--serial-map: every animated frame also goes to the microcontroller (never blocking)."""
    if mapping is None:
        if uri:
            raise UserError("--serial needs --serial-map FILE (see firmware_bridge/puppet.toml)")
        return None
    from firmware_bridge.output import FirmwareOutput, ParamsTap
    from renderer.params import CharacterParams

    bridge = FirmwareOutput.open(uri, mapping)
    try:
        bridge.check_params(CharacterParams())  # a mistyped parameter name stops here, naming its key
    except UserError:
        bridge.close()
        raise
    # ACTUATORS carry the camera frame's capture time on this host's clock (edge clock + offset estimate)
    host.animator = ParamsTap(host.animator, bridge, lambda msg: msg.capture_ns + host.latency.offset_ns())
    return bridge


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_trust_from_args(args)  # which bundle signatures to accept (latentcast.signing)
    config = config_from_args(args)
    host = RendererHost(config)
    if host.web is not None:
        print(f"3D renderer: open {host.web.summary()['url']} in a browser", flush=True)
    bridge = attach_serial(host, args.serial, args.serial_map)
    if host.output is None and config.vmc is None and config.web is None and bridge is None:
        raise UserError(
            "nothing to output here (no display): pass --out video.mp4, --out DIR, --vmc HOST:PORT or --web PORT"
        )
    try:
        summary = host.run()
    finally:
        if bridge is not None:
            bridge.close()
    if bridge is not None:
        summary["firmware"] = bridge.summary()
    if args.summary:
        write_summary(summary, args.summary)
    lat = summary["latency"]["capture_to_render"]
    line = f"rendered {summary['frames_rendered']} frames, {summary['messages']['received']} messages"
    if lat.get("count"):
        line += f"; capture->render p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f}, p99 {lat['p99_ms']:.1f}"
    print(line)
    if not args.summary:
        print(json.dumps(summary["messages"]))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
