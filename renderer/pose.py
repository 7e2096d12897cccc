"""Character parameters -> a humanoid pose: head and neck, eye gaze, two-bone arm IK, finger curls.

The pose is computed *normalised* (as three-vrm and UniVRM do): each bone's rotation is a delta
from the T-pose in world-aligned axes (rig frame of `renderer.quat`), so the same numbers fit any
avatar. `local_rotations` then turns those deltas into the rotations an avatar's own bones need,
honouring its rest rotations (VRM 1.0 allows non-identity ones): L = Wp^-1 * n * Wp * R, with Wp
the world rest rotation of the bone's parent node and R the bone's rest rotation.

Arms: the wrist position (normalised image coordinates as captured) is placed on a vertical plane in
front of the avatar (`PoseConfig` sets its size, the neck's height in the image and the distance
in front), and a two-bone IK with the elbow pointing down and back bends upper and lower arm so
the hand reaches it; an untracked hand lowers the arm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from renderer import quat
from renderer.avatar import Skeleton
from renderer.bones import FINGER_NAMES, SEGMENTS
from renderer.params import CharacterParams, HandParams

NECK_SHARE = 0.3  # the neck takes 30 % of the head rotation, so a turn looks natural
# Fully curled joint angles (degrees) per segment; the thumb folds less, across the palm.
CURL_DEGREES = {"finger": (70.0, 100.0, 70.0), "thumb": (25.0, 40.0, 50.0)}


@dataclass
class PoseConfig:
    arm_ik: bool = True
    frame_width_m: float = 1.1  # what the camera frame spans at the user, scaled to the avatar's height
    frame_height_m: float = 0.62
    neck_image_y: float = 0.45  # where the user's neck sits in the image (0 top .. 1 bottom)
    hands_forward_m: float = 0.22  # the wrists' plane in front of the shoulders
    reference_height_m: float = 1.37  # the default avatar's head height; other avatars scale the plane


def _hand_frame(skeleton: Skeleton, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(palm normal, across-the-palm direction towards the little finger), rig frame, at rest."""
    b = skeleton.bones
    if f"{side}IndexProximal" not in b or f"{side}LittleProximal" not in b:
        return np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, -1.0])  # T-pose: palm down, thumb forward
    hand = b[f"{side}Hand"].world_position
    index, little = b[f"{side}IndexProximal"].world_position, b[f"{side}LittleProximal"].world_position
    palm = quat.cross(index - hand, little - hand) * (-1.0 if side == "Left" else 1.0)
    return palm / max(np.linalg.norm(palm), 1e-9), (little - index) / max(np.linalg.norm(little - index), 1e-9)


def finger_deltas(skeleton: Skeleton, side: str, hand: HandParams) -> dict[str, np.ndarray]:
    """Normalised local rotations of one hand's finger bones from the five curls."""
    palm, across = _hand_frame(skeleton, side)
    out = {}
    for finger, curl in zip(FINGER_NAMES, hand.curls, strict=True):
        names = [f"{side}{finger}{seg}" for seg in SEGMENTS]
        if not all(n in skeleton.bones for n in names[:2]):
            continue
        direction = skeleton.bones[names[1]].world_position - skeleton.bones[names[0]].world_position
        bend = palm if finger != "Thumb" else palm + 1.2 * across
        axis = quat.cross(direction, bend)
        degrees = CURL_DEGREES["thumb" if finger == "Thumb" else "finger"]
        c = float(np.clip(curl, 0.0, 1.0)) if math.isfinite(curl) else 0.0
        for name, full in zip(names, degrees, strict=True):
            if name in skeleton.bones:
                out[name] = quat.axis_angle(axis, math.radians(full) * c)
    return out


def wrist_target(skeleton: Skeleton, side: str, hand: HandParams, config: PoseConfig) -> np.ndarray:
    """Where the wrist goes (rig frame): the image position placed on the plane in front of the avatar."""
    scale = skeleton.bones["Head"].world_position[1] / config.reference_height_m
    neck = skeleton.bones["Neck"].world_position if "Neck" in skeleton.bones else skeleton.bones["Head"].world_position
    shoulder = skeleton.bones[f"{side}UpperArm"].world_position
    x = (hand.wrist_x - 0.5) * config.frame_width_m * scale  # the user's left hand is on the image's right: +X
    y = neck[1] + (config.neck_image_y - hand.wrist_y) * config.frame_height_m * scale
    return np.array([x, y, shoulder[2] + config.hands_forward_m * scale])


