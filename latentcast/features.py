"""THE hand and face feature functions: the same code makes training data and run-time encoder input.

Numpy only, so the edge device, the trainer and the renderer all import this one file. Inputs are
the plain arrays `edge.landmarks` returns (MediaPipe-free from here on). `docs/FEATURES.md` lists
every vector's contents and order; change anything here and bump `FEATURE_SPEC_VERSION`, because
a model trained on one spec silently mis-reads another.

Hand features (42 floats, the shared CSV convention, BRIEF section 3)
    The CSVs were made by Kazuhito00's `app.py` on a horizontally mirrored webcam frame:
    ``px = min(int(x * W), W - 1)``, ``py = min(int(y * H), H - 1)`` (integer pixels), minus the
    wrist, flattened ``x0, y0, ..., x20, y20``, divided by the row's largest |value|.
    Left and right hands share one feature space by mirroring one of them. MediaPipe Tasks'
    handedness is *geometric* (checked on the test photos: "Right" means the hand in the image
    as given is anatomically a right hand). The canonical hand is a right hand **as it looks on
    a mirrored (selfie) frame**, i.e. what a right-handed recorder produced for the CSVs:

    * handedness "Right": x is mirrored (``x -> 1 - x``), exactly the CSV recipe;
    * handedness "Left": x is kept, because a left hand on an unmirrored frame already has the
      shape of a mirrored right hand.

    The rule depends only on the geometric label, so it gives the same features whether or not
    the camera mirrors its frames. The CSVs store no handedness and about half of their open-palm
    rows have the thumb on each side (either hand, or palm and back toward the camera), so
    trainers should add `mirror_hand_features` copies of the CSV rows.

Face features (`FACE_FEATURE_DIM` floats, head pose removed)
    51 MediaPipe blendshape scores (all but ``_neutral``) mapped from [0, 1] to [-1, 1], then
    `FACE_REGION_LANDMARKS` (brows, eyelids, irises, lips, chin) expressed in a head-fixed frame
    built from rigid landmarks (eye corners, nose bridge and base), in units of the outer
    eye-corner distance, minus an average neutral face (`FACE_TEMPLATE`), times `FACE_COORD_GAIN`,
    clipped to [-1, 1]. Blendshapes are already pose-free; the head frame removes translation,
    scale and rotation (in-plane and most out-of-plane) from the landmarks. Head pose itself
    travels separately (`head_pose`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from latentcast.errors import UserError

FEATURE_SPEC_VERSION = 2  # bump on any change to the vectors below (model cards record it)


class FeatureSpecError(UserError):
    """Something (a model card, bundle, neutral calibration) was made for other feature vectors."""


def check_feature_spec(found: object, what: str, fix: str, known: int = FEATURE_SPEC_VERSION) -> None:
    """THE spec rule, used by every reader of a spec-stamped file: `found` is None (made before
    specs were recorded) or `known`; otherwise a one-line error naming `what`, both specs and `fix`."""
    if found is not None and found != known:
        raise FeatureSpecError(f"{what} was made for feature spec {found}, this code computes spec {known}: {fix}")


# ----------------------------------------------------------------------------- hands

HAND_LANDMARK_COUNT = 21
HAND_FEATURE_DIM = 2 * HAND_LANDMARK_COUNT
WRIST = 0
HAND_FEATURE_NAMES = [f"{axis}{i}" for i in range(HAND_LANDMARK_COUNT) for axis in ("x", "y")]


def csv_pixel_points(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Normalised landmarks [..., 21, >=2] -> integer pixels [..., 21, 2], as the CSV app did.

    ``min(int(x * W), W - 1)``: int() truncates toward zero and only the upper side is clamped,
    exactly like the recording script (a landmark slightly left of the frame gives a small
    negative pixel, not 0).
    """
    width, height = image_size
    xy = np.asarray(landmarks, dtype=np.float64)[..., :2] * np.array([width, height], dtype=np.float64)
    pixels = np.trunc(xy).astype(np.int64)
    return np.minimum(pixels, np.array([width - 1, height - 1], dtype=np.int64))


