"""`OnnxHandTracker` and `OnnxFaceTracker`: the same calls and observations as edge.landmarks' trackers.

Each returns `edge.landmarks.HandObservation` / `FaceObservation`, so features, encoders, the
protocol and the renderer cannot tell the backends apart. Frames go through
`edge.landmarks.prepare_frame` exactly as for MediaPipe (colour order, downscaling).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.landmarks import FaceObservation, HandObservation, LandmarkerConfig, prepare_frame
from edge.onnx_landmarks.face import Blendshapes, FaceDetector, FaceLandmarkModel, LandmarkSmoother
from edge.onnx_landmarks.geometry import FaceGeometry, load_canonical_face
from edge.onnx_landmarks.hands import HandLandmarkModel, PalmDetector, duplicate_hands
from edge.onnx_landmarks.models import open_model
from edge.onnx_landmarks.tracker import RoiTracker
from latentcast.errors import UserError
from latentcast.landmark_models import LANDMARK_MODEL_BY_NAME


@dataclass
class OnnxOptions:
    """What the ONNX backend adds to `LandmarkerConfig`."""

    models: dict[str, Path]  # model name -> .onnx (plus "geometry": the canonical-face .binarypb or .task)
    providers: list[str] | None = None  # onnxruntime providers, e.g. ["tensorrt", "cuda", "cpu"]; None: all here
    threads: int = 1  # intra-op threads per session: face and hands run side by side on a 2-core device
    detect_interval_s: float = 0.1  # background detection at most this often (10 Hz)

    def path(self, name: str) -> Path:
        if name not in self.models:
            raise UserError(
                f"the onnx landmark backend needs {name}.onnx: convert with `python -m export.landmark_models`"
            )
        return Path(self.models[name])

    def open(self, name: str):
        """A runner for model `name` with these threads and providers; a batch axis where the table says
        (`latentcast.landmark_models`: both hands in one call)."""
        dynamic = LANDMARK_MODEL_BY_NAME[name].dynamic_batch
        return open_model(self.path(name), self.threads, self.providers, dynamic_batch=dynamic)


class _Base:
    tracker: RoiTracker  # which ROIs the landmark model runs on; set by each tracker

    def __init__(self, config: LandmarkerConfig | None) -> None:
        self.config = config or LandmarkerConfig()
        self._lock = threading.Lock()
        self._last_ms = -1

    def _prepare(self, frame: np.ndarray, timestamp_ms: int | None) -> tuple[np.ndarray, tuple[int, int], int]:
        rgb = prepare_frame(frame, self.config.color_order, self.config.max_input_side)
        size = (int(np.shape(frame)[1]), int(np.shape(frame)[0]))
        if timestamp_ms is None:
            timestamp_ms = time.monotonic_ns() // 1_000_000
        timestamp_ms = max(int(timestamp_ms), self._last_ms + 1)  # strictly increasing, as MediaPipe's trackers
        self._last_ms = timestamp_ms
        return rgb, size, timestamp_ms

    @property
    def video(self) -> bool:
        return self.config.mode == "video"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def idle(self) -> None:
        """The loop has published its frame: background detection may use the CPU now."""
        self.tracker.idle()

    def close(self) -> None:
        self.tracker.close()


class OnnxHandTracker(_Base):
    """Palm detector + batched hand landmark model, with background detection (see tracker.py)."""

    def __init__(self, config: LandmarkerConfig | None, options: OnnxOptions) -> None:
        super().__init__(config)
        cfg = self.config
        self.palm = PalmDetector(options.open("hand_detector"), cfg.min_detection_confidence)
        self.landmarks = HandLandmarkModel(options.open("hand_landmarks_detector"))
        self.tracker = RoiTracker(
            self.palm, cfg.max_hands, cfg.min_tracking_confidence, options.detect_interval_s, name="hand"
        )

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> tuple[HandObservation, ...]:
        rgb, size, _ = self._prepare(frame, timestamp_ms)
        height, width = rgb.shape[:2]
        with self._lock:
            rois = self.tracker.rois(rgb, self.video)
            results = [r for r in self.landmarks(rgb, rois) if r.presence >= self.config.min_presence_confidence]
            dropped = duplicate_hands([r.landmarks for r in results], width, height)
            results = [r for i, r in enumerate(results) if i not in dropped]
            self.tracker.update([r.next_roi for r in results])
        found = [HandObservation(True, r.landmarks, r.world, r.handedness, r.handedness_score, size) for r in results]
        found.sort(key=lambda hand: (hand.handedness != "Left", -hand.score))
        found = found[: self.config.max_hands]
        return tuple(found) + tuple(HandObservation.absent(size) for _ in range(self.config.max_hands - len(found)))


class OnnxFaceTracker(_Base):
    """Face detector + face landmark model + blendshapes + geometry; detection only while no face is tracked."""

    def __init__(self, config: LandmarkerConfig | None, options: OnnxOptions) -> None:
        super().__init__(config)
        cfg = self.config
        self.detector = FaceDetector(options.open("face_detector"), cfg.min_detection_confidence)
        self.landmarks = FaceLandmarkModel(options.open("face_landmarks_detector"))
        self.blendshapes = Blendshapes(options.open("face_blendshapes"))
        self.geometry = FaceGeometry(*load_canonical_face(options.path("geometry")))
        self.tracker = RoiTracker(
            self.detector, cfg.max_faces, cfg.min_tracking_confidence, options.detect_interval_s, name="face"
        )
        self.smoother = LandmarkSmoother()  # MediaPipe smooths face landmarks in VIDEO mode (one face)

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> FaceObservation:
        rgb, size, ts = self._prepare(frame, timestamp_ms)
        height, width = rgb.shape[:2]
        with self._lock:
            rois = self.tracker.rois(rgb, self.video)
            results = [self.landmarks(rgb, roi) for roi in rois]
            results = [r for r in results if r.presence >= self.config.min_presence_confidence]
            self.tracker.update([r.next_roi for r in results])
            if not results:
                self.smoother.reset()
                return FaceObservation.absent(size)
            landmarks = results[0].landmarks
            if self.video and self.config.max_faces == 1:
                landmarks = self.smoother(landmarks, width, height, ts * 1_000_000)
        blendshapes = self.blendshapes(landmarks, width, height)
        transform = self.geometry(landmarks, width, height)
        return FaceObservation(True, landmarks, blendshapes, transform, size)
