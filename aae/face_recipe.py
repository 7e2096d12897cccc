"""The face synthesis recipe: expressions put on real neutral faces (docs/DATA.md says what and why).

Anatomical landmark moves in the head frame (jaw about its hinge, lids, brows, the smile learned
from the real neutral/smiling pairs) plus the matching ARKit blendshape scores, applied to real
faces and to morphs between them. `expression_dataset` is the expression model's training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aae.datasets import LabelledSet
from aae.face_data import EXPRESSION_CLASSES, FACE_FEATURE_DIM, Face, FacePhoto, load_faces
from latentcast import features
from latentcast.errors import UserError

# Face-mesh index sets the recipe moves (subject's left/right, MediaPipe's canonical mesh).
BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
UPPER_LIDS = (246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398)
LOWER_LIDS = (7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382)  # paired with UPPER_LIDS
UPPER_LIPS = (185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_LIPS = (146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324)
MOUTH_CORNERS = (61, 291, 78, 308)
LOWER_LIP_BOTTOM = 17
BS = {name: i for i, name in enumerate(features.BLENDSHAPE_NAMES)}

# Recipe constants, in head-frame units (outer eye-corner distance, about 9-10 cm on an adult).
JAW_HINGE = np.array([0.0, 0.35, 0.9])  # temporomandibular joint: a little below the eyes, well behind them
JAW_MAX_DEGREES = 25.0  # jawOpen = 1: a wide-open mouth, the chin about half an eye distance lower
BROW_MAX_RAISE = 0.16  # browUp = 1: brows about 1.5 cm higher
LANDMARK_JITTER = 0.004  # MediaPipe's frame-to-frame landmark noise, about 0.4 mm
HEAD_JITTER_DEGREES = 8.0  # residual head rotation the pose removal has to cope with


def _head_frame(face: Face) -> tuple[np.ndarray, np.ndarray, float]:
    return features.head_frame(features.face_points_in_pixels(face.landmarks, face.image_size))


def to_head_frame(face: Face) -> np.ndarray:
    """[478, 3] landmarks in the head frame (x right, y down, z away; outer-eye-distance units)."""
    return features.pose_free_face_landmarks(face.landmarks, face.image_size).astype(np.float64)


def from_head_frame(face: Face, points: np.ndarray, blendshapes: np.ndarray) -> Face:
    """Put head-frame points back into `face`'s image (its pose and scale): the inverse of `to_head_frame`."""
    origin, axes, scale = _head_frame(face)
    pixels = origin + (points * scale) @ axes
    width, height = face.image_size
    normalised = pixels / np.array([width, height, width], dtype=np.float64)
    return Face(normalised.astype(np.float32), np.clip(blendshapes, 0.0, 1.0).astype(np.float32), face.image_size)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


def open_jaw(points: np.ndarray, amount: float) -> np.ndarray:
    """Rotate the mandible (lower lip, chin, lower face) about the jaw hinge; amount = jawOpen in [0, 1].

    Weights: lower lip and everything below its bottom edge move fully, the upper lip not at all,
    mouth corners half, and cheek points between the corner line and the lip bottom in proportion.
    """
    angle = np.deg2rad(JAW_MAX_DEGREES * amount)
    rot = _rotation(0.0, angle, 0.0)  # pitch about x: with y down and z away, the chin goes down and back
    moved = (points - JAW_HINGE) @ rot.T + JAW_HINGE
    y_corner = points[list(MOUTH_CORNERS[:2]), 1].mean()
    y_bottom = points[LOWER_LIP_BOTTOM, 1]
    weight = np.clip((points[:, 1] - y_corner) / max(y_bottom - y_corner, 1e-6), 0.0, 1.0)
    weight[list(LOWER_LIPS)] = 1.0
    weight[list(UPPER_LIPS)] = 0.0
    weight[list(MOUTH_CORNERS)] = 0.5
    return points + weight[:, None] * (moved - points)


def close_eyes(points: np.ndarray, right: float, left: float) -> np.ndarray:
    """Move each upper-lid point toward its lower-lid partner (1 = closed; negative = wider open)."""
    out = points.copy()
    upper, lower = np.asarray(UPPER_LIDS), np.asarray(LOWER_LIDS)
    share = np.where(np.arange(len(upper)) < 7, right, left)[:, None]
    out[upper] = points[upper] + 0.92 * share * (points[lower] - points[upper])
    return out


