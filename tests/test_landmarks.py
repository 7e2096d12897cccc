"""edge.landmarks: real MediaPipe Tasks on the real photos and the hand clip from the asset mirror.

Also the bad inputs: empty, grayscale, RGBA, float and odd dtypes, frames with nothing in them,
corrupt .task files, and two trackers used from two threads at once.
"""

from __future__ import annotations

import threading
import zipfile

import numpy as np
import pytest

from edge.landmarks import (
    FaceObservation,
    FaceTracker,
    HandObservation,
    HandTracker,
    LandmarkerConfig,
    prepare_frame,
)
from latentcast import features as F
from latentcast.assets import resolve
from latentcast.errors import UserError

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def face():
    with FaceTracker(LandmarkerConfig(mode="image")) as tracker:
        yield tracker


@pytest.fixture(scope="module")
def hands():
    with HandTracker(LandmarkerConfig(mode="image")) as tracker:
        yield tracker


def load(key: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(resolve(key)), flags)
    assert image is not None, key
    return image


def present(hands_found: tuple[HandObservation, ...]) -> list[HandObservation]:
    return [hand for hand in hands_found if hand.present]


# ----------------------------------------------------------------------------- real media


def test_face_with_478_landmarks_blendshapes_and_pose(face):
    image = load("data/images/faces/sergey.png")
    found = face.detect(image)
    assert found.present
    assert found.landmarks.shape == (478, 3) and found.landmarks.dtype == np.float32
    assert found.blendshapes.shape == (52,) and found.transform.shape == (4, 4)
    assert found.image_size == (600, 600)
    assert found.landmarks[:, 0].min() > 0.2 and found.landmarks[:, 0].max() < 0.8  # a centred face
    assert found.blendshapes.min() >= 0 and found.blendshapes.max() <= 1
    smile = found.blendshapes[F.BLENDSHAPE_NAMES.index("mouthSmileLeft")]
    assert smile > 0.3  # sergey.png smiles with teeth showing
    rotation = found.transform[:3, :3] / np.cbrt(np.linalg.det(found.transform[:3, :3]))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-3)


@pytest.mark.parametrize(
    "key,at_least",
    [
        ("data/images/hands/hand_thumb_up.jpg", 1),
        ("data/images/hands/thumbs-up.png", 1),
        ("data/images/hands/hand_landmarker_test_image.jpg", 1),
    ],
)
def test_thumbs_up_hands_are_found_and_look_like_thumbs_up(hands, key, at_least):
    found = present(hands.detect(load(key)))
    assert len(found) >= at_least
    for hand in found:
        assert hand.landmarks.shape == (21, 3) and hand.handedness in ("Left", "Right") and hand.score > 0.5
        features = F.hand_features(hand.landmarks, hand.handedness, hand.image_size)
        # Canonical side: a thumbs-up points its thumb tip (landmark 4) far above the wrist,
        # higher than every other fingertip.
        tips_y = features[[9, 17, 25, 33, 41]]
        assert tips_y[0] < -0.7 and tips_y[0] == tips_y.min()


def chirality(landmarks: np.ndarray, image_size: tuple[int, int]) -> float:
    """> 0 for an anatomical right hand in image coordinates (x right, y down, z away from the camera).

    The palm normal (index knuckle x pinky knuckle, from the wrist) points the way the fingers
    curl for a right hand and against it for a left hand, whichever side faces the camera.
    """
    width, height = image_size
    points = landmarks.astype(np.float64) * (width, height, width)
    normal = np.cross(points[5] - points[0], points[17] - points[0])
    curl = points[[8, 12, 16, 20]].mean(axis=0) - points[[5, 9, 13, 17]].mean(axis=0)
    return float(normal @ curl / (np.linalg.norm(normal) * np.linalg.norm(curl)))


@pytest.mark.parametrize(
    "key",
    [
        "data/images/hands/hand_thumb_up.jpg",
        "data/images/hands/thumbs-up.png",
        "data/images/hands/hand_landmarker_test_image.jpg",
    ],
)
def test_handedness_is_geometric_so_mirroring_the_frame_swaps_it(hands, key):
    """The hand-feature mirroring rule rests on this: "Right" = an anatomical right hand in the frame given."""
    image = load(key)
    for frame in (image, np.ascontiguousarray(image[:, ::-1])):
        hand = present(hands.detect(frame))[0]  # these thumbs-up have curled fingers: chirality is clear
        assert (chirality(hand.landmarks, hand.image_size) > 0) == (hand.handedness == "Right")
    original = present(hands.detect(image))[0].handedness
    mirrored = present(hands.detect(np.ascontiguousarray(image[:, ::-1])))[0].handedness
    assert {original, mirrored} == {"Left", "Right"}


