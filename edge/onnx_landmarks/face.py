"""Face detection, the 478-point face landmark model, blendshapes and MediaPipe's landmark smoothing.

Constants from google-ai-edge/mediapipe: `face_detector_graph.cc` (short-range model, letterboxed
128x128 input in [-1, 1], eye keypoints 0 -> 1 at 0 degrees, rect scale 1.5, NMS IoU 0.5),
`face_landmarks_detector_graph.cc` (256x256 crop in [0, 1], sigmoid presence, next-frame rect
from landmarks 33 -> 263, scale 1.5, square; in VIDEO mode with one face a One Euro filter with
min_cutoff 0.05, beta 80, derivate_cutoff 1 on pixel coordinates) and `face_blendshapes_graph.cc`
(the 146-landmark subset, x and y in pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.onnx_landmarks.anchors import FACE_ANCHORS, FACE_DECODE
from edge.onnx_landmarks.detector import SsdDetector
from edge.onnx_landmarks.models import ModelSession, input_size, input_tensor
from edge.onnx_landmarks.roi import (
    FACE_DETECTION_TO_ROI,
    FACE_NEXT_FRAME,
    Roi,
    crop,
    face_rect_from_landmarks,
    project_landmarks,
    rect_from_detection,
    transform_rect,
)
from latentcast.landmark_models import BLENDSHAPE_SUBSET as _SUBSET

FACE_LANDMARKS = 478

# kLandmarksSubsetIdxs (face_blendshapes_graph.cc): the landmarks the blendshape model reads; one shared table
BLENDSHAPE_SUBSET = np.array(_SUBSET, np.int64)


class FaceDetector(SsdDetector):
    """Whole frame -> face ROIs for the landmark model, best first."""

    def __init__(self, session: ModelSession, min_score: float = 0.5) -> None:
        super().__init__(session, "face_detector", FACE_ANCHORS, FACE_DECODE, min_score)

    def __call__(self, rgb: np.ndarray, max_faces: int) -> list[Roi]:
        return [
            transform_rect(rect_from_detection(box_px, keypoints, 0, 1, 0.0), **FACE_DETECTION_TO_ROI)
            for box_px, keypoints in self.detect(rgb, max_faces)
        ]


@dataclass
class FaceResult:
    presence: float
    landmarks: np.ndarray  # [478, 3] frame-normalised
    next_roi: Roi


class FaceLandmarkModel:
    """Crop -> 478 landmarks and a presence score."""

    def __init__(self, session: ModelSession) -> None:
        self.session = session
        self.size = input_size("face_landmarks_detector")

    def __call__(self, rgb: np.ndarray, roi: Roi) -> FaceResult:
        height, width = rgb.shape[:2]
        tensor = input_tensor(crop(rgb, roi, self.size, self.size), "face_landmarks_detector")
        outputs = self.session.run(tensor[None])
        raw = next(o for o in outputs if o.size == FACE_LANDMARKS * 3)
        logit = float(next(o for o in outputs if o.ndim == 4 and o.size == 1).ravel()[0])
        local = raw.reshape(FACE_LANDMARKS, 3) / np.float32(self.size)
        landmarks = project_landmarks(local, roi, width, height, z_by_width=False)
        next_roi = transform_rect(face_rect_from_landmarks(landmarks[:, :2] * (width, height)), **FACE_NEXT_FRAME)
        return FaceResult(1.0 / (1.0 + math.exp(-logit)), landmarks, next_roi)


class Blendshapes:
    """The 146-landmark subset (x, y in pixels) -> 52 blendshape scores."""

    def __init__(self, session: ModelSession) -> None:
        self.session = session

    def __call__(self, landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
        points = landmarks[BLENDSHAPE_SUBSET, :2] * np.array([width, height], np.float32)
        return np.asarray(self.session.run(points[None].astype(np.float32))[0], np.float32).reshape(-1)


class LandmarkSmoother:
    """MediaPipe's LandmarksSmoothingCalculator (One Euro, value scale 1 / object size) on pixel coordinates."""

    def __init__(self, min_cutoff: float = 0.05, beta: float = 80.0, derivate_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.derivate_cutoff = min_cutoff, beta, derivate_cutoff
        self.reset()

    def reset(self) -> None:
        self._last_ns: int | None = None
        self._x: np.ndarray | None = None  # filtered values
        self._raw: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, frequency: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * frequency)

    def __call__(self, landmarks: np.ndarray, width: int, height: int, timestamp_ns: int) -> np.ndarray:
        scale = np.array([width, height, width], np.float64)
        value = landmarks.astype(np.float64) * scale
        size = ((value[:, 0].max() - value[:, 0].min()) + (value[:, 1].max() - value[:, 1].min())) / 2.0
        if size < 1e-6:
            return landmarks
        if self._x is None or self._last_ns is None:
            self._x, self._raw, self._dx, self._last_ns = value, value, np.zeros_like(value), timestamp_ns
            return landmarks
        if timestamp_ns <= self._last_ns:
            return landmarks
        frequency = 1e9 / (timestamp_ns - self._last_ns)
        self._last_ns = timestamp_ns
        dvalue = (value - self._raw) * (1.0 / size) * frequency
        a_d = self._alpha(self.derivate_cutoff, frequency)
        self._dx = a_d * dvalue + (1 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = self._alpha(cutoff, frequency)
        self._x = a * value + (1 - a) * self._x
        self._raw = value
        return (self._x / scale).astype(np.float32)
