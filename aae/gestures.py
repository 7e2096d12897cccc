"""Gesture encoder: a semi-supervised AAE over hand features (baron105's 11 gestures).

    python -m aae.gestures --out runs/models/gesture                    # ~1 min on 2 cores
    python -m aae.gestures --out runs/models/gesture --label_fraction 0.1
    python -m aae.gestures --out runs/gesture_no_horns --exclude_class horns   # open-set check
    python -m aae.gestures --out runs/me --session me.npz --session me2.npz    # personalise

Only a share of the training rows keep their label (`--label_fraction` or `--nlabels`): the rest
train the autoencoder and the adversarial priors, which is the paper's few-labels setting. Writes
`model.pt` + `model_card.json` (classes, feature spec version, dims, data, metrics, open-set rule).
kinivi's recordings (another person) share 4 classes: one half of them (`hand_data.kinivi_halves`)
joins baron105's validation split to fit the open-set rule, the other half is the cross-person test.
The rule's distance half (`open_set.ClassGaussians`) is estimated on the known rows of both people
(the training rows and kinivi's fit half; `distance_half`) and travels in the model card.
Recorded sessions (`--session`, `edge/record.py`, hand part) add the user's own hand frames: labelled
ones are supervised rows, the rest train the autoencoder and priors; the user's labelled frames also
join the rule's Gaussians and fit rows, and the rule is loosened where needed to keep them
(`personal_rule`), so the rule is refitted on that person.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from aae import datasets, hand_data, landmark_aae
from aae.fit_cli import add_fit_flags, add_session_flag, feature_spec_version, fit_config_from, load_sessions
from latentcast import features, open_set
from latentcast.errors import UserError, run_cli

log = logging.getLogger(__name__)


def default_fit_config() -> landmark_aae.FitConfig:
    """Defaults measured in benchmarks/gesture_quality.py: about a minute on 2 CPU cores."""
    return landmark_aae.FitConfig(code_dim=4, hidden_dim=256, epochs=30, noise=0.05)


def train_gestures(
    fit_cfg: landmark_aae.FitConfig,
    label_fraction: float | None = None,
    nlabels: int | None = None,
    exclude_class: str | None = None,
    val_fraction: float = 0.1,
    keep: float = 0.95,
    max_rows: int | None = None,
    augment: int = 2,
    sessions: Sequence[str | Path] = (),
):
    """Train on baron105 (+ recorded sessions) and evaluate; returns (model, model card dict, arrays for plots)."""
    if label_fraction is None and nlabels is None:
        label_fraction = 1.0
    clock = landmark_aae.Stopwatch()
    data = hand_data.load_hand_set("baron105")
    excluded = None
    if exclude_class is not None:
        if exclude_class not in data.classes:
            raise UserError(
                f"--exclude_class {exclude_class!r} is not a class: choose one of {', '.join(data.classes)}"
            )
        excluded = data.subset(np.flatnonzero(data.y == data.classes.index(exclude_class)))
        kept = [c for c in data.classes if c != exclude_class]
        data = hand_data.remap(data, {c: c for c in kept}, kept)
    classes = data.classes
    if max_rows is not None and max_rows < len(data):  # for quick tests: a stratified subsample
        _, pick = datasets.stratified_split(data.y, max_rows / len(data), seed=fit_cfg.seed)
        data = data.subset(pick)

    session_sets = load_sessions(sessions, classes, "hand")
    person = _labelled_rows(session_sets, classes)

    train, val, test_set = hand_data.split_hand_set(data, val_fraction, seed=fit_cfg.seed)
    labels = datasets.pick_labelled(train.y, label_fraction, nlabels, seed=fit_cfg.seed)
    train_x = np.concatenate([train.x, *[s.x for s in session_sets]])
    train_labels = np.concatenate([labels, *[s.y for s in session_sets]])
    n_labelled = int((train_labels >= 0).sum())
    log.info("training on %d rows (%d labelled), %d classes", len(train_x), n_labelled, len(classes))

    if augment > 0:
        train_x, train_labels = hand_data.augment_hands(train_x, train_labels, copies=augment, seed=fit_cfg.seed)
    model = landmark_aae.fit(train_x, train_labels, len(classes), fit_cfg)

    # The open-set rule is fitted on real rows of two people: baron105's validation split and kinivi's
    # fit half (hand_data.kinivi_halves); kinivi's evaluation half is only ever scored.
    kinivi_fit, kinivi = hand_data.kinivi_halves(classes) if _kinivi_classes_present(classes) else (None, None)
    fit_x, fit_y = val.x, val.y
    what = f"baron105 validation split ({len(val)} rows, held out from training)"
    if kinivi_fit is not None and len(kinivi_fit):
        fit_x, fit_y = np.concatenate([val.x, kinivi_fit.x]), np.concatenate([val.y, kinivi_fit.y])
        what += f" + kinivi fit half ({len(kinivi_fit)} rows, another person; hand_data.kinivi_halves)"
    personal = person is not None and len(person) >= open_set.MIN_FIT_ROWS
    if person is not None and not personal:
        log.warning(
            "the sessions have %d labelled hand frames, fewer than %d: the open-set rule stays fitted on baron105 "
            "and kinivi only; label more frames (python -m edge.record label) to refit it on you",
            len(person),
            open_set.MIN_FIT_ROWS,
        )
    others = [s for s in (kinivi_fit, person if personal else None) if s is not None and len(s)]
    if personal:
        fit_x, fit_y = np.concatenate([fit_x, person.x]), np.concatenate([fit_y, person.y])
        what += f" + {_person_what(session_sets, len(person))}"
    fit_probs, fit_err = landmark_aae.reconstruction_error(model, fit_x)
    gaussians, fit_distance = distance_half(train, val, others, len(classes))
    rule = open_set.fit_rule(
        fit_probs, fit_y, None, keep=keep, what=what, recon=False, distance=fit_distance, gaussians=gaussians
    )
    personal_report = None
    if personal:
        rule, personal_report = personal_rule(
            rule, fit_probs, fit_distance, person.y, _person_what(session_sets, len(person))
        )
    test_probs, test_err = landmark_aae.reconstruction_error(model, test_set.x)

    metrics = {
        "test_accuracy": landmark_aae.accuracy(test_probs, test_set.y),
        "test_rows": len(test_set),
        "test_recon_mse": float(test_err.mean()),
        "test_ece_raw": open_set.expected_calibration_error(test_probs, test_set.y),
        "test_ece_calibrated": open_set.expected_calibration_error(rule.confidence(test_probs), test_set.y),
        "train_seconds": clock.seconds(),
    }
    if personal:
        metrics["sessions_labelled_accuracy_trained_on"] = landmark_aae.accuracy(
            fit_probs[-len(person) :], fit_y[-len(person) :]
        )
    arrays = {"test_probs": test_probs, "test_err": test_err, "test_y": test_set.y, "test_x": test_set.x}
    # the rule's fit rows (baron105 validation first, then kinivi's fit half): lets a benchmark refit variants
    arrays.update(fit_probs=fit_probs, fit_err=fit_err, fit_y=fit_y, fit_rows_baron105=len(val))
    arrays.update(fit_x=fit_x, fit_distance=fit_distance)
    if kinivi is not None:
        kin_probs, kin_err = landmark_aae.reconstruction_error(model, kinivi.x)
        metrics["kinivi_accuracy"] = landmark_aae.accuracy(kin_probs, kinivi.y)
        metrics["kinivi_rows"] = len(kinivi)
        metrics["kinivi_per_class_accuracy"] = {
            classes[c]: landmark_aae.accuracy(kin_probs[kinivi.y == c], kinivi.y[kinivi.y == c])
            for c in np.unique(kinivi.y)
        }
        arrays.update(kinivi_probs=kin_probs, kinivi_err=kin_err, kinivi_y=kinivi.y, kinivi_x=kinivi.x)

    open_set_report = {
        **rule.to_dict(),
        "fitted_on": what,
        "fit_rows": len(fit_y),
        "distance_reference": DISTANCE_REFERENCE,
        "reconstruction_half": "none: an unseen hand shape rebuilds about as well as a known one; the distance "
        "half replaces it (docs/RESULTS.md, Gestures)",
        "known_test_unknown_rate": open_set.unknown_rate(rule.decide(test_probs, test_err, test_set.x)),
    }
    if personal_report is not None:
        open_set_report["personal"] = personal_report
    elif person is not None:
        open_set_report["personal"] = {
            "refitted": False,
            "why": f"{len(person)} labelled session frames, fewer than {open_set.MIN_FIT_ROWS}: label more frames",
        }
    if kinivi is not None:
        open_set_report["kinivi_unknown_rate"] = open_set.unknown_rate(rule.decide(kin_probs, kin_err, kinivi.x))
    if excluded is not None:
        ex_probs, ex_err = landmark_aae.reconstruction_error(model, excluded.x)
        open_set_report["held_out_class"] = exclude_class
        open_set_report["held_out_class_unknown_rate"] = open_set.unknown_rate(
            rule.decide(ex_probs, ex_err, excluded.x)
        )
        open_set_report["held_out_class_unknown_rate_confidence_only"] = open_set.unknown_rate(rule.decide(ex_probs))
        arrays.update(excluded_probs=ex_probs, excluded_err=ex_err, excluded_x=excluded.x)

    card = {
        "name": "gesture",
        "classes": classes,
        "feature_spec_version": feature_spec_version(),
        "feature": "hand",
        "feature_names": list(features.HAND_FEATURE_NAMES),
        "input_dim": int(train.x.shape[1]),
        "code_dim": fit_cfg.code_dim,
        "n_classes": len(classes),
        "data": {
            "train": data.source,
            "excluded_class": exclude_class,
            "train_rows": len(train) + sum(len(s) for s in session_sets),
            "labelled_rows": n_labelled,
            "augment_copies": augment,
            "augmentation": "rotation +-20 deg about the wrist, x mirrored with p=0.5 (hand_data.augment_hands)",
            "label_fraction": label_fraction,
            "nlabels": nlabels,
            "validation_rows": len(val),
            "test_rows": len(test_set),
            "cross_person_test": "data/hand_gestures/kinivi/keypoint.csv (Open, Close, Pointer, OK), evaluation half",
            "kinivi_fit_rows": 0 if kinivi_fit is None else len(kinivi_fit),
            "kinivi_eval_rows": 0 if kinivi is None else len(kinivi),
            "split_seed": fit_cfg.seed,
            "sessions": [s.source for s in session_sets],
        },
        "training": asdict(fit_cfg),
        "metrics": metrics,
        "open_set": open_set_report,
    }
    return model, card, arrays


DISTANCE_REFERENCE = (
    "class Gaussians of the training rows (not augmented) + kinivi's fit half (+ the sessions' labelled frames); "
    "fit distances of kinivi's fit half and of the sessions' frames cross-fitted in two contiguous blocks per sign "
    "(gestures.distance_half)"
)


def distance_half(
    train: datasets.LabelledSet,
    val: datasets.LabelledSet,
    others: Sequence[datasets.LabelledSet],
    n_classes: int,
) -> tuple[open_set.ClassGaussians, np.ndarray]:
    """(the distance half's class Gaussians, the distance of each fit row: baron105 validation, then each of `others`).

    Known shapes are those of the people the rule has seen: the model's training rows and `others`,
    the other people's labelled rows (kinivi's fit half, whose ordinary hands sit farther from
    baron105's classes than baron105's own unseen shapes do, and the user's labelled session frames).
    A row's distance is measured to Gaussians estimated without it, so the threshold is what a new
    row meets: validation rows are never in the reference, and each of `others` is cross-fitted in two
    contiguous blocks per sign (first and second half of its rows in recording order: neighbouring
    frames of one take stay on one side), the other sets staying whole in the reference.
    """
    if not others:
        gaussians = open_set.fit_gaussians(train.x, train.y, n_classes, what="training rows")
        return gaussians, gaussians.distance(val.x)
    what = "training rows + " + " + ".join(_set_name(other) for other in others)
    distances = []
    for i, other in enumerate(others):
        rest = [o for j, o in enumerate(others) if j != i]
        block = np.zeros(len(other), dtype=bool)  # True: second block of its sign
        for label in np.unique(other.y):
            index = np.flatnonzero(other.y == label)
            block[index[len(index) // 2 :]] = True
        distance = np.zeros(len(other), dtype=np.float32)
        for side in (False, True):
            ref = block != side
            partial = open_set.fit_gaussians(
                np.concatenate([train.x, *[o.x for o in rest], other.x[ref]]),
                np.concatenate([train.y, *[o.y for o in rest], other.y[ref]]),
                n_classes,
                what=what,
            )
            distance[~ref] = partial.distance(other.x[~ref])
        distances.append(distance)
    gaussians = open_set.fit_gaussians(
        np.concatenate([train.x, *[o.x for o in others]]),
        np.concatenate([train.y, *[o.y for o in others]]),
        n_classes,
        what=what,
    )
    return gaussians, np.concatenate([gaussians.distance(val.x), *distances])


def personal_rule(
    rule: open_set.OpenSetRule,
    fit_probs: np.ndarray,
    fit_distance: np.ndarray,
    person_y: np.ndarray,
    what: str,
) -> tuple[open_set.OpenSetRule, dict]:
    """(the rule loosened to keep the person's labelled frames, the card's "personal" block).

    The person's frames (labels `person_y`, named by `what`) are the last fit rows. The model trained on them, so it
    must classify at least the rule's `keep` share of them right, or training stops: in one of four
    runs on the shared hand clip (docs/DATA.md) the labelled frames all ended in another class, and a
    rule refitted on frames the model gets wrong would only keep wrong labels. Pooled with thousands of
    other people's rows they barely move the fitted quantiles, so a user whose open palm sits far from
    baron105's would still see it called unknown: each threshold is also made to keep its share of the
    person's frames (`open_set.keep_also`; never tightened). Their distances are cross-fitted (held out from the
    Gaussians they are measured against); their confidences are those of frames the model trained on.
    """
    n_person = len(person_y)
    probs, distance = fit_probs[-n_person:], fit_distance[-n_person:]
    accuracy = landmark_aae.accuracy(probs, person_y)
    if accuracy < rule.keep:
        raise UserError(
            f"the model classifies only {accuracy:.0%} of the {what} right although it trained on them "
            f"(the rule needs {rule.keep:.0%}): train again with another --seed, or check the frames' labels"
        )
    personal = open_set.keep_also(rule, probs, distance, what)
    return personal, {
        "refitted": True,
        "fitted_on": what,
        "fit_rows": n_person,
        "unknown_rate_before_keep_also": open_set.unknown_rate(rule.decide(probs, distance=distance)),
        "unknown_rate": open_set.unknown_rate(personal.decide(probs, distance=distance)),
        "min_confidence_pooled": rule.min_confidence,
        "max_distance_pooled": rule.max_distance,
        "scores": "distances cross-fitted (gestures.distance_half); confidences of frames trained on",
    }


def _labelled_rows(session_sets: Sequence[datasets.LabelledSet], classes: list[str]) -> datasets.LabelledSet | None:
    """The sessions' labelled rows in recording order (None without sessions): the person the rule is refitted on."""
    if not session_sets:
        return None
    x = np.concatenate([s.x[s.y >= 0] for s in session_sets]).reshape(-1, hand_data.HAND_FEATURE_DIM)
    y = np.concatenate([s.y[s.y >= 0] for s in session_sets]).astype(np.int64)
    return datasets.LabelledSet(x, y, list(classes), {"set": "sessions", "rows": len(y)})