def test_hands_slots_are_fixed_and_empty_ones_are_absent(hands):
    slots = hands.detect(load("data/images/hands/hand_thumb_up.jpg"))
    assert len(slots) == 2
    assert slots[0].present and not slots[1].present
    assert slots[1].handedness == "" and slots[1].landmarks.shape == (21, 3) and not slots[1].landmarks.any()


def test_large_input_is_downscaled_before_detection(hands):
    image = load("data/images/hands/thumbs-up.png")  # 1920x1280
    huge = cv2.resize(image, (4000, 2667), interpolation=cv2.INTER_CUBIC)
    assert prepare_frame(huge).shape == (853, 1280, 3)
    small = present(hands.detect(image))
    big = present(hands.detect(huge))
    assert len(big) == 1 and big[0].image_size == (4000, 2667)
    # Normalised landmarks do not depend on the input size.
    np.testing.assert_allclose(big[0].landmarks[:, :2], small[0].landmarks[:, :2], atol=0.01)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "the mirror's hand_landmarker.task (palm_detection_full + hand_landmark_full repacked from "
        "mediapipe 0.10.21) finds no palm in hand_victory.jpg at any scale 160-2000 px, padding, crop, "
        "rotation, flip, blur, gamma or colour change tried; see the final report"
    ),
)
def test_victory_photo_found_after_downscaling(hands):
    image = load("data/images/hands/hand_victory.jpg")
    assert image.shape[:2] == (4000, 3000)
    assert present(hands.detect(image))


def test_hand_in_most_frames_of_the_clip():
    capture = cv2.VideoCapture(str(resolve("data/video/hand_landmarker_test_video.mp4")))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    seen, found, index = 0, 0, 0
    with HandTracker(LandmarkerConfig(mode="video")) as tracker:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % 4 == 0:  # every 4th of 202 frames keeps this to a few seconds
                slots = tracker.detect(frame, int(index * 1000 / fps))
                seen += 1
                found += any(hand.present for hand in slots)
            index += 1
    capture.release()
    assert index == 202 and seen == 51
    assert found / seen >= 0.8, f"hand in {found}/{seen} sampled frames"


def test_video_mode_survives_repeated_and_missing_timestamps():
    frame = load("data/images/faces/sergey.png")
    with FaceTracker(LandmarkerConfig(mode="video")) as tracker:
        first = tracker.detect(frame, 1000)
        again = tracker.detect(frame, 1000)  # not increasing: bumped, not a crash
        later = tracker.detect(frame)  # no timestamp: the monotonic clock
    assert first.present and again.present and later.present


# ----------------------------------------------------------------------------- bad input


def test_nothing_in_the_frame_gives_absent_observations(face, hands):
    noise = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    for frame in (np.zeros((360, 640, 3), np.uint8), noise, load("data/images/hands/hand_thumb_up.jpg")):
        found = face.detect(frame)
        assert isinstance(found, FaceObservation) and not found.present
        assert found.landmarks.shape == (478, 3) and not found.landmarks.any()
        np.testing.assert_array_equal(found.transform, np.eye(4))
    slots = hands.detect(load("data/images/faces/sergey.png"))
    assert len(slots) == 2 and not any(hand.present for hand in slots)


@pytest.mark.parametrize("frame", [np.zeros((0, 0, 3), np.uint8), np.zeros((480, 0, 3), np.uint8), None])
def test_empty_frame_is_a_clear_user_error(face, hands, frame):
    with pytest.raises(UserError, match=r"(empty|None)"):
        face.detect(frame)
    with pytest.raises(UserError, match=r"(empty|None)"):
        hands.detect(frame)


