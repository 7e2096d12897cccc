"""The microcontroller link over a real pseudo-terminal pair, at 115200 and 1000000 baud.

    python benchmarks/serial_link.py                   # ~1 min; writes runs/bench/serial_link/serial_link.json
    python benchmarks/serial_link.py --bauds 1000000 --seconds 1

The far end is the reference C firmware (firmware_bridge/firmware) running as `mcu_sim` on a pty.
A Linux pty ignores the baud rate (bytes move at memory speed), so each measured figure is printed
next to the wire-time floor a real UART at that baud would impose (10 bits per byte: 8N1):
- encode/decode: Python cost per 6-channel actuator frame (encode_frame, Deframer.feed), and per frame
  of the C codec is not measured here (it runs on the MCU);
- round trip: TIME_REQUEST -> TIME_REPLY through the firmware, p50/p99, plus the wire floor;
- actuator rate: offered rates stepped up (6 channels). The host paces actuator frames to the wire
  time at the URI's baud (its own rule, so it holds on a pty too) and replaces unsent values.
  "sustained" = the most frames per second the MCU applied while its last applied value was always
  the newest one sent (latest-value semantics); "every update delivered up to" = the highest offered
  rate with >= 95 % delivered; the UART cap is baud / (10 * frame bytes);
- CPU: process CPU time (all threads) of a loop calling FirmwareOutput.update at 30 fps, minus the
  same loop without the bridge, as % of one core and microseconds per frame; and in the same run the
  latency from update() to the firmware applying the targets (the frame's capture_us, converted to
  the MCU's clock by time sync, against the MCU's clock at apply), plus one frame's wire floor.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from firmware_bridge.link import LinkConfig, SerialLink
from firmware_bridge.mapping import load_mapping
from firmware_bridge.output import FirmwareOutput
from firmware_bridge.protocol import Actuators, Deframer, TimeReply, TimeRequest, encode_frame, q16
from firmware_bridge.sim import Simulator, build_host_tools
from latentcast.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
PUPPET = ROOT / "firmware_bridge" / "puppet.toml"
CHANNELS = 6
RATES_HZ = (100, 250, 500, 1000, 2000, 4000, 8000)


def wire_ms(nbytes: int, baud: int) -> float:
    """Time a UART needs for nbytes at 8N1 (start + 8 data + stop bits)."""
    return nbytes * 10 / baud * 1000


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def codec_cost(iters: int) -> dict:
    msg = Actuators(1_700_000_000, tuple(q16(i / CHANNELS) for i in range(CHANNELS)))
    t0 = time.perf_counter()
    for i in range(iters):
        wire = encode_frame(msg, i)
    enc_us = (time.perf_counter() - t0) / iters * 1e6
    stream = wire * 100
    d = Deframer()
    t0 = time.perf_counter()
    for _ in range(iters // 100):
        d.feed(stream)
    dec_us = (time.perf_counter() - t0) / (iters // 100 * 100) * 1e6
    return {"frame_bytes": len(wire), "encode_us": round(enc_us, 2), "decode_us": round(dec_us, 2)}


def wait_alive(link: SerialLink, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not link.alive:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator never answered")
        time.sleep(0.01)


def round_trip(sim: Simulator, baud: int, seconds: float) -> dict:
    link = SerialLink(LinkConfig(f"{sim.uri}?baud={baud}", time_sync_period_s=0.005))
    with link:
        wait_alive(link)
        link.time.rtts_us.clear()
        time.sleep(seconds)
        rtts = [r / 1000 for r in link.time.rtts_us]
    req = len(encode_frame(TimeRequest(2**40), 0))
    rep = len(encode_frame(TimeReply(2**40, 2**40, 2**40), 0))
    return {"samples": len(rtts), "p50_ms": round(pct(rtts, 50), 3), "p99_ms": round(pct(rtts, 99), 3),
            "wire_floor_ms": round(wire_ms(req + rep, baud), 3)}  # fmt: skip


def actuator_rate(sim: Simulator, baud: int, seconds: float) -> dict:
    frame_bytes = len(encode_frame(Actuators(2**40, (0x1234,) * CHANNELS), 0))
    steps = []
    sim.command("quiet on")
    with SerialLink(LinkConfig(f"{sim.uri}?baud={baud}")) as link:
        wait_alive(link)
        for rate in RATES_HZ:
            before = sim.stats()["actuator_frames"]
            superseded = link.stats.actuator_superseded
            n, period = 0, 1.0 / rate
            start = time.perf_counter()
            next_t = start
            while time.perf_counter() - start < seconds:
                link.set_targets(((n * 7) % 65536,) * CHANNELS, n)
                n += 1
                next_t += period
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            elapsed = time.perf_counter() - start
            time.sleep(0.1)  # let the last frame land
            stats = sim.stats()
            delivered = stats["actuator_frames"] - before
            newest = ((n - 1) * 7) % 65536
            steps.append({
                "offered_hz": round(n / elapsed, 1),
                "delivered_hz": round(delivered / elapsed, 1),
                "superseded": link.stats.actuator_superseded - superseded,
                "last_is_newest": stats["last"][:1] == [newest],
            })  # fmt: skip
    sim.command("quiet off")
    lossless = [s for s in steps if s["last_is_newest"] and s["delivered_hz"] >= 0.95 * s["offered_hz"]]
    return {"frame_bytes": frame_bytes, "steps": steps,
            # the most frames per second the MCU applied while always ending on the newest value
            "sustained_hz": max((s["delivered_hz"] for s in steps if s["last_is_newest"]), default=0.0),
            "every_update_delivered_up_to_hz": max((s["offered_hz"] for s in lossless), default=0.0),
            "all_ended_on_newest": all(s["last_is_newest"] for s in steps),
            "wire_cap_hz": round(baud / (10 * frame_bytes), 1)}  # fmt: skip


def cpu_at_30fps(sim: Simulator, baud: int, seconds: float) -> dict:
    from renderer.params import CharacterParams, FaceParams

    params = [CharacterParams(face=FaceParams(present=1, mouth_open=(i % 30) / 30, yaw=0.1)) for i in range(30)]

    def loop(update) -> tuple[float, float, int]:
        frames, period = 0, 1 / 30
        c0, w0 = time.process_time(), time.perf_counter()
        next_t = w0
        update_s = 0.0
        while time.perf_counter() - w0 < seconds:
            t = time.perf_counter()
            update(params[frames % 30])
            update_s += time.perf_counter() - t
            frames += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.perf_counter()))
        return time.process_time() - c0, time.perf_counter() - w0, frames, update_s

    base_cpu, base_wall, _, _ = loop(lambda p: None)
    mapping = load_mapping(PUPPET)
    out = FirmwareOutput.open(f"{sim.uri}?baud={baud}", mapping)
    try:
        wait_alive(out.link)
        time.sleep(0.1)  # the first time-sync reply
        first = len(sim.targets)
        cpu, wall, frames, update_s = loop(out.update)
    finally:
        out.close()
    extra = max(0.0, cpu / wall - base_cpu / base_wall)
    # update() -> applied by the firmware: capture_us is the update's time converted to the MCU's clock
    lat = [(e["t_us"] - e["capture_us"]) / 1000 for e in sim.targets[first:] if not e["safe"] and e["capture_us"]]
    frame_bytes = len(encode_frame(Actuators(2**40, (0x1234,) * len(mapping.channels)), 0))
    return {"fps": round(frames / wall, 1), "cpu_percent_of_one_core": round(100 * extra, 2),
            "update_us": round(update_s / frames * 1e6, 1),
            "cpu_us_per_frame": round(extra * wall / frames * 1e6, 1),
            "update_to_applied_ms": {"count": len(lat), "p50": round(pct(lat, 50), 3), "p99": round(pct(lat, 99), 3)},
            "wire_floor_ms": round(wire_ms(frame_bytes, baud), 3)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bauds", type=int, nargs="+", default=[115200, 1_000_000])
    p.add_argument("--seconds", type=float, default=2.0, help="per rate step / RTT run / CPU run")
    p.add_argument("--codec-iters", type=int, default=20000)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "serial_link")
    args = p.parse_args(argv)
    tools = build_host_tools()
    report = {"machine": platform.platform(), "python": sys.version.split()[0],
              "note": "a pty ignores baud: measured figures are host+firmware costs; wire_* are 8N1 UART floors",
              "codec": codec_cost(args.codec_iters), "bauds": {}}  # fmt: skip
    c = report["codec"]
    print(f"codec: {c['frame_bytes']}-byte 6-channel actuator frame, encode {c['encode_us']} us, "
          f"decode {c['decode_us']} us (Python)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, Simulator(tools["mcu_sim"], Path(tmp) / "ttyMCU") as sim:
        for baud in args.bauds:
            r = {"rtt": round_trip(sim, baud, args.seconds), "actuators": actuator_rate(sim, baud, args.seconds),
                 "cpu_30fps": cpu_at_30fps(sim, baud, args.seconds * 2)}  # fmt: skip
            report["bauds"][str(baud)] = r
            rtt, act, cpu = r["rtt"], r["actuators"], r["cpu_30fps"]
            print(f"{baud} baud (pty): RTT p50 {rtt['p50_ms']} ms p99 {rtt['p99_ms']} ms ({rtt['samples']} samples; "
                  f"UART wire floor {rtt['wire_floor_ms']} ms)")  # fmt: skip
            print(f"  actuators: sustained {act['sustained_hz']} Hz applied, always ending on the newest value; "
                  f"every update delivered up to {act['every_update_delivered_up_to_hz']} Hz offered (UART cap "
                  f"{act['wire_cap_hz']} Hz for {act['frame_bytes']}-byte frames); steps "
                  + ", ".join(f"{s['offered_hz']:.0f}->{s['delivered_hz']:.0f}" for s in act["steps"]))  # fmt: skip
            print(f"  edge process at {cpu['fps']} fps: +{cpu['cpu_percent_of_one_core']} % of one core, "
                  f"update() {cpu['update_us']} us, {cpu['cpu_us_per_frame']} us CPU per frame (all threads)")
            u = cpu["update_to_applied_ms"]
            print(f"  update() -> applied by the firmware: p50 {u['p50']} ms, p99 {u['p99']} ms ({u['count']} frames; "
                  f"UART wire floor {cpu['wire_floor_ms']} ms)")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "serial_link.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
