"""The shared open-set rule (latentcast.open_set): the label the renderer shows from class probabilities."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from latentcast import open_set
from latentcast.open_set import UNKNOWN_NAME, confident_label

CLASSES = ["a", "b", "c", "d", "e"]
BLOCK = {"temperature": 1.0, "min_confidence": 0.5}


def test_flat_probabilities_are_unknown():
    label, confidence = confident_label(np.full(5, 0.2, np.float32), CLASSES, BLOCK)
    assert label == UNKNOWN_NAME
    assert confidence == pytest.approx(0.2, abs=1e-6)


def test_peaked_probabilities_give_the_class():
    label, confidence = confident_label(np.array([0.02, 0.9, 0.04, 0.02, 0.02], np.float32), CLASSES, BLOCK)
    assert label == "b"
    assert confidence == pytest.approx(0.9, abs=1e-6)


def test_temperature_is_applied_before_the_threshold():
    probs = np.array([0.1, 0.1, 0.6, 0.1, 0.1])
    assert confident_label(probs, CLASSES, BLOCK) == ("c", pytest.approx(0.6))
    # T = 4 softens: softmax(log p / T) = p**(1/T) / sum, 0.6**0.25 / (0.6**0.25 + 4 * 0.1**0.25) ~ 0.28 < 0.5
    soft = {"temperature": 4.0, "min_confidence": 0.5}
    expected = 0.6**0.25 / (0.6**0.25 + 4 * 0.1**0.25)
    assert confident_label(probs, CLASSES, soft) == (UNKNOWN_NAME, pytest.approx(expected, rel=1e-6))
    # T = 0.25 sharpens: a raw 0.4, below the threshold, becomes ~0.93 and the class is shown
    probs = np.array([0.15, 0.4, 0.15, 0.15, 0.15])
    assert confident_label(probs, CLASSES, BLOCK)[0] == UNKNOWN_NAME
    sharp = {"temperature": 0.25, "min_confidence": 0.5}
    expected = 0.4**4 / (0.4**4 + 4 * 0.15**4)
    assert confident_label(probs, CLASSES, sharp) == ("b", pytest.approx(expected, rel=1e-6))


def test_without_a_block_the_argmax_and_its_raw_probability():
    flat = np.full(5, 0.2)
    for block in (None, {}):
        assert confident_label(flat, CLASSES, block) == ("a", pytest.approx(0.2))
        assert confident_label(np.array([0.1, 0.1, 0.1, 0.3, 0.4]), CLASSES, block) == ("e", pytest.approx(0.4))


def test_agrees_with_the_training_rule_row_by_row():
    """The renderer's verdict is OpenSetRule.decide's (confidence only) for every row of a real card's block."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(11, 0.3), size=400).astype(np.float32)
    block = {"temperature": 2.5, "min_confidence": 0.35, "max_recon_error": 0.04, "keep": 0.95, "unknown_label": -1}
    rule = open_set.OpenSetRule.from_dict(block)
    decisions = rule.decide(probs)
    classes = [f"class_{k}" for k in range(11)]
    labels = [confident_label(row, classes, block)[0] for row in probs]
    assert labels == [UNKNOWN_NAME if d == open_set.UNKNOWN else classes[d] for d in decisions]
    assert 0 < open_set.unknown_rate(decisions) < 1  # both verdicts occur, so the comparison means something


@pytest.mark.parametrize(
    "block", [{"temperature": 1.0}, {"min_confidence": 0.5}, {"temperature": 0.0, "min_confidence": 0.5}]
)
def test_a_malformed_block_is_refused(block):
    with pytest.raises(ValueError):
        open_set.confidence_rule(block)


