"""latentcast.features: the CSV hand convention reproduced exactly, mirroring, face features without pose.

Hand tests run on the real shared CSV rows and MediaPipe's own reference landmarks; the face
tests run real MediaPipe on real photos.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

from latentcast import features as F
from latentcast.assets import resolve

# ----------------------------------------------------------------------------- helpers


def read_reference_hand(key: str) -> tuple[np.ndarray, str]:
    """MediaPipe's expected hand landmarks (.pbtxt text protobuf) -> ([21, 3] normalised, handedness)."""
    text = resolve(key).read_text()
    image_part = text.split("world_landmarks")[0]
    points = np.array(re.findall(r"x: (\S+)\s+y: (\S+)\s+z: (\S+)", image_part), dtype=np.float64)
    label = re.search(r'label: "(\w+)"', text).group(1)
    return points, label


def read_csv(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    folder = f"data/hand_gestures/{name}"
    rows = np.loadtxt(resolve(f"{folder}/keypoint.csv"), delimiter=",")
    with open(resolve(f"{folder}/keypoint_classifier_label.csv"), encoding="utf-8-sig") as stream:
        labels = [line.strip() for line in stream if line.strip()]
    return rows[:, 1:], rows[:, 0].astype(int), labels


# ----------------------------------------------------------------------------- hands: the CSV convention


def test_worked_example_left_hand_is_kept_right_hand_is_mirrored():
    # A 640x480 frame; coordinates are exact binary fractions so the pixel values are exact.
    landmarks = np.zeros((21, 3))
    landmarks[:, :2] = (0.5, 0.75)  # every point on the wrist -> pixel (320, 360) ...
    landmarks[4, :2] = (0.25, 0.5)  # thumb tip -> (160, 240): (-160, -120) from the wrist
    landmarks[8, :2] = (0.5, 0.25)  # index tip -> (320, 120): (0, -240), the largest |value|
    landmarks[12, :2] = (0.515625, 0.5)  # middle tip -> (330, 240): (10, -120)
    landmarks[20, :2] = (0.75, 0.625)  # pinky tip -> (480, 300): (160, -60)
    landmarks[16, :2] = (0.5 + 0.7 / 640, 0.75 + 0.9 / 480)  # (320.7, 360.9) truncates to the wrist pixel

    expected = np.zeros(42)
    expected[[8, 9]] = (-160 / 240, -120 / 240)
    expected[[16, 17]] = (0.0, -1.0)
    expected[[24, 25]] = (10 / 240, -120 / 240)
    expected[[40, 41]] = (160 / 240, -60 / 240)

    left = F.hand_features(landmarks, "Left", (640, 480))
    right = F.hand_features(landmarks, "Right", (640, 480))
    np.testing.assert_allclose(left, expected, atol=1e-7)
    # "Right" is mirrored x -> 1 - x: every x offset flips sign, y stays. The ring tip is the
    # truncation case: mirrored it sits at 319.3 px, which truncates to one pixel left of the wrist.
    expected_right = F.mirror_hand_features(expected)
    expected_right[32] = -1 / 240
    np.testing.assert_allclose(right, expected_right, atol=1e-7)
    assert left.dtype == np.float32 and left.shape == (F.HAND_FEATURE_DIM,)


def test_csv_pixels_truncate_toward_zero_and_clamp_only_the_far_edge():
    points = np.array([[0.999, 0.5], [1.2, 1.0], [-0.01, -0.01], [0.5, 0.5]])
    pixels = F.csv_pixel_points(points, (640, 480))
    assert pixels.tolist() == [[639, 240], [639, 479], [-6, -4], [320, 240]]


def recover_pixel_offsets(row: np.ndarray) -> np.ndarray | None:
    """A CSV row is integer pixel offsets / their max |value|: find integers that give it back."""
    for scale in range(1, 1200):
        offsets = row * scale
        if np.abs(offsets - np.round(offsets)).max() < 1e-6:
            return np.round(offsets).astype(int).reshape(21, 2)
    return None


@pytest.mark.parametrize("name", ["baron105_11_gestures", "kinivi"])
@pytest.mark.parametrize("handedness", ["Left", "Right"])
def test_real_csv_rows_are_reproduced_exactly(name, handedness):
    """Rebuild landmarks that land on each row's pixels; the feature function must give the row back."""
    rows, _, _ = read_csv(name)
    rng = np.random.default_rng(0)
    picked = rows[rng.choice(len(rows), 300, replace=False)]
    width, height = 1280, 960
    reproduced = 0
    for row in picked:
        offsets = recover_pixel_offsets(row)
        assert offsets is not None, "a CSV row is not integer pixels over their max: the convention changed"
        pixels = offsets + np.array([width // 2, height // 2])
        # Normalised coordinates of the mirrored (canonical) frame, mid-pixel so truncation is exact.
        canonical = (pixels + 0.5) / (width, height)
        landmarks = np.zeros((21, 3))
        landmarks[:, :2] = canonical
        if handedness == "Right":  # the captured frame is the mirror image of the canonical one
            landmarks[:, 0] = 1.0 - canonical[:, 0]
        features = F.hand_features(landmarks, handedness, (width, height))
        np.testing.assert_allclose(features, row, atol=1e-6)
        reproduced += 1
    assert reproduced == len(picked)


def test_every_csv_row_follows_the_convention():
    for name in ("baron105_11_gestures", "kinivi"):
        rows, _, _ = read_csv(name)
        assert rows.shape[1] == F.HAND_FEATURE_DIM
        np.testing.assert_array_equal(rows[:, :2], 0.0)
        np.testing.assert_allclose(np.abs(rows).max(axis=1), 1.0)


REFERENCE = {
    "fist_landmarks.pbtxt": "closed_fist",
    "pointing_up_landmarks.pbtxt": "pointing",
    "pointing_up_rotated_landmarks.pbtxt": "pointing",
    "thumb_up_landmarks.pbtxt": "thumbs_up",
    "victory_landmarks.pbtxt": "victory",
}


@pytest.mark.parametrize("filename,gesture", REFERENCE.items())
def test_mediapipe_reference_hands_land_next_to_their_gesture_in_the_csv(filename, gesture):
    """MediaPipe's expected landmarks for its test photos, through hand_features, sit among the right CSV rows."""
    landmarks, handedness = read_reference_hand(f"data/hand_gestures/mediapipe_reference_landmarks/{filename}")
    assert landmarks.shape == (21, 3) and handedness == "Right"
    features = F.hand_features(landmarks, handedness, (640, 480))
    assert features[0] == features[1] == 0.0 and math.isclose(np.abs(features).max(), 1.0)
    rows, classes, labels = read_csv("baron105_11_gestures")
    # The CSVs hold both hands: compare against each row and its mirror twin.
    both = np.concatenate([rows, F.mirror_hand_features(rows)])
    distance = ((both - features) ** 2).sum(axis=1)
    nearest = np.tile(classes, 2)[np.argsort(distance)[:5]]
    votes = [labels[c] for c in nearest]
    assert votes.count(gesture) >= 3, votes


def test_mirror_twin_is_the_other_hand_up_to_one_pixel():
    landmarks, _ = read_reference_hand("data/hand_gestures/mediapipe_reference_landmarks/victory_landmarks.pbtxt")
    as_right = F.hand_features(landmarks, "Right", (640, 480))
    as_left = F.hand_features(landmarks, "Left", (640, 480))
    np.testing.assert_allclose(F.mirror_hand_features(as_left), as_right, atol=2 / 100)  # 1 px of ~100 px


def test_wrist_position_is_the_first_landmark_unmirrored():
    landmarks, _ = read_reference_hand("data/hand_gestures/mediapipe_reference_landmarks/thumb_up_landmarks.pbtxt")
    np.testing.assert_allclose(F.wrist_position(landmarks), landmarks[0, :2], rtol=1e-6)


def test_bad_handedness_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="handedness"):
        F.hand_features(np.zeros((21, 3)), "left", (640, 480))
    with pytest.raises(ValueError, match="21"):
        F.hand_features(np.zeros((20, 3)), "Left", (640, 480))
    np.testing.assert_array_equal(F.hand_features(np.full((21, 3), 0.5), "Left", (640, 480)), 0.0)


# ----------------------------------------------------------------------------- faces


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    a, b, c = np.radians([yaw, pitch, roll])
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return ry @ rx @ rz


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, -10, 5), (-45, 20, -15), (10, 40, 60)])
def test_head_pose_recovers_the_angles_of_a_scaled_transform(angles):
    transform = np.eye(4)
    transform[:3, :3] = 1.7 * rotation(*angles)
    transform[:3, 3] = (1.0, -2.0, -40.0)
    np.testing.assert_allclose(F.head_pose(transform), angles, atol=1e-3)


