"""The end-to-end demo: sample clip (or a camera) -> edge -> ZeroMQ -> renderer -> side-by-side video.

    python scripts/demo.py                          # the sample clip; models trained on first run
    python scripts/demo.py --source v4l2:///dev/video0 --duration 30    # a camera instead
    python scripts/demo.py --epochs 1 --frames 40   # a quick run (tests/test_reference_demo.py runs it in CI)

Steps (each skipped when its result is already there, so a second run takes about a minute):
1. resolve the sample clip and landmark models (`latentcast.assets`, offline mirror or download);
2. train the default gesture model (`python -m aae.gestures`) and, when available, the expression
   model (`python -m aae.expressions`) into runs/models/ unless they exist;
3. build the deploy bundle (`python -m export.bundle build`), versioned by the models' hashes;
4. start the renderer (`python -m renderer.run`) in one process and the edge loop
   (`python -m edge.run`) in another, on free local ports, and measure capture -> render;
5. with Debian's chromium, play the clip again to the 3D browser page (`renderer.run --web`) and
   record it headless (`scripts/record_web.py`) into runs/demo/demo3d.mp4 and still3d.png: a pass of
   its own, because software WebGL on the same 2 cores would set the latency measured in step 4
   (a real animation host is another machine);
6. write runs/demo/demo.mp4 (input with landmarks | character), runs/demo/still.png and
   runs/demo/latency.json (capture-to-render percentiles and the renderer's counters).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aae.landmark_aae import CHECKPOINT, MODEL_CARD
from edge.landmarks import FACE_MODEL_KEY, HAND_MODEL_KEY
from latentcast.assets import resolve
from latentcast.bundle import MANIFEST
from latentcast.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]

SAMPLE_CLIP = "data/video/hand_landmarker_test_video.mp4"
MODEL_FILES = (CHECKPOINT, MODEL_CARD)


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def run(cmd: list[str], what: str) -> None:
    """Run a step's command with its own progress output; a failure names the command."""
    print("    $ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        raise UserError(f"{what} failed (exit {result.returncode}): run `{' '.join(cmd)}` to see why")
    print(f"    done in {time.monotonic() - start:.0f} s", flush=True)


def have_model(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MODEL_FILES)


def train_models(models_dir: Path, retrain: bool, epochs: int | None) -> dict[str, Path]:
    py = sys.executable
    models = {}
    plan = [("gesture", "aae.gestures", "aae/gestures.py"), ("expression", "aae.expressions", "aae/expressions.py")]
    for name, module, source in plan:
        folder = models_dir / name
        if have_model(folder) and not retrain:
            print(f"    {name}: using {folder}")
        elif (ROOT / source).is_file():
            cmd = [py, "-m", module, "--out", str(folder)] + (["--epochs", str(epochs)] if epochs else [])
            run(cmd, f"training the {name} model")
        else:
            print(f"    {name}: {source} is not in this checkout; the renderer animates this part from pose only")
            continue
        models[name] = folder
    if not models:
        raise UserError("no model could be trained or found: check aae/gestures.py exists, or pass --models DIR")
    return models


def models_hash(models: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name in sorted(models):
        for filename in MODEL_FILES:
            digest.update(name.encode() + (models[name] / filename).read_bytes())
    return digest.hexdigest()[:10]


def build_bundle(models: dict[str, Path], bundles_dir: Path) -> Path:
    version = f"demo-{models_hash(models)}"
    bundle = bundles_dir / f"latentcast-bundle-{version}"
    if (bundle / MANIFEST).is_file():
        print(f"    using {bundle}")
        return bundle
    cmd = [sys.executable, "-m", "export.bundle", "build", "--out", str(bundles_dir), "--version", version]
    for name, folder in models.items():
        cmd += [f"--{name}", str(folder)]
    run(cmd, "building the bundle")
    return bundle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def web_recording_note() -> str | None:
    """None when the 3D page can be recorded here, else why not (a one-line note; the demo goes on)."""
    import importlib.util
    import shutil

    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium is not installed (apt-get install chromium)"
    if not (ROOT / "renderer" / "web" / "node_modules" / "three").is_dir():
        return "the page's modules are missing (bash scripts/setup.sh runs npm ci)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -r requirements/workstation.txt)"
    return None


def edge_config(path: Path, source: str, bundle: Path, port: int, preview_port: int) -> Path:
    path.write_text(
        "\n".join([
            "# written by scripts/demo.py",
            "[source]", f"uri = {json.dumps(source)}", 'pace = "native"',
            "[bundle]", f"path = {json.dumps(str(bundle))}",
            "[stream]", f'endpoint = "tcp://127.0.0.1:{port}"', 'source_id = "demo"', "preview = true",
            f'preview_endpoint = "tcp://127.0.0.1:{preview_port}"',
        ]) + "\n"
    )  # fmt: skip
    return path


def live_pass(
    render_cmd: list[str],
    edge_cmd: list[str],
    duration: float | None,
    record_cmd: list[str] | None = None,
    ready: Path | None = None,
) -> tuple[int, int]:
    """One live run: the renderer subscribes (and the 3D recorder connects) before the edge plays the source.

    Returns the edge's and the renderer's exit codes; a recorder that fails is reported, not fatal.
    """
    print("    $ " + " ".join(render_cmd))
    renderer = subprocess.Popen(render_cmd, cwd=ROOT)
    time.sleep(1.0)  # the renderer subscribes first, so it sees the edge's first frame
    recorder = None
    if record_cmd is not None and ready is not None:
        ready.unlink(missing_ok=True)
        print("    $ " + " ".join(record_cmd))
        recorder = subprocess.Popen(record_cmd, cwd=ROOT)
        deadline = time.monotonic() + 90
        while not ready.exists() and recorder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # the page is open and connected before the edge starts
    print("    $ " + " ".join(edge_cmd))
    edge = subprocess.Popen(edge_cmd, cwd=ROOT)
    try:
        edge.wait(timeout=duration) if duration else edge.wait()
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        edge.terminate()  # SIGTERM: the edge finishes its frame (or its start-up) and closes cleanly
        try:
            edge.wait(timeout=60)  # start-up (bundle verify, models) can take this long on a loaded machine
        except subprocess.TimeoutExpired:
            edge.kill()
            edge.wait()
    renderer_rc = renderer.wait(timeout=120)
    if recorder is not None and recorder.wait(timeout=120) != 0:
        print(f"    3D recording failed (exit {recorder.returncode}); the 2D results are complete")
    return edge.returncode, renderer_rc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--source", help=f"camera or file URI (default: the sample clip {SAMPLE_CLIP})")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: end of the clip)")
    parser.add_argument("--frames", type=int, help="stop after the edge published this many frames (a quick run)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo", help="output folder")
    parser.add_argument(
        "--models", type=Path, default=ROOT / "runs" / "models", help="model folders (trained if missing)"
    )
    parser.add_argument("--retrain", action="store_true", help="train the models again even if they exist")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the trainers' quick defaults)")
    parser.add_argument("--vmc", metavar="HOST:PORT", help="also drive VMC software (VSeeFace, Warudo, ...)")
    parser.add_argument("--no-3d", dest="record_3d", action="store_false",
                        help="skip the 3D page recording (a second pass of the source in headless chromium)")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    step("1/6 assets")
    source = args.source or f"file://{resolve(SAMPLE_CLIP)}"
    for key in (FACE_MODEL_KEY, HAND_MODEL_KEY):
        print(f"    {key}: {resolve(key)}")
    print(f"    source: {source}")

    step("2/6 models")
    models = train_models(args.models, args.retrain, args.epochs)

    step("3/6 bundle")
    bundle = build_bundle(models, out / "bundles")

    step("4/6 edge and renderer (two processes, ZeroMQ on localhost)")
    port, preview_port = free_port(), free_port()
    config = edge_config(out / "edge.toml", source, bundle, port, preview_port)
    video, still, summary = out / "demo.mp4", out / "still.png", out / "renderer_summary.json"
    renderer_args = ["--endpoint", f"tcp://127.0.0.1:{port}", "--bundle", str(bundle), "--start-on-message",
                     "--exit-after-silence", "1.5", "--duration", str((args.duration or 600) + 60)]  # fmt: skip
    render_cmd = [sys.executable, "-m", "renderer.run", *renderer_args, "--side-by-side", "--preview-endpoint",
                  f"tcp://127.0.0.1:{preview_port}", "--out", str(video), "--still", str(still),
                  "--summary", str(summary)]  # fmt: skip
    if args.vmc:
        render_cmd += ["--vmc", args.vmc]
    edge_cmd = [sys.executable, "-m", "edge.run", "--config", str(config)]
    if args.frames:
        edge_cmd += ["--frames", str(args.frames)]
    edge_rc, renderer_rc = live_pass(render_cmd, edge_cmd, args.duration)
    if edge_rc not in (0, -15) or renderer_rc != 0:
        raise UserError(f"edge exited {edge_rc}, renderer {renderer_rc}: rerun the commands above to see why")

    step("5/6 the 3D page (the source again, recorded headless)")
    web_note = web_recording_note() if args.record_3d else "--no-3d"
    if web_note is None:
        web_port = free_port()
        web_cmd = [sys.executable, "-m", "renderer.run", *renderer_args, "--web", str(web_port)]
        ready = out / ".web_ready"
        record_cmd = [sys.executable, "scripts/record_web.py", "--url", f"http://127.0.0.1:{web_port}/",
                      "--out", str(out / "demo3d.mp4"), "--still", str(out / "still3d.png"),
                      "--ready-file", str(ready)]  # fmt: skip
        edge_rc, renderer_rc = live_pass(web_cmd, edge_cmd, args.duration, record_cmd, ready)
        if edge_rc not in (0, -15) or renderer_rc != 0:
            print(f"    3D recording failed (edge exit {edge_rc}, renderer {renderer_rc}); the 2D results are complete")
    else:
        print(f"    3D recording skipped: {web_note}")

    step("6/6 results")
    report = json.loads(summary.read_text())
    lat = report["latency"]
    latency = {
        "what": "capture (edge, frame available) -> rendered (renderer, frame drawn), two processes on one host",
        "clock": lat["clock"],
        "capture_to_render_ms": lat["capture_to_render"],
        "capture_to_receive_ms": lat["capture_to_receive"],
        "render_stage_ms": lat["render_stage"],
        "frames_rendered": report["frames_rendered"],
        "messages": report["messages"],
        "sequence_gaps": lat["sequence_gaps"],
        "tracked_frames": report["frames"]["tracked"],
        "idle_frames": report["frames"]["idle"],
        "source": source,
        "bundle": str(bundle),
        "host": f"{os.cpu_count()} CPU cores",
    }
    (out / "latency.json").write_text(json.dumps(latency, indent=2) + "\n")
    c = lat["capture_to_render"]
    if c.get("count"):
        print(f"    capture->render over {c['count']} frames: p50 {c['p50_ms']:.1f} ms, p95 {c['p95_ms']:.1f} ms, "
              f"p99 {c['p99_ms']:.1f} ms, max {c['max_ms']:.1f} ms")  # fmt: skip
    print(f"    wrote {video}, {still}, {out / 'latency.json'}  ({time.monotonic() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