def raise_brows(points: np.ndarray, right: float, left: float) -> np.ndarray:
    out = points.copy()
    brows = np.asarray(BROWS)
    amount = np.where(np.arange(len(brows)) < 10, right, left) * BROW_MAX_RAISE
    out[brows, 1] -= amount
    return out


@dataclass
class SmileDirection:
    """Mean (smiling - neutral) change over paired people: head-frame landmarks and blendshape scores."""

    points: np.ndarray  # [478, 3]
    blendshapes: np.ndarray  # [52]
    people: list[str]


def smile_direction(faces: list[tuple[FacePhoto, Face]], exclude: set[str] = frozenset()) -> SmileDirection:
    """Learn the smile from the real pairs (minus `exclude`d people, for leave-one-person-out)."""
    by_person: dict[str, dict[str, Face]] = {}
    for photo, face in faces:
        if photo.label in ("neutral", "smile") and photo.person.startswith("london_") and photo.person not in exclude:
            by_person.setdefault(photo.person, {})[photo.label] = face
    pairs = {p: v for p, v in by_person.items() if len(v) == 2}
    if not pairs:
        raise UserError("no paired neutral/smiling photos left to learn the smile from: exclude fewer people")
    points = np.mean([to_head_frame(v["smile"]) - to_head_frame(v["neutral"]) for v in pairs.values()], axis=0)
    shapes = np.mean([v["smile"].blendshapes - v["neutral"].blendshapes for v in pairs.values()], axis=0)
    return SmileDirection(points, shapes.astype(np.float64), sorted(pairs))


def synthesize(face: Face, label: str, smile: SmileDirection, rng: np.random.Generator) -> Face:
    """One synthetic expression on a real neutral face: anatomical landmark moves + matching ARKit scores.

    Each class sets the blendshape scores ARKit defines for it and moves the landmarks by the same
    amount (jaw rotation for jawOpen, lid closure for eyeBlink, brow lift for browUp, the learned
    smile for mouthSmile), with left/right asymmetry, landmark noise and a little head rotation.
    """
    points = to_head_frame(face)
    shapes = face.blendshapes.astype(np.float64) + rng.normal(0.0, 0.02, size=features.BLENDSHAPE_COUNT)

    def lr(lo: float, hi: float) -> tuple[float, float]:
        base = rng.uniform(lo, hi)
        return base * rng.uniform(0.85, 1.15), base * rng.uniform(0.85, 1.15)

    if label == "smile":
        strength = rng.uniform(0.6, 1.8)
        points = points + strength * smile.points
        shapes = shapes + strength * smile.blendshapes
        right, left = lr(0.5, 0.95)
        shapes[BS["mouthSmileRight"]] = max(shapes[BS["mouthSmileRight"]], right)
        shapes[BS["mouthSmileLeft"]] = max(shapes[BS["mouthSmileLeft"]], left)
    elif label == "mouth_open":
        jaw = rng.uniform(0.25, 0.75)
        points = open_jaw(points, jaw)
        shapes[BS["jawOpen"]] = jaw
        shapes[BS["mouthClose"]] = rng.uniform(0.0, 0.05)
        for side in ("Left", "Right"):
            shapes[BS[f"mouthLowerDown{side}"]] = jaw * rng.uniform(0.2, 0.6)
    elif label == "surprise":
        right, left = lr(0.5, 1.0)
        points = raise_brows(points, right, left)
        wide = rng.uniform(0.2, 0.7)
        points = close_eyes(points, -0.3 * wide, -0.3 * wide)
        jaw = rng.uniform(0.3, 0.8)
        points = open_jaw(points, jaw)
        shapes[BS["browInnerUp"]] = max(right, left)
        shapes[BS["browOuterUpRight"]], shapes[BS["browOuterUpLeft"]] = right, left
        shapes[BS["eyeWideRight"]] = shapes[BS["eyeWideLeft"]] = wide
        shapes[BS["jawOpen"]] = jaw
        shapes[BS["browDownLeft"]] = shapes[BS["browDownRight"]] = 0.0
    elif label == "eyes_closed":
        right, left = lr(0.75, 1.0)
        points = close_eyes(points, min(right, 1.0), min(left, 1.0))
        shapes[BS["eyeBlinkRight"]], shapes[BS["eyeBlinkLeft"]] = right, left
        shapes[BS["eyeSquintRight"]] = shapes[BS["eyeSquintLeft"]] = rng.uniform(0.0, 0.3)
    elif label != "neutral":
        raise ValueError(f"unknown expression {label!r}: use one of {EXPRESSION_CLASSES}")

    points = points + rng.normal(0.0, LANDMARK_JITTER, size=points.shape)
    turn = np.deg2rad(rng.uniform(-HEAD_JITTER_DEGREES, HEAD_JITTER_DEGREES, size=3))
    points = points @ _rotation(*turn).T
    return from_head_frame(face, points, shapes)


