"""INT8 calibration sets: real feature rows with their provenance, and the reader onnxruntime calibrates from.

A set is two files side by side: `<name>.npz` (`features` [N, D] float32) and `<name>.json`
(where every row came from: asset key, its sha256, rows taken, the date, the feature spec version).
INT8 ranges are only as good as the rows they saw, so rows are real: hand sets are the shared
MediaPipe-Hands CSVs (the training split, never the held-out test split the benchmark scores on);
face sets are features of the face photos and the user's recorded sessions.

    python -m calibration.sets hand --out runs/calib/gesture            # baron105 training split
    python -m calibration.sets face --out runs/calib/expression         # face photos + recipe rows
    python -m calibration.sets session me.npz --out runs/calib/me       # a recorded session (edge/record.py)
    python -m calibration.sets npz rows.npz --out runs/calib/other      # rows saved by another tool
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aae.hand_data import HAND_TEST_FRACTION, hand_test_split, kinivi_halves, load_hand_set
from latentcast.assets import resolve, sha256_of
from latentcast.errors import UserError, run_cli
from latentcast.features import FEATURE_SPEC_VERSION, check_feature_spec

DEFAULT_ROWS = 512


@dataclass
class CalibrationSet:
    """Feature rows [N, D] float32 plus the provenance that goes into the JSON beside them."""

    features: np.ndarray
    sources: list[dict] = field(default_factory=list)
    name: str = "calibration"
    feature_spec_version: str | int | None = None

    @property
    def provenance(self) -> dict:
        return {
            "name": self.name,
            "rows": len(self.features),
            "dim": int(self.features.shape[1]),
            "feature_spec_version": self.feature_spec_version,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sources": self.sources,
        }


def save_set(calib: CalibrationSet, path: str | Path) -> Path:
    """Write `<path>.npz` and `<path>.json`; returns the .npz path."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(base.with_suffix(".npz"), features=calib.features.astype(np.float32))
    base.with_suffix(".json").write_text(json.dumps(calib.provenance, indent=2) + "\n")
    return base.with_suffix(".npz")


def load_set(path: str | Path) -> CalibrationSet:
    base = Path(path).with_suffix("")
    npz, meta = base.with_suffix(".npz"), base.with_suffix(".json")
    if not npz.is_file() or not meta.is_file():
        raise UserError(f"calibration set {base} needs both {npz.name} and {meta.name}: build it with calibration.sets")
    info = json.loads(meta.read_text())
    with np.load(npz) as data:
        features = np.asarray(data["features"], dtype=np.float32)
    if len(features) != info.get("rows"):
        raise UserError(f"{npz} has {len(features)} rows but {meta.name} says {info.get('rows')}: rebuild the set")
    check_feature_spec(info.get("feature_spec_version"), f"calibration set {base}", "rebuild the set")
    return CalibrationSet(
        features, info.get("sources", []), info.get("name", base.name), info.get("feature_spec_version")
    )


def _subsample(n: int, rows: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(rows, n)])


def hand_split(name: str = "baron105", seed: int = 0):
    """(calibration pool, held-out test) of a hand set: the one split, `aae.hand_data.hand_test_split`."""
    return hand_test_split(load_hand_set(name), seed)


def hand_set(
    name: str = "baron105", rows: int = DEFAULT_ROWS, seed: int = 0, other_person: bool = True
) -> CalibrationSet:
    """Calibration rows from a shared hand CSV's training part (aae.gestures' split, same seed) and, for
    baron105 with `other_person`, as many again from kinivi's fit half (`hand_data.kinivi_halves`).

    Why the second person: INT8 ranges fitted on one person's hands are exceeded by another's (clipped
    activations), and deployment sees other people. kinivi's evaluation half is never used here, so the
    benchmark can score on it.
    """
    pool, _ = hand_split(name, seed)
    pick = _subsample(len(pool), rows, seed)
    key = pool.source["asset"]
    sources = [
        {
            "asset": key,
            "sha256": sha256_of(resolve(key)),
            "rows": len(pick),
            "split": f"training part (test fraction {HAND_TEST_FRACTION}, split seed {seed} excluded)",
        }
    ]
    x = [pool.x[pick]]
    if other_person and name == "baron105":
        fit, _ = kinivi_halves(pool.classes)
        other = _subsample(len(fit), rows, seed)
        kin_key = fit.source["asset"]
        sources.append(
            {
                "asset": kin_key,
                "sha256": sha256_of(resolve(kin_key)),
                "rows": len(other),
                "split": "fit half (hand_data.kinivi_halves; the evaluation half excluded)",
            }
        )
        x.append(fit.x[other])
    return CalibrationSet(np.concatenate(x), sources, f"hand-{name}", FEATURE_SPEC_VERSION)


