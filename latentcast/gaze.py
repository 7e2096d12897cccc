"""Eye gaze from MediaPipe's iris landmarks: per eye yaw and pitch in radians, relative to the head.

Why here: the face block of the wire (docs/PROTOCOL.md, v2) carries it for avatar eyes (VRM
LookAt over VMC); the edge has the 478 landmarks, the renderer does not. numpy only.

Model: the eye is a ball behind the eye opening. In the head frame of `latentcast.features`
(x toward the subject's left, y down, pose and scale removed), the iris centre (468: subject's
right eye, 473: left eye) moves by R * sin(angle) from the middle of the eye corners, where the
eyeball radius R is about 0.83 half-widths of the eye opening (12 mm ball, 29 mm opening). So
yaw = asin(dx / R) and pitch = asin(-dy / R). An approximation: no per-user calibration, and the
vertical rest position of the iris varies a little between people.
"""

from __future__ import annotations

import numpy as np

from latentcast.features import (
    FACE_LANDMARK_COUNT,
    LEFT_EYE_INNER,
    LEFT_EYE_OUTER,
    RIGHT_EYE_INNER,
    RIGHT_EYE_OUTER,
    pose_free_face_landmarks,
)

RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473  # 469-472 and 474-477 ring them
EYEBALL_RADIUS = 0.83  # in half-widths of the eye opening (corner to corner / 2)
GAZE_LIMIT = float(np.pi / 2)  # |yaw|, |pitch| never exceed this (asin's range)
_INDICES = (LEFT_EYE_OUTER, LEFT_EYE_INNER, LEFT_IRIS_CENTER, RIGHT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_IRIS_CENTER)


def _eye(outer: np.ndarray, inner: np.ndarray, iris: np.ndarray) -> tuple[float, float]:
    center = (outer + inner) / 2
    radius = EYEBALL_RADIUS * float(np.linalg.norm(outer[:2] - inner[:2])) / 2
    if radius <= 1e-9:
        raise ValueError("degenerate eye: its corners coincide")
    dx, dy = (iris[:2] - center[:2]) / radius
    return float(np.arcsin(np.clip(dx, -1.0, 1.0))), float(np.arcsin(np.clip(-dy, -1.0, 1.0)))


def eye_gaze(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray | None:
    """[left yaw, left pitch, right yaw, right pitch] float32 radians, or None without iris landmarks.

    Left/right are the subject's eyes. Yaw > 0: the eye turns toward the subject's left; pitch > 0:
    it looks up. `landmarks` are MediaPipe's normalised [478, 3] face landmarks of a frame of `image_size`.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 2 or landmarks.shape[0] < FACE_LANDMARK_COUNT:
        return None
    points = pose_free_face_landmarks(landmarks, image_size, _INDICES).astype(np.float64)
    left = _eye(points[0], points[1], points[2])
    right = _eye(points[3], points[4], points[5])
    return np.asarray((*left, *right), dtype=np.float32)
