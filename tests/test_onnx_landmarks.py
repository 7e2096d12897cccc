"""The onnx landmark backend (edge/onnx_landmarks): MediaPipe's graph maths, and parity with MediaPipe.

Real parts: the converted MediaPipe models (export.landmark_models, converted once into the asset
cache by the real converter venv), onnxruntime, MediaPipe Tasks as the reference, the shared hand
clip and the real face and hand photos. Thresholds are the issue's parity goals (median landmark
error <= 2 % of hand size / inter-ocular distance, blendshape MAE <= 0.02, head rotation <= 2 deg);
a few frames only: `benchmarks/landmark_parity.py` measures the full set.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
import pytest

from edge.landmarks import FaceTracker, HandTracker, LandmarkerConfig
from edge.onnx_landmarks.anchors import (
    FACE_ANCHORS,
    PALM_ANCHORS,
    PALM_DECODE,
    Detection,
    decode,
    generate_anchors,
    weighted_nms,
)
from edge.onnx_landmarks.roi import (
    Roi,
    crop,
    hand_rect_from_landmarks,
    project_points,
    transform_rect,
    unproject_points,
)
from tests.conftest import resolve_or_skip

HAND_PHOTOS = ["data/images/hands/hand_thumb_up.jpg", "data/images/hands/thumbs-up.png"]
FACE_PHOTOS = [
    "data/images/faces/sergey.png",
    "data/images/faces/business-person.png",
    "data/images/faces/testImg.jpeg",
]
CLIP = "data/video/hand_landmarker_test_video.mp4"


# --------------------------------------------------------------------------- anchors, decoding, NMS
def test_anchor_counts_and_first_anchors_match_mediapipe_layout():
    palm, face = generate_anchors(PALM_ANCHORS), generate_anchors(FACE_ANCHORS)
    assert palm.shape == (2016, 4) and face.shape == (896, 4)
    # stride 8 on 192: a 24x24 grid, 2 anchors per cell (aspect 1 + interpolated), fixed size 1x1
    np.testing.assert_allclose(palm[0], [0.5 / 24, 0.5 / 24, 1, 1])
    np.testing.assert_allclose(palm[1], palm[0])
    np.testing.assert_allclose(palm[2], [1.5 / 24, 0.5 / 24, 1, 1])
    # after 24*24*2 anchors the stride-16 layers (three merged, 6 per cell) on a 12x12 grid
    np.testing.assert_allclose(palm[1152], [0.5 / 12, 0.5 / 12, 1, 1])
    np.testing.assert_allclose(palm[1157], palm[1152])
    np.testing.assert_allclose(palm[1158], [1.5 / 12, 0.5 / 12, 1, 1])


def test_decode_worked_example():
    anchors = generate_anchors(PALM_ANCHORS)
    raw = np.zeros((2016, 18), np.float32)
    logits = np.full(2016, -10.0, np.float32)
    i = 1158  # anchor centre (1.5/12, 0.5/12)
    logits[i] = 2.0
    raw[i, :4] = [19.2, -9.6, 38.4, 57.6]  # dx, dy, w, h in input pixels (scale 192)
    raw[i, 4:6] = [0.0, 19.2]  # keypoint 0: 0.1 below the anchor centre
    found = decode(raw, logits, anchors, PALM_DECODE, min_score=0.5)
    assert len(found) == 1
    det = found[0]
    assert det.score == pytest.approx(1 / (1 + math.exp(-2.0)))
    cx, cy = 1.5 / 12 + 0.1, 0.5 / 12 - 0.05
    np.testing.assert_allclose(det.box, [cx - 0.1, cy - 0.15, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(det.keypoints[0], [1.5 / 12, 0.5 / 12 + 0.1], atol=1e-6)
    assert decode(raw, logits, anchors, PALM_DECODE, min_score=0.9) == []


def _det(score: float, box, kp) -> Detection:
    return Detection(score, np.array(box, np.float32), np.array([kp], np.float32))


def test_weighted_nms_averages_overlapping_boxes_by_score():
    a = _det(0.9, [0.10, 0.10, 0.20, 0.20], [0.2, 0.2])
    b = _det(0.6, [0.12, 0.12, 0.20, 0.20], [0.3, 0.3])  # IoU with a = 0.0324/0.0476 = 0.68
    c = _det(0.8, [0.60, 0.60, 0.20, 0.20], [0.7, 0.7])  # far away: its own cluster
    out = weighted_nms([b, c, a], threshold=0.3)
    assert [d.score for d in out] == [0.9, 0.8]
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(out[0].box[:2], w @ [[0.10, 0.10], [0.12, 0.12]], atol=1e-6)
    np.testing.assert_allclose(out[0].box[2:], [0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(out[0].keypoints[0], w @ [[0.2, 0.2], [0.3, 0.3]], atol=1e-6)
    np.testing.assert_allclose(out[1].box, c.box, atol=1e-6)
    assert len(weighted_nms([a, b, c], threshold=0.9)) == 3  # nothing overlaps that much


# --------------------------------------------------------------------------- ROI and affine crop
def test_crop_and_projection_round_trip_on_a_rotated_roi():
    image = np.zeros((360, 640, 3), np.uint8)
    image[148:153, 398:403] = 255  # a 5x5 marker centred at (400, 150)
    roi = Roi(330.0, 190.0, 220.0, 220.0, math.radians(35))
    patch = crop(image, roi, 224, 224)
    ys, xs = np.nonzero(patch[:, :, 0] > 128)
    found = project_points(np.array([[xs.mean() / 224, ys.mean() / 224]]), roi)[0]
    assert np.linalg.norm(found - [400.5, 150.5]) < 1.0  # pixel centres: the marker spans 398..402
    points = np.array([[12.0, 40.0], [400.0, 150.0], [330.0, 190.0]])
    np.testing.assert_allclose(project_points(unproject_points(points, roi), roi), points, atol=1e-9)


def test_rect_transformation_shifts_along_the_rect_axes():
    upright = transform_rect(Roi(100, 100, 40, 20, 0.0), scale=2.0, shift_y=-0.5, square_long=True)
    assert (upright.cx, upright.cy, upright.width, upright.height) == (100, 90, 80, 80)
    turned = transform_rect(Roi(100, 100, 40, 20, math.pi / 2), scale=1.0, shift_y=-0.5)
    assert turned.cx == pytest.approx(110) and turned.cy == pytest.approx(100)


def test_rect_from_an_upright_hand_is_unrotated():
    hand = np.zeros((21, 2))
    hand[:, 0] = 200 + np.linspace(-30, 30, 21)
    hand[:, 1] = 300 - np.abs(np.linspace(-30, 30, 21)) * 2  # wrist (0) at the bottom, fingers up
    hand[0] = [200, 320]
    # MediaPipe's "PIP" indices 4, 6, 8 are within its 12-landmark subset: the index, middle, ring MCPs (5, 9, 13)
    hand[[5, 9, 13]] = [[185, 260], [200, 250], [215, 260]]
    assert abs(hand_rect_from_landmarks(hand).rotation) < 1e-6


# --------------------------------------------------------------------------- the real models
@pytest.fixture(scope="module")
def models():
    pytest.importorskip("onnxruntime")
    from export.landmark_models import ensure_landmark_onnx

    return ensure_landmark_onnx()


def _read(key: str) -> np.ndarray:
    import cv2

    return cv2.imread(str(resolve_or_skip([key])[key]))


def _hand_error(ours: np.ndarray, ref: np.ndarray, size: tuple[int, int]) -> float:
    scale = np.array(size, np.float64)
    hand = np.linalg.norm((ref[0, :2] - ref[9, :2]) * scale)
    return float(np.median(np.linalg.norm((ours[:, :2] - ref[:, :2]) * scale, axis=1)) / hand)


def test_onnx_hands_match_mediapipe_on_the_photos(models):
    from edge.onnx_landmarks.trackers import OnnxHandTracker, OnnxOptions

    cfg = LandmarkerConfig(mode="image", max_hands=1)
    with OnnxHandTracker(cfg, OnnxOptions(models)) as ours, HandTracker(cfg) as ref:
        for key in HAND_PHOTOS:
            frame = _read(key)
            a, b = ours.detect(frame)[0], ref.detect(frame)[0]
            assert a.present and b.present, key
            assert _hand_error(a.landmarks, b.landmarks, a.image_size) <= 0.02, key
            assert a.handedness == b.handedness, key
            assert np.abs(a.world_landmarks - b.world_landmarks).max() < 0.01, key


def test_onnx_hands_track_the_clip_like_mediapipe(models):
    from edge.capture import Capture, open_reader
    from edge.onnx_landmarks.trackers import OnnxHandTracker, OnnxOptions

    uri = f"file://{resolve_or_skip([CLIP])[CLIP]}"
    cfg = LandmarkerConfig(mode="video", max_hands=2)
    errors, agree = [], 0
    with (
        OnnxHandTracker(cfg, OnnxOptions(models)) as ours,
        HandTracker(cfg) as ref,
        Capture(open_reader(uri), pace="fast") as cap,
    ):
        for i in range(30):
            frame = cap.next(timeout=5.0)
            a = [h for h in ours.detect(frame.image, i * 33) if h.present]
            b = [h for h in ref.detect(frame.image, i * 33) if h.present]
            assert len(a) == len(b) == 1, i
            errors.append(_hand_error(a[0].landmarks, b[0].landmarks, a[0].image_size))
            agree += a[0].handedness == b[0].handedness
    assert np.median(errors) <= 0.02 and agree == 30


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = a[:3, :3] / np.linalg.norm(a[:3, 0]), b[:3, :3] / np.linalg.norm(b[:3, 0])
    return float(np.degrees(np.arccos(np.clip((np.trace(ra.T @ rb) - 1) / 2, -1, 1))))


def test_onnx_face_matches_mediapipe_on_the_photos(models):
    from edge.onnx_landmarks.trackers import OnnxFaceTracker, OnnxOptions

    cfg = LandmarkerConfig(mode="image")
    with OnnxFaceTracker(cfg, OnnxOptions(models)) as ours, FaceTracker(cfg) as ref:
        for key in FACE_PHOTOS:
            frame = _read(key)
            a, b = ours.detect(frame), ref.detect(frame)
            assert a.present and b.present, key
            scale = np.array(a.image_size, np.float64)
            iod = np.linalg.norm((b.landmarks[33, :2] - b.landmarks[263, :2]) * scale)
            err = np.median(np.linalg.norm((a.landmarks[:, :2] - b.landmarks[:, :2]) * scale, axis=1)) / iod
            assert err <= 0.02, key
            assert np.abs(a.blendshapes - b.blendshapes).mean() <= 0.02, key
            assert _rotation_error_deg(a.transform, b.transform) <= 2.0, key
            np.testing.assert_allclose(a.transform[:3, 3], b.transform[:3, 3], atol=0.5)  # cm


def test_canonical_face_is_read_from_the_task(models):
    from edge.onnx_landmarks.geometry import load_canonical_face, weighted_procrustes

    canonical, weights = load_canonical_face(models["geometry"])
    assert canonical.shape == (468, 3) and (weights > 0).sum() > 10
    # Procrustes recovers a known similarity transform
    angle = math.radians(20)
    rot = np.array([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    target = 1.7 * rot @ canonical.T + np.array([[1.0], [-2.0], [-30.0]])
    matrix = weighted_procrustes(canonical.T.astype(np.float64), target, weights.astype(np.float64))
    np.testing.assert_allclose(matrix[:3, :3], 1.7 * rot, atol=1e-6)
    np.testing.assert_allclose(matrix[:3, 3], [1.0, -2.0, -30.0], atol=1e-5)


# --------------------------------------------------------------------------- detection off the critical path
def test_slow_detector_does_not_slow_a_tracked_hand(models):
    """The palm detector is slowed artificially (0.6 s a call); with a hand tracked, frames stay fast."""
    from edge.capture import Capture, open_reader
    from edge.onnx_landmarks.trackers import OnnxHandTracker, OnnxOptions

    uri = f"file://{resolve_or_skip([CLIP])[CLIP]}"
    cfg = LandmarkerConfig(mode="video", max_hands=2)  # one hand in view: fewer than max, so detection is wanted
    calls = []
    with (
        OnnxHandTracker(cfg, OnnxOptions(models, detect_interval_s=0.0)) as tracker,
        Capture(open_reader(uri), pace="fast") as cap,
    ):
        frames = [cap.next(timeout=5.0).image for _ in range(25)]
        assert tracker.detect(frames[0], 0)[0].present  # nothing tracked yet: detected inline, fast detector
        fast = tracker.tracker.worker.detect

        def slow(rgb, count):
            calls.append(threading.current_thread().name)
            time.sleep(0.6)
            return fast(rgb, count)

        tracker.tracker.worker.detect = slow
        durations = []
        for i, frame in enumerate(frames[1:], start=1):
            t0 = time.perf_counter()
            hands = tracker.detect(frame, i * 33)
            durations.append(time.perf_counter() - t0)
            assert hands[0].present, i
    assert calls and all(name == "hand-detector" for name in calls)  # it ran, on its own thread
    assert max(durations) < 0.3, max(durations)  # never waited for a 0.6 s detection


# --------------------------------------------------------------------------- backend choice and fallbacks
@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Two real bundles (export.bundle) of a small gesture model: with and without the landmark ONNX models."""
    from export import bundle as bundle_writer
    from tests._export_fixtures import gesture_model_dir

    resolve_or_skip([HAND_PHOTOS[0]])
    root = tmp_path_factory.mktemp("bundles")
    model = {"gesture": gesture_model_dir(root / "gesture")}
    with_models, _ = bundle_writer.build(root / "with", model, version="lm", calib_rows=256)
    without, _ = bundle_writer.build(root / "without", model, version="nolm", calib_rows=256, landmark_onnx=False)
    return {"with": with_models, "without": without}


