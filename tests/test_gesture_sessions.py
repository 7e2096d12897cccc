"""Personalised gestures: `aae.gestures --session` trains on a recorded hand session and refits the open-set rule.

The session is real: the shared hand clip through the edge recorder (`edge.record.record`), its
frames labelled with `edge.session_tools.label` as a user would after looking at the contact sheet
(frames 60-201: the hand held open, palm to the camera; 0-59: the hand rising, left unlabelled).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latentcast.assets import resolve
from latentcast.errors import UserError

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
CLIP = "data/video/hand_landmarker_test_video.mp4"
OPEN_PALM_FRAMES = "60-201"  # of the clip's 202 frames, by eye on `python -m edge.record sheet`


def _quick():
    from aae import landmark_aae

    return landmark_aae.FitConfig(hidden_dim=128, epochs=15, progress=False)


def _train(sessions=()):
    from aae import gestures

    return gestures.train_gestures(_quick(), label_fraction=1.0, max_rows=2500, augment=0, sessions=sessions)


@pytest.fixture(scope="module")
def clip_session(tmp_path_factory) -> Path:
    """The shared hand clip recorded by the edge recorder (hands only, every frame, nothing labelled)."""
    from edge.record import record

    path = tmp_path_factory.mktemp("hand_session") / "clip.npz"
    return record(f"file://{resolve(CLIP)}", path, face=False, progress=False, thumb_every=50)


@pytest.fixture(scope="module")
def me(clip_session, tmp_path_factory) -> Path:
    from edge.session_tools import label

    path = tmp_path_factory.mktemp("me") / "me.npz"
    path.write_bytes(clip_session.read_bytes())
    label(path, OPEN_PALM_FRAMES, "open_palm", part="hand")
    return path


@pytest.fixture(scope="module")
def trained(me):
    """(card without a session, card with it, the model trained with it)."""
    _, without, _ = _train()
    model, card, _ = _train([me])
    return without, card, model


def test_the_session_joins_training_and_the_card_records_it(trained, me):
    without, card, _ = trained
    assert card["data"]["sessions"] == [{"session": str(me), "rows": 202, "labelled": 142}]
    assert card["data"]["train_rows"] == without["data"]["train_rows"] + 202
    assert card["data"]["labelled_rows"] == without["data"]["labelled_rows"] + 142
    assert without["data"]["sessions"] == [] and "personal" not in without["open_set"]


def test_the_rule_is_refitted_on_the_persons_labelled_frames(trained, me):
    from aae.face_data import load_session
    from latentcast import open_set

    without, card, model = trained
    block = card["open_set"]
    assert "me.npz" in block["fitted_on"] and "me.npz" not in without["open_set"]["fitted_on"]
    assert block["fit_rows"] == without["open_set"]["fit_rows"] + 142
    assert block["personal"]["refitted"] and block["personal"]["fit_rows"] == 142
    assert "me.npz" in block["personal"]["fitted_on"]
    assert block["personal"]["unknown_rate"] <= 1 - block["keep"]

    # the class Gaussians include the person's frames: their open palm pulls the class mean towards it
    classes = card["classes"]
    palm = load_session(me, classes, part="hand")
    palm_x = palm.x[palm.y == classes.index("open_palm")]
    rule, before = open_set.rule_from_block(block), open_set.rule_from_block(without["open_set"])
    k = classes.index("open_palm")
    moved = np.linalg.norm(rule.gaussians.means[k] - palm_x.mean(0))
    assert moved < np.linalg.norm(before.gaussians.means[k] - palm_x.mean(0))

    # what the edge decides on the person's labelled frames: known shapes, kept at the card's rate
    from aae import landmark_aae

    probs, err = landmark_aae.reconstruction_error(model, palm_x)
    verdict = rule.judge(probs, err, palm_x)
    assert open_set.unknown_rate(verdict.label) <= 1 - block["keep"]


def test_keep_also_loosens_a_rule_until_it_keeps_another_persons_frames():
    """kinivi's evaluation half (another person, real rows the rule never saw) against a small model's rule:
    more of them than the rule's share are flagged unknown, and keep_also loosens the thresholds (never
    tightening one, nor touching the temperature or the Gaussians) until they are kept at the rule's rate."""
    from aae import gestures, hand_data, landmark_aae
    from latentcast import open_set

    model, card, _ = _train()
    rule = open_set.rule_from_block(card["open_set"])
    _, kinivi = hand_data.kinivi_halves(card["classes"])
    probs, _ = landmark_aae.reconstruction_error(model, kinivi.x)
    distance = rule.gaussians.distance(kinivi.x)  # held out: kinivi's eval half is in no Gaussian
    assert open_set.unknown_rate(rule.decide(probs, distance=distance)) > 1 - rule.keep  # a rule that needs loosening
    wider = open_set.keep_also(rule, probs, distance, "kinivi's evaluation half")
    assert wider.min_confidence <= rule.min_confidence and wider.max_distance >= rule.max_distance
    assert (wider.min_confidence, wider.max_distance) != (rule.min_confidence, rule.max_distance)
    assert wider.temperature == rule.temperature and wider.gaussians == rule.gaussians
    assert open_set.unknown_rate(wider.decide(probs, distance=distance)) <= 1 - wider.keep
    runtime = open_set.unknown_rate(wider.decide(probs, None, kinivi.x))  # what the edge decides
    assert open_set.unknown_rate(wider.decide(probs, distance=distance)) == runtime
    with pytest.raises(open_set.OpenSetFitError, match="at least 10"):
        open_set.keep_also(rule, probs[:5], distance[:5], "five frames")
    # frames the model does not classify as labelled (here: real rows, labels shifted by one class) refuse a refit
    wrong = (kinivi.y + 1) % len(card["classes"])
    with pytest.raises(UserError, match="another --seed, or check the frames' labels"):
        gestures.personal_rule(rule, probs, distance, wrong, "kinivi relabelled")