def normalise_hand_points(points: np.ndarray) -> np.ndarray:
    """Pixel points [..., 21, 2] -> features [..., 42]: wrist-relative, flattened, / max |value|.

    This is the CSV's `pre_process_landmark`. A degenerate hand (all points on the wrist) gives
    zeros instead of a division by zero.
    """
    points = np.asarray(points, dtype=np.float64)
    relative = points - points[..., WRIST : WRIST + 1, :]
    flat = relative.reshape(*relative.shape[:-2], HAND_FEATURE_DIM)
    scale = np.abs(flat).max(axis=-1, keepdims=True)
    return np.divide(flat, scale, out=np.zeros_like(flat), where=scale > 0).astype(np.float32)


def is_canonical_side(handedness: str) -> bool:
    """True for the hand that is *not* mirrored ("Left", see the module docstring)."""
    if handedness not in ("Left", "Right"):
        raise ValueError(f"handedness must be 'Left' or 'Right', got {handedness!r}")
    return handedness == "Left"


def canonical_hand_landmarks(landmarks: np.ndarray, handedness: str) -> np.ndarray:
    """Normalised landmarks [21, 3] on the frame as given -> the canonical side (a copy)."""
    out = np.array(landmarks, dtype=np.float64, copy=True)
    if not is_canonical_side(handedness):
        out[..., 0] = 1.0 - out[..., 0]
    return out


def hand_features(landmarks: np.ndarray, handedness: str, image_size: tuple[int, int]) -> np.ndarray:
    """One hand -> [42] float32 in [-1, 1], the CSV convention on the canonical side.

    landmarks: [21, 3] (or [21, 2]) normalised image coordinates of the frame as captured
    (do not mirror the frame yourself); handedness: MediaPipe's "Left"/"Right";
    image_size: (width, height) of that frame in pixels (the CSV rounding is in pixels).
    """
    landmarks = np.asarray(landmarks)
    if landmarks.shape[-2:-1] != (HAND_LANDMARK_COUNT,) or landmarks.shape[-1] < 2:
        raise ValueError(f"hand landmarks must be [21, 2 or 3], got {landmarks.shape}")
    return normalise_hand_points(csv_pixel_points(canonical_hand_landmarks(landmarks, handedness), image_size))


def mirror_hand_features(features: np.ndarray) -> np.ndarray:
    """Features of the other hand: negate every x (wrist-relative, so mirroring is x -> -x).

    Exact up to the CSV's one-pixel rounding; use it to give CSV rows (both hands mixed) the
    canonical side's twin, or as an augmentation.
    """
    out = np.array(features, dtype=np.float32, copy=True)
    out[..., 0::2] *= -1.0
    return out


def wrist_position(landmarks: np.ndarray) -> np.ndarray:
    """Wrist (x, y) [2] float32 in normalised coordinates of the frame as captured (0..1, y down)."""
    return np.asarray(landmarks, dtype=np.float32)[WRIST, :2].copy()


# ----------------------------------------------------------------------------- faces

FACE_LANDMARK_COUNT = 478
BLENDSHAPE_NAMES = [
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
]  # fmt: skip
BLENDSHAPE_COUNT = len(BLENDSHAPE_NAMES)  # 52, MediaPipe's order (ARKit names)
FEATURE_BLENDSHAPES = BLENDSHAPE_NAMES[1:]  # _neutral is a constant ~0 in practice: dropped

# Face-mesh indices. "left"/"right" are the subject's (MediaPipe's anatomical mesh labels).
FACE_REGION_LANDMARKS: dict[str, tuple[int, ...]] = {
    "right_brow": (70, 63, 105, 66, 107),
    "left_brow": (300, 293, 334, 296, 336),
    "right_eye": (33, 160, 158, 133, 153, 144),  # outer corner, upper lid x2, inner corner, lower lid x2
    "left_eye": (263, 387, 385, 362, 380, 373),
    "irises": (468, 473),  # right, left iris centre
    "outer_lips": (61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91),
    "inner_lips": (78, 81, 13, 311, 308, 402, 14, 178),
    "chin": (152,),
}
FACE_FEATURE_LANDMARKS = tuple(i for indices in FACE_REGION_LANDMARKS.values() for i in indices)

