"""firmware_bridge CLI: watch a microcontroller, run the simulator, run a button's action by hand.

    python -m firmware_bridge.run simulate --link /tmp/ttyMCU          # the C firmware on a pty
    python -m firmware_bridge.run monitor --serial serial:///tmp/ttyMCU --map firmware_bridge/puppet.toml
    python -m firmware_bridge.run action calibrate_neutral --map firmware_bridge/puppet.toml
    python -m firmware_bridge.run check firmware_bridge/puppet.toml
    python -m firmware_bridge.run pose jaw=0.6 head_pan=0.3 --map firmware_bridge/puppet.toml   # bring-up
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from firmware_bridge.actions import Actions
from firmware_bridge.link import LinkConfig, SerialLink
from firmware_bridge.mapping import load_mapping
from firmware_bridge.protocol import Button, Config, Fault, q16
from latentcast.errors import UserError, run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m firmware_bridge.run", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="build the reference firmware for this host and run it on a pty")
    s.add_argument("--link", type=Path, required=True, help="symlink to create for the pty (the URI's path)")
    s.add_argument("--channels", type=int, default=6)
    s.add_argument("--imu-hz", type=int, default=0, help="also send IMU samples at this rate")
    s.add_argument("--build-dir", type=Path, help="where to compile (default runs/firmware)")
    m = sub.add_parser("monitor", help="connect, print what the MCU says, run its buttons' actions")
    m.add_argument("--serial", help="serial:///dev/ttyACM0 or serial:///dev/ttyTHS1?baud=1000000")
    m.add_argument("--map", type=Path, help="mapping file: its [link] uri, [buttons] and [actions]")
    m.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C)")
    m.add_argument("--require-alive", action="store_true", help="exit 1 if the MCU never answered")
    a = sub.add_parser("action", help="run a named action exactly as a button press would")
    a.add_argument("name")
    a.add_argument("--map", type=Path, required=True)
    c = sub.add_parser("check", help="validate a mapping file")
    c.add_argument("map", type=Path)
    q = sub.add_parser("pose", help="bring-up: hold channels at given travel (within limits and slew), others safe")
    q.add_argument("settings", nargs="+", metavar="CHANNEL=TRAVEL", help="e.g. jaw=0.6 head_pan=0.3 (0..1 travel)")
    q.add_argument("--serial", help="serial URI (default: the map's [link] uri)")
    q.add_argument("--map", type=Path, required=True)
    q.add_argument("--hold", type=float, default=2.0, help="seconds to hold the pose (then the MCU parks itself)")
    return p


def simulate(args: argparse.Namespace) -> int:
    from firmware_bridge.sim import DEFAULT_BUILD_DIR, Simulator, build_host_tools

    if not 1 <= args.channels <= 32:
        raise UserError("--channels must be 1..32")
    tools = build_host_tools(args.build_dir or DEFAULT_BUILD_DIR)
    with Simulator(tools["mcu_sim"], args.link, args.channels, args.imu_hz) as sim:
        print(f"simulator on serial://{args.link.absolute()} (Ctrl-C to stop)", flush=True)
        try:
            while sim.proc.poll() is None:
                event = sim.events.get()
                print(json.dumps(event), flush=True)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how the simulator is stopped; the context manager closes it
    return 0


def monitor(args: argparse.Namespace) -> int:
    mapping = load_mapping(args.map) if args.map else None
    uri = args.serial or (mapping.uri if mapping else None)
    if not uri:
        raise UserError("monitor needs --serial URI or a --map file with [link] uri")
    actions = Actions(mapping.actions if mapping else {})
    link = SerialLink(LinkConfig(uri, heartbeat_timeout_s=mapping.heartbeat_timeout_s if mapping else 0.5))

    def on_button(b: Button) -> None:
        action = mapping.buttons.get(b.button) if mapping else None
        print(f"button {b.button} {('release', 'press', 'long press')[min(b.event, 2)]} -> {action or '-'}", flush=True)
        if action and b.event == Button.PRESS:
            actions.run(action)

    def on_fault(f: Fault) -> None:
        print(f"fault {f.code} severity {f.severity} channel {f.channel}: {f.text}", flush=True)

    link.on_button.append(on_button)
    link.on_fault.append(on_fault)
    link.on_alive.append(lambda alive: print("link up" if alive else "link down (no heartbeat)", flush=True))
    start = time.monotonic()
    ever_alive = False
    with link:
        try:
            while args.duration is None or time.monotonic() - start < args.duration:
                time.sleep(min(1.0, args.duration or 1.0))
                ever_alive |= link.alive
                actions.poll()
                s = link.stats
                rtt = f"{link.time.rtt_us:.0f} us" if link.time.rtt_us is not None else "-"
                print(f"{link.mcu.name if link.mcu else '?'}: heartbeats {s.heartbeats}, frames {s.frames_in}, "
                      f"rx errors {link.deframer.stats.errors}, MCU rx errors {link.mcu_rx_errors}, rtt {rtt}, "
                      f"reconnects {s.disconnects}", flush=True)  # fmt: skip
                if link.imu is not None:
                    w, x, y, z = link.imu.quaternion
                    print(f"  imu: quaternion ({w:.3f}, {x:.3f}, {y:.3f}, {z:.3f}), accel {link.imu.accel_mg} mg",
                          flush=True)  # fmt: skip
        except KeyboardInterrupt:
            pass  # Ctrl-C ends a monitor session; the summary still prints
    print(json.dumps({"alive_seen": ever_alive, "stats": vars(link.stats), "deframer": vars(link.deframer.stats)}))
    return 1 if args.require_alive and not ever_alive else 0


def action(args: argparse.Namespace) -> int:
    mapping = load_mapping(args.map)
    actions = Actions(mapping.actions)
    proc = actions.run(args.name)
    if proc is None:
        print(f"{args.name}: done (paused={actions.paused})")
        return 0
    return proc.wait()


def pose(args: argparse.Namespace) -> int:
    """Drive a puppet by hand through the same limits, slew and link as the live output."""
    from firmware_bridge.mapping import SlewLimiter

    mapping = load_mapping(args.map)
    by_name = {c.name: c for c in mapping.channels}
    want = list(mapping.safe_pose)
    for item in args.settings:
        name, _, value = item.partition("=")
        if name not in by_name:
            raise UserError(f"pose {item!r}: no channel {name!r} in {args.map} (known: {', '.join(by_name)})")
        try:
            want[by_name[name].channel] = float(value)
        except ValueError:
            raise UserError(f"pose {item!r}: write CHANNEL=TRAVEL with TRAVEL a number in 0..1") from None
    uri = args.serial or mapping.uri
    if not uri:
        raise UserError(f"pose needs --serial URI or [link] uri in {args.map}")
    link = SerialLink(LinkConfig(uri, heartbeat_timeout_s=mapping.heartbeat_timeout_s))
    limiter = SlewLimiter(mapping.channels)
    with link:
        link.configure(Config(mapping.mcu_watchdog_ms, tuple(q16(t) for t in mapping.safe_pose)))
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            travel = limiter.step(want, time.monotonic())
            link.set_targets(tuple(q16(t) for t in travel), time.monotonic_ns() // 1000)
            time.sleep(0.02)
        print("pose held: " + ", ".join(f"{c.name}={t:.3f}" for c, t in zip(mapping.channels, travel, strict=True)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "simulate":
        return simulate(args)
    if args.command == "monitor":
        return monitor(args)
    if args.command == "action":
        return action(args)
    if args.command == "pose":
        return pose(args)
    m = load_mapping(args.map)
    print(f"{args.map}: {len(m.channels)} channels ({', '.join(c.name for c in m.channels)}), "
          f"buttons {m.buttons or '-'}, safe pose {m.safe_pose}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
