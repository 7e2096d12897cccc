"""Expression data recipe and encoder: real MediaPipe on the real photos, the real AAE, seconds of training."""

from __future__ import annotations

import numpy as np
import pytest

from aae import expressions, face_data, face_recipe, landmark_aae
from latentcast import features
from latentcast.assets import resolve
from latentcast.errors import UserError, run_cli

NAMES = features.FACE_FEATURE_NAMES
CLASSES = face_data.EXPRESSION_CLASSES


@pytest.fixture(scope="module")
def faces():
    return face_data.load_faces()


@pytest.fixture(scope="module")
def recipe(faces):
    return face_recipe.expression_dataset(per_class=6, faces=faces)


def test_every_photo_with_a_face_is_found(faces):
    people = {photo.person for photo, _ in faces}
    assert {f"london_{i}" for i in face_data.LONDON_IDS} <= people and "lisa" in people
    assert sum(photo.label == "smile" for photo, _ in faces) == 6
    for _, face in faces:
        assert face.landmarks.shape == (478, 3) and face.blendshapes.shape == (52,)


def test_landmark_cache_returns_what_mediapipe_gave(tmp_path):
    key = "data/face_expressions/london_set/neutral/004_03.jpg"
    first = face_data.face_from_asset(key, cache=tmp_path)
    assert len(list(tmp_path.glob("face-*.npz"))) == 1
    second = face_data.face_from_asset(key, cache=tmp_path)
    assert np.array_equal(first.landmarks, second.landmarks) and second.image_size == first.image_size


def test_recipe_yields_all_classes_with_the_right_feature_size(recipe):
    labelled, unlabelled = recipe
    assert labelled.x.shape[1] == features.FACE_FEATURE_DIM == unlabelled.x.shape[1]
    assert set(np.unique(labelled.y)) == set(range(len(CLASSES)))
    assert np.abs(labelled.x).max() <= 1.0 and np.isfinite(labelled.x).all()
    assert len(unlabelled) == 3 and np.all(unlabelled.y == -1)


def test_head_frame_round_trip_leaves_features_unchanged(faces):
    _, face = faces[0]
    again = face_recipe.from_head_frame(face, face_recipe.to_head_frame(face), face.blendshapes)
    assert np.allclose(again.features(), face.features(), atol=1e-4)


@pytest.mark.parametrize(
    ("label", "feature", "sign"),
    [
        ("mouth_open", "lm152_y", +1),  # chin goes down (y down)
        ("mouth_open", "bs_jawOpen", +1),
        ("eyes_closed", "lm160_y", +1),  # upper lid goes down
        ("eyes_closed", "bs_eyeBlinkLeft", +1),
        ("surprise", "lm105_y", -1),  # brow goes up
        ("surprise", "lm14_y", +1),  # lower inner lip drops
        ("smile", "bs_mouthSmileLeft", +1),
    ],
)
def test_synthesis_moves_the_right_features(faces, label, feature, sign):
    smile = face_recipe.smile_direction(faces)
    rng = np.random.default_rng(0)
    base = next(face for photo, face in faces if photo.label == "neutral")
    column = NAMES.index(feature)
    neutral = np.mean([face_recipe.synthesize(base, "neutral", smile, rng).features()[column] for _ in range(10)])
    moved = np.mean([face_recipe.synthesize(base, label, smile, rng).features()[column] for _ in range(10)])
    assert sign * (moved - neutral) > 0.02, (neutral, moved)


def test_smile_direction_leaves_the_held_out_person_out(faces):
    all_pairs = face_recipe.smile_direction(faces)
    without = face_recipe.smile_direction(faces, exclude={"london_025"})
    assert "london_025" in all_pairs.people and "london_025" not in without.people
    assert not np.allclose(all_pairs.points, without.points)


@pytest.fixture(scope="module")
def session_file(tmp_path_factory):
    """A real edge.record session: a short clip of one London person, neutral then smiling, 2 frames labelled."""
    import cv2

    from edge import record

    folder = tmp_path_factory.mktemp("session")
    clip = folder / "face.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (480, 480))
    for key in ["data/face_expressions/london_set/neutral/004_03.jpg"] * 3 + [
        "data/face_expressions/london_set/smiling/004_08.jpg"
    ] * 3:
        writer.write(cv2.resize(cv2.imread(str(resolve(key))), (480, 480), interpolation=cv2.INTER_AREA))
    writer.release()
    path = record.record(f"file://{clip}", folder / "me.npz", hands=False, progress=False)
    record.label(path, "0", "neutral")
    record.label(path, "4-5", "smile")
    return path


def test_session_rows_and_labels_are_read(session_file):
    data = face_data.load_session(session_file)
    assert data.x.shape == (6, features.FACE_FEATURE_DIM)
    assert data.y.tolist() == [0, -1, -1, -1, CLASSES.index("smile"), CLASSES.index("smile")]


def test_session_with_wrong_feature_size_is_a_clear_error(session_file, tmp_path):
    from edge import record

    arrays = dict(record.load_session(session_file).arrays)
    arrays["face_features"] = np.zeros((len(arrays["face_features"]), 100), np.float32)
    bad = record.save_session(tmp_path / "old.npz", arrays)
    with pytest.raises(UserError, match="face features of size 100, expected 186"):
        face_data.load_session(bad)


def test_session_with_unknown_label_or_missing_file_is_a_clear_error(session_file, tmp_path):
    import shutil

    from edge import record

    copy = shutil.copy(session_file, tmp_path / "copy.npz")
    record.label(copy, "1", "smirk")
    with pytest.raises(UserError, match="'smirk'"):
        face_data.load_session(copy)
    with pytest.raises(UserError, match="does not exist"):
        face_data.load_session(tmp_path / "nope.npz")


def test_quick_expression_model_learns_the_recipe_and_writes_its_card(tmp_path, faces, session_file):
    cfg = landmark_aae.FitConfig(hidden_dim=64, epochs=6, progress=False)
    model, card, _ = expressions.train_expressions(cfg, per_class=20, faces=faces, sessions=[session_file])
    assert card["metrics"]["validation_accuracy"] > 0.6, card["metrics"]  # chance is 0.2
    assert card["classes"] == CLASSES and card["input_dim"] == features.FACE_FEATURE_DIM
    assert card["feature_spec_version"] == features.FEATURE_SPEC_VERSION
    assert card["data"]["sessions"][0]["labelled"] == 3 and "session0_labelled_accuracy" in card["metrics"]
    landmark_aae.save(tmp_path, model, card)
    loaded, _ = landmark_aae.load(tmp_path)
    x = faces[0][1].features()[None]
    y, z = landmark_aae.encode(loaded, x)
    assert landmark_aae.decode(loaded, y, z).shape == (1, features.FACE_FEATURE_DIM)


def test_cli_rejects_unknown_person_without_traceback(capsys):
    assert run_cli(expressions.main, ["--exclude_person", "nobody", "--epochs", "1"]) == 2
    assert "not a person" in capsys.readouterr().err