def test_bundle_without_landmark_models_runs_with_mediapipe(bundles, caplog):
    from edge.onnx_landmarks.stage import OnnxLandmarkStage, build_landmark_stage
    from edge.stages import MediaPipeStage
    from latentcast.bundle import open_bundle

    cfg = LandmarkerConfig(mode="image", backend="onnx", max_hands=1)
    with caplog.at_level(logging.WARNING):
        stage = build_landmark_stage(face=False, hands=True, landmarks=cfg, bundle=open_bundle(bundles["without"]))
    try:
        assert isinstance(stage, MediaPipeStage) and not isinstance(stage, OnnxLandmarkStage)
        assert sum("using mediapipe" in r.getMessage() for r in caplog.records) == 1
        assert stage.detect_hands(_read(HAND_PHOTOS[0]), 0)[0].present
    finally:
        stage.close()


def test_bundle_with_landmark_models_runs_them_and_a_tampered_one_is_refused(bundles, tmp_path):
    import shutil

    from edge.onnx_landmarks.stage import OnnxLandmarkStage, build_landmark_stage
    from latentcast.bundle import open_bundle
    from latentcast.errors import UserError

    bundle = open_bundle(bundles["with"])
    stage = build_landmark_stage(landmarks=LandmarkerConfig(mode="image", max_hands=1), bundle=bundle)  # default
    try:
        assert isinstance(stage, OnnxLandmarkStage)
        assert stage.hands.landmarks.session.path.is_relative_to(bundle.root)
        assert stage.detect_hands(_read(HAND_PHOTOS[0]), 0)[0].present
    finally:
        stage.close()
    copy = shutil.copytree(bundles["with"], tmp_path / bundles["with"].name)
    model = copy / "landmarks" / "hand_landmarks_detector.onnx"
    model.write_bytes(model.read_bytes()[:-16] + bytes(16))  # same size, different bytes
    with pytest.raises(UserError, match=r"hand_landmarks_detector\.onnx"):
        open_bundle(copy)


