"""A VRM avatar's humanoid rest pose, read with pygltflib (VRM 0.x `VRM` and 1.0 `VRMC_vrm`).

VMC receivers write `/VMC/Ext/Bone/Pos` straight into the avatar's bone transforms (EVMC4U's bone
position sync is on by default), so the sender must send each bone's own local position and a
local rotation measured from that bone's rest rotation. Both come from the file: every humanoid
bone's glTF node translation and rotation, in the rig frame of `renderer.quat` (VRM 0.x files face
-Z and are turned a half turn; VRM 1.0 faces +Z). Node scale is taken as 1 (VRM requires it).
Without a file the default skeleton is the generated default avatar's (`renderer.default_avatar`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from renderer import quat
from renderer.bones import ALL_BONES, FROM_VRM0, FROM_VRM1, REQUIRED

# ARKit / PerfectSync expression names (case-insensitive): an avatar with most of them is PerfectSync.
PERFECT_SYNC_MIN = 40


@dataclass
class BoneRest:
    """One humanoid bone at rest, rig frame."""

    local_position: np.ndarray  # the node's translation (relative to its glTF parent)
    local_rotation: np.ndarray  # the node's rotation
    parent_world_rotation: np.ndarray  # world rest rotation of the node's glTF parent
    world_position: np.ndarray
    world_rotation: np.ndarray
    parent: str | None  # nearest humanoid ancestor (Unity name)


@dataclass
class Skeleton:
    """The humanoid bones an avatar has (Unity names, parents first) and its expression names."""

    bones: dict[str, BoneRest]
    expressions: set[str] = field(default_factory=set)
    version: str = "1.0"
    source: str = "default avatar"

    def has_perfect_sync(self) -> bool:
        from latentcast.features import FEATURE_BLENDSHAPES

        arkit = {n.lower() for n in FEATURE_BLENDSHAPES}
        return len(arkit & {e.lower() for e in self.expressions}) >= PERFECT_SYNC_MIN

    def has_presets(self) -> bool:
        presets = {"a", "aa", "blink_l", "blinkleft", "joy", "happy"}
        return bool(presets & {e.lower() for e in self.expressions})


def _node_rest(node) -> tuple[np.ndarray, np.ndarray]:
    if node.matrix and any(abs(v - i) > 1e-9 for v, i in zip(node.matrix, np.eye(4).reshape(-1), strict=True)):
        m = np.array(node.matrix, dtype=np.float64).reshape(4, 4).T
        r = m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0)
        w = np.sqrt(max(1.0 + np.trace(r), 1e-12)) / 2.0
        q = np.array([(r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w), w])
        return m[:3, 3].copy(), quat.normalize(q)
    t = np.array(node.translation or (0.0, 0.0, 0.0), dtype=np.float64)
    r = quat.normalize(np.array(node.rotation or (0.0, 0.0, 0.0, 1.0), dtype=np.float64))
    return t, r


def load_avatar(path: str | Path) -> Skeleton:
    """Read a .vrm file's humanoid rest pose and expression names; a clear UserError when it is not one."""
    import pygltflib

    path = Path(path)
    if not path.is_file():
        raise UserError(f"avatar {path} does not exist: pass a .vrm file (or make one: python scripts/make_avatar.py)")
    try:
        gltf = pygltflib.GLTF2.load_binary(str(path))  # .vrm is a GLB under another suffix
    except Exception as exc:  # pygltflib raises several types for a bad file
        raise UserError(f"avatar {path} is not a glTF/VRM file ({type(exc).__name__}): pass a .vrm") from None
    if gltf is None or not gltf.nodes:
        raise UserError(f"avatar {path} has no nodes: pass a .vrm exported by UniVRM, VRoid or make_avatar.py")
    ext = gltf.extensions or {}
    if "VRMC_vrm" in ext:
        version, vrm = "1.0", ext["VRMC_vrm"]
        humanoid = {FROM_VRM1[k]: v["node"] for k, v in vrm["humanoid"]["humanBones"].items() if k in FROM_VRM1}
        ex = vrm.get("expressions", {})
        expressions = set(ex.get("preset", {})) | set(ex.get("custom", {}))
    elif "VRM" in ext:
        version, vrm = "0.x", ext["VRM"]
        bones0 = vrm["humanoid"]["humanBones"]
        humanoid = {FROM_VRM0[b["bone"]]: b["node"] for b in bones0 if b.get("bone") in FROM_VRM0}
        groups = vrm.get("blendShapeMaster", {}).get("blendShapeGroups", [])
        expressions = {g["name"] for g in groups if g.get("name")}
        expressions |= {g["presetName"] for g in groups if g.get("presetName") not in (None, "", "unknown")}
    else:
        raise UserError(f"avatar {path} has no VRM extension (VRMC_vrm or VRM): it is a plain glTF, not a VRM")
    missing = [b for b in REQUIRED if b not in humanoid]
    if missing:
        raise UserError(f"avatar {path} lacks required humanoid bones {missing}: re-export it as a VRM humanoid")

    parent_of: dict[int, int] = {}
    for i, node in enumerate(gltf.nodes):
        for c in node.children or []:
            parent_of[c] = i
    to_rig_p = quat.from_vrm0_position if version == "0.x" else (lambda p: p)
    to_rig_q = quat.from_vrm0_rotation if version == "0.x" else (lambda q: q)
    world: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def world_of(i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in world:
            t, r = _node_rest(gltf.nodes[i])
            t, r = to_rig_p(t), to_rig_q(r)
            if i in parent_of:
                pp, pr = world_of(parent_of[i])
                world[i] = (pp + quat.rotate(pr, t), quat.mul(pr, r))
            else:
                world[i] = (t, r)
        return world[i]

    node_bone = {n: b for b, n in humanoid.items()}
    bones: dict[str, BoneRest] = {}
    for bone in ALL_BONES:
        if bone not in humanoid:
            continue
        i = humanoid[bone]
        t, r = _node_rest(gltf.nodes[i])
        parent, j = None, parent_of.get(i)
        while j is not None and parent is None:
            parent, j = node_bone.get(j), parent_of.get(j)
        pw = world_of(parent_of[i])[1] if i in parent_of else quat.IDENTITY.copy()
        wp, wr = world_of(i)
        bones[bone] = BoneRest(to_rig_p(t), to_rig_q(r), pw, wp, wr, parent)
    return Skeleton(bones, expressions, version, str(path))


def default_skeleton() -> Skeleton:
    """The generated default avatar's skeleton, straight from its tables (no file needed)."""
    from renderer.default_avatar import BONE_POSITIONS, EXPRESSION_NAMES, PARENTS, VRM0_NAMES

    bones = {}
    for bone in ALL_BONES:
        parent = PARENTS[bone]
        base = BONE_POSITIONS[parent] if parent else np.zeros(3)
        bones[bone] = BoneRest(
            BONE_POSITIONS[bone] - base, quat.IDENTITY.copy(), quat.IDENTITY.copy(),
            BONE_POSITIONS[bone].copy(), quat.IDENTITY.copy(), parent,
        )  # fmt: skip
    names = set(EXPRESSION_NAMES) | set(VRM0_NAMES.values())
    return Skeleton(bones, names, "1.0", "default avatar")
