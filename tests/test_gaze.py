"""Eye gaze from MediaPipe's iris landmarks (latentcast.gaze), on real faces from the mirror."""

from __future__ import annotations

import numpy as np
import pytest

from aae import face_data
from latentcast.gaze import GAZE_LIMIT, LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER, eye_gaze


@pytest.fixture(scope="module")
def faces():
    """Real London-set faces looking into the camera (MediaPipe output, cached by aae.face_data)."""
    keys = [f"data/face_expressions/london_set/neutral/{i}_03.jpg" for i in face_data.LONDON_IDS]
    found = [face_data.face_from_asset(key) for key in keys]
    assert all(f is not None for f in found)
    return found


def test_people_looking_into_the_camera_have_small_gaze_angles(faces):
    for face in faces:
        gaze = eye_gaze(face.landmarks, face.image_size)
        assert gaze.shape == (4,) and gaze.dtype == np.float32
        assert np.all(np.abs(gaze) < np.radians(25)), np.degrees(gaze)


def test_moving_the_irises_turns_the_gaze_the_documented_way(faces):
    face = faces[0]
    width, height = face.image_size
    base = eye_gaze(face.landmarks, face.image_size)
    eye_width_px = np.linalg.norm((face.landmarks[263, :2] - face.landmarks[362, :2]) * (width, height))
    for dx, dy, axis, sign in ((0.2, 0, 0, +1), (-0.2, 0, 0, -1), (0, -0.2, 1, +1), (0, 0.2, 1, -1)):
        moved = face.landmarks.copy()
        for iris in (LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER):
            moved[iris, 0] += dx * eye_width_px / width  # image +x: the subject's left on an unmirrored frame
            moved[iris, 1] += dy * eye_width_px / height  # image -y: up
        gaze = eye_gaze(moved, face.image_size)
        change = gaze - base
        assert np.all(sign * change[axis::2] > np.radians(10)), np.degrees(change)  # both eyes, that angle
        assert np.all(np.abs(change[1 - axis :: 2]) < np.radians(3))  # the other angle barely moves


def test_extreme_or_missing_iris_landmarks():
    rng = np.random.default_rng(0)
    assert eye_gaze(rng.random((468, 3)), (640, 480)) is None  # a mesh without irises
    face = face_data.face_from_asset("data/face_expressions/london_set/neutral/004_03.jpg")
    far = face.landmarks.copy()
    far[LEFT_IRIS_CENTER, 0] += 0.5  # far outside the eye: clipped to the asin range, never NaN
    gaze = eye_gaze(far, face.image_size)
    assert np.isfinite(gaze).all() and abs(gaze[0]) == pytest.approx(GAZE_LIMIT, abs=1e-6)
