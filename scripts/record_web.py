"""Record the 3D browser renderer: headless Chromium opens the page and its frames become a video.

    python scripts/record_web.py --url http://127.0.0.1:8080/ --out runs/demo/demo3d.mp4 --still runs/demo/still3d.png

Used by scripts/demo.py beside the 2D video. Debian's chromium (`apt-get install chromium`) is driven
by Playwright with SwiftShader WebGL (no GPU needed); screenshots are taken at most `--fps` a second
and placed on a constant-rate timeline (`--fps`), repeating a frame when the next came late. Stops
when the renderer closes the stream (after the page had been connected), or after `--max-duration`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from latentcast.errors import UserError, run_cli
from renderer.web import CHROMIUM_ARGS


def chromium_path() -> str | None:
    """Debian's chromium, or None (the caller skips the 3D recording with a note)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def record(
    url: str, out: Path, still: Path | None, fps: float, size: tuple[int, int], max_duration: float,
    ready_file: Path | None = None,
) -> int:
    import cv2
    import numpy as np
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise UserError("chromium is not installed: apt-get install chromium (Debian) to record the 3D page")
    out.parent.mkdir(parents=True, exist_ok=True)
    frames: list[tuple[float, np.ndarray, bool]] = []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=exe, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": size[0], "height": size[1]},
        )  # fmt: skip
        page = context.new_page()
        deadline = time.monotonic() + 60
        while True:  # the renderer may still be starting
            try:
                page.goto(f"{url}?fps={fps:g}", timeout=5_000)  # draw no faster than recorded: CPU for the rest
                break
            except Exception as exc:  # connection refused while the server starts
                if time.monotonic() > deadline:
                    raise UserError(f"could not open {url}: {exc}") from None
                time.sleep(0.5)
        page.wait_for_function("window.__latentcast && window.__latentcast.vrm !== null", timeout=60_000)
        start = time.monotonic()
        seen_stream = False
        while time.monotonic() - start < max_duration:
            state = page.evaluate("({c: window.__latentcast.connected, t: window.__latentcast.tracking})")
            if state["c"] and not seen_stream and ready_file is not None:
                ready_file.write_text("connected\n")  # the demo starts the edge only now
            seen_stream = seen_stream or state["c"]
            if seen_stream and not state["c"]:
                break  # the renderer closed the stream: the run is over
            if seen_stream:
                shot_at = time.monotonic()
                image = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
                frames.append((shot_at, image, state["t"] == "tracking"))
                # one screenshot per video frame: more only costs CPU the edge loop beside it needs
                time.sleep(max(0.0, shot_at + 1.0 / fps - time.monotonic()))
            else:
                time.sleep(0.1)
        context.close()
    if not frames:
        raise UserError(f"the page at {url} never received the stream: is the renderer running with --web?")
    height, width = frames[0][1].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    t0, slot = frames[0][0], 0
    for i, (t, image, _) in enumerate(frames):
        end = frames[i + 1][0] if i + 1 < len(frames) else t + 1.0 / fps
        while t0 + slot / fps < end:  # this frame covers the slots until the next one arrived
            writer.write(image)
            slot += 1
    writer.release()
    tracked = [image for _, image, ok in frames if ok]
    if still is not None and tracked:
        still.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(still), tracked[len(tracked) // 2])
    print(f"    3D page: {len(frames)} screenshots ({len(frames) / max(frames[-1][0] - t0, 1e-3):.1f}/s), "
          f"{slot} video frames at {fps:g} fps -> {out}")  # fmt: skip
    return len(frames)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/record_web.py", description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the renderer's page, e.g. http://127.0.0.1:8080/")
    p.add_argument("--out", type=Path, required=True, help="video file (.mp4, mp4v)")
    p.add_argument("--still", type=Path, help="also save a tracked frame from the middle as PNG")
    p.add_argument("--fps", type=float, default=10.0, help="video frame rate (screenshots are slower than WebGL)")
    p.add_argument("--size", default="640x360", help="page size WIDTHxHEIGHT")
    p.add_argument("--max-duration", type=float, default=600.0, help="stop after this many seconds")
    p.add_argument("--ready-file", type=Path, help="written once the page is connected to the stream")
    args = p.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {args.size!r}: write WIDTHxHEIGHT, e.g. 640x360") from None
    record(args.url, args.out, args.still, args.fps, (width, height), args.max_duration, args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
