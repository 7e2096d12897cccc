"""Personalisation keeps the open-set rule honest: `--session` refits it on that person's labelled frames."""

from __future__ import annotations

import pytest

from latentcast.assets import resolve

pytest.importorskip("torch")

LONDON = ("004", "005", "006", "008", "025", "042")


@pytest.fixture(scope="module")
def labelled_session(tmp_path_factory):
    """A real edge.record session of 12 frames (6 resting faces, then 6 smiles), every frame labelled."""
    import cv2

    from edge import record
    from edge.session_tools import label

    folder = tmp_path_factory.mktemp("session")
    clip = folder / "faces.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (480, 480))
    keys = [f"data/face_expressions/london_set/neutral/{i}_03.jpg" for i in LONDON]
    keys += [f"data/face_expressions/london_set/smiling/{i}_08.jpg" for i in LONDON]
    for key in keys:
        writer.write(cv2.resize(cv2.imread(str(resolve(key))), (480, 480), interpolation=cv2.INTER_AREA))
    writer.release()
    path = record.record(f"file://{clip}", folder / "me.npz", hands=False, progress=False)
    label(path, "0-5", "neutral")
    label(path, "6-11", "smile")
    return path


def test_a_session_with_enough_labelled_frames_refits_the_rule_on_them_alone(labelled_session):
    from aae import expressions, face_data, landmark_aae

    cfg = landmark_aae.FitConfig(hidden_dim=64, epochs=6, progress=False)
    faces = face_data.load_faces()
    _, card, _ = expressions.train_expressions(cfg, per_class=20, faces=faces, sessions=[labelled_session])
    block = card["open_set"]
    assert "recorded session" in block["fitted_on"] and "photos" not in block["fitted_on"]
    assert block["fit_rows"] == 12 and block["max_recon_error"] is None  # seen rows: confidence half only
    _, without, _ = expressions.train_expressions(cfg, per_class=20, faces=faces)
    assert "real face photos" in without["open_set"]["fitted_on"]
    assert block["min_confidence"] != without["open_set"]["min_confidence"]  # a different rule, not a copy