def test_onnx_backend_from_a_folder_of_converted_models(models):
    from edge.onnx_landmarks.stage import OnnxLandmarkStage, build_landmark_stage

    folder = models["hand_detector"].parent
    cfg = LandmarkerConfig(mode="image", backend="onnx", onnx_dir=str(folder), max_hands=1)
    stage = build_landmark_stage(face=True, hands=True, landmarks=cfg)
    try:
        assert isinstance(stage, OnnxLandmarkStage)
        frame = _read(HAND_PHOTOS[0])
        parts = stage.hand_parts(stage.detect_hands(frame, 0), frame.shape[1::-1])
        assert len(parts) == 1 and parts[0].features.shape == (42,)
    finally:
        stage.close()


def test_onnx_dir_without_models_is_one_clear_error(tmp_path):
    from edge.onnx_landmarks.stage import build_landmark_stage
    from latentcast.errors import UserError

    with pytest.raises(UserError, match="does not hold the five converted landmark models"):
        build_landmark_stage(landmarks=LandmarkerConfig(backend="onnx", onnx_dir=str(tmp_path)))


def test_unknown_backend_is_a_config_error():
    from edge.config import load_config
    from latentcast.errors import UserError

    with pytest.raises(UserError, match=r"landmarks\.backend"):
        load_config(overrides={"landmarks.backend": "tflite"})


