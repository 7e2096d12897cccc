"""The open-set rule's distance half (latentcast/open_set.py): Mahalanobis distance of the input features
to the nearest class Gaussian, float32, carried in the model card, fitted with its threshold on given rows.

Synthetic rows here only exercise the arithmetic and the checks; the product's rule is fitted on real
rows (aae/gestures.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.labels import PartJudge, PartLabels
from latentcast import open_set
from latentcast.open_set import UNKNOWN, ClassGaussians, OpenSetFitError, OpenSetRule


def two_classes(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two 3-D classes, each long in one direction and thin in the others."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.05, 0.05])
    a = rng.normal(0, 1, (n, 3)) * scale
    b = rng.normal(0, 1, (n, 3)) * scale[::-1] + np.array([0.0, 0.0, 3.0])
    return np.concatenate([a, b]).astype(np.float32), np.repeat([0, 1], n)


def test_distance_is_the_mahalanobis_distance_to_the_nearest_class():
    x, y = two_classes()
    g = open_set.fit_gaussians(x, y, 2, shrinkage=0.0)
    rows = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 3.5]], np.float32)
    expected = []
    for row in rows.astype(np.float64):
        per_class = []
        for k in range(2):
            xk = x[y == k].astype(np.float64)
            d = row - xk.mean(axis=0)
            per_class.append(np.sqrt(d @ np.linalg.inv(np.cov(xk.T)) @ d))
        expected.append(min(per_class))
    got = g.distance(rows)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    # the same Euclidean offset is near along a class's long direction and far across it
    assert got[0] < 1.0 < 5.0 < got[1]


def test_distance_of_a_row_is_the_same_bits_alone_or_in_a_batch():
    x, y = two_classes()
    g = open_set.fit_gaussians(x, y, 2)
    batch = g.distance(x[::7])
    alone = np.concatenate([g.distance(row) for row in x[::7]])
    np.testing.assert_array_equal(batch, alone)


def test_shrinkage_is_a_ridge_on_the_covariance():
    x, y = two_classes()
    far = np.array([[0.0, 1.0, 0.0]], np.float32)  # 20 sd across class 0's thin direction
    plain, shrunk = (open_set.fit_gaussians(x, y, 2, shrinkage=s).distance(far)[0] for s in (0.0, 0.5))
    assert shrunk < 0.5 * plain


def test_a_class_without_enough_rows_fails_the_fit_loudly():
    x, y = two_classes()
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y == 1)[: open_set.MIN_FIT_ROWS - 1]])
    with pytest.raises(OpenSetFitError, match="class 1 has 9 rows"):
        open_set.fit_gaussians(x[keep], y[keep], 2, what="test rows")
    with pytest.raises(OpenSetFitError, match="class 2 has 0 rows"):
        open_set.fit_gaussians(x, y, 3)


def confident_probs(y: np.ndarray, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (len(y), 2))
    logits[np.arange(len(y)), y] += rng.uniform(0.5, 4.0, len(y))
    return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)


def fitted_rule(keep: float = 0.9) -> tuple[OpenSetRule, np.ndarray, np.ndarray]:
    x, y = two_classes()
    ref, held = np.arange(0, len(y), 2), np.arange(1, len(y), 2)  # the Gaussians never see the fit rows
    g = open_set.fit_gaussians(x[ref], y[ref], 2)
    rule = open_set.fit_rule(
        confident_probs(y[held]), y[held], None, keep=keep, recon=False, distance=g.distance(x[held]), gaussians=g
    )
    return rule, x[held], y[held]


def test_fit_rule_splits_the_rejection_between_confidence_and_distance():
    rule, x, y = fitted_rule(keep=0.9)
    assert rule.max_recon_error is None and rule.gaussians is not None
    distance = rule.gaussians.distance(x)
    assert np.mean(distance > rule.max_distance) == pytest.approx(0.05, abs=0.01)  # (1 - keep) / 2 halves
    confidence = rule.confidence(confident_probs(y)).max(axis=1)
    assert np.mean(confidence < rule.min_confidence) == pytest.approx(0.05, abs=0.01)
    assert np.mean(rule.decide(confident_probs(y), None, x) == UNKNOWN) <= 0.1 + 1e-9


def test_a_degenerate_distance_threshold_fails_the_fit():
    x, y = two_classes()
    g = open_set.fit_gaussians(x, y, 2)
    probs = confident_probs(y)
    with pytest.raises(OpenSetFitError, match="distance threshold"):
        open_set.fit_rule(probs, y, None, recon=False, distance=np.zeros(len(y), np.float32), gaussians=g)
    with pytest.raises(ValueError, match="both"):
        open_set.fit_rule(probs, y, None, recon=False, distance=g.distance(x))


def test_a_confident_row_far_from_every_class_is_unknown():
    rule, x, y = fitted_rule()
    probs = np.array([[0.999, 0.001], [0.999, 0.001]], np.float32)
    rows = np.array([x[y == 0][0], [0.0, 2.0, 1.5]], np.float32)  # a known row, then one between the classes
    verdict = rule.judge(probs, None, rows)
    assert verdict.label.tolist() == [0, UNKNOWN]
    assert verdict.distance_ratio[1] > 1.0 >= verdict.distance_ratio[0]
    np.testing.assert_array_equal(verdict.novelty_ratio, verdict.distance_ratio)
    assert rule.judge(probs).label.tolist() == [0, 0]  # without the features only the confidence half applies


def test_novelty_ratio_is_the_worse_of_the_two_halves():
    verdict = open_set.Judgement(
        np.zeros((2, 2), np.float32),
        np.zeros(2),
        np.zeros(2, np.float32),
        np.zeros(2, bool),
        np.float32([0.5, 2.0]),
        np.float32([1.5, 0.1]),
    )
    np.testing.assert_array_equal(verdict.novelty_ratio, np.float32([1.5, 2.0]))


def test_the_card_block_round_trips_exactly_through_json():
    rule, x, _ = fitted_rule()
    block = json.loads(json.dumps(rule.to_dict()))
    assert block["class_gaussians"]["dim"] == 3 and block["max_recon_error"] is None
    back = open_set.rule_from_block(block, need_recon=True)
    assert back == rule
    np.testing.assert_array_equal(back.gaussians.distance(x), rule.gaussians.distance(x))
    assert OpenSetRule.from_dict(block) == rule


def test_a_malformed_distance_block_is_refused():
    rule, _, _ = fitted_rule()
    block = rule.to_dict()
    with pytest.raises(ValueError, match="both or neither"):
        open_set.rule_from_block({**block, "class_gaussians": None}, need_recon=True)
    with pytest.raises(ValueError, match="positive"):
        open_set.rule_from_block({**block, "max_distance": 0.0}, need_recon=True)
    short = {**block["class_gaussians"], "whiteners": block["class_gaussians"]["means"]}
    with pytest.raises(ValueError, match="malformed"):
        open_set.rule_from_block({**block, "class_gaussians": short}, need_recon=True)
    with pytest.raises(ValueError, match="columns"):
        rule.gaussians.distance(np.zeros((1, 4), np.float32))


def test_an_old_card_without_the_distance_half_still_loads():
    old = {"temperature": 1.2, "min_confidence": 0.5, "max_recon_error": 0.2, "keep": 0.95}
    rule = open_set.rule_from_block(old, need_recon=True)
    assert rule.gaussians is None and rule.max_distance is None and rule.max_recon_error == pytest.approx(0.2)


def test_the_edge_judge_uses_the_features_and_never_the_decoder_for_a_distance_rule():
    rule, x, y = fitted_rule()

    def no_decoder(*_):
        raise AssertionError("a rule without a reconstruction half must not decode")

    judge = PartJudge(rule, no_decoder)
    probs = confident_probs(y)
    verdict = judge(x, probs, np.zeros((len(x), 2), np.float32))
    np.testing.assert_array_equal(verdict.label, rule.decide(probs, None, x))
    far = np.array([[0.0, 2.0, 1.5]], np.float32)
    labels = PartLabels()
    steady = [labels.decide("hand0", judge, judge(far, probs[:1], np.zeros((1, 2))), 0).label for _ in range(10)]
    assert steady == [UNKNOWN] * 10  # a confident class far from every class never becomes a label


def test_class_gaussians_refuse_mismatched_shapes_and_non_finite_numbers():
    with pytest.raises(ValueError, match="shape"):
        ClassGaussians(np.zeros((2, 3)), np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        ClassGaussians(np.full((1, 2), np.nan), np.zeros((1, 2, 2)))


def test_the_bundle_build_names_the_halves_and_refuses_a_malformed_rule():
    from export.bundle import _open_set_halves
    from latentcast.errors import UserError

    rule, _, _ = fitted_rule()
    assert _open_set_halves("gesture", {"open_set": rule.to_dict()}) == ["confidence", "distance"]
    old = {"temperature": 1.2, "min_confidence": 0.5, "max_recon_error": 0.2, "keep": 0.95}
    assert _open_set_halves("gesture", {"open_set": old}) == ["confidence", "reconstruction"]
    assert _open_set_halves("expression", {}) == []
    with pytest.raises(UserError, match="gesture model card: open_set max_distance and class_gaussians"):
        _open_set_halves("gesture", {"open_set": {**rule.to_dict(), "class_gaussians": None}})
