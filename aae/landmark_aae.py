"""Train, evaluate and save a semi-supervised AAE over landmark features (gestures and expressions).

The model itself is `aae.model.SemiSupervisedAAE` (reused, not copied); this module adds what both
landmark encoders need around it: numpy in/out helpers, the reconstruction error and accuracy the
open-set rule (`latentcast.open_set`) and the metrics use, and the checkpoint + `model_card.json` pair the
exporter and the renderer read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aae import model as aae_model
from latentcast import open_set

MODEL_CARD = "model_card.json"
CHECKPOINT = "model.pt"


@dataclass
class FitConfig:
    """Size and schedule of a landmark AAE; small by default so a model trains in about a minute on 2 cores."""

    code_dim: int = 4
    hidden_dim: int = 256
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3  # reference 2e-4 is for 100 epochs of 60k MNIST images; landmark sets are ~10x smaller
    noise: float = 0.0  # Gaussian std added to the encoder input while training
    cls_every: int = 1  # a supervised step every N steps (paper: every step; reference: 10; landmark sets are small)
    seed: int = 0
    progress: bool = True
    threads: int = 1  # torch CPU threads: these MLPs are small, and extra threads spin-wait on a busy machine


def build(input_dim: int, n_classes: int, cfg: FitConfig) -> aae_model.SemiSupervisedAAE:
    torch.manual_seed(cfg.seed)
    config = aae_model.AAEConfig(
        input_dim=input_dim,
        n_classes=n_classes,
        code_dim=cfg.code_dim,
        variant="semisupervised",
        hidden_dim=cfg.hidden_dim,
        disc_hidden_dim=cfg.hidden_dim,
        noise=cfg.noise,
    )
    return aae_model.SemiSupervisedAAE(config)


def fit(x: np.ndarray, labels: np.ndarray, n_classes: int, cfg: FitConfig) -> aae_model.SemiSupervisedAAE:
    """Train on features `x` [N, D] in [-1, 1] with `labels` (-1 = unlabelled); returns the model in eval mode."""
    from aae import train as aae_train

    torch.set_num_threads(cfg.threads)
    model = build(x.shape[1], n_classes, cfg)

    aae_train.train_semisupervised(
        model,
        torch.as_tensor(x, dtype=torch.float32),
        torch.as_tensor(labels, dtype=torch.int64),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        cls_every=cfg.cls_every,
        seed=cfg.seed,
        progress=cfg.progress,
    )
    return model  # train() leaves it in eval mode


@torch.no_grad()
def encode(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities [N, K], style code z [N, C]) as numpy, deterministic."""
    model.eval()
    y, z = model.encode(torch.as_tensor(x, dtype=torch.float32))
    return y.numpy(), z.numpy()


@torch.no_grad()
def decode(model, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    model.eval()
    return model.decode(torch.as_tensor(y, dtype=torch.float32), torch.as_tensor(z, dtype=torch.float32)).numpy()


def reconstruction_error(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities, per-sample reconstruction MSE through the decoder)."""
    y, z = encode(model, x)
    return y, open_set.reconstruction_error(x, decode(model, y, z))


def fit_open_set(
    model, x: np.ndarray, labels: np.ndarray, what: str, keep: float = 0.95, recon: bool = True
) -> dict:
    """The model card's "open_set" block: the rule fitted on REAL labelled rows `x` (named by `what`).

    Scores are the float32 ones the edge computes (encoder -> decoder -> MSE); a degenerate fit
    raises `open_set.OpenSetFitError`, so a training run never writes a silent rule.
    """
    probs, err = reconstruction_error(model, x)
    rule = open_set.fit_rule(probs, labels, err, keep=keep, what=what, recon=recon)
    verdict = rule.judge(probs, err)
    return {
        **rule.to_dict(),
        "fitted_on": what,
        "fit_rows": len(labels),
        "fit_accuracy": accuracy(probs, labels),
        "fit_unknown_rate": open_set.unknown_rate(verdict.label),
    }


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probs.argmax(axis=1) == labels)) if len(labels) else float("nan")


def confusion(probs: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, probs.argmax(axis=1)), 1)
    return matrix


def save(out_dir: str | Path, model, card: dict) -> Path:
    """Write `model.pt` (config inside, via aae.model.save_checkpoint) and `model_card.json` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    aae_model.save_checkpoint(out / CHECKPOINT, model, card=card)
    (out / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")
    return out


def load(out_dir: str | Path):
    """(model in eval mode, model card dict) from a folder written by `save`."""
    from latentcast.errors import UserError

    out = Path(out_dir)
    if not (out / CHECKPOINT).is_file() or not (out / MODEL_CARD).is_file():
        raise UserError(f"{out} has no {CHECKPOINT} + {MODEL_CARD}: train one with python -m aae.gestures --out {out}")
    return aae_model.load_checkpoint(out / CHECKPOINT), json.loads((out / MODEL_CARD).read_text())


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)
