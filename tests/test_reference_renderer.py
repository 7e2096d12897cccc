"""The renderer's motion math against closed forms written here, and the boundary of each of its rules.

- smoothing: a first-order system `x' = (target - x) / tau` has the exact step `1 - exp(-dt/tau)`; two
  half steps equal one whole step (frame-rate independence); the hold/fade rule of TrackingBlend at its
  boundary; VALUE_LIMIT exactly is kept, one float past it is refused.
- idle: the Ornstein-Uhlenbeck step `z' = a z + sqrt(1 - a^2) n`, `a = exp(-dt/T)` (stationary N(0, I)),
  replayed here with the same random stream; class holds drawn from the documented ranges; blink triangle.
- retarget: finger curl from the span/bone ratio on hand-made straight and folded fingers, the thumb's own
  curled ratio, direction mirrored for right hands, blendshape gains and ramps by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from latentcast.features import FEATURE_BLENDSHAPES
from renderer import retarget, smoothing
from renderer.idle import CALM_CLASS_NAMES, IdleConfig, IdleFace, IdleHands, PriorIdle
from renderer.params import FACE_SIZE, HAND_SIZE, VECTOR_SIZE

# ----------------------------------------------------------------------------- smoothing


@pytest.mark.parametrize(("dt", "tau"), [(1 / 30, 0.08), (0.1, 0.03), (0.005, 0.6), (2.0, 0.05)])
def test_approach_is_the_exact_first_order_step(dt, tau):
    cur, tgt = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 3.0])
    want = tgt + (cur - tgt) * math.exp(-dt / tau)
    np.testing.assert_allclose(smoothing.approach(cur, tgt, dt, tau), want, rtol=1e-12, atol=1e-12)
    half = smoothing.approach(smoothing.approach(cur, tgt, dt / 2, tau), tgt, dt / 2, tau)
    np.testing.assert_allclose(half, want, rtol=1e-9, atol=1e-12)  # 2 frames at 2x the rate: the same motion


def test_approach_with_bad_dt_or_tiny_tau():
    cur, tgt = np.array([0.5]), np.array([1.0])
    for dt in (0.0, -0.1, math.nan, math.inf, -math.inf):
        np.testing.assert_array_equal(smoothing.approach(cur, tgt, dt, 0.1), cur)  # no time passed
    np.testing.assert_allclose(smoothing.approach(cur, tgt, 1e-3, 0.0), tgt)  # tau 0 -> 1e-6: reaches the target
    assert [smoothing.safe_dt(x) for x in (0.25, 0.0, -1.0, math.nan, math.inf)] == [0.25, 0.0, 0.0, 0.0, 0.0]


def test_keep_finite_at_the_value_limit():
    lim = smoothing.VALUE_LIMIT
    old = np.array([7.0, 7.0, 7.0, 7.0, 7.0, 7.0])
    new = np.array([lim, -lim, np.nextafter(lim, np.inf), -np.nextafter(lim, np.inf), np.nan, np.inf])
    np.testing.assert_array_equal(smoothing.keep_finite(new, old), [lim, -lim, 7.0, 7.0, 7.0, 7.0])
    ints = smoothing.keep_finite(np.array([1, 2]), np.zeros(2))
    assert ints.dtype == np.float64 and ints.tolist() == [1.0, 2.0]
    fine = np.array([1.0, 2.0])
    assert smoothing.keep_finite(fine, np.zeros(2)).dtype == np.float64
    np.testing.assert_array_equal(smoothing.keep_finite(fine, np.zeros(2)), fine)


def test_default_time_constants_keep_blinks_crisp_and_let_the_head_glide():
    tau = smoothing.default_time_constants()
    assert tau.shape == (VECTOR_SIZE,) and (tau > 0).all()
    face = tau[:FACE_SIZE]
    assert face[4] == face[5] == 0.03 and face[4] < face[0]  # blinks faster than the head
    # presentation smoothing only (the edge filters already): every time constant under 100 ms, or it lags
    assert tau.max() <= 0.1
    np.testing.assert_array_equal(tau[FACE_SIZE : FACE_SIZE + HAND_SIZE], tau[FACE_SIZE + HAND_SIZE :])  # both hands


def test_param_smoother_first_sample_passes_then_follows_the_closed_form():
    tau = np.full(VECTOR_SIZE, 0.1)
    s = smoothing.ParamSmoother(tau)
    first = np.linspace(-1, 1, VECTOR_SIZE)
    np.testing.assert_array_equal(s.update(first, 0.5), first)
    target = np.zeros(VECTOR_SIZE)
    np.testing.assert_allclose(s.update(target, 0.05), first * math.exp(-0.5), rtol=1e-12)
    bad = target.copy()
    bad[3] = np.nan
    out = s.update(bad, 0.05)
    assert np.isfinite(out).all() and out[3] == pytest.approx(first[3] * math.exp(-0.5))  # NaN: the value holds
    assert out[4] == pytest.approx(first[4] * math.exp(-1.0))  # the others keep approaching
    first_bad = smoothing.ParamSmoother(tau).update(np.array([np.inf] + [1.0] * (VECTOR_SIZE - 1)), 0.1)
    assert first_bad[0] == 0.0 and first_bad[1] == 1.0  # a bad first sample starts at 0, never Inf
    assert first_bad.dtype == np.float64
    int_first = smoothing.ParamSmoother(np.ones(VECTOR_SIZE, int)).update(np.ones(VECTOR_SIZE, int), 0.1)
    assert int_first.dtype == np.float64
    assert smoothing.ParamSmoother().tau.shape == (VECTOR_SIZE,)
    assert s.update(target, 0.05) is not s.state  # a copy: the caller cannot poison the state


def test_tracking_blend_holds_then_fades_with_the_documented_time_constants():
    cfg = smoothing.BlendConfig(hold_s=0.25, fade_out_s=0.6, fade_in_s=0.15)
    blend = smoothing.TrackingBlend(cfg)
    tracked, idle = np.full(VECTOR_SIZE, 1.0), np.full(VECTOR_SIZE, -1.0)
    face_only = np.array([True, False, False])
    out = blend.update(tracked, face_only, idle, 0.1)
    w = 1 - math.exp(-0.1 / 0.15)  # weight rises from 0 with fade_in_s
    assert blend.weights[0] == pytest.approx(w) and blend.weights[1] == 0.0 == blend.weights[2]
    np.testing.assert_allclose(out[:FACE_SIZE], w * 1 + (1 - w) * -1)
    np.testing.assert_allclose(out[FACE_SIZE:], -1.0)  # never-seen hands stay idle
    assert blend.idle_fraction == pytest.approx(1 - w)
    for _ in range(40):
        blend.update(tracked, face_only, idle, 0.1)
    assert blend.weights[0] == pytest.approx(1.0, abs=1e-6)
    # Lost: for hold_s (0.25 s, boundary included) the weight still rises towards 1 with fade_in_s ...
    gone = np.array([False, False, False])
    before = blend.weights[0]
    blend.update(np.zeros(VECTOR_SIZE), gone, idle, 0.125)
    blend.update(np.zeros(VECTOR_SIZE), gone, idle, 0.125)  # since_seen == hold_s exactly: still held
    assert blend.weights[0] == pytest.approx(before + (1 - before) * (1 - math.exp(-0.25 / 0.15)))
    # ... then decays towards 0 with fade_out_s, showing the LAST TRACKED values, not the lost frame's zeros
    w0 = blend.weights[0]
    out = blend.update(np.zeros(VECTOR_SIZE), gone, idle, 0.1)
    assert blend.weights[0] == pytest.approx(w0 * math.exp(-0.1 / 0.6))
    np.testing.assert_allclose(out[:FACE_SIZE], blend.weights[0] * 1 + (1 - blend.weights[0]) * -1)
    # bad values: a NaN tracked entry keeps the last tracked value, a NaN idle entry becomes 0
    blend2 = smoothing.TrackingBlend(cfg)
    t2 = tracked.copy()
    t2[0] = np.nan
    i2 = idle.copy()
    i2[FACE_SIZE] = np.nan
    out = blend2.update(t2, np.array([True, False, False]), i2, 0.1)
    assert np.isfinite(out).all() and out[FACE_SIZE] == 0.0


def test_tracking_blend_parts_cover_the_vector_in_order():
    parts = smoothing.TrackingBlend.PARTS
    assert parts[0] == slice(0, FACE_SIZE) and parts[2].stop == VECTOR_SIZE
    assert parts[1] == slice(FACE_SIZE, FACE_SIZE + HAND_SIZE) and parts[2].start == FACE_SIZE + HAND_SIZE
    blend = smoothing.TrackingBlend()
    assert blend.config == smoothing.BlendConfig() and blend.idle_fraction == 1.0
    assert blend.weights.shape == blend.since_seen.shape == (3,)  # face, left hand, right hand
    out = blend.update(np.full(VECTOR_SIZE, 2.0), np.array([False, False, True]), np.zeros(VECTOR_SIZE), 10.0)
    np.testing.assert_allclose(out[: FACE_SIZE + HAND_SIZE], 0.0)
    np.testing.assert_allclose(out[FACE_SIZE + HAND_SIZE :], 2.0)  # dt 10 s >> fade_in: the right hand is tracked


# ----------------------------------------------------------------------------- idle


def test_prior_idle_z_is_the_exact_ornstein_uhlenbeck_step():
    cfg = IdleConfig(z_time_constant_s=2.0, z_scale=0.5)
    classes = ["fist", "open_palm", "ok"]
    idle = PriorIdle(classes, 3, np.random.default_rng(5), cfg)
    replay = np.random.default_rng(5)
    z = replay.standard_normal(3)
    assert idle.calm == [1]
    replay.random()  # _pick_class: calm or not
    calm = idle.class_index in idle.calm
    _ = replay.choice([1]) if calm else replay.integers(3)
    replay.uniform(*(cfg.class_hold_s if calm else cfg.lively_hold_s))
    for dt in (0.1, 0.033, 0.5):
        y, zz = idle.step(dt)
        a = math.exp(-dt / 2.0)
        z = a * z + math.sqrt(1 - a * a) * replay.standard_normal(3)
        np.testing.assert_allclose(zz, (0.5 * z).astype(np.float32), rtol=1e-6)
        assert y.dtype == np.float32 and y.sum() == 1.0 and y[idle.class_index] == 1.0
    assert idle.class_name == classes[idle.class_index]


def test_prior_idle_z_stays_n01_at_any_frame_rate_and_holds_classes_in_range():
    cfg = IdleConfig(z_scale=1.0)
    for dt in (1 / 144, 1 / 10):
        idle = PriorIdle(["neutral", "smile"], 2, np.random.default_rng(1), cfg)
        zs = np.array([idle.step(dt)[1] for _ in range(20000)])
        # a long run of an OU process with T = 2.5 s: about 20000 * dt / 2.5 independent samples
        n_eff = 20000 * dt / 2.5
        assert abs(zs.mean()) < 4 / math.sqrt(n_eff) and abs(zs.std() - 1.0) < 4 / math.sqrt(n_eff) + 0.05


def test_prior_idle_class_holds_come_from_their_ranges():
    cfg = IdleConfig(class_hold_s=(4.0, 9.0), lively_hold_s=(1.0, 2.5), calm_probability=0.85)
    idle = PriorIdle(["neutral", "a", "b", "c"], 2, np.random.default_rng(3), cfg)
    holds: dict[bool, list[float]] = {True: [], False: []}
    picks, calm_picks = 0, 0
    for _ in range(40000):
        before = idle.hold_left
        _, z = idle.step(0.01)
        assert z.dtype == np.float32
        if idle.hold_left > before:  # a new pick: its hold was just drawn from its class's range
            calm = idle.class_index == 0
            holds[calm].append(idle.hold_left)
            picks, calm_picks = picks + 1, calm_picks + calm
    assert min(holds[True]) >= 4.0 and max(holds[True]) <= 9.0
    assert min(holds[False]) >= 1.0 and max(holds[False]) <= 2.5
    # calm picked with probability 0.85 + 0.15 / 4 (a uniform pick can land on it too): 0.8875
    assert abs(calm_picks / picks - 0.8875) < 4 * math.sqrt(0.8875 * 0.1125 / picks)


def test_prior_idle_without_a_calm_class_picks_uniformly_and_holds_long():
    idle = PriorIdle(["a", "b"], 2, np.random.default_rng(0))
    assert idle.calm == [] and 4.0 <= idle.hold_left <= 9.0
    assert {"neutral", "open_palm", "relaxed"} <= set(CALM_CLASS_NAMES)
    assert PriorIdle(["Neutral"], 1, np.random.default_rng(0)).calm == [0]  # names compared lower-case


def test_idle_face_blinks_a_150_ms_triangle_and_sways_within_bounds():
    face = IdleFace(np.random.default_rng(2))
    first_blink = face.next_blink
    assert 2.0 <= first_blink <= 5.0
    t, blinks, peak = 0.0, [], 0.0
    while t < first_blink + 0.3:
        out = face.step(0.005)
        t += 0.005
        blinks.append((t, out["blink"]))
        assert abs(out["yaw"]) <= 0.12 and abs(out["pitch"]) <= 0.05 and abs(out["roll"]) <= 0.04
        peak = max(peak, out["blink"])
    closed = [tt for tt, b in blinks if b > 0]
    assert closed[0] == pytest.approx(first_blink, abs=0.011)
    assert closed[-1] - closed[0] == pytest.approx(0.15, abs=0.011) and peak > 0.9
    assert 2.5 <= face.next_blink + (t - first_blink) <= 6.0 + 0.011


def test_idle_face_and_hands_are_the_documented_sways_replayed():
    """Same seed, the documented draws (phases in [0, 2 pi), first blink in [2, 5] s, next in [2.5, 6] s)."""
    face, replay = IdleFace(np.random.default_rng(8)), np.random.default_rng(8)
    phase = replay.uniform(0, 2 * math.pi, size=3)
    next_blink = float(replay.uniform(2.0, 5.0))
    assert face.next_blink == next_blink
    t, blink_start = 0.0, None
    for dt in [0.1] * 60 + [0.013] * 200:
        out = face.step(dt)
        t += dt
        assert out["yaw"] == pytest.approx(0.12 * math.sin(0.5 * t + phase[0]), abs=1e-12)
        assert out["pitch"] == pytest.approx(0.05 * math.sin(0.37 * t + phase[1]), abs=1e-12)
        assert out["roll"] == pytest.approx(0.04 * math.sin(0.29 * t + phase[2]), abs=1e-12)
        next_blink -= dt
        if next_blink <= 0.0:
            blink_start = t - dt  # the blink clock starts at 0 and this step's dt is added
            next_blink = float(replay.uniform(2.5, 6.0))
            assert face.next_blink == next_blink
        if blink_start is not None:
            since = t - blink_start
            assert out["blink"] == pytest.approx(max(0.0, 1.0 - abs(since - 0.075) / 0.075), abs=1e-9)
    assert blink_start is not None
    hands, replay = IdleHands(np.random.default_rng(9)), np.random.default_rng(9)
    p = replay.uniform(0, 2 * math.pi, size=4)
    t = 0.0
    for dt in (0.5, 1.0, 0.25, 3.0):
        pos = hands.step(dt)
        t += dt
        want_left = (0.8 + 0.02 * math.sin(0.6 * t + p[0]), 0.82 + 0.02 * math.sin(0.8 * t + p[1]))
        want_right = (0.2 + 0.02 * math.sin(0.55 * t + p[2]), 0.82 + 0.02 * math.sin(0.7 * t + p[3]))
        assert pos["left"] == pytest.approx(want_left, abs=1e-12)
        assert pos["right"] == pytest.approx(want_right, abs=1e-12)


def test_idle_hands_rest_low_on_their_own_sides():
    hands = IdleHands(np.random.default_rng(4))
    for _ in range(500):
        pos = hands.step(0.05)
        assert abs(pos["left"][0] - 0.8) <= 0.02 and abs(pos["right"][0] - 0.2) <= 0.02
        assert abs(pos["left"][1] - 0.82) <= 0.02 and abs(pos["right"][1] - 0.82) <= 0.02


# ----------------------------------------------------------------------------- retarget


def straight_hand() -> np.ndarray:
    """21 points: wrist at 0, five straight fingers pointing up (y down), unit segments."""
    pts = np.zeros((21, 2))
    for f, chain in enumerate(retarget.FINGER_CHAINS):
        x = -0.6 + 0.3 * f
        for k, idx in enumerate(chain):
            pts[idx] = (x, -1.0 - k)
    return pts


def fold(pts: np.ndarray, finger: int, ratio: float) -> np.ndarray:
    """Fold a finger so that base-to-tip span / bone sum == ratio (3 unit bones, so span = 3 * ratio).

    Two bones straight up, the last at angle t from up: span^2 = (2 + cos t)^2 + sin^2 t = 5 + 4 cos t.
    """
    out = pts.copy()
    chain = retarget.FINGER_CHAINS[finger]
    base = out[chain[0]].copy()
    theta = math.acos(max(-1.0, min(1.0, ((3.0 * ratio) ** 2 - 5.0) / 4.0)))
    out[chain[1]] = base + np.array([0.0, -1.0])
    out[chain[2]] = base + np.array([0.0, -2.0])
    out[chain[3]] = out[chain[2]] + np.array([math.sin(theta), -math.cos(theta)])
    return out


def test_finger_curls_follow_the_span_over_bone_ratio():
    pts = straight_hand()
    feats = pts.reshape(-1)
    np.testing.assert_allclose(retarget.finger_curls(feats), 0.0, atol=1e-12)
    for finger in range(5):
        for target_curl in (0.25, 0.5, 1.0):
            ratio = 1.0 - target_curl * (1.0 - retarget.CURLED_RATIO[finger])
            if 3.0 * ratio < 1.0:  # the two-bone fold cannot reach it: skip
                continue
            curls = retarget.finger_curls(fold(pts, finger, ratio).reshape(-1))
            assert curls[finger] == pytest.approx(target_curl, abs=1e-9)
            assert np.delete(curls, finger).max() == pytest.approx(0.0, abs=1e-12)  # the others stay straight
    fist = fold(pts, 1, 0.34).reshape(-1)  # beyond the curled ratio: clipped to 1
    assert retarget.finger_curls(fist)[1] == 1.0
    batch = retarget.finger_curls(np.stack([feats, fold(pts, 2, 0.725).reshape(-1)]))
    assert batch.shape == (2, 5) and batch[1, 2] == pytest.approx(0.5)


def test_the_thumb_folds_less_than_the_fingers():
    assert retarget.CURLED_RATIO[0] > retarget.CURLED_RATIO[1:].max()
    assert retarget.hand_points(np.arange(42.0)).shape == (21, 2)
    assert retarget.hand_points(np.arange(84.0).reshape(2, 42))[1, 0].tolist() == [42.0, 43.0]


def test_hand_direction_wrist_to_middle_knuckle_mirrored_for_right_hands():
    pts = np.full((21, 2), 0.7)  # every other point elsewhere: only the wrist (0) and middle knuckle (9) count
    pts[0] = (0.1, 0.2)
    pts[9] = (0.1 + 0.3, 0.2 - 0.4)  # features are in [-1, 1]: the vector is shorter than 1
    feats = pts.reshape(-1)
    assert retarget.hand_direction(feats, "Left") == pytest.approx((0.6, -0.8))
    assert retarget.hand_direction(feats, "Right") == pytest.approx((-0.6, -0.8))
    assert retarget.hand_direction(np.zeros(42), "Left") == (0.0, -1.0)  # degenerate: pointing up
    tiny = np.zeros((21, 2))
    tiny[9] = (2e-6, 0.0)
    assert retarget.hand_direction(tiny.reshape(-1), "Left") == pytest.approx((1.0, 0.0))  # above the 1e-6 floor


def test_blendshapes_from_features_undo_the_minus_one_to_one_scaling():
    feats = np.zeros(len(FEATURE_BLENDSHAPES) + 10)
    feats[0], feats[1], feats[2], feats[4] = -1.0, 1.0, 3.0, -3.0
    out = retarget.blendshapes_from_features(feats)
    assert list(out) == list(FEATURE_BLENDSHAPES)
    names = list(FEATURE_BLENDSHAPES)
    assert out[names[0]] == 0.0 and out[names[1]] == 1.0 and out[names[2]] == 1.0 and out[names[3]] == 0.5
    assert out[names[4]] == 0.0  # clipped at 0 too
    with pytest.raises(ValueError):
        retarget.blendshapes_from_features(np.zeros(10))  # too short for the blendshape block: refused


def test_face_controls_gains_and_ramps_by_hand():
    b = {
        "eyeBlinkLeft": 0.375,  # halfway up the (0.15, 0.6) ramp
        "eyeBlinkRight": 0.2625,  # a quarter up
        "jawOpen": 0.5,
        "mouthSmileLeft": 0.2,
        "mouthSmileRight": 0.4,
        "browOuterUpLeft": 0.3,
        "browInnerUp": 0.2,
        "browDownRight": 0.4,
        "eyeLookOutLeft": 0.6,
        "eyeLookInLeft": 0.05,
        "eyeLookInRight": 0.2,
        "eyeLookOutRight": 0.11,
        "eyeLookUpLeft": 0.5,
        "eyeLookUpRight": 0.3,
        "eyeLookDownLeft": 0.07,
        "eyeLookDownRight": 0.1,
    }
    c = retarget.face_controls(b)
    assert c["blink_left"] == pytest.approx(0.5) and c["blink_right"] == pytest.approx(0.25)
    assert retarget.face_controls({"eyeBlinkRight": 0.15})["blink_right"] == 0.0  # the ramp's start: open
    assert c["mouth_open"] == pytest.approx(0.85)  # 1.7 * 0.5
    assert c["smile"] == pytest.approx(1.4 * 0.3)
    assert c["brow_left"] == pytest.approx(1.5 * (0.3 + 0.1))
    assert c["brow_right"] == pytest.approx(1.5 * (0.1 - 0.4))
    # the left eye looking out and the right eye looking in both look to the user's left (yaw +)
    assert c["gaze_yaw"] == pytest.approx(math.radians(25) * 0.5 * (0.6 - 0.05 + 0.2 - 0.11))
    assert c["gaze_pitch"] == pytest.approx(math.radians(20) * 0.5 * (0.5 + 0.3 - 0.07 - 0.1))
    raised = retarget.face_controls({"browOuterUpRight": 1.0, "browInnerUp": 1.0})
    assert raised["brow_right"] == 1.0 and raised["brow_left"] == pytest.approx(0.75)  # clipped at +1
    low = retarget.face_controls({"jawOpen": -0.5, "mouthSmileLeft": -1.0})  # out-of-range scores: clipped at 0
    assert low["mouth_open"] == 0.0 and low["smile"] == 0.0
    full = retarget.face_controls({"eyeBlinkLeft": 0.6, "jawOpen": 1.0, "browDownLeft": 1.0, "mouthSmileLeft": 1.0,
                                   "mouthSmileRight": 1.0})  # fmt: skip
    assert full["blink_left"] == 1.0 and full["mouth_open"] == 1.0 and full["brow_left"] == -1.0
    assert full["smile"] == 1.0
    assert retarget.face_controls({})["gaze_yaw"] == 0.0


def test_head_angles_follow_the_wire_conventions_in_radians():
    out = retarget.head_angles(np.array([30.0, 10.0, -45.0, 99.0]))
    assert out == pytest.approx({"yaw": math.radians(30), "pitch": -math.radians(10), "roll": -math.radians(45)})
