"""Hand training data: the shared MediaPipe-Hands CSVs, THE held-out test split, augmentation, media.

The CSVs (one row = class id + 42 hand features, already in the convention `latentcast.features`
produces at run time) are read through the asset resolver. baron105 (11 gestures) is the training
set; kinivi (another recorder, 4 signs) is the cross-person check, its labels mapped onto
baron105's names.

`hand_test_split` is the one definition of the rows the gesture model is scored on: training
(`aae.gestures`), the quality benchmark and the INT8 calibration sets (`calibration.sets`, which
must never calibrate on test rows) all split through it. MediaPipe and edge/ are imported lazily,
only where a photo or clip is read.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from aae.datasets import LabelledSet, read_image_asset, stratified_split
from latentcast import features
from latentcast.assets import resolve
from latentcast.errors import UserError

HAND_FEATURE_DIM = features.HAND_FEATURE_DIM  # 21 (x, y) points, wrist-relative, max-abs normalised
HAND_TEST_FRACTION = 0.2  # share of every class held out as the test split (never trained or calibrated on)

HAND_SETS = {
    "baron105": "data/hand_gestures/baron105_11_gestures",
    "kinivi": "data/hand_gestures/kinivi",
}

# kinivi's 4 signs are the same hand shapes as 4 of baron105's 11 gestures.
KINIVI_TO_BARON = {"Open": "open_palm", "Close": "closed_fist", "Pointer": "pointing", "OK": "ok"}
KINIVI_FIT_FRACTION = 0.5  # per sign, the first half of kinivi's rows (CSV order) fit the open-set rule


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
    """ALL of kinivi's rows relabelled with baron105's class names (use `kinivi_halves` to fit or score)."""
    return remap(load_hand_set("kinivi"), KINIVI_TO_BARON, classes)


def kinivi_halves(classes: list[str]) -> tuple[LabelledSet, LabelledSet]:
    """(fit half, evaluation half) of kinivi, relabelled into `classes`: THE one definition of the halves.

    Why halves: the open-set rule must be fitted on real rows of more than one person (baron105's
    validation split alone rejects another person's ordinary open hand), yet kinivi is also the
    cross-person test. Per kinivi sign, the first `KINIVI_FIT_FRACTION` of its rows in recording
    (CSV) order fit the rule; the rest score it. Contiguous blocks rather than random rows, so that
    near-identical neighbouring frames of one take never sit on both sides.
    """
    data = load_kinivi_as_baron(classes)
    fit = np.zeros(len(data), dtype=bool)
    for label in np.unique(data.y):
        index = np.flatnonzero(data.y == label)
        fit[index[: round(KINIVI_FIT_FRACTION * len(index))]] = True
    halves = []
    for name, mask in (("fit", fit), ("eval", ~fit)):
        part = data.subset(np.flatnonzero(mask))
        part.source = {**data.source, "half": name, "rows": int(mask.sum())}
        halves.append(part)
    return halves[0], halves[1]


def hand_test_split(data: LabelledSet, seed: int = 0) -> tuple[LabelledSet, LabelledSet]:
    """(rest, test): THE held-out test split of a hand set, `HAND_TEST_FRACTION` of every class."""
    rest, test = stratified_split(data.y, HAND_TEST_FRACTION, seed=seed)
    return data.subset(rest), data.subset(test)


def split_hand_set(
    data: LabelledSet, val_fraction: float = 0.1, seed: int = 0
) -> tuple[LabelledSet, LabelledSet, LabelledSet]:
    """(train, validation, test), stratified per class; `val_fraction` is a share of all rows."""
    rest, test = hand_test_split(data, seed)
    train_i, val_i = stratified_split(rest.y, val_fraction / (1 - HAND_TEST_FRACTION), seed=seed)
    return rest.subset(train_i), rest.subset(val_i), test


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


def hand_features_from_image(key: str) -> np.ndarray:
    """Features [H, 42] of every hand MediaPipe finds in the image asset `key` (IMAGE mode)."""
    from edge.landmarks import HandTracker, LandmarkerConfig

    with HandTracker(LandmarkerConfig(mode="image")) as tracker:
        hands = tracker.detect(read_image_asset(key))
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
