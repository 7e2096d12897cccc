"""The feature functions against the recipes written out here from their documents, not from the code:

- hands: Kazuhito00's CSV recipe (app.py `calc_landmark_list` + `pre_process_landmark`): integer pixels
  `min(int(x * W), W - 1)`, minus the wrist, flattened, divided by the largest |value|; the "Right" hand
  mirrored first (docs/FEATURES.md);
- faces: a synthetic face moved by a known similarity transform keeps its pose-free landmarks; blendshape
  scores map [0, 1] -> [-1, 1];
- head pose: R = Ry(yaw) Rx(pitch) Rz(roll) composed here, times a scale, decomposes to the same angles.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentcast import features as F


def kazuhito_row(landmarks: np.ndarray, width: int, height: int) -> list[float]:
    """The CSV app's two functions, line by line (plain Python, no numpy)."""
    points = [[min(int(x * width), width - 1), min(int(y * height), height - 1)] for x, y in landmarks[:, :2]]
    base_x, base_y = points[0]
    flat = []
    for x, y in points:
        flat += [x - base_x, y - base_y]
    biggest = max(abs(v) for v in flat)
    return [v / biggest for v in flat]


def random_hand(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(-0.02, 1.02, 21), rng.uniform(-0.02, 1.02, 21), rng.normal(0, 0.05, 21)])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("width", "height"), [(640, 480), (1280, 720), (641, 361)])
def test_hand_features_are_the_csv_recipe(seed, width, height):
    lm = random_hand(seed)
    left = F.hand_features(lm, "Left", (width, height))
    assert left.dtype == np.float32 and left.shape == (F.HAND_FEATURE_DIM,)
    np.testing.assert_allclose(left, kazuhito_row(lm, width, height), rtol=1e-6, atol=1e-7)
    mirrored = lm.copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    np.testing.assert_allclose(F.hand_features(lm, "Right", (width, height)), kazuhito_row(mirrored, width, height),
                               rtol=1e-6, atol=1e-7)  # fmt: skip
    np.testing.assert_allclose(F.hand_features(lm[:, :2], "Left", (width, height)), left)  # [21, 2] as well


def test_pixel_rounding_truncates_toward_zero_and_clamps_only_the_top():
    lm = np.array([[0.5, 0.5], [1.0, 1.0], [-0.001, -0.001], [-0.01, -0.02], [0.99999, 0.0]])
    px = F.csv_pixel_points(lm, (640, 480))
    assert px.dtype == np.int64
    assert px.tolist() == [[320, 240], [639, 479], [0, 0], [-6, -9], [639, 0]]


def test_normalise_is_wrist_relative_over_the_largest_value_and_zero_for_a_degenerate_hand():
    pts = np.tile([10.0, 20.0], (21, 1))  # every point on the wrist ...
    pts[5] = (14, 12)  # relative (4, -8): -8 is the largest |value|
    pts[9] = (12, 22)
    out = F.normalise_hand_points(pts)
    assert out[0] == out[1] == 0.0
    assert out[10:12].tolist() == [0.5, -1.0] and out[18:20].tolist() == [0.25, 0.25]
    assert not out[2:10].any() and not out[20:].any()  # ... except the two moved
    np.testing.assert_array_equal(F.normalise_hand_points(np.full((21, 2), 3.0)), np.zeros(42, np.float32))
    small = F.normalise_hand_points(pts / 100.0)  # float points under 1 unit (the function is not only for pixels)
    np.testing.assert_allclose(small, out, atol=1e-7)
    batch = F.normalise_hand_points(np.stack([pts, pts * 2]))
    assert batch.shape == (2, 42)
    np.testing.assert_allclose(batch[0], batch[1])  # scale-free


def test_sides_mirroring_and_shape_errors():
    assert F.is_canonical_side("Left") and not F.is_canonical_side("Right")
    for bad in ("left", "", "Unknown"):
        with pytest.raises(ValueError, match="handedness must be 'Left' or 'Right'"):
            F.is_canonical_side(bad)
    lm = random_hand(1)
    out = F.canonical_hand_landmarks(lm, "Right")
    np.testing.assert_allclose(out[:, 0], 1.0 - lm[:, 0])
    np.testing.assert_array_equal(out[:, 1:], lm[:, 1:])
    assert F.canonical_hand_landmarks(lm, "Left") is not lm
    for shape in ((20, 3), (21, 1), (42,)):
        with pytest.raises(ValueError, match="hand landmarks must be"):
            F.hand_features(np.zeros(shape), "Left", (640, 480))
    feats = np.arange(42, dtype=np.float32)
    m = F.mirror_hand_features(feats)
    np.testing.assert_array_equal(m[0::2], -feats[0::2])
    np.testing.assert_array_equal(m[1::2], feats[1::2])
    assert feats[2] == 2.0  # the input is untouched
    from_ints = F.mirror_hand_features(np.arange(42))
    assert from_ints.dtype == np.float32 and from_ints[2] == -2.0
    np.testing.assert_array_equal(F.wrist_position(lm), lm[0, :2].astype(np.float32))
    assert F.HAND_FEATURE_NAMES[:3] == ["x0", "y0", "x1"] and len(F.HAND_FEATURE_NAMES) == 42


