"""What the landmark training CLIs share (`aae.gestures`, `aae.expressions`): fit flags, the spec stamp, sessions.

Kept out of either CLI so neither imports the other.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from aae import landmark_aae
from aae.datasets import LabelledSet
from latentcast import features
from latentcast.errors import UserError

SESSION_FLAG_FIX = {"face": "--no-face", "hand": "--no-hands"}


def feature_spec_version() -> int:
    """The version of the hand/face feature functions the data follows (latentcast.features)."""
    return features.FEATURE_SPEC_VERSION


def add_fit_flags(parser: argparse.ArgumentParser, defaults: landmark_aae.FitConfig) -> None:
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs (default %(default)s)")
    parser.add_argument("--hidden", type=int, default=defaults.hidden_dim, help="units per hidden layer")
    parser.add_argument("--ncode", type=int, default=defaults.code_dim, help="style code size z")
    parser.add_argument("--bsize", type=int, default=defaults.batch_size, help="batch size")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam learning rate")
    parser.add_argument("--noise", type=float, default=defaults.noise, help="encoder input noise std while training")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="split, label pick and init seed")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads (small MLPs: 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def fit_config_from(args: argparse.Namespace) -> landmark_aae.FitConfig:
    return landmark_aae.FitConfig(
        code_dim=args.ncode,
        hidden_dim=args.hidden,
        epochs=args.epochs,
        batch_size=args.bsize,
        lr=args.lr,
        noise=args.noise,
        seed=args.seed,
        threads=args.threads,
        progress=not args.quiet,
    )


def add_session_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--session", action="append", default=[], help="a recorded session file (python -m edge.record); repeatable"
    )


def load_sessions(paths: Sequence[str | os.PathLike[str]], classes: list[str], part: str) -> list[LabelledSet]:
    """Each recorded session's `part` rows labelled into `classes` (-1 = unlabelled): what `--session` trains on.

    The file format's own policy applies (`face_data.load_session`: older specs re-featurised, damaged
    features and labels outside `classes` refused); a session without a single `part` frame is refused
    too, since it would add nothing and the user most likely recorded the wrong part.
    """
    from aae.face_data import load_session

    sets = []
    for path in paths:
        rows = load_session(path, classes, part)
        if not len(rows):
            raise UserError(
                f"{path} has no frame with a {part}: record it again without {SESSION_FLAG_FIX[part]} "
                f"(python -m edge.record record SOURCE -o {path} --force)"
            )
        sets.append(rows)
    return sets
