"""The `onnx` landmark stage and the backend choice (`[landmarks] backend` in the edge config).

`OnnxLandmarkStage` is `edge.stages.MediaPipeStage` with the ONNX trackers in place of
MediaPipe's: features, neutral calibration and hand slots are literally the same code.
`build_landmark_stage` picks the backend; asked for `onnx` without converted models (a bundle
built without them, no `onnx_dir`, no conversion in the asset cache), it falls back to MediaPipe
with one logged line, so an old bundle keeps working.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from edge.landmarks import FACE_MODEL_KEY, LandmarkerConfig
from edge.onnx_landmarks.trackers import OnnxFaceTracker, OnnxHandTracker, OnnxOptions
from edge.stages import MediaPipeStage
from latentcast.errors import UserError
from latentcast.landmark_models import GEOMETRY_FILE, LANDMARK_MODELS

MODEL_NAMES = tuple(m.name for m in LANDMARK_MODELS)

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
    geometry = sorted(root.rglob(GEOMETRY_FILE)) or sorted(root.rglob(Path(FACE_MODEL_KEY).name))
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

    def idle(self) -> None:
        """The loop has published its frame: the background detectors may start (tracker.py)."""
        for tracker in (self.face, self.hands):
            if tracker is not None:
                tracker.idle()


def cached_landmark_onnx(landmarks: LandmarkerConfig) -> dict[str, Path] | None:
    """Models converted earlier into the asset cache (`export.landmark_models.ensure_landmark_onnx`) from the
    very .task files this edge would load (their sha256 is in the folder's landmark_models.json), or None."""
    import json

    from edge.landmarks import HAND_MODEL_KEY, _model_path
    from latentcast.assets import cache_dir, sha256_of

    folders = sorted((cache_dir() / "landmark_onnx").glob("*/landmark_models.json"))
    if not folders:
        return None
    want = {
        "face": sha256_of(Path(_model_path(landmarks.face_model, FACE_MODEL_KEY))),
        "hand": sha256_of(Path(_model_path(landmarks.hand_model, HAND_MODEL_KEY))),
    }
    best = None
    for report_path in folders:
        try:
            report = json.loads(report_path.read_text())
            tasks = {kind: entry["sha256"] for kind, entry in report["tasks"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a broken cache entry is not ours to fix; the exporter rewrites it
        if tasks == want and (best is None or report.get("revision", 0) > best[0]):
            best = (report.get("revision", 0), report_path.parent)
    return find_landmark_onnx(best[1]) if best else None


def bundle_landmark_onnx(bundle, int8: bool = False) -> dict[str, Path] | None:
    """The converted models a verified bundle lists in its manifest (`latentcast.bundle.Bundle`), or None."""
    if not bundle.has_landmark_onnx:
        return None
    files = {name: bundle.landmark_onnx(name, int8) for name in MODEL_NAMES}
    files["geometry"] = bundle.landmark_geometry()
    return files


def landmark_onnx_for(landmarks: LandmarkerConfig, bundle=None) -> dict[str, Path] | None:
    """The converted models the onnx backend should use: `onnx_dir` if set (must be complete), else the
    bundle's (a `latentcast.bundle.Bundle`), else (no bundle) a conversion in the asset cache of the same
    .task files."""
    if landmarks.onnx_dir:
        found = find_landmark_onnx(landmarks.onnx_dir, landmarks.onnx_int8)
        if found is None:
            raise UserError(
                f"landmarks.onnx_dir {landmarks.onnx_dir} does not hold the five converted landmark models: "
                f"convert them with `python -m export.landmark_models convert --out {landmarks.onnx_dir}`"
            )
        return found
    if bundle is not None:
        return bundle_landmark_onnx(bundle, landmarks.onnx_int8)
    return cached_landmark_onnx(landmarks)


def build_landmark_stage(
    face: bool = True,
    hands: bool = True,
    landmarks: LandmarkerConfig | None = None,
    face_neutral: str | None = None,
    bundle=None,
    providers: list[str] | None = None,
    threads: int = 1,
    **landmark_overrides,
) -> MediaPipeStage:
    """The stage `landmarks.backend` names; `onnx` without converted models falls back to MediaPipe (one log line)."""
    cfg = dataclasses.replace(landmarks or LandmarkerConfig(), **landmark_overrides)
    if cfg.backend not in BACKENDS:
        raise UserError(f'config: landmarks.backend must be "mediapipe" or "onnx", got "{cfg.backend}"')
    models = landmark_onnx_for(cfg, bundle) if cfg.backend == "onnx" else None
    if cfg.backend == "onnx" and models is None:
        log.warning(
            "landmarks.backend is onnx but no converted landmark models were found (bundle without them, no "
            "landmarks.onnx_dir): using mediapipe; rebuild the bundle with them or set landmarks.onnx_dir"
        )
    if models is None:
        return MediaPipeStage(face, hands, cfg, face_neutral)
    options = OnnxOptions(models, providers or None, threads, cfg.detect_interval_s)
    return OnnxLandmarkStage(options, face, hands, cfg, face_neutral)