def synthetic_face(seed: int = 0) -> np.ndarray:
    """478 points in pixels: the template's feature points plus eye and nose anchors, a face about 200 px wide."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(0, 0.3, (F.FACE_LANDMARK_COUNT, 3))
    anchors = {F.RIGHT_EYE_OUTER: (-0.5, 0, 0), F.RIGHT_EYE_INNER: (-0.2, 0, 0), F.LEFT_EYE_OUTER: (0.5, 0, 0),
               F.LEFT_EYE_INNER: (0.2, 0, 0), F.NOSE_BRIDGE: (0, 0.02, -0.1), F.NOSE_BASE: (0, 0.5, -0.2)}  # fmt: skip
    for index, p in anchors.items():
        pts[index] = p
    return pts


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def to_normalised(points_px: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return points_px / np.array([w, h, w])


def test_pose_free_landmarks_ignore_translation_rotation_and_scale():
    size = (640, 480)
    face = synthetic_face()
    base = to_normalised(face * 100 + np.array([320, 240, 0]), size)
    want = F.pose_free_face_landmarks(base, size)
    # the head frame: eye midpoints' centre at 0, x from right eye to left eye, units of the outer-eye distance
    np.testing.assert_allclose(want[F.LEFT_EYE_OUTER], [0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(want[F.RIGHT_EYE_INNER], [-0.2, 0, 0], atol=1e-6)
    assert want[F.NOSE_BASE][1] > 0.4  # y points down the nose
    moved = face @ rotation(0.3, -0.2, 0.5).T * 170 + np.array([200, 300, 40])
    got = F.pose_free_face_landmarks(to_normalised(moved, size), size)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert got.dtype == np.float32
    tiny = face * 0.01 + np.array([320, 240, 0])  # a face 1 px wide: small, not degenerate
    np.testing.assert_allclose(F.pose_free_face_landmarks(to_normalised(tiny, size), size), want, atol=1e-4)
    subset = F.pose_free_face_landmarks(base, size, [F.NOSE_BASE, 0])
    np.testing.assert_allclose(subset, want[[F.NOSE_BASE, 0]])


def test_degenerate_faces_are_value_errors():
    face = synthetic_face()
    same = face.copy()
    same[F.LEFT_EYE_OUTER] = same[F.RIGHT_EYE_OUTER]
    with pytest.raises(ValueError, match=r"^degenerate face landmarks: the eye corners coincide$"):
        F.head_frame(same)
    flat_nose = face.copy()
    flat_nose[F.NOSE_BASE] = flat_nose[F.NOSE_BRIDGE] + np.array([0.3, 0, 0])
    with pytest.raises(ValueError, match=r"^degenerate face landmarks: the nose is on the eye line$"):
        F.head_frame(flat_nose)


def test_face_features_blendshapes_and_clipped_coordinates():
    size = (640, 480)
    lm = to_normalised(synthetic_face() * 100 + np.array([320, 240, 0]), size)
    scores = np.linspace(-0.5, 1.5, F.BLENDSHAPE_COUNT).astype(np.float32)
    out = F.face_features(lm, scores, size)
    assert out.shape == (F.FACE_FEATURE_DIM,) == (186,) and out.dtype == np.float32
    np.testing.assert_allclose(out[:51], 2 * np.clip(scores[1:], 0, 1) - 1, atol=1e-7)
    coords = (F.pose_free_face_landmarks(lm, size, F.FACE_FEATURE_LANDMARKS) - F.FACE_TEMPLATE) * 3.0
    np.testing.assert_allclose(out[51:], np.clip(coords, -1, 1).reshape(-1), atol=1e-6)
    assert out.min() >= -1.0 and out.max() <= 1.0 and (np.abs(out[51:]) == 1.0).any()  # some clipped
    assert F.FACE_FEATURE_NAMES[0] == "bs_browDownLeft" and F.FACE_FEATURE_NAMES[51] == "lm70_x"
    with pytest.raises(ValueError, match=r"face landmarks must be \[478, 3\]"):
        F.face_features(lm[:, :2], scores, size)
    with pytest.raises(ValueError, match=r"blendshapes must be \[52\]"):
        F.face_features(lm, scores[1:], size)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (30, -10, 5), (-60, 25, -40), (10, 80, 170)])
def test_head_pose_decomposes_ry_rx_rz_and_divides_out_scale(yaw, pitch, roll):
    m = np.eye(4)
    m[:3, :3] = 1.7 * rotation(*np.radians([yaw, pitch, roll]))
    m[:3, 3] = (4, -2, -30)
    got = F.head_pose(m)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [yaw, pitch, roll], atol=1e-4)
    with pytest.raises(ValueError, match=r"^degenerate facial transformation matrix$"):
        F.head_pose(np.zeros((4, 4)))


@pytest.mark.parametrize("pitch", [90.0, -90.0])
def test_head_pose_at_straight_up_or_down_survives_rounding_past_one(pitch):
    m = np.eye(4)
    m[:3, :3] = rotation(0.0, math.radians(pitch), 0.0)
    m[1, 2] *= 1 + 1e-9  # |sin(pitch)| a hair above 1 after rounding: asin must not fail
    assert F.head_pose(m)[1] == pytest.approx(pitch, abs=1e-3)


def test_feature_spec_rule():
    F.check_feature_spec(None, "x", "fix")
    F.check_feature_spec(F.FEATURE_SPEC_VERSION, "x", "fix")
    with pytest.raises(F.FeatureSpecError, match="model m was made for feature spec 1, this code computes spec 2: fix"):
        F.check_feature_spec(1, "model m", "fix", known=2)
    assert issubclass(F.FeatureSpecError, F.UserError)
