"""Rotated regions of interest, the affine crop into a model input, and the way back.

All rects live in pixels of the frame (centre, size, rotation in radians, clockwise in image
coordinates); MediaPipe works on normalised rects, but its calculators are the same maths once
the image size is multiplied in. Each function names the MediaPipe calculator it reproduces:

- `rect_from_detection`: DetectionsToRectsCalculator (box centre/size, rotation from two keypoints).
- `transform_rect`: RectTransformationCalculator (shift in the rect's own frame, square_long, scale).
- `hand_rect_from_landmarks`: HandLandmarksToRectCalculator (the 12-landmark subset).
- `face_rect_from_landmarks`: LandmarksToDetection + DetectionsToRects (eyes 33 -> 263, 0 degrees).
- `crop`: ImageToTensorConverterOpenCV (cv::boxPoints corners -> tensor corners, bilinear).
- `project_landmarks`: LandmarkProjectionCalculator (crop-normalised -> image-normalised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roi:
    """A rotated rectangle in frame pixels."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0  # radians

    def box(self) -> np.ndarray:
        """Axis-aligned (xmin, ymin, w, h) of the unrotated rect, pixels (MediaPipe's overlap ignores rotation)."""
        return np.array([self.cx - self.width / 2, self.cy - self.height / 2, self.width, self.height], np.float32)


def normalize_radians(angle: float) -> float:
    """Into [-pi, pi), as MediaPipe's NormalizeRadians."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_between(start: np.ndarray, end: np.ndarray, target_angle: float) -> float:
    """Rotation that turns the start->end vector (pixels) to `target_angle` (radians, y up)."""
    return normalize_radians(target_angle - math.atan2(-(end[1] - start[1]), end[0] - start[0]))


def rect_from_detection(box_px: np.ndarray, keypoints_px: np.ndarray, start: int, end: int, target_angle: float) -> Roi:
    """Box (xmin, ymin, w, h) and keypoints [K, 2], both in pixels -> Roi (DetectionsToRectsCalculator)."""
    x, y, w, h = (float(v) for v in box_px)
    rotation = rotation_between(keypoints_px[start], keypoints_px[end], target_angle)
    return Roi(x + w / 2, y + h / 2, w, h, rotation)


def transform_rect(
    roi: Roi, scale: float, shift_x: float = 0.0, shift_y: float = 0.0, square_long: bool = False
) -> Roi:
    """RectTransformationCalculator: shift along the rect's own axes, optionally square it, then scale."""
    w, h, r = roi.width, roi.height, roi.rotation
    dx = w * shift_x * math.cos(r) - h * shift_y * math.sin(r)
    dy = w * shift_x * math.sin(r) + h * shift_y * math.cos(r)
    if square_long:
        w = h = max(w, h)
    return Roi(roi.cx + dx, roi.cy + dy, w * scale, h * scale, r)


# HandLandmarksToRectCalculator works on 12 of the 21 landmarks; within them the wrist is 0 and
# what its constants call the index, middle and ring PIP joints are 4, 6 and 8, which in the full
# 21-landmark list are the MCP joints 5, 9 and 13 (reproduced as MediaPipe runs it).
_HAND_PARTIAL = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def _rotated_bounds(points: np.ndarray, rotation: float) -> Roi:
    """The rect of `rotation` that bounds `points` [N, 2] (pixels), centred as MediaPipe centres it."""
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    rel = points - centre
    rev = -rotation
    c, s = math.cos(rev), math.sin(rev)
    px = rel[:, 0] * c - rel[:, 1] * s
    py = rel[:, 0] * s + rel[:, 1] * c
    pcx, pcy = (px.min() + px.max()) / 2, (py.min() + py.max()) / 2
    c, s = math.cos(rotation), math.sin(rotation)
    cx = pcx * c - pcy * s + centre[0]
    cy = pcx * s + pcy * c + centre[1]
    return Roi(float(cx), float(cy), float(px.max() - px.min()), float(py.max() - py.min()), rotation)


def hand_rect_from_landmarks(landmarks_px: np.ndarray) -> Roi:
    """21 hand landmarks (pixels, [21, >=2]) -> the rect the next frame's crop starts from (before scaling)."""
    pts = np.asarray(landmarks_px, np.float64)[list(_HAND_PARTIAL), :2]
    wrist = pts[0]
    mid = ((pts[4] + pts[8]) / 2 + pts[6]) / 2
    rotation = rotation_between(wrist, mid, math.pi / 2)
    return _rotated_bounds(pts, rotation)


