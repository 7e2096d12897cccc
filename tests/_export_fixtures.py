"""Small real models for the export, bundle and calibration tests (not collected: no test_ prefix).

The gesture and expression CLIs train for a minute or more; these train an `aae.model`
SemiSupervisedAAE for a few hundred full-batch steps of plain supervised classification plus
reconstruction, on real features, which is enough for the things tested here (export parity,
INT8 agreement, bundle round trips, neutral calibration) and takes seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from aae import model as aae_model

LONDON_IDS = ("004", "005", "006", "008", "025", "042")


def fit_small(x: np.ndarray, y: np.ndarray, classes: list[str], code_dim: int = 2, steps: int = 150, seed: int = 0):
    """A small SemiSupervisedAAE fitted on (x, y): cross-entropy on y, reconstruction, z pulled towards N(0, I)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest on a shared 2-core machine
    try:
        return _fit(x, y, classes, code_dim, steps, seed)
    finally:
        torch.set_num_threads(threads)


def _fit(x, y, classes, code_dim, steps, seed):
    torch.manual_seed(seed)
    cfg = aae_model.AAEConfig(
        input_dim=x.shape[1], n_classes=len(classes), code_dim=code_dim, hidden_dim=64, disc_hidden_dim=16
    )
    model = aae_model.SemiSupervisedAAE(cfg)
    xs, ys = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        probs, z = model.encode(xs)
        loss = (
            torch.nn.functional.nll_loss(torch.log(probs + 1e-8), ys)
            + 0.5 * ((model.decode(probs, z) - xs) ** 2).sum(1).mean()
            + (z**2).mean()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def save_model_dir(out: Path, model, name: str, classes: list[str], feature: str) -> Path:
    """model.pt + model_card.json, as aae.gestures / aae.expressions write them."""
    from latentcast.features import FEATURE_SPEC_VERSION

    out.mkdir(parents=True, exist_ok=True)
    card = {
        "name": name,
        "classes": classes,
        "feature": feature,
        "feature_spec_version": FEATURE_SPEC_VERSION,
        "input_dim": model.cfg.input_dim,
        "code_dim": model.cfg.code_dim,
        "n_classes": model.cfg.n_classes,
        "data": {"split_seed": 0, "note": "test fixture"},
        "metrics": {},
        "open_set": {},
    }
    aae_model.save_checkpoint(out / "model.pt", model, card=card)
    (out / "model_card.json").write_text(json.dumps(card))
    return out


_TRAINED: dict[int, Path] = {}  # one training per pytest process; later callers get a copy


def gesture_model_dir(out: Path, rows: int = 800) -> Path:
    """A gesture model trained on baron105's training split (the calibration pool), written to `out`."""
    from calibration.sets import hand_split

    if rows in _TRAINED and _TRAINED[rows].is_dir():
        return Path(shutil.copytree(_TRAINED[rows], out))
    pool, _ = hand_split()
    pick = np.random.default_rng(0).permutation(len(pool))[:rows]
    model = fit_small(pool.x[pick], pool.y[pick], pool.classes, code_dim=4)
    _TRAINED[rows] = save_model_dir(out, model, "gesture", pool.classes, "hand")
    return out


def london_face_features() -> tuple[np.ndarray, np.ndarray]:
    """(neutral [6, D], smiling [6, D]) face features of the London set photos, real MediaPipe."""
    import cv2

    from calibration.neutral import face_feature_rows
    from latentcast.assets import resolve

    def rows(folder: str, suffix: str) -> np.ndarray:
        paths = [resolve(f"data/face_expressions/london_set/{folder}/{i}_{suffix}.jpg") for i in LONDON_IDS]
        features = face_feature_rows([cv2.imread(str(p)) for p in paths], mode="image")
        assert len(features) == len(LONDON_IDS), f"MediaPipe missed a face in {folder}/"
        return features

    return rows("neutral", "03"), rows("smiling", "08")
