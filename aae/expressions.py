"""Expression encoder: a semi-supervised AAE over face features (5 classes + a continuous style code z).

    python -m aae.expressions --out runs/models/expression                       # ~1 min on 2 cores
    python -m aae.expressions --out runs/me --session me.npz --session me2.npz   # personalise
    python -m aae.expressions --out runs/loo --exclude_person london_025          # hold a person out

Classes: neutral, smile, surprise, mouth_open (talking), eyes_closed. The data recipe
(`aae.face_recipe`, written down in docs/DATA.md): the real photos in the mirror, plus expressions
synthesised on real neutral faces by anatomical landmark moves and the matching ARKit blendshape
scores. Recorded sessions (`edge/record.py`) add the user's own frames; the few labelled ones
steer the classes, the rest train the autoencoder and priors (the paper's few-labels case).
Writes `model.pt` + `model_card.json`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from aae import datasets, face_data, face_recipe, landmark_aae
from aae.fit_cli import add_fit_flags, add_session_flag, feature_spec_version, fit_config_from, load_sessions
from latentcast import features, open_set
from latentcast.errors import UserError, run_cli

log = logging.getLogger(__name__)

CLASSES = face_data.EXPRESSION_CLASSES


def default_fit_config() -> landmark_aae.FitConfig:
    return landmark_aae.FitConfig(code_dim=4, hidden_dim=256, epochs=30)


def neutral_vs_smile(probs: np.ndarray) -> np.ndarray:
    """1 where p(smile) > p(neutral): the paired photos' two-way question, whatever the other classes say."""
    return (probs[:, CLASSES.index("smile")] > probs[:, CLASSES.index("neutral")]).astype(np.int64)


def train_expressions(
    fit_cfg: landmark_aae.FitConfig,
    per_class: int = 150,
    exclude_people: set[str] = frozenset(),
    sessions: Sequence[str | Path] = (),
    val_fraction: float = 0.15,
    keep: float = 0.95,
    faces: list | None = None,
):
    """Build the recipe's data (minus `exclude_people`), add sessions, train, evaluate; (model, card, arrays)."""
    clock = landmark_aae.Stopwatch()
    faces = faces if faces is not None else face_data.load_faces()
    known = {photo.person for photo, _ in faces}
    unknown = set(exclude_people) - known
    if unknown:
        names = ", ".join(sorted(known))
        raise UserError(f"--exclude_person {sorted(unknown)} is not a person in the photos: use one of {names}")
    labelled, free = face_recipe.expression_dataset(per_class, set(exclude_people), fit_cfg.seed, faces)
    session_sets = load_sessions(sessions, CLASSES, "face")

    train_i, val_i = datasets.stratified_split(labelled.y, val_fraction, seed=fit_cfg.seed)
    train, val = labelled.subset(train_i), labelled.subset(val_i)
    x = np.concatenate([train.x, free.x, *[s.x for s in session_sets]])
    y = np.concatenate([train.y, free.y, *[s.y for s in session_sets]])
    log.info("training on %d rows (%d labelled), %d classes", len(y), int((y >= 0).sum()), len(CLASSES))
    model = landmark_aae.fit(x, y, len(CLASSES), fit_cfg)

    val_probs, val_err = landmark_aae.reconstruction_error(model, val.x)
    open_set_block = fit_expression_rule(model, faces, exclude_people, session_sets, keep)
    metrics = {
        "validation_accuracy": landmark_aae.accuracy(val_probs, val.y),
        "validation_rows": len(val),
        "validation_recon_mse": float(val_err.mean()),
        "validation_per_class_accuracy": {
            name: landmark_aae.accuracy(val_probs[val.y == c], val.y[val.y == c]) for c, name in enumerate(CLASSES)
        },
        "train_seconds": clock.seconds(),
    }
    arrays = {"val_probs": val_probs, "val_y": val.y}
    held = [(p, f) for p, f in faces if p.person in exclude_people and p.label in ("neutral", "smile")]
    if held:
        x_held = np.asarray([f.features() for _, f in held], np.float32)
        y_held = np.asarray([int(p.label == "smile") for p, _ in held])
        held_probs, held_err = landmark_aae.reconstruction_error(model, x_held)
        metrics["held_out_people"] = sorted(exclude_people)
        metrics["held_out_neutral_vs_smile_accuracy"] = float(np.mean(neutral_vs_smile(held_probs) == y_held))
        metrics["held_out_recon_mse"] = float(held_err.mean())
        arrays.update(held_probs=held_probs, held_y=y_held, held_err=held_err, held_keys=[p.key for p, _ in held])
    for i, session in enumerate(session_sets):
        lab = session.y >= 0
        if lab.any():
            probs, _ = landmark_aae.encode(model, session.x[lab])
            metrics[f"session{i}_labelled_accuracy"] = landmark_aae.accuracy(probs, session.y[lab])

    card = {
        "name": "expression",
        "classes": list(CLASSES),
        "feature_spec_version": feature_spec_version(),
        "feature": "face",
        "feature_names": list(features.FACE_FEATURE_NAMES),
        "input_dim": int(x.shape[1]),
        "code_dim": fit_cfg.code_dim,
        "n_classes": len(CLASSES),
        "data": {
            **labelled.source,
            "labelled_rows": int((y >= 0).sum()),
            "unlabelled_rows": int((y < 0).sum()),
            "validation_rows": len(val),
            "sessions": [s.source for s in session_sets],
        },
        "training": asdict(fit_cfg),
        "metrics": metrics,
        "open_set": open_set_block,
    }
    return model, card, arrays


