"""The humanoid bone vocabulary: Unity's HumanBodyBones names (what VMC sends) and the VRM 0.x / 1.0 spellings.

VMC addresses bones by Unity's names (`LeftIndexProximal`); VRM files name them in lowerCamelCase,
and the thumb differs: VRM 1.0 has Metacarpal/Proximal/Distal where Unity and VRM 0.x have
Proximal/Intermediate/Distal for the same three joints.
"""

from __future__ import annotations

FINGER_NAMES = ("Thumb", "Index", "Middle", "Ring", "Little")
SEGMENTS = ("Proximal", "Intermediate", "Distal")
SIDES = ("Left", "Right")

TORSO = ("Hips", "Spine", "Chest", "UpperChest", "Neck", "Head", "LeftEye", "RightEye", "Jaw")
LIMBS = tuple(
    f"{side}{part}"
    for side in SIDES
    for part in ("UpperLeg", "LowerLeg", "Foot", "Toes", "Shoulder", "UpperArm", "LowerArm", "Hand")
)
FINGER_BONES = tuple(f"{side}{finger}{seg}" for side in SIDES for finger in FINGER_NAMES for seg in SEGMENTS)
# All 55 humanoid bones, parents before children.
ALL_BONES = TORSO + LIMBS + FINGER_BONES
REQUIRED = (
    "Hips", "Spine", "Head", "LeftUpperLeg", "LeftLowerLeg", "LeftFoot", "RightUpperLeg", "RightLowerLeg",
    "RightFoot", "LeftUpperArm", "LeftLowerArm", "LeftHand", "RightUpperArm", "RightLowerArm", "RightHand",
)  # fmt: skip

_VRM1_THUMB = {"Proximal": "Metacarpal", "Intermediate": "Proximal", "Distal": "Distal"}


def vrm0_name(unity: str) -> str:
    """Unity HumanBodyBones name -> VRM 0.x humanBones[].bone."""
    return unity[0].lower() + unity[1:]


def vrm1_name(unity: str) -> str:
    """Unity HumanBodyBones name -> VRM 1.0 humanoid.humanBones key."""
    name = vrm0_name(unity)
    for seg, new in _VRM1_THUMB.items():
        if name.endswith(f"Thumb{seg}"):
            return name[: -len(seg)] + new
    return name


FROM_VRM0 = {vrm0_name(b): b for b in ALL_BONES}
FROM_VRM1 = {vrm1_name(b): b for b in ALL_BONES}


def mirror_name(unity: str) -> str:
    """LeftX <-> RightX; other names unchanged."""
    if unity.startswith("Left"):
        return "Right" + unity[4:]
    if unity.startswith("Right"):
        return "Left" + unity[5:]
    return unity
