"""The project's own default avatar, built from code: a VRM (glTF binary + VRM extension), no downloaded art.

No freely licensed VRM ships in any package we can install, so the renderer makes one: a small,
friendly figure of rounded capsules (skin, a blue top, dark trousers, hair, shoes) on all 55 VRM
humanoid bones, rigidly skinned (each primitive follows one bone, so joints read as ball joints),
and a face mesh with morph targets for the expressions the renderer drives: blink L/R, the five
visemes aa/ih/ou/ee/oh, happy, angry, surprised (neutral is the empty expression). The eyes are
skinned to the eye bones, so gaze moves them.

`build(version)` writes VRM 1.0 (`VRMC_vrm`, facing +Z) or VRM 0.x (`VRM`, facing -Z); with
`rest_rotations=True` every bone gets a non-identity rest rotation (VRM 1.0 allows that) while the
mesh stays the same, which tests use to check that readers honour rest rotations. The skeleton
table `BONE_POSITIONS` is also the VMC writer's default skeleton. Deterministic: the same code
writes the same bytes. CLI: `python scripts/make_avatar.py`.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from renderer import quat
from renderer.bones import ALL_BONES, vrm0_name, vrm1_name

# Rest T-pose in the rig frame (metres, +Y up, facing +Z, the avatar's left hand at +X).
_HALF = {
    "UpperLeg": (0.09, 0.82, 0.0), "LowerLeg": (0.09, 0.46, 0.0), "Foot": (0.09, 0.09, 0.0),
    "Toes": (0.09, 0.03, 0.1), "Shoulder": (0.03, 1.265, 0.0), "UpperArm": (0.15, 1.265, 0.0),
    "LowerArm": (0.40, 1.265, 0.0), "Hand": (0.62, 1.265, 0.0),
    "ThumbProximal": (0.64, 1.255, 0.025), "ThumbIntermediate": (0.665, 1.25, 0.055),
    "ThumbDistal": (0.69, 1.25, 0.075),
    "IndexProximal": (0.71, 1.265, 0.03), "IndexIntermediate": (0.745, 1.265, 0.031),
    "IndexDistal": (0.77, 1.265, 0.032),
    "MiddleProximal": (0.715, 1.265, 0.009), "MiddleIntermediate": (0.753, 1.265, 0.009),
    "MiddleDistal": (0.781, 1.265, 0.009),
    "RingProximal": (0.71, 1.265, -0.012), "RingIntermediate": (0.745, 1.265, -0.013),
    "RingDistal": (0.771, 1.265, -0.014),
    "LittleProximal": (0.70, 1.265, -0.032), "LittleIntermediate": (0.728, 1.265, -0.034),
    "LittleDistal": (0.749, 1.265, -0.036),
}  # fmt: skip
# Tips (not bones): where each finger's last segment ends, for the geometry and FK checks.
TIP_OFFSETS = {"Thumb": (0.022, -0.003, 0.018), "Index": (0.024, 0, 0), "Middle": (0.026, 0, 0),
               "Ring": (0.024, 0, 0), "Little": (0.02, 0, 0)}  # fmt: skip


def _bone_positions() -> dict[str, np.ndarray]:
    pos = {
        "Hips": (0.0, 0.9, 0.0), "Spine": (0.0, 0.98, 0.0), "Chest": (0.0, 1.08, 0.0),
        "UpperChest": (0.0, 1.18, 0.0), "Neck": (0.0, 1.29, 0.0), "Head": (0.0, 1.37, 0.0),
        "LeftEye": (0.045, 1.475, 0.06), "RightEye": (-0.045, 1.475, 0.06), "Jaw": (0.0, 1.42, 0.03),
    }  # fmt: skip
    for part, (x, y, z) in _HALF.items():
        pos[f"Left{part}"] = (x, y, z)
        pos[f"Right{part}"] = (-x, y, z)
    return {name: np.array(pos[name], dtype=np.float64) for name in ALL_BONES}


def _parent(bone: str) -> str | None:
    side = "Left" if bone.startswith("Left") else "Right" if bone.startswith("Right") else ""
    part = bone[len(side) :]
    chain = {
        "Spine": "Hips", "Chest": "Spine", "UpperChest": "Chest", "Neck": "UpperChest", "Head": "Neck",
        "Jaw": "Head", "Eye": "Head", "UpperLeg": "Hips", "LowerLeg": side + "UpperLeg",
        "Foot": side + "LowerLeg", "Toes": side + "Foot", "Shoulder": "UpperChest", "UpperArm": side + "Shoulder",
        "LowerArm": side + "UpperArm", "Hand": side + "LowerArm",
    }  # fmt: skip
    if part in chain:
        return chain[part]
    for seg, prev in (("Intermediate", "Proximal"), ("Distal", "Intermediate")):
        if part.endswith(seg):
            return side + part[: -len(seg)] + prev
    if part.endswith("Proximal"):
        return side + "Hand"
    return None  # Hips


BONE_POSITIONS = _bone_positions()
PARENTS = {bone: _parent(bone) for bone in ALL_BONES}


def finger_tip(side: str, finger: str) -> np.ndarray:
    """Rest position of a fingertip (the end of the Distal segment), rig frame."""
    dx, dy, dz = TIP_OFFSETS[finger]
    base = BONE_POSITIONS[f"{side}{finger}Distal"]
    return base + np.array([dx if side == "Left" else -dx, dy, dz])


# ----------------------------------------------------------------------------- geometry


@dataclass
class Part:
    """One rigid piece of geometry following one bone."""

    positions: np.ndarray  # [N, 3]
    normals: np.ndarray  # [N, 3]
    indices: np.ndarray  # [M, 3]
    bone: str


def _sphere(rows: int = 12, cols: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Unit UV sphere with an even number of latitude rows (none on the equator), poles on ±Y."""
    verts = [(0.0, -1.0, 0.0)]
    for i in range(1, rows):
        phi = np.pi * i / rows - np.pi / 2
        for j in range(cols):
            theta = 2 * np.pi * j / cols
            verts.append((np.cos(phi) * np.sin(theta), np.sin(phi), np.cos(phi) * np.cos(theta)))
    verts.append((0.0, 1.0, 0.0))
    tris = []
    top = len(verts) - 1
    for j in range(cols):
        tris.append((0, 1 + (j + 1) % cols, 1 + j))
        last = 1 + (rows - 2) * cols
        tris.append((top, last + j, last + (j + 1) % cols))
    for i in range(rows - 2):
        for j in range(cols):
            a, b = 1 + i * cols + j, 1 + i * cols + (j + 1) % cols
            c, d = a + cols, b + cols
            tris += [(a, b, d), (a, d, c)]
    return np.array(verts), np.array(tris, dtype=np.uint32)