def fit_expression_rule(model, faces: list, exclude_people, sessions: Sequence, keep: float) -> dict:
    """The open-set block, fitted on REAL rows only (never the synthetic recipe rows, which the model
    gets all right and which make a degenerate rule): the sessions' labelled frames, that person's own
    faces; the labelled real photos are added only while the sessions have too few labelled frames.

    Confidence half only: every one of those rows was trained on, and in-sample reconstruction errors
    say nothing about a new face (leave-one-person-out: held-out photos rebuild 5-25 x worse than the
    fitted threshold, so the full rule rejected 12 of 12 new people's photos; docs/RESULTS.md)."""
    x_s = [s.x[s.y >= 0] for s in sessions]
    y_s = [s.y[s.y >= 0] for s in sessions]
    n_session = sum(len(y) for y in y_s)
    parts = [f"labelled frames of {len(sessions)} recorded session(s) ({n_session} rows)"] if n_session else []
    if n_session < open_set.MIN_FIT_ROWS:
        real = [(p, f) for p, f in faces if p.label in CLASSES and p.person not in exclude_people]
        x_s.append(np.asarray([f.features() for _, f in real], np.float32).reshape(-1, features.FACE_FEATURE_DIM))
        y_s.append(np.asarray([CLASSES.index(p.label) for p, _ in real], np.int64))
        parts.append(f"labelled real face photos ({len(real)} rows, seen in training)")
    x, y = np.concatenate(x_s), np.concatenate(y_s)
    block = landmark_aae.fit_open_set(model, x, y, " + ".join(parts), keep=keep, recon=False)
    block["reconstruction_half"] = "off: the rows above were seen in training (no held-out real faces)"
    return block


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aae.expressions", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/models/expression", help="output folder (model.pt + model_card.json)")
    add_session_flag(parser)
    parser.add_argument("--exclude_person", action="append", default=[], help="hold a person's photos out")
    parser.add_argument("--per_class", type=int, default=150, help="synthetic rows per class per neutral face")
    parser.add_argument("--keep", type=float, default=0.95, help="share of known faces the open-set rule keeps")
    add_fit_flags(parser, default_fit_config())
    args = parser.parse_args(argv)
    model, card, _ = train_expressions(
        fit_config_from(args),
        per_class=args.per_class,
        exclude_people=set(args.exclude_person),
        sessions=args.session,
        keep=args.keep,
    )
    out = landmark_aae.save(args.out, model, card)
    m = card["metrics"]
    print(f"validation accuracy (recipe, 5 classes) {m['validation_accuracy']:.4f} ({m['validation_rows']} rows)")
    print("per class: " + ", ".join(f"{k} {v:.3f}" for k, v in m["validation_per_class_accuracy"].items()))
    if "held_out_neutral_vs_smile_accuracy" in m:
        print(f"held-out people neutral vs smile accuracy {m['held_out_neutral_vs_smile_accuracy']:.3f}")
    print(f"wrote {out}/{landmark_aae.CHECKPOINT} and {out}/{landmark_aae.MODEL_CARD} in {m['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
