"""Edge latency benchmark: the whole loop vs the landmark models alone, against a budget profile.

    python benchmarks/latency.py                       # hand clip, face + hands, 600 frames
    python benchmarks/latency.py --bundle BUNDLE --profile x86-2core --frames 900
    python benchmarks/latency.py --source csi://0 --profile jetson-orin-nano
    python benchmarks/latency.py --backend both        # onnx vs mediapipe landmark stage, side by side

What it measures (BRIEF section 5):
- the real edge loop (`edge.run.build`: capture thread, MediaPipe, features, encoders, One Euro,
  ZeroMQ PUB) on a source looped to N frames, with a subscriber in ANOTHER process that stamps
  each message on arrival: end to end = frame available -> latent received (CLOCK_MONOTONIC is
  shared by processes on one host);
- per stage (wait, landmarks, features, encoder, filter, publish) p50/p95/p99/max, fps, frames
  dropped at capture and lost in transit;
- the floor: the same landmark models alone (same detector class, same concurrency, same pacing)
  on the same frames, interleaved with the loop in blocks so both see the same machine load; the
  loop's overhead = whole - floor, in ms and as a ratio; and the loop's own cost per frame
  (end to end - waiting for the loop - landmarks), which stays readable on a busy machine;
- checks `benchmarks/budgets.toml[profile]`, exits 1 when over budget; writes JSON and a PNG
  (latency histograms + per-frame timeline) to --out.
- `--backend onnx|mediapipe` picks the landmark backend (`[landmarks] backend`); `both` first runs
  the two landmark stages alone in alternating blocks on the same frames (same pacing, same load),
  prints `landmark stage ratio onnx/mediapipe: X.XX` and writes `landmark_ratio_onnx_over_mediapipe`,
  then measures the whole loop with the onnx backend. Without converted models in the bundle or
  `landmarks.onnx_dir`, the onnx backend uses `export.landmark_models.ensure_landmark_onnx()`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from latentcast.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_SOURCE_KEY = "data/video/hand_landmarker_test_video.mp4"
BUDGETS = Path(__file__).with_name("budgets.toml")


# --------------------------------------------------------------------------- subscriber process
def subscriber_main(endpoint: str, out_path: str) -> int:
    """Runs in its own process: stamp every latent on arrival until stdin closes, then dump."""
    from latentcast.subscriber import LatentSubscriber

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    records = []
    with LatentSubscriber(endpoint) as sub:
        print("ready", flush=True)
        while not stop.is_set():
            if not sub.socket.poll(50):
                continue
            for msg in iter(sub.latest, None):
                records.append((msg.seq, msg.capture_ns, msg.publish_ns, time.monotonic_ns()))
        stats = sub.stats
    Path(out_path).write_text(
        json.dumps({"records": records, "malformed": stats.malformed, "wrong_version": stats.wrong_version})
    )
    return 0


def start_subscriber(endpoint: str, out_path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--subscriber-process", endpoint, str(out_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the subscriber process did not start")
    return proc


# --------------------------------------------------------------------------- statistics
def summary(values_ns) -> dict:
    ms = np.asarray(values_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": int(ms.size), "p50": p50, "p95": p95, "p99": p99, "max": float(ms.max()), "mean": float(ms.mean())}


def load_budget(path: Path, profile: str) -> dict:
    from edge.config import tomllib  # tomli on Python 3.10

    budgets = tomllib.loads(path.read_text())
    if profile not in budgets:
        raise UserError(f"budget profile {profile!r} is not in {path}: choose one of {', '.join(budgets)}")
    return budgets[profile]


def e2e_limit_ms(budget: dict, frame_period_ms: float) -> float | None:
    """The profile's end-to-end p99 limit in ms ("frame_period": one source frame), or None."""
    limit = budget.get("e2e_p99_ms")
    if limit is None:
        return None
    return frame_period_ms if limit == "frame_period" else float(limit)


def check_budget(budget: dict, report: dict, frame_period_ms: float) -> list[str]:
    """One line per broken limit (empty: within budget)."""
    failures = []
    limit = e2e_limit_ms(budget, frame_period_ms)
    if limit is not None:
        got = report["end_to_end_ms"]["p99"]
        if got > limit:
            failures.append(f"end-to-end p99 {got:.2f} ms > {limit:.2f} ms")
    if "overhead_p50_ms" in budget and report.get("overhead"):
        got = report["overhead"]["p50_ms"]
        if got > budget["overhead_p50_ms"]:
            failures.append(f"overhead p50 {got:.2f} ms > {budget['overhead_p50_ms']:.2f} ms")
    if "max_drop_ratio" in budget:
        got = report["drops"]["ratio"]
        if got > budget["max_drop_ratio"]:
            failures.append(f"drop ratio {got:.3f} > {budget['max_drop_ratio']:.3f}")
    return failures


