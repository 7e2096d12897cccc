"""The shared open-set rule (latentcast.open_set): the label the renderer shows from class probabilities."""

from __future__ import annotations

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
