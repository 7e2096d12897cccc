"""Landmark datasets for the gesture and expression AAEs, as plain numpy arrays.

Hand data: the shared MediaPipe-Hands CSVs (one row = class id + 42 hand features, already in
the convention `latentcast.features` produces at run time), read through the asset resolver.
baron105 (11 gestures) is the training set; kinivi (another recorder, 4 signs) is the
cross-person check, its labels mapped onto baron105's names.

Face data: the real photos (MediaPipe run once, cached by sha256), the synthesis recipe that puts
expressions on real neutral faces (docs/DATA.md says what and why), and sessions recorded with
`edge/record.py` (`latentcast.session`). MediaPipe and edge/ are imported lazily, only where a photo or clip is read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentcast import features
from latentcast.assets import resolve
from latentcast.errors import UserError

HAND_FEATURE_DIM = features.HAND_FEATURE_DIM  # 21 (x, y) points, wrist-relative, max-abs normalised

HAND_SETS = {
    "baron105": "data/hand_gestures/baron105_11_gestures",
    "kinivi": "data/hand_gestures/kinivi",
}

# kinivi's 4 signs are the same hand shapes as 4 of baron105's 11 gestures.
KINIVI_TO_BARON = {"Open": "open_palm", "Close": "closed_fist", "Pointer": "pointing", "OK": "ok"}


@dataclass
class LabelledSet:
    """Feature rows with integer labels into `classes` (-1 = unlabelled)."""

    x: np.ndarray  # [N, D] float32
    y: np.ndarray  # [N] int64
    classes: list[str]
    source: dict = field(default_factory=dict)  # what the data is, for the model card

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> LabelledSet:
        return LabelledSet(self.x[index], self.y[index], list(self.classes), dict(self.source))


def read_labels(path: str | Path) -> list[str]:
    """One label per line; a UTF-8 BOM and CRLF line endings are tolerated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels file {path} does not exist: give the keypoint_classifier_label.csv next to the CSV")
    with open(path, encoding="utf-8-sig", newline="") as stream:
        labels = [line.strip() for line in stream.read().splitlines() if line.strip()]
    if not labels:
        raise UserError(f"labels file {path} is empty: it needs one class name per line")
    return labels


def read_keypoint_csv(csv_path: str | Path, labels_path: str | Path) -> LabelledSet:
    """Read a `keypoint.csv` (class id + 42 values per row) and its labels file."""
    csv_path = Path(csv_path)
    classes = read_labels(labels_path)
    if not csv_path.is_file():
        raise UserError(f"keypoint CSV {csv_path} does not exist: give a keypoint.csv recorded with MediaPipe Hands")
    rows: list[list[float]] = []
    ids: list[int] = []
    with open(csv_path, encoding="utf-8-sig", newline="") as stream:
        for number, row in enumerate(csv.reader(stream), start=1):
            if not row:
                continue
            if len(row) != HAND_FEATURE_DIM + 1:
                raise UserError(
                    f"{csv_path} line {number} has {len(row)} columns, expected {HAND_FEATURE_DIM + 1} "
                    "(class id + 21 x,y points): is this a hand keypoint CSV?"
                )
            try:
                ids.append(int(row[0]))
                rows.append([float(v) for v in row[1:]])
            except ValueError:
                raise UserError(f"{csv_path} line {number} is not numeric: fix or delete that line") from None
    if not rows:
        raise UserError(f"{csv_path} has no rows: record some samples first")
    y = np.asarray(ids, dtype=np.int64)
    if y.min() < 0:
        raise UserError(f"{csv_path} uses class id {int(y.min())}: class ids start at 0; fix those rows")
    if y.max() >= len(classes):
        raise UserError(
            f"{csv_path} uses class id {int(y.max())} but {labels_path} names only {len(classes)} classes: "
            "add the missing labels"
        )
    x = np.asarray(rows, dtype=np.float32)
    return LabelledSet(x, y, classes, {"csv": str(csv_path), "rows": len(y)})


def load_hand_set(name: str) -> LabelledSet:
    """Load a shared hand set by name ('baron105' or 'kinivi'), with its original labels."""
    if name not in HAND_SETS:
        raise UserError(f"unknown hand set {name!r}: choose one of {', '.join(HAND_SETS)}")
    folder = HAND_SETS[name]
    data = read_keypoint_csv(resolve(f"{folder}/keypoint.csv"), resolve(f"{folder}/keypoint_classifier_label.csv"))
    data.source = {"set": name, "asset": f"{folder}/keypoint.csv", "rows": len(data)}
    return data


def remap(data: LabelledSet, mapping: dict[str, str], classes: list[str]) -> LabelledSet:
    """Relabel `data` into `classes` via `mapping` (old name -> new name); rows without a target are dropped."""
    lookup = {i: classes.index(mapping[name]) for i, name in enumerate(data.classes) if mapping.get(name) in classes}
    keep = np.isin(data.y, list(lookup))
    y = np.asarray([lookup[int(v)] for v in data.y[keep]], dtype=np.int64)
    return LabelledSet(data.x[keep], y, list(classes), {**data.source, "mapped": mapping})


