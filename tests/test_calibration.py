"""INT8 calibration sets (provenance, reader shapes) and per-user neutral calibration on real face photos."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from _export_fixtures import LONDON_IDS, fit_small, london_face_features, save_model_dir

from calibration import neutral
from calibration.sets import array_set, combine, hand_set, hand_split, load_set, make_reader, save_set
from export import onnx as onnx_export
from latentcast import neutral as latentcast_neutral
from latentcast.assets import resolve, sha256_of
from latentcast.errors import UserError, run_cli
from latentcast.features import FEATURE_SPEC_VERSION
from latentcast.inference import EncoderSession

CLASSES = ["neutral", "smiling"]
USER = LONDON_IDS.index("025")  # held out of training; the fixture model reads her resting face as a smile


def test_hand_set_provenance_round_trip(tmp_path):
    calib = hand_set(rows=200, seed=0)  # 200 of baron105's training part + 200 of kinivi's fit half
    assert calib.features.shape == (400, 42) and calib.features.dtype == np.float32
    path = save_set(calib, tmp_path / "gesture")
    info = json.loads(path.with_suffix(".json").read_text())
    assert [s["asset"].split("/")[-2] for s in info["sources"]] == ["baron105_11_gestures", "kinivi"]
    for source in info["sources"]:
        assert source["sha256"] == sha256_of(resolve(source["asset"])) and source["rows"] == 200
    assert info["rows"] == 400 and info["dim"] == 42 and info["created"]
    again = load_set(path)
    np.testing.assert_array_equal(again.features, calib.features)
    meta = path.with_suffix(".json")
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "feature_spec_version": -1}))
    with pytest.raises(UserError, match=r"made for feature spec -1.*rebuild the set"):
        load_set(path)


def test_hand_set_never_draws_from_the_held_out_split():
    from aae.hand_data import kinivi_halves

    calib = hand_set(rows=10_000)  # everything both pools have
    _, held_out = hand_split()
    _, kinivi_eval = kinivi_halves(held_out.classes)
    pool_rows = {row.tobytes() for row in calib.features}
    assert len(calib.features) > 3000 + len(kinivi_eval) - 5  # kinivi's fit half is about as big as its eval half
    assert len(hand_set(rows=10_000, other_person=False).features) < len(calib.features) - 2000
    for name, rows in (("baron105 test split", held_out.x), ("kinivi evaluation half", kinivi_eval.x)):
        leaked = sum(row.tobytes() in pool_rows for row in rows)
        duplicates_in_csv = len(rows) - len({row.tobytes() for row in rows})
        assert leaked <= duplicates_in_csv + 5, f"calibration rows overlap the benchmark's {name}"


@pytest.mark.parametrize("batch_size", [1, 8])
def test_calibration_reader_shapes(batch_size):
    features = hand_set(rows=20, other_person=False).features
    reader = make_reader(features, batch_size=batch_size)
    batches = []
    while (item := reader.get_next()) is not None:
        assert list(item) == ["features"]
        batches.append(item["features"])
    assert all(b.dtype == np.float32 and b.shape[1] == 42 for b in batches)
    assert [len(b) for b in batches] == ([1] * 20 if batch_size == 1 else [8, 8, 4])
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["features"], features[:batch_size])


def test_array_set_and_combine_check_their_input(tmp_path):
    np.savez(tmp_path / "rows.npz", features=np.ones((5, 42), np.float32), other=np.zeros(3))
    calib = array_set(tmp_path / "rows.npz")
    assert calib.features.shape == (5, 42) and calib.sources[0]["sha256"] == sha256_of(tmp_path / "rows.npz")
    with pytest.raises(UserError, match="has no 'face'"):
        array_set(tmp_path / "rows.npz", key="face")
    with pytest.raises(UserError, match="different feature sizes"):
        combine([calib, array_set(_npy(tmp_path, np.ones((3, 7))))], "mixed")
    assert len(combine([calib, calib], "twice").sources) == 2


def _npy(folder, array):
    np.save(folder / "x.npy", array)
    return folder / "x.npy"


# --- per-user neutral calibration -------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces():
    """London set features (real MediaPipe) and an expression model trained without the user, as ONNX."""
    return london_face_features()


@pytest.fixture(scope="module")
def expression(faces, tmp_path_factory):
    neutral_rows, smiling_rows = faces
    train = [i for i in range(len(LONDON_IDS)) if i != USER]
    x = np.concatenate([neutral_rows[train], smiling_rows[train]])
    y = np.array([0] * len(train) + [1] * len(train))
    rng = np.random.default_rng(0)
    x_aug = np.clip(np.concatenate([x] + [x + rng.normal(0, 0.02, x.shape) for _ in range(10)]), -1, 1)
    model = fit_small(x_aug, np.tile(y, 11), CLASSES)
    root = tmp_path_factory.mktemp("expression")
    model_dir = save_model_dir(root / "model", model, "expression", CLASSES, "face")
    onnx_export.export_model(model_dir, root / "onnx", features=x)
    return root / "onnx"


# (dx, dy) shift in pixels, zoom (crop size / image size), exposure gain: a camera's framing drift
REFRAMES = [
    (0, 0, 0.95, 1.0),
    (40, 0, 0.9, 1.1),
    (-40, 20, 0.95, 0.9),
    (0, -30, 0.85, 1.0),
    (25, 25, 0.9, 1.2),
    (-20, -20, 0.9, 0.8),
]


def resting_frames(folder):
    """Six real frames of the user at rest: her neutral photo re-framed (shift, zoom, exposure) as a camera would."""
    image = cv2.imread(str(resolve(f"data/face_expressions/london_set/neutral/{LONDON_IDS[USER]}_03.jpg")))
    h, w = image.shape[:2]
    folder.mkdir(parents=True, exist_ok=True)
    for i, (dx, dy, zoom, gain) in enumerate(REFRAMES):
        cw, ch = int(w * zoom), int(h * zoom)
        x0 = int(np.clip((w - cw) // 2 + dx, 0, w - cw))
        y0 = int(np.clip((h - ch) // 2 + dy, 0, h - ch))
        crop = cv2.convertScaleAbs(image[y0 : y0 + ch, x0 : x0 + cw], alpha=gain)
        cv2.imwrite(str(folder / f"rest_{i}.png"), crop)
    return folder


def p_neutral(encoder, features):
    y, _ = encoder(features)
    return y[:, CLASSES.index("neutral")]


def test_neutral_calibration_moves_a_resting_face_to_neutral(faces, expression, tmp_path):
    _, smiling_rows = faces
    encoder = EncoderSession(expression / "encoder.onnx")
    frames = neutral.face_feature_rows(
        [cv2.imread(str(p)) for p in sorted(resting_frames(tmp_path).iterdir())], "image"
    )
    assert len(frames) == 6
    before = p_neutral(encoder, frames)
    assert np.median(before) < 0.5, f"precondition: the uncalibrated model reads her resting face as a smile ({before})"

    target = neutral.model_neutral_target(expression / "decoder.onnx", CLASSES)
    calib = neutral.fit_neutral(frames, target, info={"user": LONDON_IDS[USER]})
    after = p_neutral(encoder, calib.apply(frames))
    assert np.all(after > 0.5), f"calibrated resting frames should read neutral: {after}"
    assert np.median(after) - np.median(before) > 0.25
    smile_after = p_neutral(encoder, calib.apply(smiling_rows[USER]))
    assert smile_after[0] < 0.5, "calibration must keep her smile a smile"

    again = latentcast_neutral.load_neutral(calib.save(tmp_path / "user.json"))
    np.testing.assert_allclose(again.apply(frames), calib.apply(frames))
    assert again.info["frames"] == 6 and again.info["user"] == "025"


def test_apply_is_numpy_only_and_checks_width():
    calib = latentcast_neutral.NeutralCalibration(
        np.full(3, 0.5, np.float32), np.ones(3, np.float32), np.zeros(3, np.float32)
    )
    np.testing.assert_allclose(calib.apply(np.array([0.5, 1.0, 0.0])), [0.0, 0.5, -0.5])
    assert calib.apply(np.zeros((4, 3))).shape == (4, 3)
    with pytest.raises(UserError, match="recalibrate"):
        calib.apply(np.zeros(5))
    with pytest.raises(UserError, match="only 2 frames"):
        neutral.fit_neutral(np.zeros((2, 3)), np.zeros(3))


def test_neutral_cli_from_video_source_and_from_features(faces, expression, tmp_path, capsys):
    card = tmp_path / "card.json"
    card.write_text(
        json.dumps({"name": "expression", "classes": CLASSES, "feature_spec_version": FEATURE_SPEC_VERSION})
    )
    folder = resting_frames(tmp_path / "frames")
    common = ["--decoder", str(expression / "decoder.onnx"), "--card", str(card)]
    out = tmp_path / "from_source.json"
    assert run_cli(neutral.main, ["--source", str(folder), *common, "--out", str(out)]) == 0
    assert latentcast_neutral.load_neutral(out).info["frames"] == 6
    np.savez(tmp_path / "session.npz", features=faces[0][[USER] * 6])
    out2 = tmp_path / "from_features.json"
    assert run_cli(neutral.main, ["--features", str(tmp_path / "session.npz"), *common, "--out", str(out2)]) == 0
    assert run_cli(neutral.main, ["--features", str(tmp_path / "session.npz"), "--out", str(out2)]) == 2
    assert "say which model" in capsys.readouterr().err
    with pytest.raises(UserError, match="no 'neutral' class"):
        neutral.model_neutral_target(expression / "decoder.onnx", ["happy", "sad"])