def test_missing_provider_falls_back_with_one_log_line(caplog):
    from edge.onnx_landmarks import models as m

    m._warned.discard("TensorrtExecutionProvider")
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is available here: nothing to fall back from")
    with caplog.at_level(logging.WARNING):
        first = m.choose_providers(["tensorrt", "cpu"])
        second = m.choose_providers(["tensorrt", "cpu"])
    assert first == second == ["CPUExecutionProvider"]
    assert sum("TensorrtExecutionProvider is not available" in r.getMessage() for r in caplog.records) == 1


def test_onnx_face_follows_the_moving_face_clip_like_mediapipe(models, tmp_path):
    """VIDEO mode on motion (tracking, MediaPipe's landmark smoothing): the clip made by scripts/make_face_clip.py."""
    import cv2

    from edge.onnx_landmarks.trackers import OnnxFaceTracker, OnnxOptions
    from scripts.make_face_clip import write

    resolve_or_skip(["data/face_expressions/london_set/neutral/004_03.jpg"])
    clip = write(tmp_path / "face.avi", people=["004"], seconds_per_person=0.6)
    cap = cv2.VideoCapture(str(clip))
    cfg = LandmarkerConfig(mode="video")
    errors, rotations = [], []
    with OnnxFaceTracker(cfg, OnnxOptions(models)) as ours, FaceTracker(cfg) as ref:
        for i in range(18):
            ok, frame = cap.read()
            assert ok, i
            a, b = ours.detect(frame, i * 33), ref.detect(frame, i * 33)
            assert a.present == b.present, i  # both lose the face on the same frames (frame 10: mid-crossfade)
            if not b.present:
                continue
            scale = np.array(a.image_size, np.float64)
            iod = np.linalg.norm((b.landmarks[33, :2] - b.landmarks[263, :2]) * scale)
            errors.append(np.median(np.linalg.norm((a.landmarks[:, :2] - b.landmarks[:, :2]) * scale, axis=1)) / iod)
            rotations.append(_rotation_error_deg(a.transform, b.transform))
    assert len(errors) >= 15
    assert np.median(errors) <= 0.02 and np.median(rotations) <= 2.0