def two_bone_ik(root: np.ndarray, l1: float, l2: float, target: np.ndarray, pole: np.ndarray):
    """Elbow and reachable end positions of a two-bone chain from `root` towards `target`."""
    to = target - root
    d = float(np.clip(np.linalg.norm(to), abs(l1 - l2) + 1e-4, (l1 + l2) * 0.999))
    direction = to / max(float(np.linalg.norm(to)), 1e-9)
    a = (l1 * l1 + d * d - l2 * l2) / (2.0 * d)
    h = math.sqrt(max(l1 * l1 - a * a, 0.0))
    bend = pole - np.dot(pole, direction) * direction
    if np.linalg.norm(bend) < 1e-6:
        bend = np.array([0.0, -1.0, 0.0]) - direction[1] * direction
    bend /= np.linalg.norm(bend)
    return root + a * direction + h * bend, root + d * direction


def arm_deltas(skeleton: Skeleton, side: str, hand: HandParams, config: PoseConfig) -> dict[str, np.ndarray]:
    """Normalised rotations of UpperArm and LowerArm: IK towards the wrist, blended to a lowered arm."""
    b = skeleton.bones
    s_pos, e_pos, h_pos = (b[f"{side}{p}"].world_position for p in ("UpperArm", "LowerArm", "Hand"))
    out_x = 1.0 if side == "Left" else -1.0
    down = quat.from_to(e_pos - s_pos, [0.25 * out_x, -1.0, 0.0])
    present = float(np.clip(hand.present, 0.0, 1.0)) if math.isfinite(hand.present) else 0.0
    if not config.arm_ik or present <= 0.0:
        return {f"{side}UpperArm": down, f"{side}LowerArm": quat.IDENTITY.copy()}
    target = wrist_target(skeleton, side, hand, config)
    l1, l2 = float(np.linalg.norm(e_pos - s_pos)), float(np.linalg.norm(h_pos - e_pos))
    elbow, wrist = two_bone_ik(s_pos, l1, l2, target, np.array([0.35 * out_x, -1.0, -0.6]))
    upper = quat.from_to(e_pos - s_pos, elbow - s_pos)
    lower_world = quat.mul(quat.from_to(quat.rotate(upper, h_pos - e_pos), wrist - elbow), upper)
    upper_n = quat.slerp(down, upper, present)
    lower_n = quat.slerp(quat.IDENTITY, quat.mul(quat.conj(upper), lower_world), present)
    out = {f"{side}UpperArm": upper_n, f"{side}LowerArm": lower_n}
    # The hand points where the user's does in the image (wrist -> middle knuckle), a little forward.
    knuckle = f"{side}MiddleProximal"
    direction = np.array([hand.dir_x, -hand.dir_y, 0.3])
    if knuckle in b and np.isfinite(direction).all() and np.linalg.norm(direction[:2]) > 0.5:
        pointing = quat.rotate(lower_world, b[knuckle].world_position - h_pos)
        hand_world = quat.mul(quat.from_to(pointing, direction), lower_world)
        out[f"{side}Hand"] = quat.slerp(quat.IDENTITY, quat.mul(quat.conj(lower_world), hand_world), present)
    return out


def normalized_pose(params: CharacterParams, skeleton: Skeleton, config: PoseConfig | None = None) -> dict:
    """Bone (Unity name) -> normalised local rotation for every humanoid bone the skeleton has."""
    config = config or PoseConfig()
    f = params.face
    angles = [a if math.isfinite(a) else 0.0 for a in (f.yaw, f.pitch, f.roll, f.gaze_yaw, f.gaze_pitch)]
    head = quat.euler_head(*angles[:3])
    pose = {name: quat.IDENTITY.copy() for name in skeleton.bones}
    if "Neck" in skeleton.bones:
        neck = quat.slerp(quat.IDENTITY, head, NECK_SHARE)
        pose["Neck"], pose["Head"] = neck, quat.mul(quat.conj(neck), head)
    else:
        pose["Head"] = head
    eyes = quat.euler_head(angles[3], angles[4], 0.0)
    for eye in ("LeftEye", "RightEye"):
        if eye in skeleton.bones:
            pose[eye] = eyes
    for side, hand in (("Left", params.left_hand), ("Right", params.right_hand)):
        pose |= arm_deltas(skeleton, side, hand, config)
        pose |= finger_deltas(skeleton, side, hand)
    return pose


def local_rotations(skeleton: Skeleton, pose: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Normalised deltas -> each bone's own local rotation (rest rotation honoured)."""
    out = {}
    for name, rest in skeleton.bones.items():
        n = pose.get(name, quat.IDENTITY)
        wp = rest.parent_world_rotation
        if quat.is_identity(wp) and quat.is_identity(rest.local_rotation):  # a normalised bone (VRM 0.x, default)
            out[name] = quat.normalize(n)
            continue
        out[name] = quat.normalize(quat.mul(quat.mul(quat.mul(quat.conj(wp), n), wp), rest.local_rotation))
    return out
