"""The renderer against a real edge publisher in another process, over real ZeroMQ sockets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import renderer_support as support
from helpers import free_port

from renderer.app import RendererConfig, RendererHost

ROOT = Path(__file__).resolve().parents[1]


def start_publisher(endpoint: str, bundle: Path, frames: int, preview: str = "", bad_every: int = 0, curve: str = ""):
    code = (
        "import sys; sys.path.insert(0, 'tests'); import renderer_support as s; "
        f"s.publish_stream({endpoint!r}, {str(bundle)!r}, {frames}, preview_endpoint={preview!r}, "
        f"bad_every={bad_every}, curve_secret={curve!r})"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return support.make_bundle(tmp_path_factory.mktemp("bundle") / "latentcast-bundle-test")


def test_malformed_and_older_version_messages_are_rejected_with_counted_warnings(bundle, caplog):
    port = free_port()
    publisher = start_publisher(f"tcp://127.0.0.1:{port}", bundle, frames=90, bad_every=6)
    caplog.set_level(logging.WARNING)
    host = RendererHost(RendererConfig(endpoint=f"tcp://127.0.0.1:{port}", bundle=bundle, out=None, duration_s=6.0,
                                       exit_after_silence_s=1.0))  # fmt: skip
    try:
        summary = host.run()
    finally:
        publisher.wait(timeout=30)
    m = summary["messages"]
    assert m["received"] > 30, summary
    assert m["malformed"] >= 3 and m["wrong_version"] >= 3, m
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "malformed" in warnings and "another protocol version" in warnings
    # The bad messages cost nothing else: the valid ones were decoded and rendered.
    assert summary["frames"]["hands_decoded"] > 30 and summary["frames_rendered"] >= m["received"]
    assert summary["latency"]["capture_to_render"]["count"] > 30


def test_cli_writes_side_by_side_video_summary_and_still(bundle, tmp_path):
    import cv2

    port, preview_port = free_port(), free_port()
    publisher = start_publisher(f"tcp://127.0.0.1:{port}", bundle, frames=75, preview=f"tcp://127.0.0.1:{preview_port}")
    out, summary_path, still = tmp_path / "render.mp4", tmp_path / "render.json", tmp_path / "still.png"
    cmd = [sys.executable, "-m", "renderer.run", "--endpoint", f"tcp://127.0.0.1:{port}", "--bundle", str(bundle),
           "--side-by-side", "--preview-endpoint", f"tcp://127.0.0.1:{preview_port}", "--out", str(out),
           "--exit-after-silence", "1.0", "--duration", "20", "--summary", str(summary_path), "--still", str(still),
           "--size", "320x180"]  # fmt: skip
    try:
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        publisher.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "capture->render p50" in result.stdout
    summary = json.loads(summary_path.read_text())
    assert summary["messages"]["received"] > 40 and summary["preview_frames"] > 20
    lat = summary["latency"]["capture_to_render"]
    assert lat["count"] > 40 and 0 < lat["p50_ms"] <= lat["p99_ms"] < 1000
    assert summary["latency"]["clock"].startswith("same host")
    video = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == summary["frames_written"] > 40
    elapsed = summary["elapsed_s"]  # a constant-rate video that keeps real time (start and end within a frame or two)
    assert abs(len(frames) / 30.0 - elapsed) < 0.5
    assert frames[0].shape == (180, 640, 3)  # input | character, each 320x180
    left, right = np.stack([f[:, :320] for f in frames]), np.stack([f[:, 320:] for f in frames])
    assert left.std(axis=0).mean() > 1.0  # the preview changes frame to frame
    assert right.std(axis=0).mean() > 1.0  # so does the character (gestures and expressions cycle)
    assert cv2.imread(str(still)).shape == (180, 640, 3)


def test_curve_encrypted_stream_needs_the_right_server_key(bundle, tmp_path):
    from edge.keys import create_keys
    from latentcast.subscriber import CurveClientKeys

    server_public, server_secret = create_keys(tmp_path / "keys", "edge")
    _, client_secret = create_keys(tmp_path / "keys", "renderer")
    _, wrong_secret = create_keys(tmp_path / "keys", "impostor")
    results = {}
    for name, server_key in (("right", server_public), ("wrong", wrong_secret.with_suffix(".key"))):
        port = free_port()
        publisher = start_publisher(f"tcp://127.0.0.1:{port}", bundle, frames=40, curve=str(server_secret))
        curve = CurveClientKeys.from_files(server_key, client_secret)
        host = RendererHost(RendererConfig(endpoint=f"tcp://127.0.0.1:{port}", bundle=bundle, duration_s=3.0,
                                           exit_after_silence_s=0.5, curve=curve))  # fmt: skip
        try:
            results[name] = host.run()["messages"]["received"]
        finally:
            publisher.wait(timeout=30)
    assert results["right"] > 10
    assert results["wrong"] == 0  # the handshake fails: nothing is readable without the device's key


def test_cli_reports_user_errors_without_traceback(tmp_path):
    cmd = [sys.executable, "-m", "renderer.run", "--bundle", str(tmp_path / "missing"), "--out", "x.mp4"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: bundle") and "Traceback" not in result.stderr
