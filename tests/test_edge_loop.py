"""The whole edge loop with real MediaPipe: the CLI on the hand clip, camera loss, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture import Capture
from edge.filters import OneEuroParams
from edge.loop import EdgeLoop, HandPart, assign_hand_slots
from edge.publisher import Publisher
from latentcast.assets import resolve
from latentcast.protocol import NO_MODEL, Handedness, TrackingStatus
from latentcast.subscriber import LatentSubscriber

ROOT = Path(__file__).resolve().parents[1]
CLIP = "data/video/hand_landmarker_test_video.mp4"


def edge_cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "edge.run", "--quiet", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_endpoint() -> str:
    import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PUB)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(linger=0)
    return f"tcp://127.0.0.1:{port}"


def collect(sub: LatentSubscriber, proc: subprocess.Popen, timeout_s: float) -> list:
    messages, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline and (proc.poll() is None or sub.socket.poll(100)):
        msg = sub.recv(100)
        if msg is not None:
            messages.append(msg)
    return messages


def run_edge(*args: str, timeout_s: float = 60) -> tuple[list, str]:
    """The edge CLI publishing to a subscriber in this process: (messages received, stderr); exit 0 asserted."""
    endpoint = free_endpoint()
    with LatentSubscriber(endpoint) as sub:
        proc = edge_cli(*args, "--endpoint", endpoint)
        messages = collect(sub, proc, timeout_s=timeout_s)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return messages, err


def test_cli_on_the_hand_clip_publishes_present_hands_for_most_frames():
    messages, err = run_edge("--source", f"file://{resolve(CLIP)}", "--fast", "--frames", "80")
    assert "80 frames published" in err
    assert len(messages) >= 40, f"subscriber got only {len(messages)} messages"
    with_hand = [m for m in messages if any(h.present for h in m.hands)]
    assert len(with_hand) >= 0.8 * len(messages)
    for msg in messages:
        assert msg.model_id == NO_MODEL  # no bundle: presence and pose only, empty latents
        assert all(h.y.size == 0 and h.z.size == 0 for h in msg.hands)
        assert [h.handedness for h in msg.hands] == [Handedness.LEFT, Handedness.RIGHT]
        assert msg.publish_ns >= msg.capture_ns
    for msg in with_hand:
        assert msg.tracking == TrackingStatus.OK
        wrist = next(h.wrist for h in msg.hands if h.present)
        assert 0.0 <= wrist[0] <= 1.0 and 0.0 <= wrist[1] <= 1.0


def test_sigterm_shuts_the_cli_down_cleanly():
    endpoint = free_endpoint()
    with LatentSubscriber(endpoint) as sub:
        proc = edge_cli("--source", str(resolve(CLIP)), "--endpoint", endpoint, "--loop-source")
        assert sub.recv(30_000) is not None, "the CLI never published"
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("edge.run ignored SIGTERM")
    assert proc.returncode == 0, err
    assert "SIGTERM received" in err and "stopped:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("source", "message"),
    [("csi://front", "error: source 'csi://front'"), ("not-a-video.mp4", "cannot open video source")],
)
def test_cli_user_mistakes_are_one_line_errors(tmp_path, source, message):
    if source.endswith(".mp4"):
        (tmp_path / source).write_text("these bytes are not a video")
        source = str(tmp_path / source)
    proc = edge_cli("--source", source, "--endpoint", free_endpoint())
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert message in err and "Traceback" not in err


class FakeCameraDevice:
    """Stands in for a camera (none exists here): serves a real photo, fails after `fail_after`
    frames, refuses `refusals` reconnects, then serves again."""

    live = True
    fps = 30.0

    def __init__(self, image: np.ndarray, fail_after: int, refusals: int) -> None:
        self.image, self.fail_after, self.refusals = image, fail_after, refusals
        self.opens = self.served = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1 and self.refusals > 0:
            self.refusals -= 1
            raise OSError("fake camera device unplugged")

    def read(self):
        time.sleep(1 / self.fps)
        if self.served == self.fail_after and self.opens == 1:
            return None
        self.served += 1
        return self.image.copy()

    def close(self) -> None:
        pass


def test_fake_camera_device_loss_publishes_source_lost_then_tracking_recovers():
    from edge.stages import MediaPipeStage

    image = cv2.imread(str(resolve("data/images/hands/hand_thumb_up.jpg")))
    device = FakeCameraDevice(image, fail_after=8, refusals=4)
    capture = Capture(device, backoff_s=(0.1, 0.2))
    landmarks = MediaPipeStage(face=False, hands=True)
    publisher = Publisher("tcp://127.0.0.1:0")
    statuses = []
    try:
        with LatentSubscriber(publisher.bound_endpoint) as sub:
            time.sleep(0.3)
            loop = EdgeLoop(capture, landmarks, publisher, filter_params=OneEuroParams())
            capture.start()
            runner = threading.Thread(target=loop.run, kwargs={"max_frames": 20})
            runner.start()
            while runner.is_alive() or sub.socket.poll(200):
                msg = sub.recv(50)
                if msg is not None:
                    statuses.append(msg.tracking)
            runner.join()
            loop.close()
    finally:
        capture.stop()
        landmarks.close()
        publisher.close()
    assert loop.stats.frames >= 20 and loop.stats.lost_messages >= 1
    first_lost = statuses.index(TrackingStatus.SOURCE_LOST)
    assert TrackingStatus.OK in statuses[:first_lost]
    assert TrackingStatus.OK in statuses[first_lost:], "tracking did not come back after the camera did"
    assert capture.stats.failures == 1 and capture.stats.reconnects == 1


def test_hand_slots_are_left_then_right_and_duplicates_take_the_free_slot():
    def hand(side, score):
        return HandPart(np.zeros(42, np.float32), side, np.zeros(3, np.float32), score, np.zeros((21, 2)))

    right, left, right2 = hand(Handedness.RIGHT, 0.9), hand(Handedness.LEFT, 0.8), hand(Handedness.RIGHT, 0.7)
    assert assign_hand_slots([right, left], 2) == [left, right]
    assert assign_hand_slots([right2, right], 2) == [right2, right]
    assert assign_hand_slots([right2, right], 1) == [None, right]


@pytest.fixture(scope="module")
def gesture_bundle(tmp_path_factory):
    """A real bundle: a small gesture AAE trained on the CSV features, exported and INT8-quantized."""
    pytest.importorskip("torch")
    from _export_fixtures import gesture_model_dir

    from export import bundle as bundle_writer

    root = tmp_path_factory.mktemp("edge_bundle")
    directory, _ = bundle_writer.build(
        root / "out", {"gesture": gesture_model_dir(root / "gesture")}, version="edge", calib_rows=128
    )
    return directory


def test_cli_with_a_bundle_publishes_gesture_latents_and_the_model_identity(gesture_bundle):
    from latentcast.bundle import MANIFEST
    from latentcast.protocol import model_id_from_manifest

    messages, _ = run_edge(
        "--source", f"file://{resolve(CLIP)}", "--bundle", str(gesture_bundle), "--fast", "--frames", "40", "--no-face"
    )
    present = [h for m in messages for h in m.hands if h.present]
    assert len(present) >= 20
    expected_id = model_id_from_manifest((gesture_bundle / MANIFEST).read_bytes())
    assert all(m.model_id == expected_id for m in messages)
    for hand in present:
        assert hand.y.shape == (11,) and hand.z.shape == (4,)  # the bundle's gesture classes and code size
        assert abs(float(hand.y.sum()) - 1.0) < 1e-2 and (hand.y >= 0).all()  # INT8 softmax: ~1e-3 off
    assert all(not m.face.present and m.face.y.size == 0 for m in messages)


def test_preview_topic_carries_a_jpeg_of_the_frame_on_its_own_socket():
    from edge.capture import open_reader
    from edge.stages import MediaPipeStage
    from latentcast.protocol import TOPIC_PREVIEW

    capture = Capture(open_reader(str(resolve(CLIP))), pace="fast")
    landmarks = MediaPipeStage(face=False, hands=True)
    publisher, preview = Publisher("tcp://127.0.0.1:0"), Publisher("tcp://127.0.0.1:0")
    try:
        with LatentSubscriber(preview.bound_endpoint, topic=TOPIC_PREVIEW) as sub:
            time.sleep(0.3)
            loop = EdgeLoop(capture, landmarks, publisher, preview=preview)
            capture.start()
            got = None
            for _ in range(60):
                loop.run(max_frames=loop.stats.frames + 1)
                got = got or sub.recv(20)
            loop.close()
    finally:
        capture.stop()
        landmarks.close()
        publisher.close()
        preview.close()
    assert got is not None, "no preview arrived"
    image = cv2.imdecode(np.frombuffer(got.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3)
    assert publisher.stats.sent >= 60 and preview.stats.sent >= 1


def test_neutral_calibration_is_applied_to_live_face_features(tmp_path):
    """A calibration file named in the config shifts the real face features before the encoder."""
    from edge.stages import MediaPipeStage
    from latentcast.features import FACE_FEATURE_DIM
    from latentcast.neutral import NeutralCalibration

    frame = cv2.imread(str(resolve("data/images/faces/sergey.png")))
    plain = MediaPipeStage(face=True, hands=False, mode="image")
    try:
        raw = plain.detect_face(frame, 0)
        uncalibrated = plain.face_part(raw, raw.image_size).features
    finally:
        plain.close()
    dim = FACE_FEATURE_DIM
    calibration = NeutralCalibration(np.full(dim, 0.1, np.float32), np.ones(dim, np.float32), np.zeros(dim, np.float32))
    path = calibration.save(tmp_path / "me.neutral.json")

    calibrated_stage = MediaPipeStage(face=True, hands=False, mode="image", face_neutral=str(path))
    try:
        calibrated = calibrated_stage.face_part(raw, raw.image_size).features
    finally:
        calibrated_stage.close()
    np.testing.assert_allclose(calibrated, np.clip(uncalibrated - 0.1, -1, 1), atol=1e-6)


def test_missing_neutral_calibration_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edge.run", "--source", str(tmp_path), "--neutral", str(tmp_path / "absent.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "absent.json does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