def test_face_feature_layout_is_consistent():
    assert len(F.FACE_FEATURE_NAMES) == F.FACE_FEATURE_DIM == 51 + 3 * len(F.FACE_FEATURE_LANDMARKS)
    assert len(set(F.FACE_FEATURE_LANDMARKS)) == len(F.FACE_FEATURE_LANDMARKS)
    assert len(F.BLENDSHAPE_NAMES) == 52 and F.BLENDSHAPE_NAMES[25] == "jawOpen"
    assert max(F.FACE_FEATURE_LANDMARKS) < F.FACE_LANDMARK_COUNT


def test_features_module_needs_numpy_only():
    code = (
        "import sys, latentcast.features; "
        "heavy = [m for m in ('cv2', 'mediapipe', 'torch', 'onnxruntime') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def face_tracker():
    from edge.landmarks import FaceTracker, LandmarkerConfig

    with FaceTracker(LandmarkerConfig(mode="image")) as tracker:
        yield tracker


def load_bgr(key: str) -> np.ndarray:
    import cv2

    image = cv2.imread(str(resolve(key)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def features_of(tracker, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    face = tracker.detect(image)
    assert face.present
    return F.face_features(face.landmarks, face.blendshapes, face.image_size), F.head_pose(face.transform)


def test_face_features_are_nearly_invariant_to_in_plane_rotation(face_tracker):
    image = load_bgr("data/images/faces/sergey.png")
    upright, pose = features_of(face_tracker, image)
    assert upright.shape == (F.FACE_FEATURE_DIM,) and upright.dtype == np.float32
    assert np.abs(upright).max() <= 1.0
    assert abs(pose[0]) < 10 and abs(pose[1]) < 15 and abs(pose[2]) < 5  # a frontal, upright face
    other, _ = features_of(face_tracker, load_bgr("data/images/faces/business-person.png"))
    between_people = np.abs(other[51:] - upright[51:]).mean()
    blend = slice(0, 51)
    for degrees in (-20, 20):
        turned, turned_pose = features_of(face_tracker, rotate(image, degrees))
        landmark_change = np.abs(turned[51:] - upright[51:])
        assert landmark_change.max() < 0.1, landmark_change.max()
        assert landmark_change.mean() < between_people / 5
        assert np.abs(turned[blend] - upright[blend]).mean() < 0.05  # MediaPipe's own blendshapes
        assert abs(turned_pose[2] - degrees) < 4  # roll follows the counter-clockwise rotation


def test_mirrored_face_negates_yaw_and_roll(face_tracker):
    image = rotate(load_bgr("data/images/faces/sergey.png"), 15)
    _, pose = features_of(face_tracker, image)
    _, mirrored = features_of(face_tracker, np.ascontiguousarray(image[:, ::-1]))
    assert abs(pose[2] - 15) < 4 and abs(mirrored[2] + 15) < 4
    assert abs(pose[0] + mirrored[0]) < 4


LONDON = "data/face_expressions/london_set"
NEUTRAL_KEYS = [f"{LONDON}/neutral/{person}_03.jpg" for person in ("004", "005", "006", "008", "025", "042")]
LISA_KEYS = [f"{LONDON}/lisa_cc0/lisa{i}.jpg" for i in range(1, 5)]


def test_face_template_is_the_mean_neutral_face_it_claims_to_be(face_tracker):
    positions = []
    for key in NEUTRAL_KEYS + LISA_KEYS:
        face = face_tracker.detect(load_bgr(key))
        assert face.present, key
        positions.append(F.pose_free_face_landmarks(face.landmarks, face.image_size)[list(F.FACE_FEATURE_LANDMARKS)])
    np.testing.assert_allclose(np.mean(positions, axis=0), F.FACE_TEMPLATE, atol=0.002)


def test_smiling_widens_the_mouth_in_the_paired_photos(face_tracker):
    """The same six people neutral and smiling: the mouth-corner features move apart for most."""
    left = F.FACE_FEATURE_NAMES.index("lm291_x")  # the subject's left mouth corner
    right = F.FACE_FEATURE_NAMES.index("lm61_x")
    wider = 0
    for neutral_key in NEUTRAL_KEYS:
        neutral, _ = features_of(face_tracker, load_bgr(neutral_key))
        smiling, _ = features_of(
            face_tracker, load_bgr(neutral_key.replace("neutral/", "smiling/").replace("_03", "_08"))
        )
        width_change = (smiling[left] - smiling[right]) - (neutral[left] - neutral[right])
        wider += width_change > 0.03
    assert wider >= 4
