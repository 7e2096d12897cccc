"""Boundaries of every threshold rule: the value exactly at a threshold, and the next float32 past it.

Documented rules (latentcast/open_set.py, latentcast/hysteresis.py, docs/PROTOCOL.md "Decision"):
unknown when calibrated confidence < min_confidence (at it: known) or reconstruction error >
max_recon_error (at it: known); hysteresis enters at >= enter, holds at >= leave, recon ratio <= 1
passes, <= recon_leave holds; a fit needs >= MIN_FIT_ROWS rows and 0.5 < keep < 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from latentcast import open_set
from latentcast.hysteresis import HysteresisConfig, LabelHysteresis
from latentcast.open_set import UNKNOWN, OpenSetRule

PROBS = np.array([[0.1, 0.62, 0.18, 0.1]], np.float32)


def _up(v) -> float:
    return float(np.nextafter(np.float32(v), np.float32(np.inf)))


def _down(v) -> float:
    return float(np.nextafter(np.float32(v), np.float32(-np.inf)))


@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.5])
def test_confidence_exactly_at_the_threshold_is_known_one_float_above_is_unknown(temperature):
    conf = float(OpenSetRule(temperature, 0.0, 1.0, 0.95).judge(PROBS).confidence[0])
    at = OpenSetRule(temperature, conf, 1.0, 0.95).judge(PROBS)
    assert at.label[0] == 1 and not at.unknown[0]
    above = OpenSetRule(temperature, _up(conf), 1.0, 0.95).judge(PROBS)
    assert above.label[0] == UNKNOWN and above.unknown[0]
    below = OpenSetRule(temperature, _down(conf), 1.0, 0.95).judge(PROBS)
    assert below.label[0] == 1


def test_reconstruction_error_exactly_at_the_threshold_is_known_one_float_above_is_unknown():
    rule = OpenSetRule(1.0, 0.3, 0.04, 0.95)
    at = rule.judge(PROBS, np.array([0.04], np.float32))
    assert at.label[0] == 1 and at.recon_ratio[0] == pytest.approx(1.0)
    assert rule.judge(PROBS, np.array([_up(0.04)], np.float32)).label[0] == UNKNOWN
    assert rule.judge(PROBS, np.array([_down(0.04)], np.float32)).label[0] == 1
    # both halves: either one alone makes the row unknown, row by row
    probs = np.repeat(PROBS, 4, axis=0)
    probs[2:] = [0.25, 0.25, 0.25, 0.25]
    verdict = rule.judge(probs, np.array([0.01, 0.05, 0.01, 0.05], np.float32))
    np.testing.assert_array_equal(verdict.label, [1, UNKNOWN, UNKNOWN, UNKNOWN])
    np.testing.assert_allclose(verdict.recon_ratio, [0.25, 1.25, 0.25, 1.25], rtol=1e-6)
    assert rule.judge(probs).recon_ratio is None


def test_confident_label_at_the_threshold_shows_the_class():
    conf = float(OpenSetRule(1.0, 0.0, 1.0, 0.95).judge(PROBS).confidence[0])
    classes = ["a", "b", "c", "d"]
    assert open_set.confident_label(PROBS[0], classes, {"temperature": 1.0, "min_confidence": conf})[0] == "b"
    above = {"temperature": 1.0, "min_confidence": _up(conf)}
    assert open_set.confident_label(PROBS[0], classes, above)[0] == open_set.UNKNOWN_NAME


def test_label_name_range_ends():
    classes = ["a", "b", "c"]
    assert [open_set.label_name(i, classes) for i in (-1, 0, 2, 3)] == ["unknown", "a", "c", "unknown"]


@pytest.mark.parametrize(
    ("block", "need_recon", "message"),
    [
        ({"temperature": 0.0, "min_confidence": 0.5}, False, "temperature must be a positive"),
        ({"temperature": -1.0, "min_confidence": 0.5}, False, "temperature must be a positive"),
        ({"temperature": float("nan"), "min_confidence": 0.5}, False, "temperature must be a positive"),
        ({"temperature": 1.0}, False, "lacks min_confidence"),
        ({"min_confidence": 0.5}, False, "lacks temperature"),
        ({"temperature": 1.0, "min_confidence": 0.5}, True, "lacks max_recon_error"),
        ({"temperature": 1.0, "min_confidence": 0.5, "max_recon_error": 0.0}, True, "max_recon_error must be"),
        ({"temperature": 1.0, "min_confidence": 0.5, "max_recon_error": float("inf")}, True, "max_recon_error must"),
    ],
)
def test_rule_blocks_on_the_edge_of_valid_are_refused(block, need_recon, message):
    with pytest.raises(ValueError, match=message):
        open_set.rule_from_block(block, need_recon=need_recon)


def test_rule_blocks_just_inside_valid_are_accepted():
    tiny = open_set.rule_from_block({"temperature": 1e-6, "min_confidence": 0.5})
    assert tiny.temperature == 1e-6 and tiny.max_recon_error == np.inf and np.isnan(tiny.keep)
    full = open_set.rule_from_block(
        {"temperature": 2.0, "min_confidence": 0.4, "max_recon_error": 1e-9, "keep": 0.9}, need_recon=True
    )
    assert (full.temperature, full.min_confidence, full.max_recon_error, full.keep) == (2.0, 0.4, 1e-9, 0.9)
    assert open_set.rule_from_block(None) is None and open_set.rule_from_block({}) is None


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), labels] += rng.uniform(0.5, 3.0, n)
    logits[: n // 5, :] = rng.normal(0, 1, (n // 5, 4))  # some wrong or unsure rows
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs.astype(np.float32), labels, rng.gamma(2.0, 0.01, n).astype(np.float32)


def test_fit_needs_exactly_min_fit_rows_and_keep_strictly_inside_half_and_one():
    probs, labels, err = _rows(400)
    n = open_set.MIN_FIT_ROWS
    with pytest.raises(open_set.OpenSetFitError, match=f"at least {n} labelled real rows.*has {n - 1}"):
        open_set.fit_rule(probs[: n - 1], labels[: n - 1], err[: n - 1])
    for keep in (0.5, 1.0, 0.3):
        with pytest.raises(open_set.OpenSetFitError, match=f"--keep {keep} must be between 0.5 and 1"):
            open_set.fit_rule(probs, labels, err, keep=keep)
    rule = open_set.fit_rule(probs, labels, err, keep=0.9)
    # Each threshold rejects (1 - keep) / 2 of the rows: quantiles 0.05 (confidence) and 0.95 (error).
    conf = open_set.apply_temperature(probs, rule.temperature).max(axis=1)
    assert rule.min_confidence == pytest.approx(float(np.quantile(conf, 0.05)), rel=1e-6)
    assert rule.max_recon_error == pytest.approx(float(np.quantile(err, 0.95)), rel=1e-6)
    assert rule.keep == 0.9
    assert 0.9 <= 1.0 - open_set.unknown_rate(rule.decide(probs, err)) <= 0.95


def test_fit_temperature_is_the_smoothed_nll_minimum():
    """Independent check: a dense float64 scan of the Laplace-smoothed cross-entropy finds the same T."""
    probs, labels, _ = _rows(300, seed=2)
    t = open_set.fit_temperature(probs, labels)
    log_p = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    s = 1.0 / (len(labels) + 2)

    def loss(temp: float) -> float:
        q = log_p / temp
        q = q - q.max(axis=1, keepdims=True)
        q = q - np.log(np.exp(q).sum(axis=1, keepdims=True))
        true = q[np.arange(len(labels)), labels]
        others = (q.sum(axis=1) - true) / 3
        return float(-np.mean((1 - s) * true + s * others))

    scan = np.exp(np.linspace(np.log(0.05), np.log(20.0), 20001))
    best = scan[int(np.argmin([loss(x) for x in scan]))]
    assert t == pytest.approx(best, rel=0.01)  # the fitter's grid + refinement step is ~0.2 % wide
    assert loss(t) <= loss(t * 1.05) and loss(t) <= loss(t / 1.05)


def test_apply_temperature_is_softmax_of_log_p_over_t():
    p = np.array([0.5, 0.3, 0.2], np.float32)
    for temp in (0.5, 1.0, 3.0):
        want = p.astype(np.float64) ** (1 / temp) / (p.astype(np.float64) ** (1 / temp)).sum()
        got = open_set.apply_temperature(p, temp)
        assert got.shape == (1, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got[0], want, rtol=1e-6)
    # zeros are clipped to 1e-12, not -inf: a zero class stays ~0 and the row stays finite
    z = open_set.apply_temperature(np.array([[1.0, 0.0]], np.float32), 1.0)
    assert np.isfinite(z).all() and z[0, 1] < 1e-11


def test_expected_calibration_error_against_a_hand_computed_value():
    # 10 bins: confidences 0.95 (right, right, wrong) and 0.3 exactly on a bin edge (counted in (0.2, 0.3]).
    probs = np.array([[0.05, 0.95], [0.05, 0.95], [0.95, 0.05], [0.7, 0.3]])
    labels = np.array([1, 1, 1, 0])
    # bin (0.9, 1]: 3 rows, 2 right at 0.95 and 1 wrong (its confidence 0.95 too): |2/3 - 0.95| * 3/4
    # bin (0.6, 0.7]: 1 row right at 0.7: |1 - 0.7| * 1/4
    want = 0.75 * abs(2 / 3 - 0.95) + 0.25 * 0.3
    assert open_set.expected_calibration_error(probs, labels) == pytest.approx(want)
    edge = np.array([[0.3, 0.7], [0.8, 0.2]])  # 0.7 and 0.8 exactly on edges: bins (0.6, 0.7] and (0.7, 0.8]
    assert open_set.expected_calibration_error(edge, np.array([1, 0])) == pytest.approx(0.5 * 0.3 + 0.5 * 0.2)


def test_reconstruction_error_is_the_float32_per_row_mse():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x_hat = np.array([[1.0, 1.0, 1.0], [0.5, -0.5, 1.0]])
    got = open_set.reconstruction_error(x, x_hat)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [(0 + 1 + 4) / 3, (0.25 + 0.25 + 1) / 3], rtol=1e-6)
    assert open_set.nll(np.array([[0.5, 0.5], [0.1, 0.9]]), np.array([0, 1])) == pytest.approx(
        -(np.log(0.5) + np.log(0.9)) / 2
    )


def test_hysteresis_enter_and_leave_boundaries():
    cfg = HysteresisConfig(dwell_frames=1, leave_margin=0.25, recon_leave=2.0, hold_frames=2)
    enter = 0.6
    h = LabelHysteresis(enter, cfg)
    at = np.array([0.4, np.float32(enter)], np.float32)
    assert h.verdict(at, None) == 1 and h.verdict(at, 1.0) == 1  # at the threshold and ratio exactly 1: known
    assert h.verdict(np.array([0.4, _down(enter)], np.float32), None) == UNKNOWN
    assert h.verdict(at, _up(1.0)) == UNKNOWN
    assert h.update(at) == 1
    # leave = enter - margin = 0.35: exactly at it the class holds (for hold_frames); just below it drops at once
    leave = np.float32(enter - 0.25)
    hold = np.array([0.0, leave], np.float32)  # the argmax stays class 1, below enter: the verdict is unknown
    assert h.update(hold) == 1  # 1 frame of unknown inside the band: held
    assert h.update(hold) == UNKNOWN  # hold_frames = 2 reached
    h.reset()
    assert h.update(at) == 1
    assert h.update(np.array([0.0, _down(leave)], np.float32)) == UNKNOWN  # below leave: dwell 1 applies
    # reconstruction leave band: ratio exactly recon_leave holds, just above drops
    h.reset()
    h.update(at)
    assert h.update(np.array([0.0, 0.9], np.float32), 2.0) == 1
    h.reset()
    h.update(at)
    assert h.update(np.array([0.0, 0.9], np.float32), _up(2.0)) == UNKNOWN


@pytest.mark.parametrize(
    ("kwargs", "ok"),
    [
        ({"dwell_frames": 1, "hold_frames": 1}, True),
        ({"dwell_frames": 0}, False),
        ({"leave_margin": 0.0}, True),
        ({"leave_margin": -0.01}, False),
        ({"leave_margin": 1.0}, False),
        ({"recon_leave": 1.0}, True),
        ({"recon_leave": 0.99}, False),
        ({"dwell_frames": 3, "hold_frames": 3}, True),
        ({"dwell_frames": 3, "hold_frames": 2}, False),
    ],
)
def test_hysteresis_config_bounds(kwargs, ok):
    if ok:
        HysteresisConfig(**kwargs)
    else:
        with pytest.raises(ValueError, match="must be"):
            HysteresisConfig(**kwargs)


def test_hysteresis_leave_never_goes_below_zero():
    assert LabelHysteresis(0.2, HysteresisConfig(leave_margin=0.5)).leave == 0.0


def test_a_rule_without_a_reconstruction_half_gives_the_confidence_threshold_all_of_one_minus_keep():
    probs, labels, err = _rows(400)
    rule = open_set.fit_rule(probs, labels, err, keep=0.9, recon=False)
    assert rule.max_recon_error is None and rule.keep == 0.9
    conf = open_set.apply_temperature(probs, rule.temperature).max(axis=1)
    assert rule.min_confidence == pytest.approx(float(np.quantile(conf, 0.10)), rel=1e-6)  # not 0.05
    verdict = rule.judge(probs, np.full(len(labels), 1e9, np.float32))  # any error: no reconstruction half
    assert verdict.recon_ratio is None
    np.testing.assert_array_equal(verdict.label, rule.judge(probs).label)
    back = OpenSetRule.from_dict(rule.to_dict())
    assert back.max_recon_error is None
    block = {"temperature": 1.0, "min_confidence": 0.5, "max_recon_error": None}
    assert open_set.rule_from_block(block, need_recon=True).max_recon_error is None


def test_temperature_scaling_is_stable_at_low_temperature_row_by_row():
    """softmax(log p / T) subtracts each row's own max: a flat 100-class row at T = 0.05 (logits -92 in
    float32, where exp underflows below about -103 if shifted the wrong way) stays uniform beside a peaked row."""
    flat = np.full(100, 0.01, np.float32)
    peaked = np.full(100, 0.5 / 99, np.float32)
    peaked[3] = 0.5
    out = open_set.apply_temperature(np.stack([flat, peaked]), 0.05)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], 0.01, rtol=1e-5)
    assert out[1, 3] == pytest.approx(1.0, abs=1e-6)


def test_smoothed_nll_by_hand():
    log_p = np.log(np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1]]))
    labels = np.array([0, 1])
    s = 0.1
    # per row: (1 - s) * log p[true] + s * mean of log p over the k - 1 = 3 other classes
    rows = [0.9 * np.log(0.7) + 0.1 * np.log(0.1), 0.9 * np.log(0.5) + 0.1 * (2 * np.log(0.2) + np.log(0.1)) / 3]
    assert open_set._smoothed_nll(log_p, labels, s) == pytest.approx(-np.mean(rows), rel=1e-12)
    assert open_set._smoothed_nll(log_p[:, :1], np.array([0, 0]), s) == pytest.approx(-0.9 * np.mean(log_p[:, 0]))


def test_the_default_label_smoothing_is_laplaces_rule():
    # rows that are all right: the smoothing alone sets where the minimum lies, so n + 1 vs n + 2 shows
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, 20)
    logits = rng.normal(0, 1, (20, 4))
    logits[np.arange(20), labels] = logits.max(axis=1) + rng.uniform(0.5, 3.0, 20)
    probs = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    laplace = open_set.fit_temperature(probs, labels, smoothing=1.0 / (20 + 2))
    assert open_set.fit_temperature(probs, labels) == laplace
    for other in (1.0 / 21, 1.0 / 23, 2.0 / 22):
        assert open_set.fit_temperature(probs, labels, smoothing=other) != laplace


def test_ece_uses_ten_equal_bins_by_default():
    # 0.71 (right) and 0.79 (wrong) share the bin (0.7, 0.8]: |0.5 - 0.75| = 0.25; any other binning splits them
    probs = np.array([[0.29, 0.71], [0.79, 0.21]])
    labels = np.array([1, 1])
    assert open_set.expected_calibration_error(probs, labels) == pytest.approx(0.25)
    assert open_set.expected_calibration_error(probs, labels, bins=20) == pytest.approx(0.5 * 0.29 + 0.5 * 0.79)


def test_the_card_block_and_the_small_helpers():
    rule = OpenSetRule(1.5, 0.4, 0.03, 0.95)
    block = rule.to_dict()
    assert block == {"temperature": 1.5, "min_confidence": 0.4, "max_recon_error": 0.03, "keep": 0.95,
                     "max_distance": None, "class_gaussians": None, "rule": " ".join(OpenSetRule.__doc__.split()),
                     "unknown_label": -1, "arithmetic": "float32"}  # fmt: skip
    back = OpenSetRule.from_dict(block)
    assert back == rule
    assert np.isnan(open_set.unknown_rate(np.array([], np.int64)))
    assert open_set.unknown_rate(np.array([UNKNOWN, 0, UNKNOWN, 2])) == 0.5


def test_exactly_min_fit_rows_are_enough():
    probs, labels, err = _rows(400, seed=11)
    n = open_set.MIN_FIT_ROWS
    for start in range(0, 400 - n, n):  # the first window of n rows whose fit is not degenerate
        try:
            rule = open_set.fit_rule(probs[start : start + n], labels[start : start + n], err[start : start + n])
        except open_set.OpenSetFitError as exc:
            assert "at least" not in str(exc)  # never refused for its row count
            continue
        assert rule.keep == 0.95
        break
    else:
        pytest.fail("no window of MIN_FIT_ROWS rows could be fitted")
