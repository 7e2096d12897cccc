"""Palm detection and the hand landmark model, as MediaPipe's HandLandmarker graph runs them.

Constants from google-ai-edge/mediapipe `tasks/cc/vision/hand_detector/hand_detector_graph.cc`
(letterboxed 192x192 input in [0, 1], wrist keypoint 0 -> middle-finger MCP keypoint 2 at 90
degrees, rect scale 2.6 / shift -0.5 / square) and `hand_landmarks_detector_graph.cc` (224x224
crop in [0, 1], z normalised by 0.4, presence threshold, binary handedness with index 0 "Right",
next-frame rect scale 2.0 / shift -0.1 / square). Both hands go through the landmark model in one
batched call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.onnx_landmarks.anchors import PALM_ANCHORS, PALM_DECODE
from edge.onnx_landmarks.detector import SsdDetector
from edge.onnx_landmarks.models import ModelSession, input_size, input_tensor
from edge.onnx_landmarks.roi import (
    HAND_NEXT_FRAME,
    PALM_TO_HAND,
    Roi,
    crop,
    hand_rect_from_landmarks,
    project_landmarks,
    rect_from_detection,
    transform_rect,
)

HAND_LANDMARKS = 21
_NORMALIZE_Z = 0.4  # kLandmarksNormalizeZ
# hand_detector_graph.cc calls `set_rotation_vector_target_angle(90)`, a field in RADIANS (the
# legacy graph used `..._degrees: 90`). MediaPipe Tasks therefore aims the palm ROI at 90 rad
# (116.6 degrees), not pi/2; reproduced on purpose: with pi/2 the landmarks differ from MediaPipe's
# by 2-4 % of hand size on the test photos, with 90 they match.
PALM_TARGET_ANGLE = 90.0


class PalmDetector(SsdDetector):
    """Whole frame -> hand ROIs (rects around whole hands), best first."""

    def __init__(self, session: ModelSession, min_score: float = 0.5) -> None:
        super().__init__(session, "hand_detector", PALM_ANCHORS, PALM_DECODE, min_score)

    def __call__(self, rgb: np.ndarray, max_hands: int) -> list[Roi]:
        return [
            transform_rect(rect_from_detection(box_px, keypoints, 0, 2, PALM_TARGET_ANGLE), **PALM_TO_HAND)
            for box_px, keypoints in self.detect(rgb, max_hands)
        ]


@dataclass
class HandResult:
    """One landmark-model pass on one ROI."""

    presence: float
    landmarks: np.ndarray  # [21, 3] frame-normalised
    world: np.ndarray  # [21, 3] metres
    handedness: str
    handedness_score: float
    next_roi: Roi


class HandLandmarkModel:
    """Crops -> landmarks, presence, handedness, world landmarks; every ROI of a frame in one call."""

    def __init__(self, session: ModelSession) -> None:
        self.session = session
        self.size = input_size("hand_landmarks_detector")

    def __call__(self, rgb: np.ndarray, rois: list[Roi]) -> list[HandResult]:
        if not rois:
            return []
        height, width = rgb.shape[:2]
        crops = np.stack([crop(rgb, roi, self.size, self.size) for roi in rois])
        batch = input_tensor(crops, "hand_landmarks_detector")
        raw_landmarks, presence, handedness, raw_world = self.session.run(batch)
        results = []
        for i, roi in enumerate(rois):
            local = raw_landmarks[i].reshape(HAND_LANDMARKS, 3) / np.float32(self.size)
            local[:, 2] /= _NORMALIZE_Z
            landmarks = project_landmarks(local, roi, width, height, z_by_width=True)
            world = raw_world[i].reshape(HAND_LANDMARKS, 3).astype(np.float32).copy()
            c, s = math.cos(roi.rotation), math.sin(roi.rotation)
            wx, wy = world[:, 0].copy(), world[:, 1].copy()
            world[:, 0], world[:, 1] = c * wx - s * wy, s * wx + c * wy
            right = float(np.ravel(handedness[i])[0])  # binary classification: index 0 "Right" scores raw
            label, score = ("Right", right) if right >= 1.0 - right else ("Left", 1.0 - right)
            pixels = landmarks[:, :2] * (width, height)
            next_roi = transform_rect(hand_rect_from_landmarks(pixels), **HAND_NEXT_FRAME)
            results.append(HandResult(float(np.ravel(presence[i])[0]), landmarks, world, label, score, next_roi))
        return results


def _bounds(landmarks: np.ndarray) -> np.ndarray:
    lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def duplicate_hands(hands: list[np.ndarray], width: int, height: int) -> set[int]:
    """HandLandmarksDeduplicationCalculator: indices of hands that repeat an earlier one.

    A hand is a duplicate when >= 10 of its 21 landmarks lie within 0.2 x the larger hand's
    baseline distance (max of wrist-index MCP, index MCP-pinky MCP, pinky MCP-wrist) of the other
    hand's, and their landmark bounding boxes overlap with IoU > 0.2.
    """
    from edge.onnx_landmarks.anchors import iou

    scale = np.array([width, height], np.float64)

    def baseline(lm: np.ndarray) -> float:
        p = lm[:, :2] * scale
        return max(np.linalg.norm(p[0] - p[5]), np.linalg.norm(p[5] - p[17]), np.linalg.norm(p[17] - p[0]))

    kept: list[int] = []
    dropped: set[int] = set()
    for i, lm in enumerate(hands):
        for j in kept:
            threshold = max(baseline(lm), baseline(hands[j])) * 0.2
            close = np.linalg.norm((lm[:, :2] - hands[j][:, :2]) * scale, axis=1) < threshold
            if close.sum() >= 10 and iou(_bounds(lm), _bounds(hands[j])) > 0.2:
                dropped.add(i)
                break
        else:
            kept.append(i)
    return dropped