def _person_what(session_sets: Sequence[datasets.LabelledSet], n_person: int) -> str:
    names = ", ".join(Path(str(s.source["session"])).name for s in session_sets)
    return f"labelled frames of {len(session_sets)} recorded session(s) ({n_person} rows: {names})"


def _set_name(rows: datasets.LabelledSet) -> str:
    return "the sessions' labelled frames" if rows.source.get("set") == "sessions" else "kinivi fit half"


def _kinivi_classes_present(classes: list[str]) -> bool:
    return any(name in classes for name in hand_data.KINIVI_TO_BARON.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aae.gestures", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/models/gesture", help="output folder (model.pt + model_card.json)")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--label_fraction", type=float, help="share of training rows that keep their label")
    labels.add_argument("--nlabels", type=int, help="total labelled training rows, spread over the classes")
    parser.add_argument("--exclude_class", help="train without this class and report how often it is flagged unknown")
    parser.add_argument("--augment", type=int, default=2, help="jittered copies per training row (0: none)")
    parser.add_argument("--keep", type=float, default=0.95, help="share of known shapes the open-set rule keeps")
    add_session_flag(parser)
    add_fit_flags(parser, default_fit_config())
    args = parser.parse_args(argv)
    model, card, _ = train_gestures(
        fit_config_from(args),
        label_fraction=args.label_fraction,
        nlabels=args.nlabels,
        exclude_class=args.exclude_class,
        keep=args.keep,
        augment=args.augment,
        sessions=args.session,
    )
    out = landmark_aae.save(args.out, model, card)
    m, o = card["metrics"], card["open_set"]
    print(f"test accuracy {m['test_accuracy']:.4f} ({m['test_rows']} rows)")
    if "kinivi_accuracy" in m:
        print(f"kinivi (another person, eval half) accuracy {m['kinivi_accuracy']:.4f} ({m['kinivi_rows']} rows)")
    print(f"calibration ECE {m['test_ece_raw']:.4f} -> {m['test_ece_calibrated']:.4f} (T={o['temperature']:.2f})")
    print(f"open set: known shapes flagged unknown {o['known_test_unknown_rate']:.3f}")
    if o.get("personal", {}).get("refitted"):
        p = o["personal"]
        print(f"open set refitted on {p['fitted_on']}: flagged unknown {p['unknown_rate']:.3f}")
    if "held_out_class" in o:
        print(f"open set: unseen class {o['held_out_class']} flagged unknown {o['held_out_class_unknown_rate']:.3f}")
    print(f"wrote {out}/{landmark_aae.CHECKPOINT} and {out}/{landmark_aae.MODEL_CARD} in {m['train_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