# Rigid anchors of the head frame: they barely move with expression.
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
RIGHT_EYE_INNER, LEFT_EYE_INNER = 133, 362
NOSE_BRIDGE, NOSE_BASE = 168, 2

# Where each feature landmark sits on an average neutral face, in head-frame units: the mean of
# `pose_free_face_landmarks` over the 10 neutral photos of data/face_expressions/london_set
# (neutral/*_03.jpg and lisa_cc0/lisa1-4.jpg), rounded to 1/1000 (tests/test_features.py recomputes it).
# Features are offsets from it, so they measure expression (and face shape), not where a face part is.
FACE_TEMPLATE = np.array([
    [-0.640, -0.184, 0.022], [-0.577, -0.244, -0.077], [-0.475, -0.274, -0.157], [-0.336, -0.263, -0.223],
    [-0.172, -0.237, -0.254], [0.637, -0.185, 0.022], [0.573, -0.241, -0.079], [0.470, -0.271, -0.159],
    [0.331, -0.260, -0.225], [0.168, -0.236, -0.255], [-0.500, -0.014, 0.029], [-0.433, -0.055, -0.054],
    [-0.316, -0.058, -0.075], [-0.188, 0.014, -0.029], [-0.302, 0.037, -0.050], [-0.415, 0.038, -0.029],
    [0.500, -0.015, 0.028], [0.428, -0.053, -0.054], [0.312, -0.057, -0.075], [0.189, 0.015, -0.028],
    [0.300, 0.037, -0.050], [0.414, 0.036, -0.030], [-0.361, -0.017, -0.059], [0.360, -0.015, -0.074],
    [-0.269, 0.788, 0.018], [-0.208, 0.749, -0.100], [-0.077, 0.700, -0.196], [0.004, 0.718, -0.203],
    [0.087, 0.697, -0.197], [0.221, 0.743, -0.100], [0.285, 0.778, 0.017], [0.219, 0.844, -0.066],
    [0.088, 0.909, -0.122], [0.005, 0.918, -0.126], [-0.075, 0.912, -0.122], [-0.203, 0.851, -0.065],
    [-0.244, 0.788, -0.003], [-0.116, 0.788, -0.097], [0.006, 0.795, -0.129], [0.131, 0.784, -0.097],
    [0.261, 0.780, -0.005], [0.132, 0.786, -0.093], [0.006, 0.798, -0.124], [-0.117, 0.792, -0.093],
    [0.016, 1.272, 0.104],
], dtype=np.float32)  # fmt: skip
FACE_COORD_GAIN = 3.0  # offsets of ~0.33 eye-distances (a wide-open jaw) reach 1; posed smiles stay under ~0.5

FACE_FEATURE_NAMES = [f"bs_{name}" for name in FEATURE_BLENDSHAPES] + [
    f"lm{index}_{axis}" for index in FACE_FEATURE_LANDMARKS for axis in ("x", "y", "z")
]
FACE_FEATURE_DIM = len(FACE_FEATURE_NAMES)  # 51 + 3 * 45 = 186


