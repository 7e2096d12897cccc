"""What gesture models say on a person's labelled session frames: label shares and the open-set rule's verdict.

    python benchmarks/gesture_session.py --model runs/models/gesture --model runs/me --session me.npz --out DIR

For each model folder (`aae.gestures`, with or without `--session`): on the session's labelled hand
frames, the share of each decided label (the card's rule, as the edge applies it: `OpenSetRule.judge`
on the encoder's probabilities and the input features), the accuracy and the unknown rate; and the
card's own figures (held-out test unknown rate, kinivi evaluation half). A model trained with the
session has seen these frames (its figures are in-sample for the classifier); compare it with the
model trained without it to see what personalisation changes. Writes gesture_session.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from aae import landmark_aae
from aae.fit_cli import load_sessions
from latentcast import open_set
from latentcast.errors import run_cli


def score(model_dir: str, sessions: Sequence[str]) -> dict:
    model, card = landmark_aae.load(model_dir)
    rule = open_set.rule_from_block(card["open_set"])
    classes = card["classes"]
    rows = load_sessions(sessions, classes, "hand")
    out = {"model": model_dir, "sessions_in_training": [s["session"] for s in card["data"].get("sessions", [])]}
    for path, data in zip(sessions, rows, strict=True):
        x, y = data.x[data.y >= 0], data.y[data.y >= 0]
        probs, err = landmark_aae.reconstruction_error(model, x)
        label = rule.decide(probs, err, x)
        names = Counter(open_set.label_name(int(k), classes) for k in label)
        out[str(path)] = {
            "labelled_frames": len(y),
            "accuracy": landmark_aae.accuracy(probs, y),
            "unknown_rate": open_set.unknown_rate(label),
            "decided": {name: count / len(y) for name, count in names.most_common()},
        }
    out["known_test_unknown_rate"] = card["open_set"]["known_test_unknown_rate"]
    out["kinivi_unknown_rate"] = card["open_set"].get("kinivi_unknown_rate")
    out["test_accuracy"] = card["metrics"]["test_accuracy"]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a gesture model folder (repeatable)")
    parser.add_argument("--session", action="append", required=True, help="a labelled hand session (repeatable)")
    parser.add_argument("--out", required=True, help="folder for gesture_session.json")
    args = parser.parse_args(argv)
    results = [score(m, args.session) for m in args.model]
    print(json.dumps(results, indent=1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gesture_session.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
