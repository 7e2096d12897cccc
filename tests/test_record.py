"""edge.record: record real sessions (hand clip, face photo) with the edge's real landmark stage, label, sheet.

The CLI runs in real subprocesses, so exit codes, signals and the atomic file writes are the
ones a user gets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.record import record
from edge.session_tools import label, parse_frames
from latentcast import features as F
from latentcast.assets import resolve
from latentcast.errors import UserError
from latentcast.session import load_session, save_session

ROOT = Path(__file__).resolve().parents[1]
CLIP_FRAMES = 202


def cli(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "edge.record", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ},
    )
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def clip() -> str:
    return f"file://{resolve('data/video/hand_landmarker_test_video.mp4')}"


@pytest.fixture(scope="module")
def clip_session(tmp_path_factory, clip) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "clip.npz"
    cli("record", clip, "-o", str(path), "--max-frames", "60", "--no-face", "--no-progress", "--thumb-every", "4")
    return path


def test_recording_the_clip_keeps_landmarks_features_and_unlabelled_labels(clip_session):
    session = load_session(clip_session)
    a = session.arrays
    assert len(session) == 60
    np.testing.assert_array_equal(a["frame_index"], np.arange(60))
    assert np.all(np.diff(a["timestamp_ms"]) > 0)
    assert a["hand_present"].shape == (60, 2) and a["hand_present"][:, 0].mean() > 0.8
    assert a["hand_landmarks"].shape == (60, 2, 21, 3)
    assert a["hand_features"].shape == (60, 2, F.HAND_FEATURE_DIM)
    seen = a["hand_present"][:, 0]
    np.testing.assert_allclose(np.abs(a["hand_features"][seen, 0]).max(axis=1), 1.0, atol=1e-6)  # CSV convention
    assert set(a["handedness"][seen, 0]) <= {"Left", "Right"}
    # The features in the file are the feature function applied to the raw landmarks in the file.
    row = int(np.argmax(seen))
    expected = F.hand_features(a["hand_landmarks"][row, 0], str(a["handedness"][row, 0]), tuple(a["image_size"]))
    np.testing.assert_array_equal(a["hand_features"][row, 0], expected)
    assert not a["face_present"].any()
    np.testing.assert_array_equal(a["face_labels"], -1)
    np.testing.assert_array_equal(a["hand_labels"], -1)
    assert tuple(a["image_size"]) == (640, 360) and int(a["feature_spec_version"]) == F.FEATURE_SPEC_VERSION
    assert a["thumbs"].shape[0] == 15 and a["thumbs"].dtype == np.uint8
    assert not list(clip_session.parent.glob(".*.tmp"))


def test_labelling_frames_from_the_command_line(clip_session, tmp_path):
    path = tmp_path / "labelled.npz"
    path.write_bytes(clip_session.read_bytes())
    out = cli("label", str(path), "--frames", "10-40", "--label", "open_palm", "--part", "hand").stdout
    assert "open_palm=31" in out
    cli("label", str(path), "--frames", "45,50-52", "--label", "wave", "--part", "hand")
    cli("label", str(path), "--frames", "12", "--clear", "--part", "hand")
    session = load_session(path)
    labels = session.labels("hand")
    assert session.classes("hand") == ["open_palm", "wave"]
    assert (labels == 0).sum() == 30 and labels[12] == -1 and labels[11] == 0
    assert labels[[45, 50, 51, 52]].tolist() == [1, 1, 1, 1] and (labels == -1).sum() == 60 - 34
    x, y, classes = session.training_arrays("hand")
    present_rows = np.nonzero(session.arrays["hand_present"])[0]
    assert x.shape == (len(present_rows), F.HAND_FEATURE_DIM) and len(y) == len(x)
    assert (y == 0).sum() >= 25 and classes == ["open_palm", "wave"]
    np.testing.assert_array_equal(session.labels("face"), -1)


def test_old_spec_sessions_are_refeaturised_from_raw_landmarks(clip_session, tmp_path):
    session = load_session(clip_session)
    current, _, _ = session.training_arrays("hand")
    arrays = dict(session.arrays)
    arrays["feature_spec_version"] = np.int64(F.FEATURE_SPEC_VERSION - 1)
    arrays["hand_features"] = np.zeros_like(arrays["hand_features"])  # stale features must not be used
    old = load_session(save_session(tmp_path / "old.npz", arrays))
    refeaturised, _, _ = old.training_arrays("hand")
    np.testing.assert_array_equal(refeaturised, current)


def test_contact_sheet_png(clip_session, tmp_path):
    import cv2

    sheet = tmp_path / "sheet.png"
    cli("sheet", str(clip_session), "-o", str(sheet), "--columns", "5", "--frames", "0-39")
    image = cv2.imread(str(sheet))
    session = load_session(clip_session)
    thumb_height, thumb_width = session.arrays["thumbs"].shape[1:3]
    assert image.shape[1] == 5 * thumb_width  # 10 thumbnails (rows 0, 4, ... 36) in 5 columns
    assert image.shape[0] == 2 * (thumb_height + 30)
    assert image.std() > 10  # real pictures, not a blank canvas


def test_face_session_from_a_photo(tmp_path):
    path = record(str(resolve("data/images/faces/sergey.png")), tmp_path / "face.npz", hands=False, progress=False)
    session = load_session(path)
    assert len(session) == 1 and session.arrays["face_present"][0]
    assert session.arrays["face_landmarks"].shape == (1, 478, 3)
    assert session.arrays["face_features"].shape == (1, F.FACE_FEATURE_DIM)
    assert np.abs(session.arrays["head_pose"][0]).max() < 15
    label(path, "0", "smile")
    x, y, classes = load_session(path).training_arrays("face")
    assert x.shape == (1, F.FACE_FEATURE_DIM) and y.tolist() == [0] and classes == ["smile"]
    arrays = dict(load_session(path).arrays, feature_spec_version=np.int64(0))
    arrays["face_features"] = np.zeros_like(arrays["face_features"])
    refeaturised, _, _ = load_session(save_session(tmp_path / "old.npz", arrays)).training_arrays("face")
    np.testing.assert_allclose(refeaturised, x, atol=1e-6)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_recording_is_saved(tmp_path, clip, stop_signal):
    path = tmp_path / "partial.npz"
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.record", "record", clip, "-o", str(path), "--pace", "native", "--no-progress"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:  # wait until the trackers are loaded and frames flow
            if "recording" in line:
                break
        time.sleep(2.0)  # the clip plays in real time (8 s): stop it part-way
        process.send_signal(stop_signal)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "saved" in rest
    session = load_session(path)
    assert 3 <= len(session) < CLIP_FRAMES
    assert session.arrays["hand_present"].any()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = save_session(tmp_path / "s.npz", {"a": np.arange(3)})
    before = path.read_bytes()

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("disk full (simulated)")

    with pytest.raises(RuntimeError, match="disk full"):
        save_session(path, {"a": np.arange(5), "b": Unsaveable()})
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_user_mistakes_are_one_line_errors(tmp_path, clip_session):
    missing = cli("label", str(tmp_path / "nope.npz"), "--frames", "1", "--label", "x", check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    backwards = cli("label", str(clip_session), "--frames", "40-10", "--label", "x", check=False)
    assert backwards.returncode == 2 and "backwards" in backwards.stderr
    outside = cli("label", str(clip_session), "--frames", "0-500", "--label", "x", check=False)
    assert outside.returncode == 2 and "outside" in outside.stderr
    no_source = cli("record", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "x.npz"), check=False)
    assert no_source.returncode == 2 and "not found" in no_source.stderr
    not_npz = tmp_path / "junk.npz"
    not_npz.write_text("not a numpy archive")
    junk = cli("info", str(not_npz), check=False)
    assert junk.returncode == 2 and "not a readable session" in junk.stderr


def test_parse_frames():
    assert parse_frames("3-5, 1,4", 10).tolist() == [1, 3, 4, 5]
    for bad in ("a-b", "", "5-2", "9-10"):
        with pytest.raises(UserError):
            parse_frames(bad, 10)


def test_record_module_does_not_import_torch():
    code = "import sys, edge.record; assert 'torch' not in sys.modules, 'edge.record pulled in torch'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_recording_uses_the_edge_configs_landmark_backend(tmp_path):
    """The recorder builds its landmarks like edge.run: the config's [landmarks] section is honoured."""
    photo = str(resolve("data/images/faces/sergey.png"))
    empty = tmp_path / "no_models"
    empty.mkdir()
    config = tmp_path / "edge.toml"
    config.write_text(f'[landmarks]\nbackend = "onnx"\nonnx_dir = "{empty}"\n')
    refused = cli("record", photo, "-o", str(tmp_path / "x.npz"), "--config", str(config), "--no-hands", check=False)
    assert refused.returncode == 2 and "onnx_dir" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "x.npz").exists()
    ok = tmp_path / "mp.npz"
    cli("record", photo, "-o", str(ok), "--config", str(config), "--backend", "mediapipe", "--no-hands")
    assert load_session(ok).arrays["face_present"].all()