def ellipsoid(center, radii, bone: str, rows: int = 12, cols: int = 16) -> Part:
    unit, tris = _sphere(rows, cols)
    radii = np.asarray(radii, dtype=np.float64)
    normals = unit / radii
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return Part(np.asarray(center) + unit * radii, normals, tris, bone)


def capsule(a, b, radius: float, bone: str, rows: int = 10, cols: int = 12) -> Part:
    """A sphere-swept segment a..b: the sphere's lower half sits on a, its upper half on b."""
    unit, tris = _sphere(rows, cols)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    turn = quat.from_to([0.0, 1.0, 0.0], b - a)
    dirs = np.array([quat.rotate(turn, v) for v in unit])
    ends = np.where((unit[:, 1] > 0)[:, None], b, a)
    return Part(ends + radius * dirs, dirs, tris, bone)


def keep(part: Part, inside) -> Part:
    """Only the triangles whose centre direction (from the part's centroid) satisfies `inside(dir)`."""
    centre = part.positions.mean(axis=0)
    d = part.positions[part.indices].mean(axis=1) - centre
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return Part(part.positions, part.normals, part.indices[[bool(inside(v)) for v in d]], part.bone)


P = BONE_POSITIONS
HEAD_C, HEAD_R = np.array([0.0, 1.47, 0.0]), np.array([0.115, 0.125, 0.115])
COLORS = {
    "skin": (1.0, 0.8, 0.68, 1.0),
    "top": (0.22, 0.45, 0.85, 1.0),
    "trousers": (0.16, 0.17, 0.24, 1.0),
    "hair": (0.32, 0.2, 0.14, 1.0),
    "shoes": (0.9, 0.9, 0.92, 1.0),
    "eyes": (0.09, 0.08, 0.12, 1.0),
    "mouth": (0.62, 0.2, 0.25, 1.0),
}