def morph(a: Face, b: Face, weight: float) -> Face:
    """A new identity between two real faces: head-frame landmarks and blendshapes blended, placed in a's photo.

    Why: ten real neutral faces are ten identities; a model trained on them learns the people, not
    the expressions. Averages of real faces are plausible faces (the London set's own lab builds
    face morphs exactly this way), so blending pairs fills the space between identities.
    """
    points = (1.0 - weight) * to_head_frame(a) + weight * to_head_frame(b)
    shapes = (1.0 - weight) * a.blendshapes.astype(np.float64) + weight * b.blendshapes.astype(np.float64)
    return from_head_frame(a, points, shapes)


def expression_dataset(
    per_class: int = 150,
    exclude_people: set[str] = frozenset(),
    seed: int = 0,
    faces: list[tuple[FacePhoto, Face]] | None = None,
    morph_share: float = 0.7,
) -> tuple[LabelledSet, LabelledSet]:
    """(labelled real + synthetic rows, unlabelled real rows) of expression features.

    Real: every labelled photo (neutral/smile) of people not excluded. Synthetic: `per_class` rows
    per class per known-neutral face (real smiling faces also serve as jittered smile bases); a
    `morph_share` of them start from a morph with another real face of the same label (`morph`).
    Unlabelled: the photos without a label (semi-supervised input only).
    """
    faces = faces if faces is not None else load_faces()
    faces = [(p, f) for p, f in faces if p.person not in exclude_people]
    smile = smile_direction(faces)
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    same_label = {label: [f for p, f in faces if p.label == label] for label in ("neutral", "smile")}
    for photo, face in faces:
        if photo.label is None:
            continue
        partners = [f for f in same_label[photo.label] if f is not face]
        rows.append(face.features())
        labels.append(EXPRESSION_CLASSES.index(photo.label))
        # a neutral face is the base of every class; a real smile is kept and only jittered
        # ("neutral" in synthesize = no expression change), labelled smile
        todo = [(c, c) for c in EXPRESSION_CLASSES] if photo.label == "neutral" else [("neutral", photo.label)]
        for change, label in todo:
            for _ in range(per_class):
                base = face
                if partners and rng.random() < morph_share:
                    base = morph(face, partners[rng.integers(len(partners))], rng.uniform(0.0, 0.5))
                rows.append(synthesize(base, change, smile, rng).features())
                labels.append(EXPRESSION_CLASSES.index(label))
    unlabelled = [face.features() for photo, face in faces if photo.label is None]
    source = {
        "photos": sorted({p.key for p, _ in faces}),
        "excluded_people": sorted(exclude_people),
        "smile_learned_from": smile.people,
        "synthetic_per_class_per_face": per_class,
        "morphed_identity_share": morph_share,
        "recipe": "docs/DATA.md",
        "seed": seed,
    }
    labelled = LabelledSet(np.asarray(rows, np.float32), np.asarray(labels, np.int64), list(EXPRESSION_CLASSES), source)
    free = LabelledSet(
        np.asarray(unlabelled, np.float32).reshape(-1, FACE_FEATURE_DIM),
        np.full(len(unlabelled), -1, np.int64),
        list(EXPRESSION_CLASSES),
        {"photos": [p.key for p, _ in faces if p.label is None]},
    )
    return labelled, free
