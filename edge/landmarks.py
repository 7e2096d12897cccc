"""The landmark stage: MediaPipe Tasks FaceLandmarker / HandLandmarker behind two small trackers.

Everything after this module is MediaPipe-free: a tracker returns a small frozen dataclass of
numpy arrays (`FaceObservation`, `HandObservation`), and `latentcast.features` turns those into
encoder input. "Nothing found" is never an exception: it is an observation with present=False
and zero-filled arrays of the usual shapes, so downstream code needs no special case.

    with FaceTracker(LandmarkerConfig(mode="video")) as face, HandTracker(LandmarkerConfig(mode="video")) as hands:
        f = face.detect(frame_bgr, timestamp_ms)        # FaceObservation
        hs = hands.detect(frame_bgr, timestamp_ms)      # tuple of max_hands HandObservation

Why these choices:
- Frames are BGR by default (OpenCV's order and `edge.capture.Frame`'s); set color_order="rgb"
  for RGB input. Grayscale, single-channel, RGBA/BGRA, float images in [0, 1] or [0, 255] and
  16-bit images are converted; anything else is a `UserError` naming the problem.
- Inputs larger than `max_input_side` are downscaled (INTER_AREA) before detection: the
  detectors work on ~200 px crops anyway, and a 12 MP photo otherwise costs seconds. Landmarks
  are normalised, so they stay valid for the original frame, and `image_size` is the original's.
- VIDEO mode (streams) needs strictly increasing millisecond timestamps: a timestamp that does
  not increase is bumped by 1 ms instead of crashing the loop. IMAGE mode is for stills.
- Each tracker owns its own MediaPipe native worker, so a face tracker and a hand tracker can run
  concurrently from two threads (the native calls release the GIL). One tracker is not re-entrant:
  a lock serialises calls to the same tracker.
- Model files come from `latentcast.assets.resolve` (checksum-verified) unless a path is given
  (e.g. from a bundle); a file MediaPipe cannot load is a `UserError` that names it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from latentcast.errors import UserError
from latentcast.features import BLENDSHAPE_COUNT, FACE_LANDMARK_COUNT, HAND_LANDMARK_COUNT

log = logging.getLogger(__name__)

FACE_MODEL_KEY = "models/mediapipe/face_landmarker.task"
HAND_MODEL_KEY = "models/mediapipe/hand_landmarker.task"


@dataclass(frozen=True)
class FaceObservation:
    """One face (or its absence) in one frame.

    present: False when no face was found (then the arrays are zeros of the same shapes).
    landmarks: [478, 3] float32, normalised image coordinates: x, y in [0, 1] of width/height
        (y down), z relative depth in roughly x's scale (smaller = closer to the camera).
    blendshapes: [52] float32 scores in [0, 1], MediaPipe's order (`latentcast.features.BLENDSHAPE_NAMES`).
    transform: [4, 4] float32 facial transformation matrix (canonical face -> camera, cm; identity if absent).
    image_size: (width, height) of the frame the coordinates refer to (the original, before any downscale).
    """

    present: bool
    landmarks: np.ndarray
    blendshapes: np.ndarray
    transform: np.ndarray
    image_size: tuple[int, int]

    @classmethod
    def absent(cls, image_size: tuple[int, int] = (0, 0)) -> FaceObservation:
        return cls(
            present=False,
            landmarks=np.zeros((FACE_LANDMARK_COUNT, 3), np.float32),
            blendshapes=np.zeros(BLENDSHAPE_COUNT, np.float32),
            transform=np.eye(4, dtype=np.float32),
            image_size=image_size,
        )


@dataclass(frozen=True)
class HandObservation:
    """One hand slot (or an empty one) in one frame.

    present: False for an empty slot (arrays are zeros, handedness "" and score 0).
    landmarks: [21, 3] float32, normalised image coordinates like `FaceObservation.landmarks`.
    world_landmarks: [21, 3] float32, metres, origin near the hand's centre (MediaPipe's world output).
    handedness: "Left" or "Right", geometric: the anatomical hand as it appears in the frame given
        (checked on the test photos; a mirrored frame therefore swaps the labels).
    score: handedness confidence in [0, 1].
    image_size: (width, height) of the original frame.
    """

    present: bool
    landmarks: np.ndarray
    world_landmarks: np.ndarray
    handedness: str
    score: float
    image_size: tuple[int, int]

    @classmethod
    def absent(cls, image_size: tuple[int, int] = (0, 0)) -> HandObservation:
        zeros = np.zeros((HAND_LANDMARK_COUNT, 3), np.float32)
        return cls(False, zeros, zeros.copy(), "", 0.0, image_size)


@dataclass
class LandmarkerConfig:
    """Settings shared by both trackers (each tracker reads the fields it needs)."""

    mode: Literal["video", "image"] = "video"  # video: streams, with timestamps; image: independent stills
    color_order: Literal["bgr", "rgb"] = "bgr"  # channel order of 3/4-channel input frames
    max_input_side: int = 1280  # larger frames are downscaled before detection
    face_model: str | None = None  # explicit .task path (e.g. from a bundle); None: the asset resolver
    hand_model: str | None = None
    max_faces: int = 1  # observations report the first face
    max_hands: int = 2
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    backend: str = "onnx"  # "onnx" (edge/onnx_landmarks, docs/LANDMARKS.md) or "mediapipe" (MediaPipe Tasks)
    onnx_dir: str = ""  # onnx backend: folder of converted models; "" = the bundle's landmark models
    onnx_int8: bool = False  # onnx backend: the INT8 QDQ models where the folder has them
    detect_interval_s: float = 0.1  # onnx backend: background detection at most this often while tracking

    def __post_init__(self) -> None:
        if self.mode not in ("video", "image"):
            raise UserError(f"landmarker mode {self.mode!r} is unknown: use 'video' for streams or 'image' for stills")
        if self.color_order not in ("bgr", "rgb"):
            raise UserError(f"color_order {self.color_order!r} is unknown: use 'bgr' (OpenCV) or 'rgb'")
        if self.max_input_side < 64:
            raise UserError(f"max_input_side={self.max_input_side} is too small: use at least 64 (default 1280)")
        if not 1 <= self.max_hands <= 4:
            raise UserError(f"max_hands={self.max_hands} is out of range: use 1 to 4")
        if self.backend not in ("mediapipe", "onnx"):
            raise UserError(f"landmark backend {self.backend!r} is unknown: use 'mediapipe' or 'onnx'")


def prepare_frame(image: np.ndarray, color_order: str = "bgr", max_input_side: int = 1280) -> np.ndarray:
    """Any reasonable image -> contiguous RGB uint8 [H, W, 3], downscaled to at most `max_input_side`.

    Raises UserError for what cannot be an image (None, empty, 1-D, 5 channels, complex, bool...).
    """
    import cv2

    if image is None:
        raise UserError("frame is None: the video source returned no image; check the source URI")
    image = np.asarray(image)
    if image.size == 0:
        raise UserError(f"frame is empty (shape {image.shape}): the source returned no pixels; check the source")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise UserError(f"frame shape {image.shape} is not an image: give HxW (gray), HxWx3 or HxWx4")
    image = _to_uint8(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if color_order == "bgr" else cv2.COLOR_RGBA2RGB)
    elif color_order == "bgr":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = image.shape[:2]
    if max(height, width) > max_input_side:
        factor = max_input_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        finite = image[np.isfinite(image)]
        if finite.size == 0:
            raise UserError("frame has no finite pixel values (all NaN/inf): check the source")
        top = 1.0 if finite.max() <= 1.0 and finite.min() >= 0.0 else 255.0
        return np.clip(np.nan_to_num(image) * (255.0 / top), 0, 255).round().astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer) and image.dtype != np.bool_:
        if image.min() < 0 or image.max() > 255:
            raise UserError(f"frame dtype {image.dtype} has values outside 0..255: give uint8 (or scale it first)")
        return image.astype(np.uint8)
    raise UserError(f"frame dtype {image.dtype} is not an image type: give uint8, uint16 or float in [0, 1]")


def _model_path(explicit: str | None, key: str) -> str:
    if explicit is None:
        from latentcast.assets import resolve

        return str(resolve(key))
    path = Path(explicit).expanduser()
    if not path.is_file():
        raise UserError(f"landmark model {path} does not exist: give the path of a MediaPipe .task file")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a MediaPipe .task bundle (not a zip archive): replace it with {Path(key).name}")
    return str(path)


class _Tracker:
    """Shared plumbing: model loading with clear errors, frame preparation, timestamps, closing."""

    kind = ""

    def __init__(self, config: LandmarkerConfig | None = None) -> None:
        self.config = config or LandmarkerConfig()
        self._lock = threading.Lock()
        self._last_ms = -1
        self._task = None
        path = self._path()
        try:
            import mediapipe  # noqa: F401  (only to turn a missing install into a clear message)
        except ImportError as exc:
            raise UserError(
                f"mediapipe is not installed, so the {self.kind} landmarker cannot run: pip install 'latentcast[edge]'"
            ) from exc
        try:
            self._task = self._create(path)
        except (RuntimeError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"MediaPipe could not load the {self.kind} model {path} ({first}): replace it with a good copy "
                f"(`python -m latentcast.assets fetch models/mediapipe/`)"
            ) from exc
        # Close the native task before interpreter teardown (MediaPipe's own __del__ fails late).
        self._finalizer = weakref.finalize(self, self._task.close)

    def _path(self) -> str:
        raise NotImplementedError

    def _create(self, path: str):
        raise NotImplementedError

    def _running_mode(self):
        from mediapipe.tasks.python import vision

        return vision.RunningMode.VIDEO if self.config.mode == "video" else vision.RunningMode.IMAGE

    def _mp_image(self, frame: np.ndarray):
        import mediapipe as mp

        rgb = prepare_frame(frame, self.config.color_order, self.config.max_input_side)
        return mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb)

    def _run(self, frame: np.ndarray, timestamp_ms: int | None):
        """Prepare the frame and call the task; returns (result, original image_size)."""
        if self._task is None or not self._finalizer.alive:
            raise RuntimeError(f"{type(self).__name__} is closed")
        image = self._mp_image(frame)  # validates first: bad frames are UserErrors with a reason
        size = _image_size(frame)
        with self._lock:
            if self.config.mode == "image":
                return self._task.detect(image), size
            if timestamp_ms is None:
                timestamp_ms = time.monotonic_ns() // 1_000_000
            timestamp_ms = max(int(timestamp_ms), self._last_ms + 1)
            self._last_ms = timestamp_ms
            return self._task.detect_for_video(image, timestamp_ms), size

    def close(self) -> None:
        if self._task is not None:
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _xyz(points) -> np.ndarray:
    """MediaPipe landmark list -> [N, 3] float32."""
    return np.array([(p.x, p.y, p.z) for p in points], np.float32)


def _image_size(frame: np.ndarray) -> tuple[int, int]:
    shape = np.shape(frame)
    if len(shape) < 2 or shape[0] == 0 or shape[1] == 0:
        raise UserError(f"frame is empty (shape {shape}): the source returned no pixels; check the source")
    return int(shape[1]), int(shape[0])


class FaceTracker(_Tracker):
    """MediaPipe FaceLandmarker: 478 landmarks, 52 blendshapes, the facial transformation matrix."""

    kind = "face"

    def _path(self) -> str:
        return _model_path(self.config.face_model, FACE_MODEL_KEY)

    def _create(self, path: str):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=path),
            running_mode=self._running_mode(),
            num_faces=self.config.max_faces,
            min_face_detection_confidence=self.config.min_detection_confidence,
            min_face_presence_confidence=self.config.min_presence_confidence,
            min_tracking_confidence=self.config.min_tracking_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        return vision.FaceLandmarker.create_from_options(options)

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> FaceObservation:
        """The first face in `frame`, or `FaceObservation.absent`. timestamp_ms: video mode (default: now)."""
        result, size = self._run(frame, timestamp_ms)
        if not result.face_landmarks:
            return FaceObservation.absent(size)
        landmarks = _xyz(result.face_landmarks[0])
        blendshapes = np.zeros(BLENDSHAPE_COUNT, np.float32)
        if result.face_blendshapes:
            for category in result.face_blendshapes[0]:
                blendshapes[category.index] = category.score
        transform = np.eye(4, dtype=np.float32)
        if result.facial_transformation_matrixes:
            transform = np.asarray(result.facial_transformation_matrixes[0], np.float32).reshape(4, 4)
        return FaceObservation(True, landmarks, blendshapes, transform, size)


class HandTracker(_Tracker):
    """MediaPipe HandLandmarker: up to `max_hands` hands with 21 landmarks and handedness each."""

    kind = "hand"

    def _path(self) -> str:
        return _model_path(self.config.hand_model, HAND_MODEL_KEY)

    def _create(self, path: str):
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=path),
            running_mode=self._running_mode(),
            num_hands=self.config.max_hands,
            min_hand_detection_confidence=self.config.min_detection_confidence,
            min_hand_presence_confidence=self.config.min_presence_confidence,
            min_tracking_confidence=self.config.min_tracking_confidence,
        )
        return vision.HandLandmarker.create_from_options(options)

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> tuple[HandObservation, ...]:
        """Exactly `max_hands` slots: found hands first ("Left" before "Right", then by score), then empty ones."""
        result, size = self._run(frame, timestamp_ms)
        found = []
        for index, points in enumerate(result.hand_landmarks):
            category = (
                result.handedness[index][0] if index < len(result.handedness) and result.handedness[index] else None
            )
            world = result.hand_world_landmarks[index] if index < len(result.hand_world_landmarks) else []
            found.append(
                HandObservation(
                    present=True,
                    landmarks=_xyz(points),
                    world_landmarks=_xyz(world) if world else np.zeros((HAND_LANDMARK_COUNT, 3), np.float32),
                    handedness=category.category_name if category else "Right",  # MediaPipe always sends one
                    score=float(category.score) if category else 0.0,
                    image_size=size,
                )
            )
        found.sort(key=lambda hand: (hand.handedness != "Left", -hand.score))
        found = found[: self.config.max_hands]
        return tuple(found) + tuple(HandObservation.absent(size) for _ in range(self.config.max_hands - len(found)))
