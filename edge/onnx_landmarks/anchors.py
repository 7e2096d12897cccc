"""SSD anchors, box decoding and weighted NMS: MediaPipe's detector post-processing in numpy.

The constants are MediaPipe's own (google-ai-edge/mediapipe): `hand_detector_graph.cc`
(ConfigureSsdAnchorsCalculator, ConfigureTensorsToDetectionsCalculator, NMS threshold 0.3) and
`face_detector_graph.cc` (short-range defaults; NMS threshold from the options proto, 0.5).
`SsdAnchorsCalculator::GenerateAnchors`, `TensorsToDetectionsCalculator` and
`NonMaxSuppressionCalculator` (WEIGHTED, IoU) are reproduced exactly, so a converted detector
gives the detections MediaPipe's graph would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from latentcast.landmark_models import LANDMARK_MODEL_BY_NAME


@dataclass(frozen=True)
class AnchorOptions:
    """`SsdAnchorsCalculatorOptions` (only the fields these detectors use)."""

    input_size: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class DecodeOptions:
    """`TensorsToDetectionsCalculatorOptions` for a single-class, reverse-order (x, y) SSD head."""

    num_boxes: int
    num_keypoints: int
    scale: float  # x/y/w/h scale: the input size in pixels
    score_clipping_thresh: float = 100.0
    min_suppression_threshold: float = 0.3


# palm_detection (hand_detector.tflite): 192x192 (the shared table), 2016 boxes, 7 keypoints.
_PALM_SIDE = LANDMARK_MODEL_BY_NAME["hand_detector"].side
PALM_ANCHORS = AnchorOptions(input_size=_PALM_SIDE, strides=(8, 16, 16, 16))
PALM_DECODE = DecodeOptions(num_boxes=2016, num_keypoints=7, scale=float(_PALM_SIDE), min_suppression_threshold=0.3)
# face_detection_short_range (face_detector.tflite): 128x128 (the shared table), 896 boxes, 6 keypoints.
_FACE_SIDE = LANDMARK_MODEL_BY_NAME["face_detector"].side
FACE_ANCHORS = AnchorOptions(input_size=_FACE_SIDE, strides=(8, 16, 16, 16))
FACE_DECODE = DecodeOptions(num_boxes=896, num_keypoints=6, scale=float(_FACE_SIDE), min_suppression_threshold=0.5)


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1.0)


def generate_anchors(options: AnchorOptions) -> np.ndarray:
    """[num_anchors, 4] float32 (x_center, y_center, w, h), normalised, in MediaPipe's order."""
    anchors: list[tuple[float, float, float, float]] = []
    strides = options.strides
    layer = 0
    while layer < len(strides):
        sizes: list[tuple[float, float]] = []  # (w, h) per anchor at a location
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _scale(options.min_scale, options.max_scale, last, len(strides))
            pairs = [(ratio, scale) for ratio in options.aspect_ratios]
            if options.interpolated_scale_aspect_ratio > 0.0:
                nxt = (
                    1.0
                    if last == len(strides) - 1
                    else _scale(options.min_scale, options.max_scale, last + 1, len(strides))
                )
                pairs.append((options.interpolated_scale_aspect_ratio, math.sqrt(scale * nxt)))
            sizes.extend((s * math.sqrt(r), s / math.sqrt(r)) for r, s in pairs)
            last += 1
        grid = math.ceil(options.input_size / strides[layer])
        for y in range(grid):
            for x in range(grid):
                for w, h in sizes:
                    cx = (x + options.anchor_offset) / grid
                    cy = (y + options.anchor_offset) / grid
                    anchors.append((cx, cy, 1.0, 1.0) if options.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(anchors, np.float32)


@dataclass
class Detection:
    """One detection in normalised coordinates of the detector's input tensor (or, after projection, the image)."""

    score: float
    box: np.ndarray  # [4]: xmin, ymin, width, height
    keypoints: np.ndarray  # [K, 2]: x, y


def decode(
    raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, options: DecodeOptions, min_score: float
) -> list[Detection]:
    """Model outputs ([N, 4 + 2K], [N] or [N, 1]) -> detections above `min_score` (sigmoid of clipped logits)."""
    raw_boxes = np.asarray(raw_boxes, np.float32).reshape(options.num_boxes, -1)
    logits = np.asarray(raw_scores, np.float64).reshape(options.num_boxes)
    thresh = options.score_clipping_thresh
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -thresh, thresh)))
    keep = np.nonzero(scores >= min_score)[0]
    if keep.size == 0:
        return []
    raw, anc, s = raw_boxes[keep], anchors[keep], options.scale
    cx = raw[:, 0] / s * anc[:, 2] + anc[:, 0]
    cy = raw[:, 1] / s * anc[:, 3] + anc[:, 1]
    w = raw[:, 2] / s * anc[:, 2]
    h = raw[:, 3] / s * anc[:, 3]
    k = options.num_keypoints
    kx = raw[:, 4 : 4 + 2 * k : 2] / s * anc[:, 2:3] + anc[:, 0:1]
    ky = raw[:, 5 : 5 + 2 * k : 2] / s * anc[:, 3:4] + anc[:, 1:2]
    out = []
    for i in range(keep.size):
        box = np.array([cx[i] - w[i] / 2, cy[i] - h[i] / 2, w[i], h[i]], np.float32)
        out.append(Detection(float(scores[keep[i]]), box, np.stack([kx[i], ky[i]], axis=1)))
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (xmin, ymin, w, h) boxes; 0 when they do not intersect."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = (x1 - x0) * (y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def weighted_nms(detections: list[Detection], threshold: float, max_detections: int = -1) -> list[Detection]:
    """MediaPipe's WEIGHTED non-max suppression: overlapping boxes (IoU > threshold) are averaged by score.

    The kept detection carries the best score of its cluster and the score-weighted box corners and keypoints.
    """
    remaining = sorted(detections, key=lambda d: -d.score)
    out: list[Detection] = []
    while remaining and (max_detections < 0 or len(out) < max_detections):
        best = remaining[0]
        overlaps = [iou(d.box, best.box) > threshold for d in remaining[1:]]
        cluster = [best] + [
            d for d, o in zip(remaining[1:], overlaps, strict=True) if o
        ]  # best always (even a degenerate box)
        rest = [d for d, o in zip(remaining[1:], overlaps, strict=True) if not o]
        weights = np.array([d.score for d in cluster], np.float32)
        total = weights.sum()
        corners = np.array([[d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]] for d in cluster])
        x0, y0, x1, y1 = (corners * weights[:, None]).sum(0) / total
        keypoints = (np.stack([d.keypoints for d in cluster]) * weights[:, None, None]).sum(0) / total
        out.append(
            Detection(best.score, np.array([x0, y0, x1 - x0, y1 - y0], np.float32), keypoints.astype(np.float32))
        )
        remaining = rest
    return out