def face_points_in_pixels(landmarks: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Normalised [..., 478, 3] -> isotropic pixel space (x*W, y*H, z*W): MediaPipe's z is in x's scale."""
    width, height = image_size
    return np.asarray(landmarks, dtype=np.float64)[..., :3] * np.array([width, height, width], dtype=np.float64)


def head_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin [3], axes [3, 3] rows = x right, y down, z away from the viewer; scale) from rigid anchors.

    x runs from the subject's right eye centre to the left one (image right on an unmirrored frame);
    y from the nose bridge toward the nose base, made orthogonal to x; z completes a right-handed
    frame. Scale = the outer eye-corner distance, so the features ignore how far the face is.
    """
    # Plain float64 arithmetic on 3-vectors: np.linalg.norm and np.cross cost more in call overhead than in
    # arithmetic, and this runs on every face frame. Same operations in the same order: the same bits.
    right_eye = (points[RIGHT_EYE_OUTER] + points[RIGHT_EYE_INNER]) / 2
    left_eye = (points[LEFT_EYE_OUTER] + points[LEFT_EYE_INNER]) / 2
    origin = (right_eye + left_eye) / 2
    x_axis = left_eye - right_eye
    outer = points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER]
    scale = math.sqrt(outer.dot(outer))
    x_norm = math.sqrt(x_axis.dot(x_axis))
    if scale <= 1e-9 or x_norm <= 1e-9:
        raise ValueError("degenerate face landmarks: the eye corners coincide")
    x_axis = x_axis / x_norm
    down = points[NOSE_BASE] - points[NOSE_BRIDGE]
    y_axis = down - down.dot(x_axis) * x_axis
    y_norm = math.sqrt(y_axis.dot(y_axis))
    if y_norm <= 1e-9:
        raise ValueError("degenerate face landmarks: the nose is on the eye line")
    y_axis = y_axis / y_norm
    (x0, x1, x2), (y0, y1, y2) = x_axis.tolist(), y_axis.tolist()
    axes = np.array([x_axis, y_axis, (x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0)])
    return origin, axes, scale


def pose_free_face_landmarks(
    landmarks: np.ndarray, image_size: tuple[int, int], indices: Sequence[int] | None = None
) -> np.ndarray:
    """Landmarks [478 or len(indices), 3] in the head frame, in outer-eye-distance units (no pose, no scale)."""
    points = face_points_in_pixels(landmarks, image_size)
    origin, axes, scale = head_frame(points)
    chosen = points if indices is None else points[list(indices)]
    return ((chosen - origin) @ axes.T / scale).astype(np.float32)


def face_features(landmarks: np.ndarray, blendshapes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """One face -> [FACE_FEATURE_DIM] float32 in [-1, 1] (contents and order: `FACE_FEATURE_NAMES`).

    landmarks: [478, 3] normalised image coordinates; blendshapes: [52] scores in MediaPipe's
    order (`BLENDSHAPE_NAMES`); image_size: (width, height) of the frame the landmarks refer to.
    """
    landmarks = np.asarray(landmarks)
    blendshapes = np.asarray(blendshapes, dtype=np.float32)
    if landmarks.shape != (FACE_LANDMARK_COUNT, 3):
        raise ValueError(f"face landmarks must be [478, 3], got {landmarks.shape}")
    if blendshapes.shape != (BLENDSHAPE_COUNT,):
        raise ValueError(f"blendshapes must be [52], got {blendshapes.shape}")
    scores = 2.0 * np.clip(blendshapes[1:], 0.0, 1.0) - 1.0
    # Only the feature landmarks are carried into the head frame (the anchors still come from all 478).
    coords = (pose_free_face_landmarks(landmarks, image_size, FACE_FEATURE_LANDMARKS) - FACE_TEMPLATE) * FACE_COORD_GAIN
    return np.concatenate([scores, np.clip(coords, -1.0, 1.0).reshape(-1)]).astype(np.float32)


def head_pose(transform: np.ndarray) -> np.ndarray:
    """Facial transformation matrix [4, 4] -> (yaw, pitch, roll) [3] float32 in degrees.

    MediaPipe's matrix maps the canonical face (looking along +z) into the camera frame
    (x right, y up, z toward the viewer). Decomposed as R = Ry(yaw) @ Rx(pitch) @ Rz(roll):
    yaw > 0 turns the face toward the image's right (the subject's left), pitch > 0 tilts the
    chin down, roll > 0 tilts the head counter-clockwise as the viewer sees the image.
    Any uniform scale in the matrix is divided out first.
    """
    rotation = np.asarray(transform, dtype=np.float64)[:3, :3]
    scale = np.cbrt(np.linalg.det(rotation))
    if not np.isfinite(scale) or abs(scale) < 1e-9:
        raise ValueError("degenerate facial transformation matrix")
    r = rotation / scale
    yaw = math.atan2(r[0, 2], r[2, 2])
    pitch = math.asin(float(np.clip(-r[1, 2], -1.0, 1.0)))
    roll = math.atan2(r[1, 0], r[1, 1])
    return np.degrees(np.array([yaw, pitch, roll])).astype(np.float32)
