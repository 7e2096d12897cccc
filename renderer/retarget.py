"""Retargeting: decoded features (plus the wire's head pose and wrist) -> character parameters.

Hand features follow the shared layout (`latentcast.features`, docs/FEATURES.md): 21 MediaPipe
hand points as (x, y), wrist-relative, divided by the largest absolute value, y down. Finger curl
is read from how short each finger looks compared with the length of its bones: a straight finger
spans the sum of its segment lengths, a curled one folds back towards its base. That ratio is
scale- and rotation-free, so it survives the feature normalisation and any hand orientation.
"""

from __future__ import annotations

import math

import numpy as np

from latentcast.features import FEATURE_BLENDSHAPES

# MediaPipe hand landmark indices per finger, base (MCP/CMC) to tip.
FINGER_CHAINS = (
    (1, 2, 3, 4),  # thumb: CMC, MCP, IP, tip
    (5, 6, 7, 8),
    (9, 10, 11, 12),
    (13, 14, 15, 16),
    (17, 18, 19, 20),
)
# Ratio (base-to-tip distance / bone length sum) seen for a fully curled finger; 1.0 is straight.
# Measured on the shared hand CSVs (closed_fist vs open_palm); the thumb folds less.
CURLED_RATIO = np.array([0.75, 0.45, 0.45, 0.45, 0.45])


def hand_points(features: np.ndarray) -> np.ndarray:
    """[42] or [N, 42] hand features -> [21, 2] or [N, 21, 2] points."""
    features = np.asarray(features, dtype=np.float64)
    return features.reshape(*features.shape[:-1], 21, 2)


def finger_curls(features: np.ndarray) -> np.ndarray:
    """Curl per finger (thumb..pinky), 0 straight .. 1 fully curled; [42] -> [5] or [N, 42] -> [N, 5]."""
    pts = hand_points(features)
    curls = []
    for i, chain in enumerate(FINGER_CHAINS):
        p = pts[..., chain, :]
        bones = np.linalg.norm(np.diff(p, axis=-2), axis=-1).sum(axis=-1)
        span = np.linalg.norm(p[..., -1, :] - p[..., 0, :], axis=-1)
        ratio = span / np.maximum(bones, 1e-6)
        curls.append(np.clip((1.0 - ratio) / (1.0 - CURLED_RATIO[i]), 0.0, 1.0))
    return np.stack(curls, axis=-1)


def hand_direction(features: np.ndarray, handedness: str) -> tuple[float, float]:
    """Unit vector wrist -> middle knuckle in the captured frame (x right, y down).

    Features are on the canonical side (`latentcast.features`): a "Right" hand had its x mirrored,
    so it is mirrored back here; "Left" hands were kept as captured.
    """
    pts = hand_points(features)
    d = pts[9] - pts[0]
    if handedness == "Right":
        d = d * np.array([-1.0, 1.0])
    norm = float(np.linalg.norm(d))
    if norm < 1e-6:
        return 0.0, -1.0
    return float(d[0] / norm), float(d[1] / norm)


# ----------------------------------------------------------------------------- faces

# Gains from MediaPipe's blendshape scores to the character's 0..1 controls: MediaPipe rarely
# reports a fully closed eye above ~0.7 or a wide-open jaw above ~0.6.
BLINK_RANGE = (0.15, 0.6)
JAW_GAIN = 1.7
SMILE_GAIN = 1.4
BROW_GAIN = 1.5
# Eye rotation (radians) at a full eyeLook* score: about what MediaPipe's 1.0 means on a real face.
GAZE_YAW_MAX = math.radians(25.0)
GAZE_PITCH_MAX = math.radians(20.0)


def blendshapes_from_features(features: np.ndarray) -> dict[str, float]:
    """Decoded face features -> {MediaPipe blendshape name: score 0..1} (the first 51 values, see FEATURES.md)."""
    scores = (np.asarray(features, dtype=np.float64)[: len(FEATURE_BLENDSHAPES)] + 1.0) / 2.0
    return {name: float(np.clip(s, 0.0, 1.0)) for name, s in zip(FEATURE_BLENDSHAPES, scores, strict=True)}


def _ramp(value: float, lo: float, hi: float) -> float:
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def face_controls(blendshapes: dict[str, float]) -> dict[str, float]:
    """Blendshape scores -> the character's face controls (blinks, mouth, smile, brows).

    ARKit's Left/Right are the subject's own sides, as are the character parameters.
    """
    b = blendshapes.get

    def brow(side: str) -> float:
        raised = b(f"browOuterUp{side}", 0.0) + 0.5 * b("browInnerUp", 0.0)
        return float(np.clip(BROW_GAIN * (raised - b(f"browDown{side}", 0.0)), -1.0, 1.0))

    return {
        "blink_left": _ramp(b("eyeBlinkLeft", 0.0), *BLINK_RANGE),
        "blink_right": _ramp(b("eyeBlinkRight", 0.0), *BLINK_RANGE),
        "mouth_open": float(np.clip(JAW_GAIN * b("jawOpen", 0.0), 0.0, 1.0)),
        "smile": float(np.clip(SMILE_GAIN * 0.5 * (b("mouthSmileLeft", 0.0) + b("mouthSmileRight", 0.0)), 0.0, 1.0)),
        "brow_left": brow("Left"),
        "brow_right": brow("Right"),
        # Gaze from the eyeLook* scores (both eyes averaged): the left eye looking out and the right
        # eye looking in both look to the user's left (yaw +).
        "gaze_yaw": GAZE_YAW_MAX
        * 0.5
        * (b("eyeLookOutLeft", 0.0) - b("eyeLookInLeft", 0.0) + b("eyeLookInRight", 0.0) - b("eyeLookOutRight", 0.0)),
        "gaze_pitch": GAZE_PITCH_MAX
        * 0.5
        * (b("eyeLookUpLeft", 0.0) + b("eyeLookUpRight", 0.0) - b("eyeLookDownLeft", 0.0) - b("eyeLookDownRight", 0.0)),
    }


def head_angles(pose_degrees: np.ndarray) -> dict[str, float]:
    """The wire's head pose (yaw, pitch, roll in degrees, `latentcast.features.head_pose`) -> radians.

    The wire's yaw + turns to the subject's left and roll + tilts towards the subject's right
    shoulder (counter-clockwise on the captured image), as the character's do; the wire's pitch +
    is chin down, the character's is looking up.
    """
    yaw, pitch, roll = (math.radians(float(a)) for a in pose_degrees[:3])
    return {"yaw": yaw, "pitch": -pitch, "roll": roll}
