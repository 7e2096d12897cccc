"""Renderer: retargeting on real hands, decode -> render, tracking lost -> idle -> recover, latency."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import renderer_support as support

from latentcast.open_set import UNKNOWN_NAME
from latentcast.protocol import LatentMessage
from renderer import retarget
from renderer.animate import Animator
from renderer.character import CharacterRenderer
from renderer.decode import BundleDecoders
from renderer.idle import IdleConfig, PriorIdle
from renderer.latency import LatencyTracker, percentiles, same_host
from renderer.params import FACE_SIZE, HAND_SIZE, VECTOR_SIZE, CharacterParams

DT = 1 / 30


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return support.make_bundle(tmp_path_factory.mktemp("bundle") / "latentcast-bundle-test")


@pytest.fixture(scope="module")
def decoders(bundle) -> BundleDecoders:
    return BundleDecoders.from_bundle(bundle)


def message(decoders, seq, hand: str, face: str, tracked=True) -> LatentMessage:
    return support.synthetic_message(
        seq, decoders.model_id, decoders.hand.classes.index(hand), support.FACE_CLASSES.index(face), tracked
    )


def test_finger_curls_separate_open_palms_from_fists_on_real_hands():
    from aae.hand_data import load_hand_set

    data = load_hand_set("baron105")
    open_palm = retarget.finger_curls(data.x[data.y == data.classes.index("open_palm")])
    fist = retarget.finger_curls(data.x[data.y == data.classes.index("closed_fist")])
    assert np.median(open_palm[:, 1:], axis=0).max() < 0.15  # four fingers straight
    assert np.median(fist[:, 1:], axis=0).min() > 0.6  # four fingers curled
    pointing = retarget.finger_curls(data.x[data.y == data.classes.index("pointing")])
    assert np.median(pointing[:, 1]) < 0.15 < np.median(pointing[:, 2])  # index out, middle curled


def test_face_controls_follow_blendshapes():
    neutral = retarget.face_controls({})
    assert all(v == 0.0 for v in neutral.values())
    c = retarget.face_controls({"eyeBlinkLeft": 0.9, "jawOpen": 0.5, "mouthSmileLeft": 0.7, "mouthSmileRight": 0.7,
                                "browDownRight": 0.6})  # fmt: skip
    assert c["blink_left"] == 1.0 and c["blink_right"] == 0.0
    assert c["mouth_open"] > 0.8 and c["smile"] > 0.9
    assert c["brow_right"] < -0.5 and c["brow_left"] == 0.0


def test_decode_then_render_changes_when_the_input_changes(decoders):
    drawer = CharacterRenderer(320, 180)
    frames, params = {}, {}
    for hand, face in (("open_palm", "neutral"), ("closed_fist", "neutral"), ("open_palm", "smile")):
        animator = Animator(decoders)
        for seq in range(20):  # let smoothing settle
            p = animator.update(message(decoders, seq, hand, face), DT)
        frames[hand, face], params[hand, face] = drawer.render(p), p
    base = frames["open_palm", "neutral"]
    assert params["open_palm", "neutral"].right_hand.gesture == "open_palm"
    assert max(params["open_palm", "neutral"].right_hand.curls[1:]) < 0.15
    assert min(params["closed_fist", "neutral"].right_hand.curls[1:]) > 0.6
    assert params["open_palm", "smile"].face.smile > 0.9 and params["open_palm", "neutral"].face.smile < 0.05
    for key in (("closed_fist", "neutral"), ("open_palm", "smile")):
        changed = np.any(frames[key] != base, axis=2)
        assert changed.sum() > 100, f"{key} should redraw the character"
    # The hand change redraws the hand, not the face; the smile redraws the face, not the hand.
    hand_change = np.any(frames["closed_fist", "neutral"] != base, axis=2)
    smile_change = np.any(frames["open_palm", "smile"] != base, axis=2)
    # The user's right hand (captured x = 0.3) is drawn mirrored, on the screen's right.
    assert hand_change[:, 190:].sum() > 500 and hand_change[:, :110].sum() == 0  # the other hand is untouched
    assert smile_change[:, 110:210].sum() > 50


def test_tracking_lost_goes_idle_then_recovers_smoothly(decoders):
    animator = Animator(decoders)
    trace = [animator.update(message(decoders, seq, "closed_fist", "smile"), DT) for seq in range(30)]
    tracked = trace[-1]
    assert tracked.idle < 0.05 and tracked.right_hand.gesture == "closed_fist"
    lost = [animator.update(None, DT) for _ in range(90)]  # 3 s of silence: the edge stopped
    assert lost[-1].idle > 0.95
    assert lost[-1].right_hand.gesture == ""  # idle hands carry no gesture label
    assert abs(lost[-1].right_hand.wrist_y - tracked.right_hand.wrist_y) > 0.1  # the hand went to rest
    assert animator.stats.idle_frames > 60
    back = [animator.update(message(decoders, 100 + i, "closed_fist", "smile"), DT) for i in range(30)]
    assert back[-1].idle < 0.05 and back[-1].right_hand.gesture == "closed_fist"
    # Head yaw follows the moving pose; the untracked left hand idles: compare the rest.
    face_and_right = np.r_[2:FACE_SIZE, FACE_SIZE + HAND_SIZE : VECTOR_SIZE]
    np.testing.assert_allclose(back[-1].to_vector()[face_and_right], tracked.to_vector()[face_and_right], atol=0.05)
    # Never a jump: between consecutive frames every parameter moves by a bounded amount
    # (blinks excepted: an idle blink closes the eyes in 75 ms on purpose).
    vectors = np.stack([p.to_vector() for p in trace[-1:] + lost + back])
    steps = np.abs(np.diff(vectors, axis=0))
    steps[:, 4:6] = 0.0
    assert steps.max() < 0.2


def test_tracking_status_not_ok_counts_as_lost(decoders):
    animator = Animator(decoders)
    for seq in range(30):
        animator.update(message(decoders, seq, "open_palm", "neutral"), DT)
    for seq in range(30, 120):  # the edge keeps publishing but sees nobody
        p = animator.update(message(decoders, seq, "open_palm", "neutral", tracked=False), DT)
    assert p.idle > 0.95


def test_latents_of_another_model_are_ignored_and_counted(decoders):
    animator = Animator(decoders)
    msg = message(decoders, 0, "closed_fist", "smile")
    msg.model_id = b"\x01" * 8
    for _ in range(10):
        p = animator.update(msg, DT)
    assert decoders.mismatched >= 10
    assert p.right_hand.gesture == "" and animator.stats.decoded_hands == 0
    assert p.face.present > 0.5  # pose and presence still animate the character


# A trained gesture card's block (runs/.../gesture/model_card.json): a high temperature, a low threshold.
OPEN_SET = {"temperature": 20.0, "min_confidence": 0.12, "max_recon_error": 0.04, "keep": 0.95, "unknown_label": -1}
FACE_OPEN_SET = {**OPEN_SET, "min_confidence": 0.5}  # 4 classes: flat is 0.25, one-hot at T = 20 about 0.57


@pytest.fixture(scope="module")
def open_set_decoders(tmp_path_factory) -> BundleDecoders:
    root = tmp_path_factory.mktemp("bundle_open_set") / "latentcast-bundle-open-set"
    blocks = {"gesture": OPEN_SET, "expression": FACE_OPEN_SET}
    return BundleDecoders.from_bundle(support.make_bundle(root, open_set=blocks))


def _settle(decoders, y_hand: np.ndarray, y_face: np.ndarray) -> CharacterParams:
    animator = Animator(decoders)
    for seq in range(20):
        msg = message(decoders, seq, "closed_fist", "smile")
        msg.hands[0].y, msg.face.y = y_hand, y_face
        p = animator.update(msg, DT)
    return p


def _label_drawn(drawer: CharacterRenderer, p: CharacterParams) -> bool:
    """Whether the drawing differs from the same parameters with every label removed."""
    bare = dataclasses.replace(
        p,
        face=dataclasses.replace(p.face, expression=""),
        right_hand=dataclasses.replace(p.right_hand, gesture=""),
    )
    return bool(np.any(drawer.render(p) != drawer.render(bare)))


def test_open_set_rule_in_the_card_decides_the_labels(decoders, open_set_decoders):
    assert open_set_decoders.hand.open_set["min_confidence"] == 0.12 and decoders.hand.open_set is None
    drawer = CharacterRenderer(320, 180)
    n_hand, n_face = len(open_set_decoders.hand.classes), len(support.FACE_CLASSES)
    flat_hand, flat_face = np.full(n_hand, 1 / n_hand, np.float32), np.full(n_face, 1 / n_face, np.float32)
    peaked_hand = np.eye(n_hand, dtype=np.float32)[open_set_decoders.hand.classes.index("closed_fist")]
    peaked_face = np.eye(n_face, dtype=np.float32)[support.FACE_CLASSES.index("smile")]

    flat = _settle(open_set_decoders, flat_hand, flat_face)
    assert flat.idle < 0.05 and flat.right_hand.present > 0.95  # tracked: the label is the rule's, not idle's
    assert flat.right_hand.gesture == UNKNOWN_NAME and flat.face.expression == UNKNOWN_NAME
    assert flat.right_hand.gesture_confidence == pytest.approx(1 / n_hand, rel=1e-4)
    assert not _label_drawn(drawer, flat)  # "unknown" is not drawn: no caption, no "face:" in the status line

    peaked = _settle(open_set_decoders, peaked_hand, peaked_face)
    assert peaked.right_hand.gesture == "closed_fist" and peaked.face.expression == "smile"
    # The temperature is applied: one-hot y (clipped at 1e-12) softened by T = 20, not the raw 1.0.
    other = 1e-12 ** (1 / 20)
    assert peaked.right_hand.gesture_confidence == pytest.approx(1 / (1 + (n_hand - 1) * other), rel=1e-3)
    assert peaked.right_hand.gesture_confidence < drawer.min_label_confidence  # ~0.28, yet the rule said known
    assert _label_drawn(drawer, peaked)

    # Without an open_set block, today's behaviour: the argmax class and its raw probability,
    # drawn only above the drawing's own threshold.
    plain = _settle(decoders, flat_hand, flat_face)
    assert plain.right_hand.gesture == decoders.hand.classes[0] and not plain.right_hand.gesture_open_set
    assert plain.right_hand.gesture_confidence == pytest.approx(1 / n_hand, rel=1e-4)
    assert plain.face.expression == support.FACE_CLASSES[0]
    assert _settle(decoders, peaked_hand, peaked_face).right_hand.gesture_confidence == pytest.approx(1.0)


def test_a_malformed_open_set_block_is_refused_when_the_bundle_loads(tmp_path):
    from latentcast.errors import UserError

    root = support.make_bundle(tmp_path / "bundle", open_set={"gesture": {"temperature": 2.0}})
    with pytest.raises(UserError, match=r"gesture model card.*min_confidence"):
        BundleDecoders.from_bundle(root)


def test_idle_z_stays_distributed_as_the_prior():
    rng = np.random.default_rng(1)
    idle = PriorIdle(["a", "neutral"], 4, rng, IdleConfig(z_time_constant_s=0.2, z_scale=1.0))
    zs = np.stack([idle.step(DT)[1] for _ in range(20000)])
    assert np.all(np.abs(zs.mean(axis=0)) < 0.15)
    assert np.all(np.abs(zs.std(axis=0) - 1.0) < 0.15)
    steps = np.abs(np.diff(zs, axis=0)).max()
    assert steps < 2.5  # a walk, not independent draws every frame


def test_character_vector_roundtrip():
    p = CharacterParams()
    v = np.arange(VECTOR_SIZE, dtype=np.float64) / VECTOR_SIZE
    q = p.with_vector(v)
    np.testing.assert_allclose(q.to_vector(), v)


def test_latency_percentiles_and_clock_offset_estimate():
    assert same_host("tcp://127.0.0.1:5555") and same_host("ipc:///tmp/x") and not same_host("tcp://jetson:5555")
    tracker = LatencyTracker(same_clock=False)
    offset = 5_000_000_000  # renderer clock is 5 s ahead of the edge's
    rng = np.random.default_rng(0)
    for seq in range(200):
        capture = seq * 33_000_000
        publish = capture + 10_000_000
        transit = 300_000 + int(rng.exponential(1_000_000))
        receive = publish + transit + offset
        tracker.received(seq, publish, receive)
        tracker.rendered(capture, publish, receive, receive, receive + 2_000_000)
    assert abs(tracker.offset_ns() - offset - 300_000) < 100_000
    s = tracker.summary()["capture_to_render"]
    assert 11.0 < s["p50_ms"] < 15.0 and s["p99_ms"] >= s["p95_ms"] >= s["p50_ms"]
    assert percentiles([]) == {"count": 0}
    gaps = LatencyTracker()
    for seq in (0, 1, 5, 6):
        gaps.received(seq, 0, 0)
    assert gaps.dropped == 3


def test_head_angles_follow_the_wire_conventions():
    a = retarget.head_angles(np.array([30.0, 10.0, -5.0]))
    assert math.isclose(a["yaw"], math.radians(30)) and math.isclose(a["pitch"], -math.radians(10))
    assert math.isclose(a["roll"], math.radians(-5))


def test_outputs_by_target(tmp_path, monkeypatch):
    import cv2

    from latentcast.errors import UserError
    from renderer.output import PngFolderOutput, VideoFileOutput, open_output

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert open_output(None, 30.0) is None  # headless and no target: nothing to show
    with pytest.raises(UserError, match="no display"):
        open_output("display://0", 30.0)
    with pytest.raises(UserError, match=r"\.mp4"):
        open_output(str(tmp_path / "clip.gif"), 30.0)
    frame = CharacterRenderer(160, 90).render(CharacterParams())
    pngs = open_output(str(tmp_path / "frames"), 30.0)
    assert isinstance(pngs, PngFolderOutput)
    for _ in range(3):
        pngs.write(frame)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [f"frame_00000{i}.png" for i in range(3)]
    video = open_output(str(tmp_path / "clip.mp4"), 30.0)
    assert isinstance(video, VideoFileOutput)
    video.write(frame)
    video.close()
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    ok, decoded = capture.read()
    assert ok and decoded.shape == frame.shape