def _on_head(x: float, y: float, inset: float = 0.0) -> float:
    """z of the head surface in front at (x, y), minus `inset`."""
    u = 1.0 - (x / HEAD_R[0]) ** 2 - ((y - HEAD_C[1]) / HEAD_R[1]) ** 2
    return HEAD_C[2] + HEAD_R[2] * float(np.sqrt(max(u, 0.0))) - inset


def body_parts() -> dict[str, list[Part]]:
    parts: dict[str, list[Part]] = {k: [] for k in ("skin", "top", "trousers", "hair", "shoes")}
    parts["skin"] += [
        ellipsoid(HEAD_C, HEAD_R, "Head", 16, 24),
        capsule(P["Neck"], P["Head"] + [0, 0.03, 0], 0.042, "Neck"),
        ellipsoid([0.0, 1.46, 0.0], [0.02, 0.03, 0.02], "Head"),
    ]
    for ear in (1, -1):
        parts["skin"].append(ellipsoid([ear * 0.112, 1.465, -0.005], [0.018, 0.03, 0.014], "Head", 8, 10))
    hair = ellipsoid(np.add(HEAD_C, (0, 0.018, -0.01)), np.add(HEAD_R, 0.012), "Head", 16, 24)
    parts["hair"].append(keep(hair, lambda d: d[1] > 0.38 or (d[2] < 0.1 and d[1] > -0.45)))
    parts["top"] += [
        capsule(P["Spine"] + [0, 0.02, 0], P["Chest"], 0.115, "Spine"),
        capsule(P["Chest"], P["UpperChest"], 0.13, "Chest"),
        ellipsoid(P["UpperChest"] + [0, 0.02, 0], [0.155, 0.085, 0.1], "UpperChest"),
    ]
    parts["trousers"].append(ellipsoid(P["Hips"] + [0, -0.01, 0], [0.135, 0.1, 0.1], "Hips"))
    for side in ("Left", "Right"):
        s = 1.0 if side == "Left" else -1.0
        b = {k: P[side + k] for k in ("Shoulder", "UpperArm", "LowerArm", "Hand", "UpperLeg", "LowerLeg", "Foot")}
        parts["top"] += [
            capsule(b["Shoulder"], b["UpperArm"], 0.055, side + "Shoulder"),
            capsule(b["UpperArm"], b["LowerArm"], 0.046, side + "UpperArm"),
        ]
        parts["skin"] += [
            capsule(b["LowerArm"], b["Hand"], 0.036, side + "LowerArm"),
            ellipsoid(b["Hand"] + [s * 0.045, 0, 0], [0.05, 0.019, 0.046], side + "Hand", 10, 14),
        ]
        for finger, radius in (("Thumb", 0.011), ("Index", 0.0095), ("Middle", 0.0095), ("Ring", 0.009),
                               ("Little", 0.008)):  # fmt: skip
            chain = [P[f"{side}{finger}{seg}"] for seg in ("Proximal", "Intermediate", "Distal")]
            chain.append(finger_tip(side, finger))
            for seg, (a, c) in zip(("Proximal", "Intermediate", "Distal"), itertools.pairwise(chain), strict=True):
                parts["skin"].append(capsule(a, c, radius, f"{side}{finger}{seg}", 6, 8))
        parts["trousers"] += [
            capsule(b["UpperLeg"], b["LowerLeg"], 0.068, side + "UpperLeg"),
            capsule(b["LowerLeg"], b["Foot"], 0.052, side + "LowerLeg"),
        ]
        parts["shoes"] += [
            ellipsoid(b["Foot"] + [0, -0.03, 0.035], [0.055, 0.045, 0.1], side + "Foot"),
            ellipsoid(P[side + "Toes"] + [0, -0.01, 0.015], [0.05, 0.035, 0.04], side + "Toes"),
        ]
    return parts


# Face: eyes, mouth and brows with morph targets. Each target maps the rest positions of one
# primitive to new ones (a function of the points); deltas are written per primitive.
EYE_Y, EYE_X = 1.475, 0.045
MOUTH_C = np.array([0.0, 1.41, _on_head(0.0, 1.41, 0.003)])


