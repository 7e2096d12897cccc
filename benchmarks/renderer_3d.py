"""The 3D outputs' costs: VMC frame build, packet sizes, the web frame, and capture -> browser-frame latency.

    python benchmarks/renderer_3d.py [--frames 300] [--browser-seconds 10] [--out runs/bench/renderer_3d.json]

VMC and web: the per-frame CPU time of this process (`time.process_time`, so other jobs on a shared
host do not inflate it) for pose + OSC encoding and pose + JSON, over varied parameters. Browser:
the real page in Debian's chromium (headless, SwiftShader WebGL) fed at 30 fps by
`renderer.web.WebRenderer` with the capture time stamped just before publishing, so the figure is
host publish -> WebSocket -> page -> WebGL frame drawn, on the page's clock-offset estimate.
Skipped (with the reason in the JSON) without chromium or the page's npm modules.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np

from renderer.latency import percentiles
from renderer.params import CharacterParams, FaceParams, HandParams
from renderer.pose import PoseConfig
from renderer.vmc import VMCConfig, VMCSender
from renderer.web import CHROMIUM_ARGS, WEB_DIR, WebConfig, WebRenderer, frame_message


def varied(i: int) -> CharacterParams:
    t = i / 30.0
    s = 0.5 + 0.5 * math.sin(t)
    return CharacterParams(
        face=FaceParams(present=1, yaw=0.5 * math.sin(t), pitch=0.2 * math.cos(t), mouth_open=s, gaze_yaw=0.2 * s),
        left_hand=HandParams(present=1, wrist_x=0.6 + 0.3 * s, wrist_y=0.3 + 0.4 * s, curls=(s,) * 5),
        right_hand=HandParams(present=1, wrist_x=0.4 - 0.3 * s, wrist_y=0.6, curls=(1 - s,) * 5),
    )


def bench_cpu(frames: int) -> dict:
    sender = VMCSender(VMCConfig(port=9, blendshapes="both"))
    build_ms, sizes, packets = [], [], []
    for i in range(frames):
        params = varied(i)
        start = time.process_time()
        out = sender.build(params, i / 30)
        build_ms.append((time.process_time() - start) * 1e3)
        packets.append(len(out))
        sizes += [len(p) for p in out]
    sender.close()
    web_ms, web_bytes = [], []
    for i in range(frames):
        start = time.process_time()
        text = json.dumps(frame_message(varied(i), i, 0.0, True, PoseConfig()))
        web_ms.append((time.process_time() - start) * 1e3)
        web_bytes.append(len(text))
    return {
        "vmc_build_ms": percentiles(build_ms),
        "vmc_packets_per_frame": {"min": min(packets), "max": max(packets)},
        "vmc_packet_bytes": {"max": max(sizes), "mean": float(np.mean(sizes))},
        "web_frame_ms": percentiles(web_ms),
        "web_frame_bytes": {"max": max(web_bytes), "mean": float(np.mean(web_bytes))},
    }


def bench_browser(seconds: float) -> dict:
    chromium = shutil.which("chromium")
    if chromium is None or not (WEB_DIR / "node_modules" / "three").is_dir():
        return {"skipped": "needs Debian's chromium and `npm ci` in renderer/web"}
    from playwright.sync_api import sync_playwright

    web = WebRenderer(WebConfig(port=0)).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 640, "height": 360})
            page.goto(f"http://127.0.0.1:{web.port}/")
            page.wait_for_function("window.__latentcast && window.__latentcast.vrm !== null", timeout=60_000)
            start, i = time.monotonic(), 0
            while time.monotonic() - start < seconds:
                web.publish(varied(i), time.monotonic_ns() / 1e6)
                i += 1
                time.sleep(max(0.0, start + i / 30 - time.monotonic()))
            time.sleep(1.5)  # the last stats report
            browser.close()
    finally:
        web.close()
    summary = web.summary()
    return {
        "seconds": seconds,
        "published": summary["published"],
        "sent": summary["sent"],
        "dropped": summary["dropped"],
        "browser_fps": summary["browser_fps"],
        "publish_to_browser_frame_ms": summary["capture_to_browser_frame"],
        "webgl": "SwiftShader (software), headless chromium",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--browser-seconds", type=float, default=10.0, help="0: skip the browser part")
    p.add_argument("--out", type=Path, default=Path("runs/bench/renderer_3d.json"))
    args = p.parse_args()
    result = {"cpu": bench_cpu(args.frames)}
    if args.browser_seconds > 0:
        result["browser"] = bench_browser(args.browser_seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    c = result["cpu"]
    print(f"VMC frame build p50 {c['vmc_build_ms']['p50_ms']:.2f} ms, p95 {c['vmc_build_ms']['p95_ms']:.2f} ms; "
          f"{c['vmc_packets_per_frame']['min']}-{c['vmc_packets_per_frame']['max']} packets, "
          f"max {c['vmc_packet_bytes']['max']} bytes")  # fmt: skip
    print(f"web frame p50 {c['web_frame_ms']['p50_ms']:.2f} ms, {c['web_frame_bytes']['mean']:.0f} bytes")
    b = result.get("browser", {})
    lat = b.get("publish_to_browser_frame_ms", {})
    if lat.get("count"):
        print(f"browser: {b['browser_fps']} fps, publish -> browser frame p50 {lat['p50_ms']:.1f} ms, "
              f"p95 {lat['p95_ms']:.1f} ms over {lat['count']} frames; "
              f"{b['dropped']} of {b['published']} skipped")  # fmt: skip
    elif b:
        print(f"browser: {b.get('skipped', 'no latency reported')}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