def load_kinivi_as_baron(classes: list[str]) -> LabelledSet:
    """kinivi's rows relabelled with baron105's class names (the cross-person test set)."""
    return remap(load_hand_set("kinivi"), KINIVI_TO_BARON, classes)


def stratified_split(y: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out): `fraction` of every class held out, at least one row each when possible."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in np.unique(y):
        index = rng.permutation(np.flatnonzero(y == label))
        n_held = round(fraction * len(index))
        if fraction > 0 and len(index) > 1:
            n_held = min(max(n_held, 1), len(index) - 1)
        held.append(index[:n_held])
        train.append(index[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def pick_labelled(y: np.ndarray, label_fraction: float | None = None, nlabels: int | None = None, seed: int = 0):
    """Labels with all but a class-balanced subset set to -1 (unlabelled): the paper's few-labels case.

    `nlabels` is a total count spread evenly over classes; `label_fraction` is a share of every class.
    Every class keeps at least one label.
    """
    if (label_fraction is None) == (nlabels is None):
        raise UserError("give exactly one of --label_fraction or --nlabels")
    if label_fraction is not None and not 0 < label_fraction <= 1:
        raise UserError(f"--label_fraction {label_fraction} is outside (0, 1]: use e.g. 0.1 for 10 % of the labels")
    if nlabels is not None and nlabels < 1:
        raise UserError(f"--nlabels {nlabels} is below 1: give the total number of labelled samples to use")
    rng = np.random.default_rng(seed)
    present = np.unique(y[y >= 0])
    out = np.full_like(y, -1)
    for label in present:
        index = rng.permutation(np.flatnonzero(y == label))
        keep = max(1, nlabels // len(present)) if nlabels is not None else max(1, round(label_fraction * len(index)))
        out[index[:keep]] = label
    return out


def augment_hands(
    x: np.ndarray, y: np.ndarray, copies: int = 2, max_degrees: float = 20.0, mirror: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The rows plus `copies` jittered copies each: in-plane rotation about the wrist and a left/right mirror.

    Why: a gesture does not change when the hand tilts a little or when the other hand makes it, but
    one recorder's CSV covers few tilts and mostly one hand. Rotations of +-20 degrees and x -> -x keep
    the class and teach the encoder that invariance; rows stay in the CSV convention (max |value| = 1).
    """
    rng = np.random.default_rng(seed)
    out_x, out_y = [x], [y]
    points = x.reshape(len(x), 21, 2).astype(np.float64)
    for _ in range(copies):
        angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, size=len(x)))
        cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
        turned = np.stack(
            [cos * points[..., 0] - sin * points[..., 1], sin * points[..., 0] + cos * points[..., 1]], -1
        )
        rows = features.normalise_hand_points(turned)
        if mirror:
            flip = rng.random(len(x)) < 0.5
            rows[flip] = features.mirror_hand_features(rows[flip])
        out_x.append(rows)
        out_y.append(y)
    return np.concatenate(out_x).astype(np.float32), np.concatenate(out_y)


# ----------------------------------------------------------------------------- real media (MediaPipe)


def _read_image(key: str) -> np.ndarray:
    import cv2

    path = resolve(key)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path} is not a readable image: replace it with a JPEG or PNG")
    return image


def hand_features_from_image(key: str) -> np.ndarray:
    """Features [H, 42] of every hand MediaPipe finds in the image asset `key` (IMAGE mode)."""
    from edge.landmarks import HandTracker, LandmarkerConfig

    with HandTracker(LandmarkerConfig(mode="image")) as tracker:
        hands = tracker.detect(_read_image(key))
    rows = [features.hand_features(h.landmarks, h.handedness, h.image_size) for h in hands if h.present]
    return np.asarray(rows, np.float32).reshape(-1, HAND_FEATURE_DIM)


def hand_features_from_video(key: str, max_hands: int = 1) -> tuple[np.ndarray, int]:
    """(features [F, 42] of the first hand in each frame that has one, frames read) for a video asset."""
    import cv2

    from edge.landmarks import HandTracker, LandmarkerConfig

    capture = cv2.VideoCapture(str(resolve(key)))
    if not capture.isOpened():
        raise UserError(f"cannot open video {key}: check that it is an MP4/AVI OpenCV can read")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    rows, frames = [], 0
    with HandTracker(LandmarkerConfig(mode="video", max_hands=max_hands)) as tracker:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            hand = tracker.detect(frame, int(frames * 1000 / fps))[0]
            frames += 1
            if hand.present:
                rows.append(features.hand_features(hand.landmarks, hand.handedness, hand.image_size))
    capture.release()
    return np.asarray(rows, np.float32).reshape(-1, HAND_FEATURE_DIM), frames


# ----------------------------------------------------------------------------- faces: photos, cache, recipe

EXPRESSION_CLASSES = ["neutral", "smile", "surprise", "mouth_open", "eyes_closed"]
FACE_FEATURE_DIM = features.FACE_FEATURE_DIM
LONDON_IDS = ("004", "005", "006", "008", "025", "042")


@dataclass(frozen=True)
class FacePhoto:
    """One face photo asset: who it is (for leave-one-person-out) and its label (None = unlabelled)."""

    key: str
    person: str
    label: str | None


def face_photos() -> list[FacePhoto]:
    """The real face photos in the mirror: 6 London people neutral + smiling, lisa x4 neutral, 3 unlabelled."""
    root = "data/face_expressions/london_set"
    photos = [FacePhoto(f"{root}/neutral/{i}_03.jpg", f"london_{i}", "neutral") for i in LONDON_IDS]
    photos += [FacePhoto(f"{root}/smiling/{i}_08.jpg", f"london_{i}", "smile") for i in LONDON_IDS]
    photos += [FacePhoto(f"{root}/lisa_cc0/lisa{n}.jpg", "lisa", "neutral") for n in range(1, 5)]
    photos += [FacePhoto(key, Path(key).stem, None) for key in _image_keys("data/images/faces/")]
    return photos


def _image_keys(prefix: str) -> list[str]:
    from latentcast.assets import catalog_keys

    return [k for k in catalog_keys(prefix) if k.lower().endswith((".jpg", ".jpeg", ".png"))]


@dataclass
class Face:
    """A face's landmark-stage output, cached: what `latentcast.features.face_features` needs."""

    landmarks: np.ndarray  # [478, 3] normalised image coordinates
    blendshapes: np.ndarray  # [52]
    image_size: tuple[int, int]

    def features(self) -> np.ndarray:
        return features.face_features(self.landmarks, self.blendshapes, self.image_size)


def landmark_cache_dir() -> Path:
    from latentcast.assets import cache_dir

    return cache_dir() / "landmarks"


def face_from_asset(key: str, cache: Path | None = None) -> Face | None:
    """The first face in an image asset (None if MediaPipe finds none), cached by image + model sha256.

    Why a cache: MediaPipe on 20 photos costs seconds per training run; its output for a given image
    and model file never changes, so it is computed once and kept under the user cache.
    """
    from latentcast.assets import sha256_of

    image_path = resolve(key)
    model_path = resolve("models/mediapipe/face_landmarker.task")
    cache = cache if cache is not None else landmark_cache_dir()
    entry = cache / f"face-{sha256_of(image_path)[:20]}-{sha256_of(model_path)[:12]}.npz"
    if entry.is_file():
        stored = np.load(entry)
        if not bool(stored["present"]):
            return None
        return Face(stored["landmarks"], stored["blendshapes"], tuple(int(v) for v in stored["image_size"]))
    from edge.landmarks import FaceTracker, LandmarkerConfig

    with FaceTracker(LandmarkerConfig(mode="image")) as tracker:
        found = tracker.detect(_read_image(key))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        entry,
        present=found.present,
        landmarks=found.landmarks,
        blendshapes=found.blendshapes,
        image_size=np.asarray(found.image_size),
    )
    return Face(found.landmarks, found.blendshapes, found.image_size) if found.present else None


def load_faces(photos: list[FacePhoto] | None = None) -> list[tuple[FacePhoto, Face]]:
    """(photo, face) for every photo where a face is found."""
    pairs = []
    for photo in photos if photos is not None else face_photos():
        face = face_from_asset(photo.key)
        if face is not None:
            pairs.append((photo, face))
    return pairs


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


def load_session(path: str | Path, classes: list[str] = EXPRESSION_CLASSES, part: str = "face") -> LabelledSet:
    """A session recorded with `edge/record.py` as rows labelled into `classes` (-1 = unlabelled frame).

    Frames where the part was not seen are dropped; the feature-spec policy (re-featurise an older
    spec, refuse damaged features) is the file format's own, `latentcast.session`.
    """
    from latentcast.session import load_session as read_session

    session = read_session(path)
    try:
        x, labels, names = session.training_arrays(part)
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path} has no usable {part} features ({exc}): record it again (edge.record)") from exc
    unknown = sorted({names[i] for i in labels[labels >= 0]} - set(classes))
    if unknown:
        raise UserError(f"{path} labels frames {unknown}, not one of {', '.join(classes)}: relabel them")
    y = np.asarray([classes.index(names[i]) if i >= 0 else -1 for i in labels], np.int64)
    source = {"session": str(path), "rows": len(y), "labelled": int((y >= 0).sum())}
    return LabelledSet(np.asarray(x, np.float32), y, list(classes), source)