HAND_NEXT_FRAME = dict(scale=2.0, shift_y=-0.1, square_long=True)  # hand_landmarks_detector_graph.cc
PALM_TO_HAND = dict(scale=2.6, shift_y=-0.5, square_long=True)  # hand_detector_graph.cc
FACE_DETECTION_TO_ROI = dict(scale=1.5)  # face_detector_graph.cc
FACE_NEXT_FRAME = dict(scale=1.5, square_long=True)  # face_landmarks_detector_graph.cc


def face_rect_from_landmarks(landmarks_px: np.ndarray) -> Roi:
    """Face landmarks (pixels) -> axis-aligned bounds, rotation from landmark 33 to 263 (target 0)."""
    pts = np.asarray(landmarks_px, np.float64)[:, :2]
    lo, hi = pts.min(0), pts.max(0)
    box = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])
    return rect_from_detection(box, pts, 33, 263, 0.0)


def crop_matrix(roi: Roi, out_w: int, out_h: int) -> np.ndarray:
    """2x3 affine matrix frame pixels -> crop pixels, from cv::boxPoints as MediaPipe's CPU converter builds it."""
    import cv2

    src = cv2.boxPoints(((roi.cx, roi.cy), (roi.width, roi.height), math.degrees(roi.rotation)))
    dst = np.array([[0.0, out_h], [0.0, 0.0], [out_w, 0.0]], np.float32)
    return cv2.getAffineTransform(src[:3].astype(np.float32), dst)


def crop(image: np.ndarray, roi: Roi, out_w: int, out_h: int, border_zero: bool = False) -> np.ndarray:
    """The rotated rect resampled (bilinear) into an [out_h, out_w, C] image; outside: replicate or zero."""
    import cv2

    border = cv2.BORDER_CONSTANT if border_zero else cv2.BORDER_REPLICATE
    return cv2.warpAffine(
        image, crop_matrix(roi, out_w, out_h), (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0
    )


def letterbox_roi(width: int, height: int) -> Roi:
    """The whole frame padded to a square (keep_aspect_ratio + BORDER_ZERO, how the detectors see it)."""
    side = float(max(width, height))
    return Roi(width / 2.0, height / 2.0, side, side, 0.0)


def project_points(points_norm: np.ndarray, roi: Roi) -> np.ndarray:
    """Crop-normalised x, y ([N, 2] in [0, 1]) -> frame pixels, through the rect's rotation."""
    x = points_norm[:, 0] - 0.5
    y = points_norm[:, 1] - 0.5
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    px = (c * x - s * y) * roi.width + roi.cx
    py = (s * x + c * y) * roi.height + roi.cy
    return np.stack([px, py], axis=1)


def project_landmarks(landmarks_norm: np.ndarray, roi: Roi, width: int, height: int, z_by_width: bool) -> np.ndarray:
    """[N, 3] crop-normalised landmarks -> [N, 3] frame-normalised (x / W, y / H, z scaled as x).

    z_by_width: MediaPipe's hand projection scales z by the rect width (normalised); the face
    projection (with image dimensions) by the length of the projected unit x vector. For a
    rotation of 0 both are width / W.
    """
    px = project_points(landmarks_norm[:, :2], roi)
    out = np.empty((landmarks_norm.shape[0], 3), np.float32)
    out[:, 0] = px[:, 0] / width
    out[:, 1] = px[:, 1] / height
    if z_by_width:
        z_scale = roi.width / width
    else:
        z_scale = math.hypot(roi.width * math.cos(roi.rotation) / width, roi.width * math.sin(roi.rotation) / height)
    out[:, 2] = landmarks_norm[:, 2] * z_scale
    return out


def unproject_points(points_px: np.ndarray, roi: Roi) -> np.ndarray:
    """Inverse of `project_points`: frame pixels -> crop-normalised (the round-trip tests use it)."""
    dx = points_px[:, 0] - roi.cx
    dy = points_px[:, 1] - roi.cy
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    x = (c * dx + s * dy) / roi.width + 0.5
    y = (-s * dx + c * dy) / roi.height + 0.5
    return np.stack([x, y], axis=1)