def test_too_few_labelled_frames_keep_the_rule_on_the_other_people(clip_session, tmp_path):
    from edge.session_tools import label

    few = tmp_path / "few.npz"
    few.write_bytes(clip_session.read_bytes())
    label(few, "100-104", "open_palm", part="hand")
    _, card, _ = _train([few])
    block = card["open_set"]
    assert block["personal"]["refitted"] is False and "label more frames" in block["personal"]["why"]
    assert "few.npz" not in block["fitted_on"]
    assert card["data"]["sessions"][0]["labelled"] == 5


def test_sessions_that_do_not_match_are_refused_in_one_line(clip_session, tmp_path):
    from aae import gestures
    from edge.record import record
    from edge.session_tools import label
    from latentcast.session import load_session, save_session

    wrong_class = tmp_path / "smile.npz"
    wrong_class.write_bytes(clip_session.read_bytes())
    label(wrong_class, "60-80", "smile", part="hand")
    with pytest.raises(UserError, match="relabel"):
        gestures.train_gestures(_quick(), sessions=[wrong_class])

    damaged = load_session(clip_session)
    damaged.arrays["hand_features"] = damaged.arrays["hand_features"][..., :40]
    save_session(tmp_path / "damaged.npz", damaged.arrays)
    with pytest.raises(UserError, match="record the session again"):
        gestures.train_gestures(_quick(), sessions=[tmp_path / "damaged.npz"])

    face_only = record(str(resolve("data/images/faces/sergey.png")), tmp_path / "face.npz", hands=False, progress=False)
    with pytest.raises(UserError, match=r"no frame with a hand.*--no-hands"):
        gestures.train_gestures(_quick(), sessions=[face_only])

    result = subprocess.run(
        [sys.executable, "-m", "aae.gestures", "--session", str(wrong_class), "--out", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert result.returncode != 0 and "relabel" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m").exists()
