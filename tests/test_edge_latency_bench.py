"""benchmarks/latency.py end to end on a few frames: it runs, writes JSON and PNG, checks budgets.

Only the mechanics are asserted here; the figures themselves come from full benchmark runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_latency_benchmark_writes_report_and_applies_the_budget(tmp_path):
    budgets = tmp_path / "budgets.toml"
    budgets.write_text("[generous]\ne2e_p99_ms = 5000.0\n\n[impossible]\ne2e_p99_ms = 0.001\n")
    common = [sys.executable, "benchmarks/latency.py", "--frames", "20", "--warmup", "5", "--block", "10"]
    common += ["--pace", "fast", "--budgets", str(budgets), "--no-face"]
    ok = subprocess.run(
        [*common, "--profile", "generous", "--out", str(tmp_path / "a")], cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads((tmp_path / "a" / "latency.json").read_text())
    assert (tmp_path / "a" / "latency.png").stat().st_size > 10_000
    assert report["frames_published"] == 20 and report["frames_received"] >= 15
    assert report["frames_with_hands"] >= 15 and report["within_budget"]
    for key in ("wait", "landmarks", "features", "encoder", "filter", "publish"):
        stage = report["stages_ms"][key]
        assert stage["n"] == 20 and 0 <= stage["p50"] <= stage["p95"] <= stage["p99"] <= stage["max"]
    e2e, floor = report["end_to_end_ms"], report["floor_ms"]
    assert e2e["p50"] >= report["stages_ms"]["landmarks"]["p50"] * 0.5 and floor["n"] == 20
    assert set(report["overhead"]) >= {"p50_ms", "ratio_p50"}

    over = subprocess.run(
        [*common, "--profile", "impossible", "--no-floor", "--out", str(tmp_path / "b")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert over.returncode == 1 and "OVER BUDGET: end-to-end p99" in over.stdout


def test_unknown_budget_profile_is_a_user_error():
    proc = subprocess.run(
        [sys.executable, "benchmarks/latency.py", "--profile", "no-such-board"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "budget profile 'no-such-board'" in proc.stderr