def face_set(rows: int = DEFAULT_ROWS, seed: int = 0, per_class: int = 10) -> CalibrationSet:
    """Face calibration rows: features of every face photo in the mirror, plus the expression recipe's rows
    synthesised on those real faces (aae.face_recipe, docs/DATA.md) so that the INT8 ranges cover open
    mouths, closed eyes and raised brows that the photos alone do not show."""
    from aae import face_data, face_recipe

    faces = face_data.load_faces()
    labelled, free = face_recipe.expression_dataset(per_class, seed=seed, faces=faces)
    x = np.concatenate([labelled.x, free.x])
    pick = _subsample(len(x), rows, seed)
    real = sorted({photo.key for photo, _ in faces})
    sources = [{"asset": key, "sha256": sha256_of(resolve(key))} for key in real]
    sources.append(
        {
            "recipe": "aae.face_recipe.expression_dataset (docs/DATA.md)",
            "per_class": per_class,
            "seed": seed,
            "rows_available": len(x),
            "rows": len(pick),
            "real_photos": len(real),
        }
    )
    return CalibrationSet(x[pick], sources, "face-photos-recipe", FEATURE_SPEC_VERSION)


def session_set(path: str | Path, rows: int = DEFAULT_ROWS, seed: int = 0) -> CalibrationSet:
    """Calibration rows from a recorded face session (edge/record.py's .npz), frames with a face only."""
    from aae import face_data

    session = face_data.load_session(path)
    pick = _subsample(len(session), rows, seed)
    source = {"file": Path(path).name, "sha256": sha256_of(Path(path)), "rows": len(pick), "kind": "recorded session"}
    return CalibrationSet(session.x[pick], [source], Path(path).stem, FEATURE_SPEC_VERSION)


def array_set(path: str | Path, rows: int = DEFAULT_ROWS, seed: int = 0, key: str = "features") -> CalibrationSet:
    """Calibration rows from an .npz/.npy of features someone else produced (a recorded session, face photos)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: give an .npz with a '{key}' array or an .npy of features [N, D]")
    if path.suffix == ".npz":
        with np.load(path) as data:
            if key not in data:
                raise UserError(f"{path} has no '{key}' array (it has {', '.join(data.files)}): pass --key")
            x = np.asarray(data[key], dtype=np.float32)
    else:
        x = np.asarray(np.load(path), dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise UserError(f"{path} holds shape {x.shape}, expected features [N, D] with N > 0")
    x = x[np.isfinite(x).all(axis=1)]
    pick = _subsample(len(x), rows, seed)
    source = {"file": path.name, "sha256": sha256_of(path), "rows": len(pick), "key": key}
    return CalibrationSet(x[pick], [source], path.stem, FEATURE_SPEC_VERSION)


def combine(sets: Sequence[CalibrationSet], name: str) -> CalibrationSet:
    if len({s.features.shape[1] for s in sets}) != 1:
        raise UserError("calibration sources have different feature sizes: combine sets of the same model only")
    return CalibrationSet(
        np.concatenate([s.features for s in sets]),
        [src for s in sets for src in s.sources],
        name,
        sets[0].feature_spec_version,
    )


def make_reader(features: np.ndarray, input_name: str = "features", batch_size: int = 1):
    """An onnxruntime CalibrationDataReader over `features` (imported lazily: only quantization needs it)."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeatureReader(CalibrationDataReader):
        """Feeds `{input_name: [batch, D] float32}` until the rows run out; rewind() starts over."""

        def __init__(self) -> None:
            self.features = np.ascontiguousarray(features, dtype=np.float32)
            self.position = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= len(self.features):
                return None
            batch = self.features[self.position : self.position + batch_size]
            self.position += batch_size
            return {input_name: batch}

        def rewind(self) -> None:
            self.position = 0

        def __len__(self) -> int:
            return -(-len(self.features) // batch_size)

    return FeatureReader()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibration.sets", description=__doc__.splitlines()[0])
    parser.add_argument(
        "source",
        choices=["hand", "face", "session", "npz"],
        help="hand: a shared hand CSV; face: the face photos + recipe; session: a recording; npz: a features file",
    )
    parser.add_argument("path", nargs="?", help="with session / npz: the file")
    parser.add_argument("--hand_set", default="baron105", help="with hand: baron105 or kinivi")
    parser.add_argument("--key", default="features", help="with npz: array name inside the .npz")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output path without extension")
    args = parser.parse_args(argv)
    if args.source in ("session", "npz") and not args.path:
        raise UserError(f"{args.source} needs a file: python -m calibration.sets {args.source} FILE.npz --out OUT")
    if args.source == "hand":
        calib = hand_set(args.hand_set, args.rows, args.seed)
    elif args.source == "face":
        calib = face_set(args.rows, args.seed)
    elif args.source == "session":
        calib = session_set(args.path, args.rows, args.seed)
    else:
        calib = array_set(args.path, args.rows, args.seed, args.key)
    path = save_set(calib, args.out)
    print(f"wrote {path} ({len(calib.features)} rows x {calib.features.shape[1]}) and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