def test_stays_numpy_only_and_out_of_aae():
    code = (
        "import sys, latentcast.open_set; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'cv2', 'aae') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(ModuleNotFoundError):
        __import__("aae.open_set")


# ------------------------------------------------------------------------------ fitting: real rows, checked grids


def _honest_probs(n: int = 600, k: int = 6, accuracy: float = 0.9, seed: int = 0):
    """Probabilities of a classifier right about `accuracy` of the time, with varied confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(0.0, 1.0, (n, k))
    right = rng.random(n) < accuracy
    winner = np.where(right, labels, (labels + 1 + rng.integers(0, k - 1, n)) % k)
    logits[np.arange(n), winner] = logits.max(axis=1) + rng.uniform(0.2, 4.0, n)  # argmax by construction
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs.astype(np.float32), labels


def test_a_fit_on_honest_rows_lands_inside_its_grid_with_thresholds_between_chance_and_one():
    probs, labels = _honest_probs()
    err = np.random.default_rng(1).gamma(2.0, 0.01, len(labels)).astype(np.float32)
    rule = open_set.fit_rule(probs, labels, err, keep=0.95)
    lo, hi = open_set.TEMPERATURE_GRID
    assert lo < rule.temperature < hi
    assert 1 / 6 < rule.min_confidence < 1.0 and 0 < rule.max_recon_error < np.inf
    assert 0.03 <= open_set.unknown_rate(rule.decide(probs, err)) <= 0.05  # the whole rule keeps `keep`


def test_rows_that_are_all_right_still_give_an_interior_temperature():
    """The degenerate case of the issue: synthetic rows, all right, pushed plain NLL to T = 0.05 and threshold 1."""
    probs, labels = _honest_probs(n=40, accuracy=1.0)
    t = open_set.fit_temperature(probs, labels)
    assert open_set.TEMPERATURE_GRID[0] * 1.5 < t < open_set.TEMPERATURE_GRID[1]
    rule = open_set.fit_rule(probs, labels, np.linspace(0.01, 0.02, 40, dtype=np.float32))
    assert rule.min_confidence < 1.0


def test_a_temperature_on_the_grid_edge_is_a_training_error():
    # plain NLL (no smoothing) on rows that are all right: the minimum runs off the grid's low end
    probs, labels = _honest_probs(n=40, accuracy=1.0)
    with pytest.raises(open_set.OpenSetFitError, match="edge of its grid"):
        open_set.fit_temperature(probs, labels, smoothing=0.0)
    # a model no better than chance (here: always least sure of the true class): the minimum runs off the high end
    flat = np.random.default_rng(3).dirichlet(np.full(6, 5.0), size=300).astype(np.float32)
    with pytest.raises(open_set.OpenSetFitError, match=r"test rows: .*edge of its grid"):
        open_set.fit_rule(flat, flat.argmin(axis=1), np.ones(300, np.float32), what="test rows")


def test_degenerate_thresholds_and_too_few_rows_are_training_errors():
    probs, labels = _honest_probs(n=100, accuracy=1.0)
    hard = np.zeros_like(probs)
    hard[np.arange(len(labels)), labels] = 1.0  # saturated softmax: every calibrated confidence is exactly 1
    with pytest.raises(open_set.OpenSetFitError, match="same calibrated confidence"):
        open_set.fit_rule(hard, labels, np.ones(len(labels), np.float32))
    with pytest.raises(open_set.OpenSetFitError, match="reconstruction threshold"):
        open_set.fit_rule(probs, labels, np.zeros(len(labels), np.float32))
    with pytest.raises(open_set.OpenSetFitError, match="at least 10"):
        open_set.fit_rule(probs[:5], labels[:5], np.ones(5, np.float32))
    assert issubclass(open_set.OpenSetFitError, open_set.UserError)  # run_cli prints one line, exits 2


def test_the_decision_is_float32_and_the_same_for_float64_input():
    """The issue's float32/float64 split: the runtime arithmetic is float32 whatever dtype comes in."""
    probs, labels = _honest_probs(n=2000, k=5, seed=4)
    err = np.random.default_rng(5).gamma(2.0, 0.01, len(labels)).astype(np.float32)
    rule = open_set.fit_rule(probs, labels, err)
    a = rule.judge(probs, err)
    b = rule.judge(probs.astype(np.float64), err.astype(np.float64))
    assert a.calibrated.dtype == np.float32 and a.confidence.dtype == np.float32
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    # thresholds are float32 values: JSON round trip keeps them exactly
    back = open_set.OpenSetRule.from_dict(json.loads(json.dumps(rule.to_dict())))
    np.testing.assert_array_equal(back.judge(probs, err).label, a.label)


def test_a_rule_without_reconstruction_half_round_trips_as_null_and_ignores_errors():
    """Expressions: rows seen in training cannot fit a reconstruction threshold; the card says null."""
    probs, labels = _honest_probs(n=300, k=5, seed=6)
    err = np.random.default_rng(7).gamma(2.0, 0.01, len(labels)).astype(np.float32)
    rule = open_set.fit_rule(probs, labels, err, keep=0.95, recon=False)
    assert rule.max_recon_error is None
    assert 0.03 <= open_set.unknown_rate(rule.decide(probs)) <= 0.05  # the confidence threshold takes all of it
    block = json.loads(json.dumps(rule.to_dict()))
    assert block["max_recon_error"] is None
    edge_rule = open_set.rule_from_block(block, need_recon=True)
    huge = np.full(len(labels), 1e6, np.float32)
    np.testing.assert_array_equal(edge_rule.decide(probs, huge), rule.decide(probs))
    assert edge_rule.judge(probs, huge).recon_ratio is None
    with pytest.raises(ValueError, match="positive number or null"):
        open_set.rule_from_block({**block, "max_recon_error": 0.0}, need_recon=True)
    with pytest.raises(ValueError, match="lacks max_recon_error"):
        open_set.rule_from_block({k: v for k, v in block.items() if k != "max_recon_error"}, need_recon=True)
