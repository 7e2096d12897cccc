"""Soak test: the edge and the renderer side by side for a long time; memory must stay flat, errors zero.

    python benchmarks/soak.py --duration 3600                 # the goal run: one hour
    python benchmarks/soak.py --duration 60 --warmup 30       # what CI runs (tests/test_hardening_soak.py)

What runs: `python -m edge.run` on the looped hand clip (native pace, face + hands, optional
`--bundle`) publishing on 127.0.0.1, and `python -m renderer.run` subscribed to it, drawing the
character every frame and sending VMC (OSC/UDP) to a sink in this process that counts packets.
Every `--sample-every` seconds (default 10) both processes' resident memory (VmRSS from
/proc/PID/status) is sampled. At the end the renderer writes its summary (counters, latency), the
edge is stopped with SIGTERM (as systemd does) and both must exit 0.

Figures (printed, and in `--out`/soak.json with soak.png): per process RSS after the warm-up
(`--warmup`, default 120 s) and at the end, the growth between them (goal < 5 MB), the slope over
the post-warm-up samples (MB/hour), and the errors: non-zero exits, tracebacks or ERROR lines in
either log, renderer counters of malformed/invalid messages, VMC send errors. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentcast.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]
CLIP_KEY = "data/video/hand_landmarker_test_video.mp4"
GOAL_GROWTH_MB = 5.0


def rss_mb(pid: int) -> float | None:
    """Resident set size of a live process in MB (None once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UdpSink:
    """Receives the renderer's VMC packets (a stand-in for VSeeFace & co.) and counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.packets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recv(65536)
                self.packets += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def log_errors(path: Path) -> list[str]:
    """Lines that mean something went wrong: tracebacks, ERROR level, `error:` one-liners."""
    bad = ("Traceback", "ERROR ", "error: ", "Exception ignored")
    return [line for line in path.read_text(errors="replace").splitlines() if line.startswith(bad)]


def growth(samples: list[dict], key: str, warmup_s: float) -> dict:
    """RSS after warm-up, at the end, their difference, and the least-squares slope after warm-up (MB/h)."""
    points = [(s["t_s"], s[key]) for s in samples if s[key] is not None]
    after = [(t, v) for t, v in points if t >= warmup_s]
    if len(after) < 2:
        return {"samples_after_warmup": len(after)}
    t, v = np.array(after).T
    slope = float(np.polyfit(t, v, 1)[0]) * 3600.0 if np.ptp(t) > 0 else 0.0
    return {
        "samples_after_warmup": len(after),
        "rss_at_warmup_mb": round(float(v[0]), 2),
        "rss_end_mb": round(float(v[-1]), 2),
        "rss_max_mb": round(float(v.max()), 2),
        "growth_after_warmup_mb": round(float(v[-1] - v[0]), 2),
        "max_growth_after_warmup_mb": round(float(v.max() - v[0]), 2),
        "slope_mb_per_hour": round(slope, 2),
    }


def plot(samples: list[dict], warmup_s: float, path: Path) -> None:
    """One panel per process, each on its own scale, so a growth of a few MB is visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    parts = (("edge_rss_mb", "edge (python -m edge.run)", "C0"), ("renderer_rss_mb", "renderer (+ VMC)", "C1"))
    for ax, (key, label, color) in zip(axes, parts, strict=True):
        points = [(s["t_s"] / 60, s[key]) for s in samples if s[key] is not None and s["t_s"] > 0]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", color=color, label=label)
        ax.axvline(warmup_s / 60, color="grey", linestyle="--", label="end of warm-up")
        ax.set_ylabel("RSS (MB)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    axes[0].set_title("latentcast soak: resident memory per process")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def soak(duration_s: float, warmup_s: float, sample_every_s: float, out: Path, bundle: str | None) -> dict:
    from latentcast.assets import resolve

    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    sink = UdpSink()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    edge_cmd = [sys.executable, "-m", "edge.run", "--quiet", "--source", f"file://{resolve(CLIP_KEY)}",
                "--loop-source", "--endpoint", endpoint]  # fmt: skip
    if bundle:
        edge_cmd += ["--bundle", bundle]
    summary_path = out / "renderer_summary.json"
    render_cmd = [sys.executable, "-m", "renderer.run", "--endpoint", endpoint, "--vmc", f"127.0.0.1:{sink.port}",
                  "--duration", str(duration_s), "--summary", str(summary_path)]  # fmt: skip
    if bundle:
        render_cmd += ["--bundle", bundle]
    edge_log, render_log = out / "edge.log", out / "renderer.log"
    samples: list[dict] = []
    with open(edge_log, "w") as elog, open(render_log, "w") as rlog:
        edge = subprocess.Popen(edge_cmd, cwd=ROOT, env=env, stdout=elog, stderr=subprocess.STDOUT)
        renderer = subprocess.Popen(render_cmd, cwd=ROOT, env=env, stdout=rlog, stderr=subprocess.STDOUT)
        start = time.monotonic()
        try:
            while renderer.poll() is None:
                t = time.monotonic() - start
                sample = {"t_s": round(t, 1), "edge_rss_mb": rss_mb(edge.pid), "renderer_rss_mb": rss_mb(renderer.pid)}
                samples.append(sample)
                print(f"soak {t:6.0f} s: edge {sample['edge_rss_mb'] or 0:.1f} MB, renderer "
                      f"{sample['renderer_rss_mb'] or 0:.1f} MB, vmc packets {sink.packets}", flush=True)  # fmt: skip
                if edge.poll() is not None:
                    break  # the edge died: an error, reported below
                deadline = start + (len(samples)) * sample_every_s
                while time.monotonic() < deadline and renderer.poll() is None:
                    time.sleep(0.2)
            renderer_rc = renderer.wait(timeout=duration_s + 120)
        finally:
            if edge.poll() is None:
                edge.send_signal(signal.SIGTERM)
            edge_rc = edge.wait(timeout=60)
            if renderer.poll() is None:
                renderer.kill()
            sink.close()
    elapsed = time.monotonic() - start
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    messages = summary.get("messages", {})
    errors = {
        "edge_exit_code": edge_rc,
        "renderer_exit_code": renderer_rc,
        "edge_log": log_errors(edge_log)[:20],
        "renderer_log": log_errors(render_log)[:20],
        "malformed": messages.get("malformed"),
        "invalid_values": messages.get("invalid_values"),
        "wrong_version": messages.get("wrong_version"),
        "vmc_send_errors": (summary.get("vmc") or {}).get("errors"),
    }
    count = (
        int(edge_rc != 0)
        + int(renderer_rc != 0)
        + len(errors["edge_log"])
        + len(errors["renderer_log"])
        + sum(int(errors[k] or 0) for k in ("malformed", "invalid_values", "wrong_version", "vmc_send_errors"))
        + int(not summary)
    )
    result = {
        "benchmark": "soak",
        "duration_s": duration_s,
        "elapsed_s": round(elapsed, 1),
        "warmup_s": warmup_s,
        "sample_every_s": sample_every_s,
        "bundle": bundle,
        "source": CLIP_KEY + " (looped, native pace)",
        "host": {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "edge": growth(samples, "edge_rss_mb", warmup_s),
        "renderer": growth(samples, "renderer_rss_mb", warmup_s),
        "renderer_summary": {k: summary.get(k) for k in ("frames_rendered", "render_fps", "messages", "frames", "vmc")},
        "latency_capture_to_render": (summary.get("latency") or {}).get("capture_to_render"),
        "vmc_packets_received": sink.packets,
        "errors": errors,
        "error_count": count,
        "goal": f"< {GOAL_GROWTH_MB} MB growth per process after warm-up, zero errors",
        "samples": samples,
    }
    grown = [result[p].get("max_growth_after_warmup_mb") for p in ("edge", "renderer")]
    result["goal_met"] = count == 0 and all(g is not None and g < GOAL_GROWTH_MB for g in grown)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    if samples:
        plot(samples, warmup_s, out / "soak.png")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds to run (goal: 3600)")
    parser.add_argument("--warmup", type=float, default=120.0, help="growth is measured after this many seconds")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--bundle", help="bundle for both sides (default: none: pose, presence and idle motion)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "soak", help="folder for soak.json, soak.png, logs")
    parser.add_argument("--replot", type=Path, metavar="SOAK_JSON", help="only redraw the plot of an earlier run")
    args = parser.parse_args(argv)
    if args.replot:
        report = json.loads(args.replot.read_text())
        plot(report["samples"], report["warmup_s"], args.replot.with_suffix(".png"))
        print(f"wrote {args.replot.with_suffix('.png')}")
        return 0
    if not Path("/proc/self/status").is_file():
        raise UserError("the soak benchmark reads /proc/PID/status: run it on Linux")
    if args.duration <= 0 or args.sample_every <= 0 or not 0 <= args.warmup < args.duration:
        raise UserError("--duration and --sample-every must be positive and --warmup in [0, duration)")
    r = soak(args.duration, args.warmup, args.sample_every, args.out, args.bundle)
    for part in ("edge", "renderer"):
        g = r[part]
        if "growth_after_warmup_mb" in g:
            print(f"{part}: RSS {g['rss_at_warmup_mb']:.1f} MB after warm-up -> {g['rss_end_mb']:.1f} MB at the end "
                  f"(growth {g['growth_after_warmup_mb']:+.2f} MB, max {g['max_growth_after_warmup_mb']:+.2f} MB, "
                  f"slope {g['slope_mb_per_hour']:+.2f} MB/h)")  # fmt: skip
    rs = r["renderer_summary"]
    print(f"renderer: {rs.get('frames_rendered')} frames, {(rs.get('messages') or {}).get('received')} messages, "
          f"{r['vmc_packets_received']} VMC packets received; errors: {r['error_count']}")  # fmt: skip
    print(f"goal ({r['goal']}): {'met' if r['goal_met'] else 'NOT met'}; wrote {args.out / 'soak.json'}")
    return 0 if r["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