def face_parts() -> dict[str, list[Part]]:
    eyes = [
        ellipsoid([s * EYE_X, EYE_Y, _on_head(EYE_X, EYE_Y, 0.004)], [0.017, 0.024, 0.007], side + "Eye", 10, 12)
        for s, side in ((1, "Left"), (-1, "Right"))
    ]
    mouth = [ellipsoid(MOUTH_C, [0.026, 0.006, 0.006], "Head", 8, 14)]
    brows = []
    for s in (1, -1):
        y = EYE_Y + 0.042
        a = [s * (EYE_X - 0.018), y, _on_head(EYE_X - 0.018, y, 0.002)]
        c = [s * (EYE_X + 0.018), y - 0.004, _on_head(EYE_X + 0.018, y - 0.004, 0.002)]
        brows.append(capsule(a, c, 0.0045, "Head", 4, 6))
    return {"eyes": eyes, "mouth": mouth, "hair": brows}


def _scale_about(points: np.ndarray, centre: np.ndarray, scale, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    return centre + (points - centre) * np.asarray(scale) + np.asarray(shift)


def _eye(points: np.ndarray, side: str, scale, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Transform only the points of one eye (the avatar's left eye is at +X)."""
    out = points.copy()
    sel = points[:, 0] > 0 if side == "Left" else points[:, 0] < 0
    centre = np.array([EYE_X if side == "Left" else -EYE_X, EYE_Y, points[sel, 2].mean()])
    out[sel] = _scale_about(points[sel], centre, scale, shift)
    return out


def _mouth(points: np.ndarray, sx: float, sy: float, curve: float = 0.0, dy: float = 0.0) -> np.ndarray:
    out = _scale_about(points, MOUTH_C, (sx, sy, 1.0), (0.0, dy, 0.0))
    out[:, 1] += curve * ((points[:, 0] - MOUTH_C[0]) / 0.026) ** 2  # corners up (+) or down (-)
    return out


def _brows(points: np.ndarray, lift: float, tilt: float = 0.0) -> np.ndarray:
    """Raise brows by `lift`; `tilt` + lowers their inner ends (angry)."""
    out = points.copy()
    inner = 1.0 - np.clip((np.abs(points[:, 0]) - (EYE_X - 0.02)) / 0.04, 0.0, 1.0)
    out[:, 1] += lift - tilt * inner
    return out


# name -> {primitive: transform}; primitives not named keep their shape.
EXPRESSIONS: dict[str, dict[str, object]] = {
    "blinkLeft": {"eyes": lambda p: _eye(p, "Left", (1.1, 0.1, 1.0), (0, -0.006, 0))},
    "blinkRight": {"eyes": lambda p: _eye(p, "Right", (1.1, 0.1, 1.0), (0, -0.006, 0))},
    "aa": {"mouth": lambda p: _mouth(p, 1.1, 4.5, dy=-0.008)},
    "ih": {"mouth": lambda p: _mouth(p, 1.3, 1.8, dy=-0.002)},
    "ou": {"mouth": lambda p: _mouth(p, 0.5, 2.6, dy=-0.004)},
    "ee": {"mouth": lambda p: _mouth(p, 1.4, 2.4, dy=-0.003)},
    "oh": {"mouth": lambda p: _mouth(p, 0.75, 3.8, dy=-0.007)},
    "happy": {
        "mouth": lambda p: _mouth(p, 1.25, 1.6, curve=0.008, dy=-0.002),
        "eyes": lambda p: _eye(_eye(p, "Left", (1.1, 0.35, 1.0), (0, 0.004, 0)), "Right", (1.1, 0.35, 1.0),
                               (0, 0.004, 0)),
    },
    "angry": {"hair": lambda p: _brows(p, -0.002, 0.008), "mouth": lambda p: _mouth(p, 0.9, 1.0, curve=-0.004)},
    "surprised": {
        "hair": lambda p: _brows(p, 0.012),
        "eyes": lambda p: _eye(_eye(p, "Left", (1.25, 1.3, 1.0)), "Right", (1.25, 1.3, 1.0)),
        "mouth": lambda p: _mouth(p, 0.7, 4.0, dy=-0.008),
    },
}
EXPRESSION_NAMES = ("neutral", *EXPRESSIONS)  # neutral: the rest face, no binds
VRM0_PRESETS = {"neutral": "neutral", "blinkLeft": "blink_l", "blinkRight": "blink_r", "aa": "a", "ih": "i",
                "ou": "u", "ee": "e", "oh": "o", "happy": "joy", "angry": "angry"}  # fmt: skip
VRM0_NAMES = {"neutral": "Neutral", "blinkLeft": "Blink_L", "blinkRight": "Blink_R", "aa": "A", "ih": "I", "ou": "U",
              "ee": "E", "oh": "O", "happy": "Joy", "angry": "Angry", "surprised": "Surprised"}  # fmt: skip


# ----------------------------------------------------------------------------- glTF writing


@dataclass
class _Bin:
    """Accumulates the binary chunk, buffer views and accessors."""

    data: bytearray = field(default_factory=bytearray)
    views: list = field(default_factory=list)
    accessors: list = field(default_factory=list)

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None, minmax: bool = False) -> int:
        import pygltflib as g

        while len(self.data) % 4:
            self.data.append(0)
        raw = np.ascontiguousarray(array).tobytes()
        self.views.append(g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target))
        self.data += raw
        acc = g.Accessor(bufferView=len(self.views) - 1, componentType=component, count=len(array), type=kind)
        if minmax:
            acc.min = [float(v) for v in array.min(axis=0)]
            acc.max = [float(v) for v in array.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _merge(parts: list[Part], joint_index: dict[str, int]):
    positions, normals, joints, indices, offset = [], [], [], [], 0
    for part in parts:
        positions.append(part.positions)
        normals.append(part.normals)
        joints.append(np.tile([joint_index[part.bone], 0, 0, 0], (len(part.positions), 1)))
        indices.append(part.indices + offset)
        offset += len(part.positions)
    return np.vstack(positions), np.vstack(normals), np.vstack(joints), np.vstack(indices)


def _rest_rotations(twisted: bool) -> dict[str, np.ndarray]:
    """Local rest rotations: identity (normalised), or a fixed, bone-dependent twist for tests."""
    if not twisted:
        return {b: quat.IDENTITY.copy() for b in ALL_BONES}
    rng = np.random.default_rng(7)
    return {b: quat.axis_angle(rng.normal(size=3), float(rng.uniform(0.3, 1.2))) for b in ALL_BONES}


def build(version: str = "1.0", rest_rotations: bool = False):
    """The default avatar as a pygltflib.GLTF2 (call `.save_binary(path)` or use `write`)."""
    import pygltflib as g

    if version not in ("1.0", "0.x"):
        raise ValueError(f"VRM version {version!r}: use '1.0' or '0.x'")
    v0 = version == "0.x"
    frame = quat.from_vrm0_position if v0 else (lambda p: np.asarray(p, dtype=np.float64))
    frame_q = quat.from_vrm0_rotation if v0 else (lambda q: np.asarray(q, dtype=np.float64))
    local = _rest_rotations(rest_rotations and not v0)

    # Nodes: 0 root, then the 55 bones, then the two mesh nodes.
    bone_node = {b: i + 1 for i, b in enumerate(ALL_BONES)}
    world_q: dict[str, np.ndarray] = {}
    nodes = [g.Node(name="Root", children=[bone_node["Hips"]])]
    for bone in ALL_BONES:
        parent = PARENTS[bone]
        pq = world_q[parent] if parent else quat.IDENTITY
        world_q[bone] = quat.mul(pq, local[bone])
        offset = P[bone] - (P[parent] if parent else np.zeros(3))
        t = quat.rotate(quat.conj(pq), offset)
        node = g.Node(name=bone, translation=[float(v) for v in frame(t)])
        if rest_rotations and not v0:
            node.rotation = [float(v) for v in frame_q(local[bone])]
        children = [bone_node[c] for c in ALL_BONES if PARENTS[c] == bone]
        if children:
            node.children = children
        nodes.append(node)
    joints = [bone_node[b] for b in ALL_BONES]
    joint_index = {b: i for i, b in enumerate(ALL_BONES)}
    ibm = []
    for bone in ALL_BONES:
        m = np.eye(4)
        r = quat.rotate
        q = frame_q(world_q[bone])
        m[:3, :3] = np.stack([r(q, e) for e in np.eye(3)], axis=1)
        m[:3, 3] = frame(P[bone])
        ibm.append(np.linalg.inv(m).T.reshape(-1))  # column-major
    binary = _Bin()
    ibm_acc = binary.add(np.array(ibm, dtype=np.float32), "MAT4", g.FLOAT, None)

    materials, meshes = [], []
    material_index: dict[str, int] = {}
    for name, color in COLORS.items():
        material_index[name] = len(materials)
        materials.append(
            g.Material(
                name=name,
                pbrMetallicRoughness=g.PbrMetallicRoughness(baseColorFactor=list(color), metallicFactor=0.0,
                                                            roughnessFactor=0.85),
                doubleSided=False,
            )
        )

    def primitive(parts: list[Part], material: str, targets: list[dict] | None = None):
        pos, nrm, jnt, idx = _merge(parts, joint_index)
        attrs = g.Attributes(
            POSITION=binary.add(np.array([frame(p) for p in pos], np.float32), "VEC3", g.FLOAT, g.ARRAY_BUFFER, True),
            NORMAL=binary.add(np.array([frame(n) for n in nrm], np.float32), "VEC3", g.FLOAT, g.ARRAY_BUFFER),
            JOINTS_0=binary.add(jnt.astype(np.uint16), "VEC4", g.UNSIGNED_SHORT, g.ARRAY_BUFFER),
            WEIGHTS_0=binary.add(
                np.tile(np.array([1, 0, 0, 0], np.float32), (len(pos), 1)), "VEC4", g.FLOAT, g.ARRAY_BUFFER
            ),
        )
        prim = g.Primitive(
            attributes=attrs,
            indices=binary.add(idx.reshape(-1).astype(np.uint32), "SCALAR", g.UNSIGNED_INT, g.ELEMENT_ARRAY_BUFFER),
            material=material_index[material],
        )
        if targets is not None:
            prim.targets = targets
        return prim, pos

    body = [primitive(parts, m)[0] for m, parts in body_parts().items()]
    meshes.append(g.Mesh(name="Body", primitives=body))
    face_prims = []
    for material, parts in face_parts().items():
        pos = np.vstack([p.positions for p in parts])
        targets = []
        for shapes in EXPRESSIONS.values():
            moved = shapes[material](pos) if material in shapes else pos
            delta = np.array([frame(d) for d in moved - pos], np.float32)  # the half turn is linear
            targets.append({"POSITION": binary.add(delta, "VEC3", g.FLOAT, g.ARRAY_BUFFER, True)})
        face_prims.append(primitive(parts, material, targets)[0])
    meshes.append(
        g.Mesh(name="Face", primitives=face_prims, weights=[0.0] * len(EXPRESSIONS),
               extras={"targetNames": list(EXPRESSIONS)})
    )
    body_node, face_node = len(nodes), len(nodes) + 1
    nodes += [g.Node(name="Body", mesh=0, skin=0), g.Node(name="Face", mesh=1, skin=0)]

    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator="latentcast scripts/make_avatar.py"),
        scene=0,
        scenes=[g.Scene(name="Scene", nodes=[0, body_node, face_node])],
        nodes=nodes,
        meshes=meshes,
        materials=materials,
        skins=[g.Skin(name="Armature", joints=joints, skeleton=0, inverseBindMatrices=ibm_acc)],
        accessors=binary.accessors,
        bufferViews=binary.views,
        buffers=[g.Buffer(byteLength=len(binary.data))],
    )
    target_index = {name: i for i, name in enumerate(EXPRESSIONS)}
    if v0:
        gltf.extensionsUsed = ["VRM"]
        gltf.extensions = {"VRM": _vrm0_extension(bone_node, face_mesh=1, targets=target_index, materials=materials)}
    else:
        gltf.extensionsUsed = ["VRMC_vrm"]
        gltf.extensions = {"VRMC_vrm": _vrm1_extension(bone_node, face_node, target_index)}
    gltf.set_binary_blob(bytes(binary.data))
    return gltf


