"""What hand and face training data share: labelled rows, stratified splits, the few-labels pick.

Plain numpy arrays, no torch: `aae/hand_data.py`, `aae/face_data.py` and `calibration/` build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latentcast.assets import resolve
from latentcast.errors import UserError


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


def read_image_asset(key: str) -> np.ndarray:
    """An image asset as a BGR array; an unreadable file is a UserError naming it."""
    import cv2

    path = resolve(key)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path} is not a readable image: replace it with a JPEG or PNG")
    return image