def test_grayscale_frames_are_converted(face, hands):
    gray = cv2.cvtColor(load("data/images/faces/sergey.png"), cv2.COLOR_BGR2GRAY)
    assert face.detect(gray).present
    assert face.detect(gray[:, :, None]).present  # HxWx1 too
    # MediaPipe's palm detector needs colour: on gray input it finds no hand in any of the photos.
    # That must come back as empty slots, never as an exception.
    hand_gray = cv2.cvtColor(load("data/images/hands/hand_thumb_up.jpg"), cv2.COLOR_BGR2GRAY)
    slots = hands.detect(hand_gray)
    assert len(slots) == 2 and all(isinstance(hand, HandObservation) for hand in slots)


def test_rgba_frame_is_converted(hands):
    rgba = load("data/images/hands/thumbs-up.png", cv2.IMREAD_UNCHANGED)
    assert rgba.shape[2] == 4  # the photo really has an alpha channel
    assert present(hands.detect(rgba))
    assert present(HandTracker(LandmarkerConfig(mode="image", color_order="rgb")).detect(rgba[..., [2, 1, 0, 3]]))


def test_float_and_16_bit_frames_are_converted(face):
    image = load("data/images/faces/sergey.png")
    reference = face.detect(image)
    for converted in (image.astype(np.float32) / 255, image.astype(np.float64), image.astype(np.uint16) * 257):
        found = face.detect(converted)
        assert found.present
        np.testing.assert_allclose(found.landmarks[:, :2], reference.landmarks[:, :2], atol=0.01)


@pytest.mark.parametrize(
    "frame,message",
    [
        (np.zeros((10,), np.uint8), "not an image"),
        (np.zeros((10, 10, 5), np.uint8), "not an image"),
        (np.ones((10, 10, 3), bool), "dtype bool"),
        (np.full((10, 10, 3), 300, np.int32), "outside 0..255"),
        (np.full((10, 10, 3), np.nan, np.float32), "finite"),
    ],
)
def test_frames_that_are_not_images_are_clear_user_errors(face, frame, message):
    with pytest.raises(UserError, match=message):
        face.detect(frame)


def test_corrupt_task_files_are_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.task"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match=r"not a MediaPipe \.task bundle"):
        FaceTracker(LandmarkerConfig(face_model=str(garbage)))
    broken = tmp_path / "broken.task"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("hand_detector.tflite", b"not a tflite model")
        archive.writestr("hand_landmarks_detector.tflite", b"nor this")
    with pytest.raises(UserError, match="MediaPipe could not load the hand model"):
        HandTracker(LandmarkerConfig(hand_model=str(broken)))
    with pytest.raises(UserError, match="does not exist"):
        HandTracker(LandmarkerConfig(hand_model=str(tmp_path / "missing.task")))
    # The real face model in place of the hand model: a valid zip, wrong contents.
    with pytest.raises(UserError, match="MediaPipe could not load"):
        HandTracker(LandmarkerConfig(hand_model=str(resolve("models/mediapipe/face_landmarker.task"))))


def test_bad_config_is_a_user_error():
    with pytest.raises(UserError, match="mode"):
        LandmarkerConfig(mode="stream")
    with pytest.raises(UserError, match="color_order"):
        LandmarkerConfig(color_order="yuv")


# ----------------------------------------------------------------------------- concurrency


def test_face_and_hand_trackers_run_concurrently_from_two_threads(face, hands):
    face_frames = [load("data/images/faces/sergey.png"), load("data/images/faces/business-person.png")]
    hand_frames = [load("data/images/hands/hand_thumb_up.jpg"), load("data/images/hands/thumbs-up.png")]
    expected_face = [face.detect(frame).landmarks for frame in face_frames]
    expected_hand = [present(hands.detect(frame))[0].landmarks for frame in hand_frames]
    results: dict[str, list[np.ndarray]] = {"face": [], "hand": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(kind: str) -> None:
        try:
            start.wait()
            for _ in range(5):
                for i in range(2):
                    if kind == "face":
                        results["face"].append(face.detect(face_frames[i]).landmarks)
                    else:
                        results["hand"].append(present(hands.detect(hand_frames[i]))[0].landmarks)
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(kind,)) for kind in ("face", "hand")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results["face"]) == len(results["hand"]) == 10
    for i, landmarks in enumerate(results["face"]):
        np.testing.assert_allclose(landmarks, expected_face[i % 2], atol=1e-5)
    for i, landmarks in enumerate(results["hand"]):
        np.testing.assert_allclose(landmarks, expected_hand[i % 2], atol=1e-5)