META_NAME = "latentcast default avatar"


def _vrm1_extension(bone_node: dict[str, int], face_node: int, targets: dict[str, int]) -> dict:
    def expression(name: str) -> dict:
        binds = [] if name == "neutral" else [{"node": face_node, "index": targets[name], "weight": 1.0}]
        return {"morphTargetBinds": binds, "isBinary": False, "overrideBlink": "none",
                "overrideLookAt": "none", "overrideMouth": "none"}  # fmt: skip

    range_map = {"inputMaxValue": 30.0, "outputScale": 25.0}  # small painted eyes: turn them well
    return {
        "specVersion": "1.0",
        "meta": {
            "name": META_NAME, "version": "1", "authors": ["latentcast"],
            "licenseUrl": "https://vrm.dev/licenses/1.0/", "avatarPermission": "everyone",
            "allowExcessivelyViolentUsage": False, "allowExcessivelySexualUsage": False,
            "commercialUsage": "corporation", "allowPoliticalOrReligiousUsage": True,
            "allowAntisocialOrHateUsage": False, "creditNotation": "unnecessary", "allowRedistribution": True,
            "modification": "allowModificationRedistribution",
        },
        "humanoid": {"humanBones": {vrm1_name(b): {"node": n} for b, n in bone_node.items()}},
        "expressions": {"preset": {name: expression(name) for name in EXPRESSION_NAMES}, "custom": {}},
        "lookAt": {
            "type": "bone", "offsetFromHeadBone": [0.0, 0.105, 0.06],
            "rangeMapHorizontalInner": range_map, "rangeMapHorizontalOuter": range_map,
            "rangeMapVerticalDown": range_map, "rangeMapVerticalUp": range_map,
        },
        "firstPerson": {"meshAnnotations": []},
    }


