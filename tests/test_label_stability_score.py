"""benchmarks/label_stability.py's scoring: what counts as a true change, what as flicker."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

UNKNOWN, ABSENT = -1, -2


@pytest.fixture(scope="module")
def score():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "label_stability.py"
    spec = importlib.util.spec_from_file_location("bench_label_stability", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.score


def test_a_part_appearing_is_an_onset_not_flicker(score):
    # The hand appears at frame 0 and again at frame 12 after a gap; the label needs one frame each time.
    reference = np.array([3] * 10 + [ABSENT] * 2 + [3] * 10)
    labels = np.array([UNKNOWN] + [3] * 9 + [UNKNOWN] * 3 + [3] * 9)
    result = score(labels, reference, fps=25.0, dwell=2)
    assert result["onsets"] == 2 and result["true_changes"] == 0
    assert result["spurious_switches"] == 0
    assert result["switch_latency_frames_max"] == 1


def test_a_blink_inside_a_steady_take_is_flicker(score):
    reference = np.array([3] * 20)
    labels = np.array([UNKNOWN] + [3] * 9 + [UNKNOWN] * 2 + [3] * 8)  # drops to unknown and back: 2 switches
    result = score(labels, reference, fps=25.0, dwell=2)
    assert result["spurious_switches"] == 2


def test_a_true_change_is_scored_by_latency(score):
    reference = np.array([3] * 10 + [5] * 10)
    labels = np.array([3] * 12 + [5] * 8)  # the label follows two frames late
    result = score(labels, reference, fps=25.0, dwell=2)
    assert result["true_changes"] == 1 and result["spurious_switches"] == 0
    assert result["switch_latency_frames_max"] == 2
