"""The real stages behind the loop's interfaces: MediaPipe trackers + features, bundle encoders.

Kept apart from `edge/loop.py` so the loop stays readable and the heavy imports (mediapipe,
onnxruntime, tensorrt) happen only when a real stage is built.

Encoders: onnxruntime via `latentcast.inference` (providers TensorRT, CUDA, CPU as available);
where `tensorrt` imports and a prebuilt engine (`encoder.int8.engine` / `encoder.engine`) sits next
to the ONNX file, the native TensorRT runner is used instead (Jetson only; not available here).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from edge.labels import PartJudge
from edge.landmarks import FaceTracker, HandTracker, LandmarkerConfig
from edge.loop import FacePart, HandPart
from latentcast import open_set
from latentcast.bundle import PART_MODELS
from latentcast.errors import UserError
from latentcast.features import FEATURE_SPEC_VERSION, face_features, hand_features, head_pose, wrist_position
from latentcast.gaze import eye_gaze
from latentcast.protocol import Handedness

log = logging.getLogger(__name__)

_HANDEDNESS = {"Left": Handedness.LEFT, "Right": Handedness.RIGHT}


class MediaPipeStage:
    """FaceTracker and HandTracker (each its own native worker, so they run concurrently) + features."""

    def __init__(
        self,
        face: bool = True,
        hands: bool = True,
        landmarks: LandmarkerConfig | None = None,
        face_neutral: str | None = None,
        **landmark_overrides,
    ) -> None:
        """`landmarks` is the `[landmarks]` config; keywords (mode, max_hands, face_model, ...) replace its fields."""
        self.face_enabled, self.hands_enabled = face, hands
        self.neutral = None
        if face_neutral:
            from latentcast.neutral import load_neutral

            self.neutral = load_neutral(face_neutral, FEATURE_SPEC_VERSION)
        cfg = dataclasses.replace(landmarks or LandmarkerConfig(), **landmark_overrides)
        self.face = FaceTracker(cfg) if face else None
        try:
            self.hands = HandTracker(cfg) if hands else None
        except BaseException:
            # A corrupt hand .task must not leave the face tracker's native worker to be torn down
            # at interpreter exit (which prints tracebacks after the one-line error).
            if self.face is not None:
                self.face.close()
            raise

    def detect_face(self, bgr: np.ndarray, timestamp_ms: int):
        return self.face.detect(bgr, timestamp_ms)

    def detect_hands(self, bgr: np.ndarray, timestamp_ms: int):
        return self.hands.detect(bgr, timestamp_ms)

    def face_part(self, raw, image_size: tuple[int, int]) -> FacePart | None:
        if not raw.present:
            return None
        features = face_features(raw.landmarks, raw.blendshapes, raw.image_size)
        if self.neutral is not None:  # the user's resting face maps to the model's neutral face
            features = self.neutral.apply(features)
        gaze = eye_gaze(raw.landmarks, raw.image_size)
        return FacePart(features, head_pose(raw.transform), raw.landmarks[:, :2], gaze)

    def hand_parts(self, raw, image_size: tuple[int, int]) -> list[HandPart]:
        parts = []
        for hand in raw:
            if not hand.present:
                continue
            features = hand_features(hand.landmarks, hand.handedness, hand.image_size)
            wrist = np.zeros(3, np.float32)
            wrist[:2] = wrist_position(hand.landmarks)
            handedness = _HANDEDNESS.get(hand.handedness, Handedness.UNKNOWN)
            parts.append(HandPart(features, handedness, wrist, hand.score, hand.landmarks[:, :2]))
        return parts

    def idle(self) -> None:
        """The loop has published its frame. MediaPipe detects inline: nothing waits for this."""

    def close(self) -> None:
        for tracker in (self.face, self.hands):
            if tracker is not None:
                tracker.close()


class TensorRTEncoder:
    """Native TensorRT engine runner (Jetson): same call as `EncoderSession`. Needs tensorrt + a CUDA array lib."""

    def __init__(self, engine_path: Path) -> None:
        import tensorrt as trt  # only on the device (JetPack)

        try:
            import cupy as cp  # device buffers; JetPack users install cupy-cuda12x
        except ImportError as exc:
            raise ImportError("the native TensorRT backend needs cupy for device buffers") from exc
        self._cp = cp
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.stream = cp.cuda.Stream(non_blocking=True)

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cp = self._cp
        x = cp.asarray(np.ascontiguousarray(np.atleast_2d(features), dtype=np.float32))
        self.context.set_input_shape("features", x.shape)
        outputs = {}
        for name in ("y", "z"):
            outputs[name] = cp.empty(tuple(self.context.get_tensor_shape(name)), dtype=cp.float32)
            self.context.set_tensor_address(name, outputs[name].data.ptr)
        self.context.set_tensor_address("features", x.data.ptr)
        self.context.execute_async_v3(self.stream.ptr)
        self.stream.synchronize()
        return cp.asnumpy(outputs["y"]), cp.asnumpy(outputs["z"])


def _engine_verified(engine: Path, onnx_path: Path) -> bool:
    """Whether the engine matches the device-local manifest `export.tensorrt` wrote when it built it.

    Engines are made on the device, so no bundle signature covers them; one that fails is never loaded
    (the verified ONNX runs instead), loudly.
    """
    from latentcast.signing import SignatureError, verify_engine

    try:
        verify_engine(engine, onnx_path)
    except SignatureError as exc:
        log.warning("NOT loading TensorRT engine: %s; using the verified ONNX with onnxruntime instead", exc)
        return False
    return True


def _encoder_runner(onnx_path: Path, providers: list[str] | None):
    """Native TensorRT when it imports and an engine was built beside the ONNX file, else onnxruntime."""
    engine = onnx_path.with_suffix(".engine")
    if engine.is_file() and _engine_verified(engine, onnx_path):
        try:
            runner = TensorRTEncoder(engine)
            log.info("encoder %s: native TensorRT engine %s", onnx_path.parent.name, engine.name)
            return runner
        except ImportError as exc:
            log.info("native TensorRT unavailable (%s); using onnxruntime", exc)
    from latentcast.inference import EncoderSession

    session = EncoderSession(onnx_path, threads=1, providers=providers or None)
    log.info("encoder %s: onnxruntime %s on %s", onnx_path.parent.name, onnx_path.name, session.providers[0])
    return session


def wants_int8(precision: str, providers: list[str] | None) -> bool:
    """Pick the INT8 encoder only where it pays off.

    TensorRT runs the QDQ graph in INT8; onnxruntime's CPU provider runs these small MLPs slower in
    INT8 than in FP32 (docs/RESULTS.md), so "auto" means INT8 exactly when TensorRT will run it.
    """
    if precision != "auto":
        return precision == "int8"
    import importlib.util

    import onnxruntime

    allowed = [p.lower() for p in providers] if providers else ["tensorrt"]
    tensorrt_ep = "TensorrtExecutionProvider" in onnxruntime.get_available_providers() and any(
        "tensorrt" in p for p in allowed
    )
    return tensorrt_ep or importlib.util.find_spec("tensorrt") is not None


class BundleEncoders:
    """The gesture and expression encoders of a verified bundle; `model_id` = sha256(manifest)[:8]."""

    def __init__(
        self,
        bundle_path: str | Path,
        precision: str = "auto",
        providers: list[str] | None = None,
        parts=("face", "hands"),
    ) -> None:
        from latentcast.bundle import open_bundle

        bundle = open_bundle(bundle_path)
        bundle.check_feature_spec()
        self.bundle = bundle
        self.model_id = bundle.model_id
        self.face_encoder = self.hand_encoder = None
        self.classes: dict[str, list[str]] = {}
        self.judges: dict[str, PartJudge] = {}  # part -> open-set rule + decoder (edge/labels.py)
        int8 = wants_int8(precision, providers)
        for part in parts:
            name = bundle.model_for(part)
            if name is None:
                log.warning("bundle has no %s model: %s latents will be empty", PART_MODELS[part], part)
                continue
            path = bundle.encoder(name, int8=int8)
            if int8 and not path.is_file():
                path = bundle.encoder(name, int8=False)
            runner = _encoder_runner(path, providers)
            self.classes[name] = list(bundle.model_card(name).get("classes", []))
            judge = _judge(bundle, name, providers)
            if judge is not None:
                self.judges[part] = judge
            if part == "face":
                self.face_encoder = runner
            else:
                self.hand_encoder = runner

    def landmark_model(self, kind: str) -> str | None:
        path = self.bundle.landmark_model(kind)
        return str(path) if path.is_file() else None

    def encode_face(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _run_or_empty(self.face_encoder, features)

    def encode_hand(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """features [N, 42] (both hands in one call) -> y [N, K], z [N, C]."""
        return _run_or_empty(self.hand_encoder, features)


def _judge(bundle, name: str, providers: list[str] | None) -> PartJudge | None:
    """The model card's open-set rule with the bundle's decoder, or None for a card without a rule."""
    from latentcast.inference import DecoderSession

    try:
        rule = open_set.rule_from_block(bundle.model_card(name).get("open_set"), need_recon=True)
    except ValueError as exc:
        raise UserError(f"{name} model card: {exc}: retrain the model or rebuild the bundle") from None
    if rule is None:
        log.warning("%s model card has no open-set rule: labels are not decided on the edge", name)
        return None
    return PartJudge(rule, DecoderSession(bundle.decoder(name), threads=1, providers=providers or None))


def _run_or_empty(runner, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A part the bundle has no model for gets empty latents (K = C = 0), one row per input row."""
    if runner is None:
        rows = np.atleast_2d(features).shape[0]
        return np.zeros((rows, 0), np.float32), np.zeros((rows, 0), np.float32)
    return runner(features)