# --------------------------------------------------------------------------- the floor
def decode_clip(uri: str) -> list[np.ndarray]:
    """Every frame of a file source (or image folder), so the floor sees exactly the loop's frames."""
    from edge.capture import Capture, open_reader

    clip = []
    with Capture(open_reader(uri), pace="fast") as cap:
        while (frame := cap.next(timeout=5.0)) is not None:
            clip.append(frame.image)
    if not clip:
        raise UserError(f"source {uri} gave no frames: check --source")
    return clip


class Floor:
    """The landmark models alone: separate model instances, the loop's own ConcurrentDetector."""

    def __init__(self, clip: list[np.ndarray], face: bool, hands: bool, models: dict) -> None:
        from edge.loop import ConcurrentDetector
        from edge.onnx_landmarks.stage import build_landmark_stage

        self.clip = clip
        self.stage = build_landmark_stage(face=face, hands=hands, **models)  # the backend cfg.landmarks names
        self.detector = ConcurrentDetector(self.stage)

    def measure(self, timings, fps: float | None) -> list[int]:
        """Wall ns per frame on the frames the loop just processed, paced like the source."""
        durations, start = [], time.monotonic()
        for i, t in enumerate(timings):
            if fps:  # idle between frames as the loop does with a camera
                time.sleep(max(0.0, start + i / fps - time.monotonic()))
            image = self.clip[t.frame_index % len(self.clip)]
            t0 = time.perf_counter_ns()
            self.detector(image, t.capture_ns // 1_000_000)
            durations.append(time.perf_counter_ns() - t0)
            self.stage.idle()  # as the loop does once its frame is published
        return durations

    def close(self) -> None:
        self.detector.close()
        self.stage.close()


# --------------------------------------------------------------------------- the whole loop
def run_interleaved(cfg, frames: int, warmup: int, block: int, sub_out: Path, floor_args: dict | None):
    """Warm up (not counted), then alternate: `block` frames through the whole loop, then the floor
    on those same frames. Interleaving puts both under the same machine load, which on a shared
    machine matters more than anything measured here."""
    from edge.run import build
    from latentcast.progress import progress

    with ExitStack() as stack:
        edge = build(cfg, stack, keep_timings=True, status=False)
        loop, cap = edge.loop, edge.capture.stats
        floor = Floor(**floor_args) if floor_args else None
        if floor is not None:
            stack.callback(floor.close)
        pacing = edge.capture.reader.fps if cfg.source.pace == "native" else None
        sub = start_subscriber(edge.publisher.bound_endpoint, sub_out)
        time.sleep(0.5)  # PUB/SUB slow joiner: the subscription must reach the publisher first
        floor_ns: list[int] = []
        loop_s, dropped, produced = 0.0, 0, 0
        try:
            loop.run(max_frames=warmup)
            if floor is not None:
                floor.measure(loop.stats.timings, pacing)
            loop.stats.timings.clear()
            goal = warmup + frames
            with progress(total=frames, desc="loop + floor blocks", leave=False) as bar:
                while (done := loop.stats.frames) < goal:
                    edge.capture.next(timeout=0)  # drop the frame that went stale while the floor ran
                    d0, p0, t0 = cap.dropped, cap.produced, time.monotonic()
                    first = len(loop.stats.timings)
                    loop.run(max_frames=min(goal, done + block))
                    loop_s += time.monotonic() - t0
                    dropped, produced = dropped + cap.dropped - d0, produced + cap.produced - p0
                    bar.update(loop.stats.frames - done)
                    if loop.stats.frames == done:
                        break  # the source ended
                    if floor is not None:
                        floor_ns += floor.measure(loop.stats.timings[first:], pacing)
        finally:
            time.sleep(0.3)  # let the last messages arrive
            sub.stdin.close()
            sub.wait(timeout=30)
        fps = edge.capture.reader.fps
    drops = {"capture": dropped, "produced": produced, "ratio": dropped / max(1, produced)}
    received = json.loads(sub_out.read_text())
    return loop.stats, drops, loop_s, received, fps, np.array(floor_ns, np.int64)


def plot(path: Path, e2e_ms, floor_ms, timeline, budget_ms: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_hist, ax_time) = plt.subplots(1, 2, figsize=(14, 4.8))
    top = max(np.percentile(e2e_ms, 99.9) if len(e2e_ms) else 1, np.percentile(floor_ms, 99.9) if len(floor_ms) else 1)
    bins = np.linspace(0, top * 1.05, 80)
    ax_hist.hist(floor_ms, bins=bins, alpha=0.6, label="landmark models alone (floor)")
    ax_hist.hist(e2e_ms, bins=bins, alpha=0.6, label="whole loop, frame -> subscriber")
    if budget_ms:
        ax_hist.axvline(budget_ms, color="r", ls="--", label=f"budget p99 {budget_ms:.1f} ms")
    ax_hist.set_xlabel("ms")
    ax_hist.set_ylabel("frames")
    ax_hist.set_title("latency distribution")
    ax_hist.legend()
    seq, stacks, labels, arrival_seq, arrival_ms = timeline
    ax_time.stackplot(seq, *stacks, labels=labels, alpha=0.8)
    ax_time.plot(arrival_seq, arrival_ms, "k.", ms=2, label="end to end (received)")
    ax_time.set_xlabel("frame (seq)")
    ax_time.set_ylabel("ms")
    ax_time.set_title("per-frame timeline: stages (stacked) and end to end")
    ax_time.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None, help=f"source URI (default: the asset {DEFAULT_SOURCE_KEY})")
    parser.add_argument("--config", default=None, help="edge TOML config (edge/default.toml layout)")
    parser.add_argument("--bundle", default=None, help="bundle folder (default: none, landmarks only)")
    parser.add_argument("--frames", type=int, default=600, help="frames to publish (the clip is looped)")
    parser.add_argument("--warmup", type=int, default=30, help="frames run first and not counted")
    parser.add_argument("--block", type=int, default=50, help="frames per loop block between floor blocks")
    parser.add_argument("--pace", choices=["native", "fast"], default="native", help="file pacing")
    parser.add_argument("--profile", default="default", help="budget profile in --budgets")
    parser.add_argument("--budgets", type=Path, default=BUDGETS)
    parser.add_argument("--no-face", action="store_true")
    parser.add_argument("--no-hands", action="store_true")
    parser.add_argument("--no-floor", action="store_true", help="skip the landmarks-alone floor run")
    parser.add_argument(
        "--backend", choices=["mediapipe", "onnx", "both"], default=None, help="landmark backend (default: config's)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "latency")
    parser.add_argument("--subscriber-process", nargs=2, metavar=("ENDPOINT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscriber_process:
        return subscriber_main(*args.subscriber_process)

    from edge.config import load_config

    source = args.source
    if source is None:
        from latentcast.assets import resolve

        source = f"file://{resolve(DEFAULT_SOURCE_KEY)}"
    overrides = {
        "source.uri": source,
        "source.pace": args.pace,
        "source.loop": True,
        "stream.endpoint": "tcp://127.0.0.1:0",
        "stream.preview": False,
        "parts.face": not args.no_face,
        "parts.hands": not args.no_hands,
    }
    if args.bundle:
        overrides["bundle.path"] = args.bundle
    if args.backend:
        overrides["landmarks.backend"] = "onnx" if args.backend == "both" else args.backend
    cfg = load_config(args.config, overrides)
    if cfg.landmarks.backend == "onnx":
        cfg.landmarks.onnx_dir = onnx_dir_for(cfg, args.bundle)
    budget = load_budget(args.budgets, args.profile)
    args.out.mkdir(parents=True, exist_ok=True)

    live = source.startswith(("csi://", "v4l2://")) or source.isdigit()
    floor_args = None
    if not args.no_floor and not live:
        models = {"landmarks": cfg.landmarks, "providers": cfg.bundle.providers or None}
        if args.bundle:
            from edge.stages import BundleEncoders

            encoders = BundleEncoders(args.bundle, parts=())
            models.update(face_model=encoders.landmark_model("face"), hand_model=encoders.landmark_model("hand"))
            models["bundle"] = encoders.bundle
        floor_args = {"clip": decode_clip(source), "face": cfg.parts.face, "hands": cfg.parts.hands, "models": models}
    comparison = None
    if args.backend == "both":
        if floor_args is None:
            raise UserError("--backend both needs a file source and the floor (drop --no-floor)")
        from edge.capture import SourceSettings, open_reader

        reader = open_reader(source, SourceSettings(fps=cfg.source.fps))
        reader.open()
        clip_fps = reader.fps  # pace both stages at the clip's own rate, as the loop does
        reader.close()
        comparison = compare_backends(floor_args, args.frames, args.block, args.warmup, clip_fps)
    load_before = os.getloadavg()
    stats, drops, elapsed, received, fps, floor_ns = run_interleaved(
        cfg, args.frames, args.warmup, args.block, args.out / "subscriber.json", floor_args
    )
    timings = stats.timings
    by_seq = {t.seq: t for t in timings}
    arrivals = [(seq, recv - cap_ns) for seq, cap_ns, _pub, recv in received["records"] if seq in by_seq]
    e2e_ns = np.array([d for _, d in arrivals], np.int64)
    stages = {name: summary([t.stages_ns[name] for t in timings]) for name in timings[0].stages_ns}
    frame_period_ms = 1000.0 / fps if fps else 1000.0 / cfg.source.fps
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPU ({platform.processor() or platform.platform()})",
        "load_average_1min": {"before": load_before[0], "after": os.getloadavg()[0]},  # other jobs on the machine
        "source": source,
        "pace": args.pace,
        "bundle": args.bundle,
        "parts": {"face": cfg.parts.face, "hands": cfg.parts.hands},
        "frames_published": len(timings),
        "frames_received": int(e2e_ns.size),
        "lost_in_transit": len(timings) - int(e2e_ns.size),
        "fps": len(timings) / elapsed if elapsed > 0 else 0.0,
        "source_fps": fps,
        "warmup_frames_excluded": args.warmup,
        "drops": drops,
        "stages_ms": stages,
        "capture_to_publish_ms": summary([t.publish_ns - t.capture_ns for t in timings]),
        "end_to_end_ms": summary(e2e_ns),
        "transport_ms": summary([recv - pub for seq, _c, pub, recv in received["records"] if seq in by_seq]),
        "subscriber": {"malformed": received["malformed"], "wrong_version": received["wrong_version"]},
        "frames_with_face": sum(t.face for t in timings),
        "frames_with_hands": sum(t.hands > 0 for t in timings),
        "profile": args.profile,
        "budget": budget,
    }
    # The loop's own cost per frame, robust to machine load: end to end minus the time the frame
    # waited for the loop (queueing behind a slow previous frame) minus the landmark models.
    own = [d - by_seq[seq].stages_ns["wait"] - by_seq[seq].stages_ns["landmarks"] for seq, d in arrivals]
    report["own_cost_ms"] = summary(own)
    if floor_ns.size:
        floor = summary(floor_ns)
        whole = report["end_to_end_ms"]
        position = {t.seq: i for i, t in enumerate(timings)}
        per_frame = [d - floor_ns[position[seq]] for seq, d in arrivals]
        report["floor_ms"] = floor
        report["overhead"] = {
            "p50_ms": whole["p50"] - floor["p50"],
            "p99_ms": whole["p99"] - floor["p99"],
            "ratio_p50": whole["p50"] / floor["p50"],
            "per_frame_p50_ms": float(np.median(per_frame)) / 1e6,
        }
    report["landmark_backend"] = cfg.landmarks.backend
    if comparison is not None:
        report["backend_comparison"] = comparison
        report["landmark_ratio_onnx_over_mediapipe"] = comparison["ratio_p50"]
    failures = check_budget(budget, report, frame_period_ms)
    report["within_budget"] = not failures
    report["over_budget"] = failures

    seq = np.array([t.seq for t in timings])
    names = list(timings[0].stages_ns)
    stacks = [np.array([t.stages_ns[n] for t in timings]) / 1e6 for n in names]
    png = args.out / "latency.png"
    timeline = (seq, stacks, names, [q for q, _ in arrivals], e2e_ns / 1e6)
    plot(png, e2e_ns / 1e6, floor_ns / 1e6, timeline, e2e_limit_ms(budget, frame_period_ms))
    json_path = args.out / "latency.json"
    json_path.write_text(json.dumps(report, indent=2, default=float) + "\n")

    print_report(report)
    if comparison is not None:
        for name in ("mediapipe", "onnx"):
            s = comparison[name]
            print(
                f"  landmark stage {name:<9} p50 {s['p50']:7.2f}  p95 {s['p95']:7.2f}  p99 {s['p99']:7.2f} ms, "
                f"CPU {s['cpu_ms_per_frame']:.2f} ms/frame"
            )
        print(f"landmark stage ratio onnx/mediapipe: {comparison['ratio_p50']:.2f}")
        print(f"landmark stage CPU time ratio onnx/mediapipe: {comparison['cpu_ratio']:.2f}")
    print(f"wrote {json_path} and {png}")
    if failures:
        print("OVER BUDGET: " + "; ".join(failures))
        return 1
    print(f"within budget ({args.profile})")
    return 0


def onnx_dir_for(cfg, bundle: str | None) -> str:
    """landmarks.onnx_dir for the onnx backend: as configured, "" when the bundle has the models, else the cache."""
    from edge.onnx_landmarks.stage import landmark_onnx_for

    opened = None
    if bundle:
        from latentcast.bundle import open_bundle

        opened = open_bundle(bundle)
    if cfg.landmarks.onnx_dir or landmark_onnx_for(cfg.landmarks, opened) is not None:
        return cfg.landmarks.onnx_dir
    from export.landmark_models import ensure_landmark_onnx  # workstation benchmark: converted once, cached

    return str(ensure_landmark_onnx()["hand_detector"].parent)


def compare_backends(floor_args: dict, frames: int, block: int, warmup: int, fps: float) -> dict:
    """Both landmark stages alone on the same frames, alternating blocks, paced at the source rate.

    Each stage keeps its own tracking state across its blocks (a block continues where that stage's
    previous block stopped), so both see the clip as a stream; alternation puts both under the
    same machine load. Returns per-backend summaries (ms) and ratio_p50 = onnx / mediapipe.
    """
    import dataclasses

    clip, base = floor_args["clip"], floor_args["models"]["landmarks"]
    floors = {}
    for name in ("mediapipe", "onnx"):
        models = dict(floor_args["models"], landmarks=dataclasses.replace(base, backend=name))
        floors[name] = Floor(clip, floor_args["face"], floor_args["hands"], models)
    durations: dict[str, list[int]] = {name: [] for name in floors}
    cpu_s = {name: 0.0 for name in floors}
    try:
        for floor in floors.values():  # warm up both, not counted
            floor.measure([_FakeTiming(i, int(i * 1e9 / fps)) for i in range(warmup)], fps)
        index = warmup
        while len(durations["onnx"]) < frames:
            n = min(block, frames - len(durations["onnx"]))
            window = [_FakeTiming(index + i, int((index + i) * 1e9 / fps)) for i in range(n)]
            for name, floor in floors.items():
                cpu0 = time.process_time()  # every thread of this process: MediaPipe's native ones too
                durations[name] += floor.measure(window, fps)
                cpu_s[name] += time.process_time() - cpu0
            index += n
    finally:
        for floor in floors.values():
            floor.close()
    out = {name: summary(np.array(values, np.int64)) for name, values in durations.items()}
    for name in floors:  # CPU time per frame: the cost, whatever the scheduler gave each on a busy machine
        out[name]["cpu_ms_per_frame"] = 1000.0 * cpu_s[name] / max(1, len(durations[name]))
    out["ratio_p50"] = out["onnx"]["p50"] / out["mediapipe"]["p50"]
    out["cpu_ratio"] = out["onnx"]["cpu_ms_per_frame"] / out["mediapipe"]["cpu_ms_per_frame"]
    out["frames_each"] = frames
    out["block"] = block
    return out


class _FakeTiming:
    """The two fields `Floor.measure` reads from a loop timing record."""

    def __init__(self, frame_index: int, capture_ns: int) -> None:
        self.frame_index, self.capture_ns = frame_index, capture_ns


def print_report(report: dict) -> None:
    def row(name: str, s: dict) -> str:
        if not s.get("n"):
            return f"  {name:<22} (none)"
        return f"  {name:<22} p50 {s['p50']:7.2f}  p95 {s['p95']:7.2f}  p99 {s['p99']:7.2f}  max {s['max']:7.2f} ms"

    load = report["load_average_1min"]
    print(f"machine: {report['machine']}, load average {load['before']:.1f} -> {load['after']:.1f}")
    print(f"source: {report['source']} ({report['pace']})")
    print(
        f"frames: {report['frames_published']} published, {report['frames_received']} received, "
        f"fps {report['fps']:.1f} (source {report['source_fps']:.1f}), "
        f"dropped at capture {report['drops']['capture']}, "
        f"face in {report['frames_with_face']}, hands in {report['frames_with_hands']}"
    )
    for name, s in report["stages_ms"].items():
        print(row(name, s))
    print(row("capture -> publish", report["capture_to_publish_ms"]))
    print(row("zmq transport", report["transport_ms"]))
    print(row("END TO END", report["end_to_end_ms"]))
    print(row("own cost (e2e-wait-lm)", report["own_cost_ms"]))
    if "floor_ms" in report:
        print(row("floor (landmarks only)", report["floor_ms"]))
        o = report["overhead"]
        print(
            f"  overhead (whole - floor): p50 {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms, "
            f"ratio {o['ratio_p50']:.3f}, per-frame median {o['per_frame_p50_ms']:.2f} ms"
        )


if __name__ == "__main__":
    sys.exit(run_cli(main))
