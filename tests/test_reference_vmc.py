"""VMC output against the OSC 1.0 specification and the VMC vocabulary, written out here byte by byte.

OSC 1.0: a string is its UTF-8 bytes, a NUL, then NULs up to a multiple of 4; the type tag string
starts with ','; int32 and float32 are big-endian; a bundle is "#bundle\\0", an 8-byte time tag, then
elements, each an int32 size and the message. VMC (protocol.vmc.info): /VMC/Ext/OK, /VMC/Ext/T,
optional /VMC/Ext/Root/Pos, /VMC/Ext/Bone/Pos per bone, /VMC/Ext/Blend/Val per name, /VMC/Ext/Blend/Apply.
The bone geometry (curls, head/neck share, thumb, mirror) is checked by forward kinematics in tests/test_vmc.py.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from latentcast.errors import UserError
from renderer import vmc
from renderer.avatar import Skeleton, default_skeleton
from renderer.params import CharacterParams, FaceParams


def osc_str(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return raw + b"\0" * (-len(raw) % 4)


@pytest.mark.parametrize("text", ["", "a", "ab", "abc", "abcd", "/VMC/Ext/T", "é"])
def test_osc_strings_are_nul_terminated_and_padded_to_four(text):
    msg = vmc.osc_message(text)
    assert msg == osc_str(text) + osc_str(",")
    assert len(osc_str(text)) % 4 == 0 and osc_str(text).endswith(b"\0")


def test_osc_arguments_by_type():
    msg = vmc.osc_message("/x", 7, np.int64(-2), 2.5, np.float32(0.25), "hi", True, float("nan"), float("inf"))
    want = (
        osc_str("/x")
        + osc_str(",iiffsfff")
        + struct.pack(">i", 7)
        + struct.pack(">i", -2)
        + struct.pack(">f", 2.5)
        + struct.pack(">f", 0.25)
        + osc_str("hi")
        + struct.pack(">f", 1.0)  # a bool is not an OSC int: sent as the float 1.0
        + struct.pack(">f", 0.0)  # non-finite floats are sent as 0.0
        + struct.pack(">f", 0.0)
    )
    assert msg == want


def test_bundles_are_greedy_in_order_and_never_over_the_limit():
    header = b"#bundle\0" + struct.pack(">Q", 1)
    assert header == vmc.BUNDLE_HEADER
    msgs = [vmc.osc_message(f"/m{i}", float(i)) for i in range(300)]
    packets = vmc.pack_bundles(msgs)
    assert all(len(p) <= vmc.MAX_PACKET == 1472 for p in packets) and len(packets) > 1
    elements, firsts = [], []
    for p in packets:
        assert p.startswith(header)
        pos = len(header)
        firsts.append(len(elements))
        while pos < len(p):
            (size,) = struct.unpack(">i", p[pos : pos + 4])
            elements.append(p[pos + 4 : pos + 4 + size])
            pos += 4 + size
        assert pos == len(p)
    assert elements == msgs
    # greedy: each packet but the last is closed only because the next message would not have fitted
    for p, nxt in zip(packets[:-1], firsts[1:], strict=True):
        assert len(p) + 4 + len(msgs[nxt]) > vmc.MAX_PACKET
    assert vmc.pack_bundles([]) == []


def test_a_message_that_fits_exactly_and_one_byte_too_many():
    header = len(vmc.BUNDLE_HEADER)
    exact = b"\0" * (100 - header - 4)
    assert vmc.pack_bundles([exact], limit=100) == [vmc.BUNDLE_HEADER + struct.pack(">i", len(exact)) + exact]
    with pytest.raises(ValueError, match=r"one OSC message of 81 bytes cannot fit a 100-byte packet"):
        vmc.pack_bundles([exact + b"\0"], limit=100)
    two = vmc.pack_bundles([b"a" * 40, b"b" * 40], limit=100)  # 16 + 44 + 44 > 100: two packets
    assert len(two) == 2 and two[1].endswith(b"b" * 40)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("10.0.0.2:39540", "10.0.0.2", 39540),
        ("studio", "studio", 39539),
        (":1", "127.0.0.1", 1),
        ("h:65535", "h", 65535),
    ],
)
def test_vmc_target_parsing(text, host, port):
    cfg = vmc.VMCConfig.parse(text)
    assert (cfg.host, cfg.port) == (host, port)


@pytest.mark.parametrize(("text", "message"), [("h:x", "has no valid port"), ("h:0", "out of range"),
                                               ("h:65536", "out of range")])  # fmt: skip
def test_bad_vmc_targets_are_one_line_errors(text, message):
    with pytest.raises(UserError, match=message):
        vmc.VMCConfig.parse(text)


def test_blendshape_set_choice():
    assert vmc.choose_blendshape_set("both", None) == "both"
    assert vmc.choose_blendshape_set("auto", None) == "presets"
    arkit = default_skeleton()
    assert vmc.choose_blendshape_set("auto", arkit) == ("perfect-sync" if arkit.has_perfect_sync() else "presets")
    with pytest.raises(UserError, match=r"--vmc-blendshapes 'arkit': use one of auto, presets, perfect-sync, both"):
        vmc.choose_blendshape_set("arkit", None)


def face(**kw) -> CharacterParams:
    return CharacterParams(face=FaceParams(present=1.0, **kw))


def test_preset_values_by_hand():
    p = face(blink_left=0.2, blink_right=0.7, mouth_open=0.5, smile=0.25, brow_left=-0.4, brow_right=0.2)
    v = vmc.preset_values(p)
    assert v == pytest.approx({"Blink_L": 0.2, "Blink_R": 0.7, "A": 0.5, "Joy": 0.25,
                               "Angry": 0.5 * 0.4 * 0.75, "Neutral": 0.0})  # fmt: skip
    shapes = {"mouthFunnel": 0.3, "mouthPucker": 0.4, "mouthStretchLeft": 0.2, "mouthStretchRight": 0.4,
              "mouthRollLower": 0.1, "mouthShrugUpper": 0.3, "eyeWideLeft": 0.3, "eyeWideRight": 0.6,
              "browInnerUp": 0.3}  # fmt: skip
    v = vmc.preset_values(face(mouth_open=0.5, smile=0.25, blendshapes=shapes))
    assert v["O"] == pytest.approx(1.6 * 0.3 * 0.5 * 2.0)
    assert v["U"] == pytest.approx(1.6 * 0.4 * 0.5)
    assert v["E"] == pytest.approx(1.5 * 0.3)
    assert v["I"] == pytest.approx(1.2 * 0.2)
    assert v["Surprised"] == pytest.approx(1.4 * 0.4 * 0.75)


def test_perfect_sync_values_capitalise_and_take_the_controls():
    p = face(blink_left=0.1, blink_right=0.2, mouth_open=0.3, smile=0.4, brow_left=0.6, brow_right=-0.2,
             blendshapes={"cheekPuff": 0.5, "jawOpen": 0.9})  # fmt: skip
    v = vmc.perfect_sync_values(p)
    assert v["CheekPuff"] == 0.5 and v["JawOpen"] == 0.3  # the control wins over the raw score
    assert v["EyeBlinkLeft"] == 0.1 and v["EyeBlinkRight"] == 0.2
    assert v["MouthSmileLeft"] == v["MouthSmileRight"] == 0.4
    assert v["BrowInnerUp"] == pytest.approx(0.3) and v["BrowOuterUpLeft"] == 0.6 and v["BrowOuterUpRight"] == 0.0
    assert v["BrowDownLeft"] == 0.0 and v["BrowDownRight"] == pytest.approx(0.2)


def test_blendshapes_clip_filter_by_avatar_and_never_send_nan():
    p = face(blink_left=1.7, blink_right=float("nan"), mouth_open=-0.3, smile=0.5)
    both = vmc.blendshapes(p, "both")
    assert both["Blink_L"] == 1.0 and both["Blink_R"] == 0.0 and both["A"] == 0.0 and both["Joy"] == 0.5
    assert "EyeBlinkLeft" in both and "Blink_L" in both
    assert "EyeBlinkLeft" not in vmc.blendshapes(p, "presets") and "Blink_L" not in vmc.blendshapes(p, "perfect-sync")
    avatar = dataclasses.replace(default_skeleton(), expressions={"happy", "Blink_L"})  # VRM 1.0 name, 0.x name
    assert isinstance(avatar, Skeleton)
    assert set(vmc.blendshapes(p, "presets", avatar)) == {"Joy", "Blink_L"}


def test_a_frame_is_ok_time_root_bones_blendshapes_then_apply():
    sender = vmc.VMCSender(vmc.VMCConfig(root=True))
    try:
        params = dataclasses.replace(face(smile=0.5), idle=0.2)
        msgs = sender.messages(params, 12.5)
        bones = default_skeleton().bones
        assert msgs[0] == vmc.osc_message("/VMC/Ext/OK", 1, 3, 0, 1)  # loaded, calibrated, normal mode, tracking
        assert msgs[1] == vmc.osc_message("/VMC/Ext/T", 12.5)
        assert msgs[2] == vmc.osc_message("/VMC/Ext/Root/Pos", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        bone_msgs = msgs[3 : 3 + len(bones)]
        assert all(m.startswith(osc_str("/VMC/Ext/Bone/Pos") + osc_str(",sfffffff")) for m in bone_msgs)
        names = [
            m[len(osc_str("/VMC/Ext/Bone/Pos") + osc_str(",sfffffff")) :].split(b"\0")[0].decode() for m in bone_msgs
        ]
        assert names == list(bones)
        blend = msgs[3 + len(bones) : -1]
        assert blend and all(m.startswith(osc_str("/VMC/Ext/Blend/Val")) for m in blend)
        assert msgs[-1] == vmc.osc_message("/VMC/Ext/Blend/Apply")
        idle = sender.messages(dataclasses.replace(params, idle=0.5), 1.0)
        assert idle[0] == vmc.osc_message("/VMC/Ext/OK", 1, 3, 0, 0)  # half idle or more: not tracking
        no_root = vmc.VMCSender(vmc.VMCConfig())
        assert not any(m.startswith(osc_str("/VMC/Ext/Root/Pos")) for m in no_root.messages(params, 1.0))
        no_root.close()
        assert sender.messages(params, float("nan"))[1] == vmc.osc_message("/VMC/Ext/T", 0.0)
    finally:
        sender.close()


def test_send_counts_packets_and_errors_without_raising():
    sender = vmc.VMCSender(vmc.VMCConfig(host="127.0.0.1", port=9))
    try:
        n = len(sender.build(face(), 0.0))
        assert sender.send(face(), 0.0) and sender.sent == 1 and sender.packets == n and sender.errors == 0
        sender.config = dataclasses.replace(sender.config, host="256.0.0.1")  # not an address: OSError
        assert sender.send(face(), 0.0) is False and sender.errors == 1 and sender.sent == 1
    finally:
        sender.close()


# ----------------------------------------------------------------------------- pose (renderer/pose.py)


@pytest.mark.parametrize(
    ("target", "reach"),
    [((0.3, -0.2, 0.1), "inside"), ((2.0, 0.0, 0.0), "too far"), ((0.01, 0.0, 0.0), "too near")],
)
def test_two_bone_ik_keeps_bone_lengths_and_reaches_what_it_can(target, reach):
    from renderer.pose import two_bone_ik

    root, l1, l2 = np.array([0.1, 1.0, 0.0]), 0.3, 0.25
    target = root + np.array(target)
    pole = np.array([0.0, -1.0, -0.5])
    elbow, wrist = two_bone_ik(root, l1, l2, target, pole)
    assert np.linalg.norm(elbow - root) == pytest.approx(l1, abs=1e-9)
    assert np.linalg.norm(wrist - elbow) == pytest.approx(l2, abs=1e-6)
    direction = (target - root) / np.linalg.norm(target - root)
    np.testing.assert_allclose((wrist - root) / np.linalg.norm(wrist - root), direction, atol=1e-9)
    d = np.linalg.norm(wrist - root)
    if reach == "inside":
        np.testing.assert_allclose(wrist, target, atol=1e-9)
    elif reach == "too far":
        assert d == pytest.approx(0.999 * (l1 + l2))
    else:
        assert d == pytest.approx(abs(l1 - l2) + 1e-4)
    # the elbow bends towards the pole (its side of the root -> target line)
    side = elbow - root - np.dot(elbow - root, direction) * direction
    assert np.dot(side, pole - np.dot(pole, direction) * direction) > 0 or reach == "too far"


def test_two_bone_ik_with_a_pole_along_the_arm_bends_down():
    from renderer.pose import two_bone_ik

    root = np.zeros(3)
    elbow, _ = two_bone_ik(root, 0.3, 0.3, np.array([0.4, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert elbow[1] < -0.1  # pole parallel to the arm: the elbow goes down, not nowhere


def test_wrist_target_places_the_image_on_the_plane_in_front():
    from renderer.params import HandParams
    from renderer.pose import PoseConfig, wrist_target

    sk = default_skeleton()
    cfg = PoseConfig()
    scale = sk.bones["Head"].world_position[1] / cfg.reference_height_m
    neck, shoulder = sk.bones["Neck"].world_position, sk.bones["LeftUpperArm"].world_position
    got = wrist_target(sk, "Left", HandParams(present=1.0, wrist_x=0.8, wrist_y=0.3), cfg)
    want = [(0.8 - 0.5) * 1.1 * scale, neck[1] + (0.45 - 0.3) * 0.62 * scale, shoulder[2] + 0.22 * scale]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_untracked_or_disabled_arms_hang_down_and_nan_pose_values_are_identity():
    from renderer import quat
    from renderer.params import HandParams
    from renderer.pose import PoseConfig, arm_deltas, normalized_pose

    sk = default_skeleton()
    b = sk.bones
    for side, out_x in (("Left", 1.0), ("Right", -1.0)):
        lowered = arm_deltas(sk, side, HandParams(present=0.0), PoseConfig())
        upper_dir = quat.rotate(
            lowered[f"{side}UpperArm"], b[f"{side}LowerArm"].world_position - b[f"{side}UpperArm"].world_position
        )
        want = np.array([0.25 * out_x, -1.0, 0.0])
        np.testing.assert_allclose(upper_dir / np.linalg.norm(upper_dir), want / np.linalg.norm(want), atol=1e-9)
        np.testing.assert_allclose(lowered[f"{side}LowerArm"], quat.IDENTITY)
        for hand, cfg in (
            (HandParams(present=float("nan")), PoseConfig()),
            (HandParams(present=1.0), PoseConfig(arm_ik=False)),
        ):
            same = arm_deltas(sk, side, hand, cfg)
            np.testing.assert_allclose(same[f"{side}UpperArm"], lowered[f"{side}UpperArm"])
            assert f"{side}Hand" not in same
    nan_face = face(yaw=float("nan"), pitch=float("inf"), roll=float("nan"), gaze_yaw=float("nan"))
    pose = normalized_pose(nan_face, sk)
    for bone in ("Neck", "Head", "LeftEye", "RightEye"):
        np.testing.assert_allclose(pose[bone], quat.IDENTITY, atol=1e-12)


def test_a_tracked_arm_reaches_its_wrist_target():
    from renderer import quat
    from renderer.params import HandParams
    from renderer.pose import PoseConfig, arm_deltas, wrist_target

    sk = default_skeleton()
    b = sk.bones
    hand = HandParams(present=1.0, wrist_x=0.7, wrist_y=0.55, dir_x=0.0, dir_y=-1.0)
    deltas = arm_deltas(sk, "Left", hand, PoseConfig())
    upper, lower = deltas["LeftUpperArm"], deltas["LeftLowerArm"]
    s, e, h = (b[f"Left{p}"].world_position for p in ("UpperArm", "LowerArm", "Hand"))
    elbow = s + quat.rotate(upper, e - s)
    wrist = elbow + quat.rotate(quat.mul(upper, lower), h - e)
    np.testing.assert_allclose(wrist, wrist_target(sk, "Left", hand, PoseConfig()), atol=1e-6)
    assert "LeftHand" in deltas  # a pointing direction given: the hand turns too
    half = arm_deltas(sk, "Left", dataclasses.replace(hand, present=0.5), PoseConfig())
    lowered = arm_deltas(sk, "Left", dataclasses.replace(hand, present=0.0), PoseConfig())
    mid = quat.slerp(lowered["LeftUpperArm"], upper, 0.5)
    np.testing.assert_allclose(half["LeftUpperArm"], mid, atol=1e-9)  # fading in: halfway between
    still = arm_deltas(sk, "Left", dataclasses.replace(hand, dir_x=0.1, dir_y=-0.2), PoseConfig())
    assert "LeftHand" not in still  # a direction too short (under 0.5) is not trusted


def test_without_a_neck_the_head_takes_the_whole_rotation_and_the_eyes_the_gaze():
    from renderer import quat
    from renderer.pose import normalized_pose

    sk = default_skeleton()
    no_neck = dataclasses.replace(sk, bones={k: v for k, v in sk.bones.items() if k != "Neck"})
    p = face(yaw=0.4, pitch=-0.2, roll=0.1, gaze_yaw=0.2, gaze_pitch=0.1)
    pose = normalized_pose(p, no_neck)
    np.testing.assert_allclose(pose["Head"], quat.euler_head(0.4, -0.2, 0.1), atol=1e-12)
    with_neck = normalized_pose(p, sk)
    np.testing.assert_allclose(with_neck["Neck"], quat.slerp(quat.IDENTITY, quat.euler_head(0.4, -0.2, 0.1), 0.3))
    for eye in ("LeftEye", "RightEye"):
        np.testing.assert_allclose(pose[eye], quat.euler_head(0.2, 0.1, 0.0), atol=1e-12)


def test_a_taller_avatar_scales_the_wrist_plane_and_a_skeleton_without_fingers_keeps_its_hands():
    from renderer.params import HandParams
    from renderer.pose import PoseConfig, finger_deltas, wrist_target

    sk = default_skeleton()
    tall = dataclasses.replace(
        sk,
        bones={
            k: dataclasses.replace(v, world_position=1.5 * v.world_position, local_position=1.5 * v.local_position)
            for k, v in sk.bones.items()
        },
    )
    hand = HandParams(present=1.0, wrist_x=0.8, wrist_y=0.3)
    base = wrist_target(sk, "Left", hand, PoseConfig())
    np.testing.assert_allclose(wrist_target(tall, "Left", hand, PoseConfig()), 1.5 * base, atol=1e-9)
    no_fingers = dataclasses.replace(
        sk, bones={k: v for k, v in sk.bones.items() if not any(f in k for f in ("Index", "Middle", "Ring", "Little"))}
    )
    curled = finger_deltas(no_fingers, "Left", HandParams(present=1.0, curls=(1.0, 1.0, 1.0, 1.0, 1.0)))
    assert set(curled) == {n for n in no_fingers.bones if n.startswith("LeftThumb")}  # only the bones it has
    assert all(np.isfinite(q).all() for q in curled.values())