def _vrm0_extension(bone_node: dict[str, int], face_mesh: int, targets: dict[str, int], materials: list) -> dict:
    groups = []
    for name in EXPRESSION_NAMES:
        binds = [] if name == "neutral" else [{"mesh": face_mesh, "index": targets[name], "weight": 100.0}]
        groups.append({"name": VRM0_NAMES[name], "presetName": VRM0_PRESETS.get(name, "unknown"), "binds": binds,
                       "materialValues": [], "isBinary": False})  # fmt: skip
    curve = {"curve": [0, 0, 0, 1, 1, 1, 1, 0], "xRange": 30.0, "yRange": 25.0}
    return {
        "exporterVersion": "latentcast-make_avatar",
        "specVersion": "0.0",
        "meta": {
            "title": META_NAME, "version": "1", "author": "latentcast", "contactInformation": "", "reference": "",
            "allowedUserName": "Everyone", "violentUssageName": "Disallow", "sexualUssageName": "Disallow",
            "commercialUssageName": "Allow", "licenseName": "CC0", "otherPermissionUrl": "", "otherLicenseUrl": "",
        },
        "humanoid": {
            "humanBones": [{"bone": vrm0_name(b), "node": n, "useDefaultValues": True} for b, n in bone_node.items()],
            "armStretch": 0.05, "legStretch": 0.05, "upperArmTwist": 0.5, "lowerArmTwist": 0.5,
            "upperLegTwist": 0.5, "lowerLegTwist": 0.5, "feetSpacing": 0.0, "hasTranslationDoF": False,
        },
        "firstPerson": {
            "firstPersonBone": bone_node["Head"], "firstPersonBoneOffset": {"x": 0.0, "y": 0.105, "z": -0.06},
            "meshAnnotations": [], "lookAtTypeName": "Bone", "lookAtHorizontalInner": curve,
            "lookAtHorizontalOuter": curve, "lookAtVerticalDown": curve, "lookAtVerticalUp": curve,
        },
        "blendShapeMaster": {"blendShapeGroups": groups},
        "secondaryAnimation": {"boneGroups": [], "colliderGroups": []},
        "materialProperties": [
            {"name": m.name, "shader": "VRM_USE_GLTFSHADER", "renderQueue": 2000, "floatProperties": {},
             "vectorProperties": {}, "textureProperties": {}, "keywordMap": {}, "tagMap": {}}
            for m in materials
        ],
    }


def write(path: str | Path, version: str = "1.0", rest_rotations: bool = False) -> Path:
    """Build and save the avatar as a .vrm (glTF binary); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.part")  # concurrent writers never share a temp file
    build(version, rest_rotations).save_binary(str(tmp))
    tmp.replace(path)
    return path


DEFAULT_DIR = Path(__file__).resolve().parents[1] / "runs" / "avatar"
DEFAULT_FILES = {"1.0": "latentcast-default.vrm", "0.x": "latentcast-default-vrm0.vrm"}


def default_avatar(version: str = "1.0", directory: str | Path = DEFAULT_DIR) -> Path:
    """The generated default avatar, built on first use (deterministic, so reuse is safe)."""
    path = Path(directory) / DEFAULT_FILES[version]
    return path if path.exists() else write(path, version)
