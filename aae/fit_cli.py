"""What the landmark training CLIs share (`aae.gestures`, `aae.expressions`): fit flags and the spec stamp.

Kept out of either CLI so neither imports the other.
"""

from __future__ import annotations

import argparse

from aae import landmark_aae
from latentcast import features


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
