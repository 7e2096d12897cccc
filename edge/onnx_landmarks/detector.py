"""The SSD detector step both graphs share: whole frame -> detections in frame pixels, best first.

MediaPipe's palm and face detectors run the same way (letterbox the frame to the model's square
input, decode the boxes against the anchors, weighted NMS, map back through the letterbox); only
the anchor layout, the thresholds and the rect the detection becomes differ, and those stay in
`hands.py` and `face.py`.
"""

from __future__ import annotations

import numpy as np

from edge.onnx_landmarks.anchors import AnchorOptions, DecodeOptions, decode, generate_anchors, weighted_nms
from edge.onnx_landmarks.models import ModelSession, input_size, input_tensor
from edge.onnx_landmarks.roi import crop, letterbox_roi, project_points


class SsdDetector:
    """One converted SSD detector (`name` in latentcast.landmark_models) with its anchors."""

    def __init__(
        self, session: ModelSession, name: str, anchors: AnchorOptions, options: DecodeOptions, min_score: float
    ) -> None:
        self.session, self.name, self.options, self.min_score = session, name, options, min_score
        self.size = input_size(name)
        if self.size != anchors.input_size:
            raise AssertionError(f"{name} input does not match its anchor layout")
        self.anchors = generate_anchors(anchors)
        if self.anchors.shape[0] != options.num_boxes:
            raise AssertionError(f"{name} anchors do not match the model's box count")

    def detect(self, rgb: np.ndarray, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Up to `limit` detections as (box [x, y, w, h] in frame pixels, keypoints [K, 2] in pixels)."""
        height, width = rgb.shape[:2]
        box = letterbox_roi(width, height)
        tensor = input_tensor(crop(rgb, box, self.size, self.size, border_zero=True), self.name)
        raw_boxes, raw_scores = _by_size(self.session.run(tensor[None]))
        found = weighted_nms(
            decode(raw_boxes[0], raw_scores[0], self.anchors, self.options, self.min_score),
            self.options.min_suppression_threshold,
        )
        detections = []
        for det in found[:limit]:
            corner = project_points(det.box[None, :2], box)[0]
            box_px = np.array([corner[0], corner[1], det.box[2] * box.width, det.box[3] * box.height])
            detections.append((box_px, project_points(det.keypoints, box)))
        return detections


def _by_size(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(regressors [1, N, 4 + 2K], classificators [1, N, 1]) whatever order the converter wrote them in."""
    return tuple(sorted(outputs, key=lambda o: -o.shape[-1]))  # type: ignore[return-value]
