"""Gesture encoder: real shared CSVs, the real AAE from aae.model, a few seconds of training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aae import datasets, gestures, hand_data, landmark_aae
from latentcast import features, open_set
from latentcast.errors import UserError

QUICK = landmark_aae.FitConfig(hidden_dim=128, epochs=15, progress=False)


@pytest.fixture(scope="module")
def quick_model():
    """One small model shared by the tests below (trained once, ~seconds)."""
    return gestures.train_gestures(QUICK, label_fraction=1.0, max_rows=2500, augment=0)


def test_baron105_loads_with_its_11_classes():
    data = hand_data.load_hand_set("baron105")
    assert data.x.shape == (5073, 42) and data.x.dtype == np.float32
    assert data.classes[0] == "thumbs_up" and len(data.classes) == 11  # BOM stripped, no trailing blank
    assert np.allclose(np.abs(data.x).max(axis=1), 1.0) and np.all(data.x[:, :2] == 0)


def test_kinivi_maps_onto_baron_names():
    classes = hand_data.load_hand_set("baron105").classes
    kinivi = hand_data.load_kinivi_as_baron(classes)
    assert len(kinivi) == 4787
    assert {classes[i] for i in np.unique(kinivi.y)} == {"open_palm", "closed_fist", "pointing", "ok"}


def test_stratified_split_holds_out_every_class_and_is_disjoint():
    y = np.repeat(np.arange(5), [10, 20, 3, 40, 2])
    train, held = datasets.stratified_split(y, 0.2, seed=1)
    assert not set(train) & set(held) and len(train) + len(held) == len(y)
    assert set(y[held]) == set(range(5)) and set(y[train]) == set(range(5))


def test_pick_labelled_keeps_a_share_of_every_class():
    y = np.repeat(np.arange(4), 100)
    few = datasets.pick_labelled(y, label_fraction=0.1)
    assert np.bincount(few[few >= 0]).tolist() == [10, 10, 10, 10]
    assert (few == -1).sum() == 360
    assert (datasets.pick_labelled(y, nlabels=8) >= 0).sum() == 8


def test_augmentation_keeps_the_csv_convention():
    data = hand_data.load_hand_set("baron105").subset(np.arange(50))
    x, y = hand_data.augment_hands(data.x, data.y, copies=2)
    assert x.shape == (150, 42) and len(y) == 150
    assert np.allclose(np.abs(x).max(axis=1), 1.0, atol=1e-6) and np.all(x[:, :2] == 0)
    assert not np.allclose(x[50:100], data.x)  # copies really differ


def test_quick_model_beats_chance_by_a_wide_margin(quick_model):
    _, card, _ = quick_model
    # measured 0.668 on the 500 test rows (chance 0.09); 0.60 leaves 34 rows for numeric drift between builds
    assert card["metrics"]["test_accuracy"] > 0.60, card["metrics"]


def test_model_card_has_the_contract_fields(tmp_path, quick_model):
    model, card, _ = quick_model
    landmark_aae.save(tmp_path, model, card)
    stored = json.loads((tmp_path / "model_card.json").read_text())
    for key in (
        "name",
        "classes",
        "feature_spec_version",
        "input_dim",
        "code_dim",
        "n_classes",
        "data",
        "metrics",
        "open_set",
    ):
        assert key in stored, key
    assert stored["name"] == "gesture" and stored["input_dim"] == 42 and stored["n_classes"] == 11
    assert stored["feature_spec_version"] == features.FEATURE_SPEC_VERSION
    assert stored["open_set"]["temperature"] > 0
    loaded, _loaded_card = landmark_aae.load(tmp_path)
    x = hand_data.load_hand_set("baron105").x[:5]
    y, z = landmark_aae.encode(loaded, x)
    assert y.shape == (5, 11) and z.shape == (5, stored["code_dim"]) and np.allclose(y.sum(axis=1), 1, atol=1e-5)
    assert np.allclose(y, landmark_aae.encode(model, x)[0], atol=1e-6)  # the checkpoint round-trips
    assert landmark_aae.decode(loaded, y, z).shape == (5, 42)  # the decoder side for the renderer


def test_open_set_flags_out_of_class_shapes_more_than_known_ones(quick_model):
    model, card, _ = quick_model
    rule = open_set.OpenSetRule.from_dict(card["open_set"])
    known = hand_data.load_hand_set("baron105").x[::10]
    # out-of-class hand shapes: random joint positions, in the CSV convention (not a hand pose at all)
    rng = np.random.default_rng(0)
    strange = features.normalise_hand_points(rng.normal(size=(300, 21, 2)))
    flagged = {}
    for name, x in (("known", known), ("strange", strange)):
        probs, err = landmark_aae.reconstruction_error(model, x)
        flagged[name] = open_set.unknown_rate(rule.decide(probs, err, x))
    assert flagged["strange"] > flagged["known"] + 0.5, flagged


def test_the_distance_half_is_carried_in_the_card_and_fitted_on_rows_it_never_saw(quick_model):
    _, card, arrays = quick_model
    block = card["open_set"]
    assert block["max_recon_error"] is None and block["max_distance"] > 0
    assert block["class_gaussians"]["classes"] == len(card["classes"]) == 11
    rule = open_set.OpenSetRule.from_dict(block)
    # the fit rows' distances are cross-fitted: larger than their distance to Gaussians that hold them
    in_sample = rule.gaussians.distance(arrays["fit_x"])
    kinivi = slice(arrays["fit_rows_baron105"], None)
    assert np.median(arrays["fit_distance"][kinivi]) > 1.05 * np.median(in_sample[kinivi])
    np.testing.assert_array_equal(  # validation rows are never in the Gaussians: the same distance
        arrays["fit_distance"][: arrays["fit_rows_baron105"]], in_sample[: arrays["fit_rows_baron105"]]
    )
    # the whole rule keeps about `keep` of its fit rows (each of the two halves rejects half the rest)
    fit_unknown = np.mean(rule.decide(arrays["fit_probs"], None, arrays["fit_x"]) == open_set.UNKNOWN)
    assert fit_unknown <= 1 - block["keep"] + 1e-9


def test_temperature_scaling_fixes_overconfidence():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4)) + 1.5 * np.eye(4)[labels]
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    overconfident = open_set.apply_temperature(honest, 0.3)  # sharpened: too sure of itself
    t = open_set.fit_temperature(overconfident, labels)
    assert t > 1.5  # it softens the over-sharp probabilities back
    calibrated = open_set.apply_temperature(overconfident, t)
    assert open_set.expected_calibration_error(calibrated, labels) < open_set.expected_calibration_error(
        overconfident, labels
    )


def test_missing_labels_file_is_a_clear_error(tmp_path):
    csv = tmp_path / "keypoint.csv"
    csv.write_text("0," + ",".join(["0.5"] * 42) + "\n")
    with pytest.raises(UserError, match=r"labels file .* does not exist"):
        hand_data.read_keypoint_csv(csv, tmp_path / "missing_labels.csv")


def test_wrong_column_count_and_unknown_class_are_clear_errors(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("\ufeffa\r\nb\r\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("0," + ",".join(["0.5"] * 40) + "\n")
    with pytest.raises(UserError, match="41 columns, expected 43"):
        hand_data.read_keypoint_csv(bad, labels)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("5," + ",".join(["0.5"] * 42) + "\n")
    with pytest.raises(UserError, match="names only 2 classes"):
        hand_data.read_keypoint_csv(unknown, labels)


def test_cli_rejects_unknown_class_without_traceback(capsys):
    from latentcast.errors import run_cli

    assert run_cli(gestures.main, ["--exclude_class", "jazz_hands", "--epochs", "1"]) == 2
    assert "not a class" in capsys.readouterr().err


def test_kinivi_drops_rows_whose_class_was_excluded():
    classes = [c for c in hand_data.load_hand_set("baron105").classes if c != "ok"]
    kinivi = hand_data.load_kinivi_as_baron(classes)
    assert len(kinivi) == 4787 - 337 and "ok" not in kinivi.classes


def test_negative_class_id_is_named_in_the_error(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("a\nb\n", encoding="utf-8")
    negative = tmp_path / "negative.csv"
    negative.write_text("-1," + ",".join(["0.5"] * 42) + "\n")
    with pytest.raises(UserError, match="class id -1: class ids start at 0"):
        hand_data.read_keypoint_csv(negative, labels)


def test_training_benchmark_and_calibration_share_one_hand_test_split():
    """Never calibrating on test rows holds because there is one split function, not two constants."""
    from calibration.sets import hand_split

    data = hand_data.load_hand_set("baron105")
    train, val, test = hand_data.split_hand_set(data, seed=3)
    pool, held_out = hand_split(seed=3)
    np.testing.assert_array_equal(test.x, held_out.x)
    assert len(train) + len(val) == len(pool) and len(test) == pytest.approx(0.2 * len(data), abs=len(data.classes))
    pool_rows = {row.tobytes() for row in pool.x}
    assert {row.tobytes() for row in train.x} <= pool_rows and {row.tobytes() for row in val.x} <= pool_rows


def _row_set(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.asarray(x, np.float32)}


def test_kinivi_fit_and_eval_halves_are_disjoint_and_cover_kinivi():
    """One function defines the halves; per sign the first half (recording order) fits, the rest scores."""
    classes = hand_data.load_hand_set("baron105").classes
    fit, evaluation = hand_data.kinivi_halves(classes)
    everything = hand_data.load_kinivi_as_baron(classes)
    assert len(fit) + len(evaluation) == len(everything)
    assert not _row_set(fit.x) & _row_set(evaluation.x)
    for c in np.unique(everything.y):
        assert abs(int((fit.y == c).sum()) - int((evaluation.y == c).sum())) <= 1
    again, _ = hand_data.kinivi_halves(classes)
    np.testing.assert_array_equal(again.x, fit.x)  # fixed, not drawn anew


def test_model_rule_is_fitted_on_the_fit_half_and_scored_on_the_eval_half(quick_model):
    _, card, arrays = quick_model
    fit, evaluation = hand_data.kinivi_halves(card["classes"])
    assert "kinivi fit half" in card["open_set"]["fitted_on"]
    assert card["open_set"]["fit_rows"] == card["data"]["validation_rows"] + len(fit)
    assert card["metrics"]["kinivi_rows"] == len(evaluation) == card["data"]["kinivi_eval_rows"]
    np.testing.assert_array_equal(arrays["kinivi_y"], evaluation.y)


def test_benchmarks_score_only_the_kinivi_eval_half():
    """label_stability's kinivi clip and gesture_quality's kinivi rows never contain a fit-half row."""
    import argparse
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    classes = hand_data.load_hand_set("baron105").classes
    fit, evaluation = hand_data.kinivi_halves(classes)
    stability = load("label_stability")
    args = argparse.Namespace(segment=40, seed=0, csv_fps=25.0)
    clip = np.stack(stability.csv_clips(args, classes)["kinivi_changes"]["frames"])
    rows = _row_set(clip)
    assert rows <= _row_set(evaluation.x) and not rows & _row_set(fit.x)
    tuning = np.stack(stability.fit_clips(args, classes)["kinivi_fit_half"]["frames"])
    assert not _row_set(tuning) & _row_set(evaluation.x)
    source = Path(load("gesture_quality").__file__).read_text()
    assert "load_kinivi_as_baron" not in source and "kinivi_halves" in source
