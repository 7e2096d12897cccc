"""The README's main command, short: `scripts/demo.py` trains the real gesture and expression models (1 epoch),
builds the bundle, runs `edge.run` and `renderer.run` as two processes over ZeroMQ, and writes its results.

This is the only test where the renderer decodes with TRAINED decoders latents that `edge.run` produced
(the other renderer tests use hand-written stand-in decoders or synthetic latents), so the whole edge ->
renderer chain cannot break unseen. Slow: about 3 minutes on 2 idle cores, most of it training and bundling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)
def test_the_demo_runs_end_to_end_with_trained_models(tmp_path):
    pytest.importorskip("torch")
    out, models = tmp_path / "demo", tmp_path / "models"
    cmd = [sys.executable, "scripts/demo.py", "--out", str(out), "--models", str(models), "--epochs", "1"]
    proc = subprocess.run(
        [*cmd, "--frames", "40"], cwd=ROOT, capture_output=True, text=True, timeout=1700, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    for name in ("gesture", "expression"):
        assert (models / name / "model.pt").is_file(), f"the demo did not train the {name} model"
    summary = json.loads((out / "renderer_summary.json").read_text())
    bundle = Path(summary["bundle"])
    assert (bundle / "manifest.json").is_file() and bundle.parent == out / "bundles"
    msgs, frames = summary["messages"], summary["frames"]
    # Every message the renderer got is the edge's, for this bundle's decoders, and valid.
    assert msgs["received"] >= 1 and msgs["other_model"] == 0
    assert msgs["malformed"] == msgs["wrong_version"] == msgs["invalid_values"] == 0
    # The clip shows a hand: the trained gesture decoder ran on edge latents, and its output was finite.
    assert frames["hands_decoded"] >= 1 and frames["nonfinite_decoded"] == 0
    assert summary["frames_rendered"] >= 1
    latency = json.loads((out / "latency.json").read_text())
    assert latency["frames_rendered"] == summary["frames_rendered"] and latency["capture_to_render_ms"]["count"] >= 1
    video = cv2.VideoCapture(str(out / "demo.mp4"))
    ok, first = video.read()
    video.release()
    assert ok and first.shape[1] > first.shape[0], "the side-by-side video has no frame"
    assert cv2.imread(str(out / "still.png")) is not None