def test_prelu_rewrite_is_the_same_function():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edge.onnx_landmarks.models import _prelu_for_cpu

    slope = np.array([-0.5, 0.25, 1.5], np.float32).reshape(3, 1, 1)  # negative, below and above 1
    graph = helper.make_graph(
        [helper.make_node("PRelu", ["x", "a"], ["y"], name="p")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
        [numpy_helper.from_array(slope, "a")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 4)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert _prelu_for_cpu(model) == 1
    assert "PRelu" not in {n.op_type for n in model.graph.node}
    onnx.checker.check_model(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(after[0], before[0], atol=1e-6)


def test_an_empty_scene_is_searched_in_the_background_and_a_loss_inline():
    """The scheduling rule of RoiTracker, with a detector that records where and when it ran."""
    from edge.onnx_landmarks.tracker import RoiTracker

    calls: list[str] = []
    found = threading.Event()

    def detect(rgb, count):
        calls.append(threading.current_thread().name)
        if found.is_set():
            return [Roi(50, 50, 20, 20)]
        return []

    tracker = RoiTracker(detect, max_count=1, interval_s=0.0, name="t")
    frame = np.zeros((4, 4, 3), np.uint8)
    try:
        assert tracker.rois(frame) == [] and calls == ["MainThread"]  # first frame: inline
        tracker.update([])
        for _ in range(20):  # empty scene: never inline again
            assert tracker.rois(frame) == []
            tracker.update([])
            time.sleep(0.01)
        assert calls.count("MainThread") == 1 and calls.count("t-detector") >= 2
        found.set()  # a subject appears: the worker's result is used on a later frame
        deadline = time.monotonic() + 5
        while not (rois := tracker.rois(frame)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rois == [Roi(50, 50, 20, 20)]
        tracker.update(rois)
        tracker.update([])  # lost: the next frame looks inline at once
        inline = calls.count("MainThread")
        assert tracker.rois(frame) == [Roi(50, 50, 20, 20)] and calls.count("MainThread") == inline + 1
    finally:
        tracker.close()


def test_background_detection_waits_for_the_loop_to_publish():
    """An offered frame is detected once the loop says it is idle, or after interval_s without that word."""
    from edge.onnx_landmarks.tracker import RoiTracker

    started: list[float] = []
    done = threading.Event()

    def detect(rgb, count):
        started.append(time.monotonic())
        done.set()
        return []

    tracker = RoiTracker(detect, max_count=2, interval_s=0.6, name="t")
    frame = np.zeros((4, 4, 3), np.uint8)
    try:
        tracker.update([Roi(50, 50, 20, 20)])  # one tracked, two allowed: the frame goes to the worker
        offered = time.monotonic()
        tracker.rois(frame)
        time.sleep(0.2)
        assert not started  # held while the loop still works on the frame
        tracker.idle()  # the loop published it
        assert done.wait(2.0) and started[0] - offered < 0.45
        done.clear()
        time.sleep(0.7)  # past interval_s: the worker takes a new frame
        offered = time.monotonic()
        tracker.rois(frame)  # and never hears idle(): it starts on its own after interval_s
        assert done.wait(3.0) and started[1] - offered >= 0.5
    finally:
        tracker.close()


def test_engine_without_tensorrt_falls_back_to_onnxruntime(models, tmp_path, caplog):
    """A bundle's landmarks/<name>.engine is used only where TensorRT imports (Jetson); here: onnxruntime."""
    import importlib.util
    import shutil

    from edge.onnx_landmarks import models as m

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt imports here: the native runner would be tried")
    onnx_path = tmp_path / "hand_detector.onnx"
    shutil.copyfile(models["hand_detector"], onnx_path)
    onnx_path.with_suffix(".engine").write_bytes(b"stands in for an engine file; never loaded without TensorRT")
    m._warned.discard("tensorrt")
    with caplog.at_level(logging.WARNING):
        runner = m.open_model(onnx_path, providers=["tensorrt", "cpu"])
    assert isinstance(runner, m.ModelSession) and runner.provider == "CPUExecutionProvider"
    assert sum("native TensorRT is unavailable" in r.getMessage() for r in caplog.records) == 1


def test_without_a_bundle_the_cached_conversion_of_the_same_task_files_is_used(models):
    from edge.onnx_landmarks.stage import OnnxLandmarkStage, build_landmark_stage

    stage = build_landmark_stage(face=False, landmarks=LandmarkerConfig(mode="image"))  # the defaults: onnx
    try:
        assert isinstance(stage, OnnxLandmarkStage)
        assert stage.hands.landmarks.session.path.parent == models["hand_landmarks_detector"].parent
    finally:
        stage.close()
