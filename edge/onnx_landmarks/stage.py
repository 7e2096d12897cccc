"""The `onnx` landmark stage and the backend choice (`[landmarks] backend` in the edge config).

`OnnxLandmarkStage` is `edge.stages.MediaPipeStage` with the ONNX trackers in place of
MediaPipe's: features, neutral calibration and hand slots are literally the same code.
`build_landmark_stage` picks the backend; asked for `onnx` without converted models (a bundle
built without them, no `onnx_dir`), it falls back to MediaPipe with one logged line, so an old
bundle keeps working.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from edge.landmarks import FACE_MODEL_KEY, LandmarkerConfig
from edge.onnx_landmarks.geometry import GEOMETRY_FILE
from edge.onnx_landmarks.models import MODEL_NAMES
from edge.onnx_landmarks.trackers import OnnxFaceTracker, OnnxHandTracker, OnnxOptions
from edge.stages import MediaPipeStage
from latentcast.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("mediapipe", "onnx")


def find_landmark_onnx(folder: str | Path, int8: bool = False) -> dict[str, Path] | None:
    """{model name: .onnx, "geometry": .binarypb or .task} found under `folder`, or None when any is missing.

    Looks anywhere below `folder` (a bundle's landmarks/ or a conversion cache folder), so the
    layout of the exporter's output can change without touching the edge. int8: prefer
    `<name>.int8.onnx` where present.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    files: dict[str, Path] = {}
    for name in MODEL_NAMES:
        fp32 = sorted(root.rglob(f"{name}.onnx"))
        q = sorted(root.rglob(f"{name}.int8.onnx"))
        chosen = (q or fp32) if int8 else fp32
        if not chosen:
            return None
        files[name] = chosen[0]
    geometry = sorted(root.rglob(GEOMETRY_FILE)) or sorted(root.rglob("face_landmarker.task"))
    if geometry:
        files["geometry"] = geometry[0]
    else:
        from latentcast.assets import resolve

        files["geometry"] = resolve(FACE_MODEL_KEY)
    return files


class OnnxLandmarkStage(MediaPipeStage):
    """Face and hands through the converted models; everything after the observations is MediaPipeStage's."""

    def __init__(
        self,
        options: OnnxOptions,
        face: bool = True,
        hands: bool = True,
        landmarks: LandmarkerConfig | None = None,
        face_neutral: str | None = None,
        **landmark_overrides,
    ) -> None:
        super().__init__(face=False, hands=False, landmarks=landmarks, face_neutral=face_neutral)
        self.face_enabled, self.hands_enabled = face, hands
        cfg = dataclasses.replace(landmarks or LandmarkerConfig(), **landmark_overrides)
        self.face = OnnxFaceTracker(cfg, options) if face else None
        self.hands = OnnxHandTracker(cfg, options) if hands else None
        used = self.hands or self.face
        if used is not None:
            session = used.landmarks.session
            log.info("landmarks: onnx backend on %s (%s)", session.provider, Path(session.path).parent)


def build_landmark_stage(
    backend: str,
    onnx_models: dict[str, Path] | None,
    face: bool = True,
    hands: bool = True,
    landmarks: LandmarkerConfig | None = None,
    face_neutral: str | None = None,
    providers: list[str] | None = None,
    threads: int = 1,
    detect_interval_s: float = 0.1,
    **landmark_overrides,
) -> MediaPipeStage:
    """The landmark stage for `backend`; `onnx` without models falls back to MediaPipe (one logged line)."""
    if backend not in BACKENDS:
        raise UserError(f'config: landmarks.backend must be "mediapipe" or "onnx", got "{backend}"')
    if backend == "onnx" and onnx_models is None:
        log.warning(
            "landmarks.backend is onnx but no converted landmark models were found (bundle without them, no "
            "landmarks.onnx_dir): using mediapipe; rebuild the bundle to get them"
        )
        backend = "mediapipe"
    if backend == "mediapipe":
        return MediaPipeStage(face, hands, landmarks, face_neutral, **landmark_overrides)
    options = OnnxOptions(onnx_models, providers or None, threads, detect_interval_s)
    return OnnxLandmarkStage(options, face, hands, landmarks, face_neutral, **landmark_overrides)
