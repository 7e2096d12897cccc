"""THE neutral-calibration file: load it and apply it to face features (numpy only, run on the edge).

Why: an expression encoder learns "neutral" from other people's faces; a user whose resting mouth
turns up, or whose brows sit low, reads as a constant smile or frown. A calibration is three
vectors over the face features (length D), applied on every frame before the encoder:

    calibrated = clip(target + (features - zero_point) * scale, -1, 1)

The file is JSON: {"format": "latentcast-neutral", "zero_point", "scale", "target", ...provenance}.
Fitting one (MediaPipe on resting frames, the model's decoder for the target) is the workstation's
job: `python -m calibration.neutral`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from latentcast.features import check_feature_spec

FORMAT = "latentcast-neutral"


@dataclass
class NeutralCalibration:
    """zero_point, scale and target over the D face features, plus where they came from."""

    zero_point: np.ndarray
    scale: np.ndarray
    target: np.ndarray
    info: dict = field(default_factory=dict)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Face features [D] or [N, D] -> calibrated features, same shape, float32 in [-1, 1]."""
        x = np.asarray(features, dtype=np.float32)
        if x.shape[-1] != len(self.zero_point):
            raise UserError(
                f"neutral calibration has {len(self.zero_point)} features but the face features have {x.shape[-1]}: "
                "recalibrate with this model (python -m calibration.neutral)"
            )
        return np.clip(self.target + (x - self.zero_point) * self.scale, -1.0, 1.0).astype(np.float32, copy=False)

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "zero_point": self.zero_point.tolist(),
            "scale": self.scale.tolist(),
            "target": self.target.tolist(),
            **self.info,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def load_neutral(path: str | Path, feature_spec_version: int | None = None) -> NeutralCalibration:
    """Read a calibration JSON; with `feature_spec_version`, refuse one made for other features."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"neutral calibration {path} does not exist: make one with python -m calibration.neutral")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise UserError(f"{path} is not a neutral calibration file (format {data.get('format')!r}): recalibrate")
    if feature_spec_version is not None:
        check_feature_spec(data.get("feature_spec_version"), str(path), "recalibrate", feature_spec_version)
    vectors = [np.asarray(data[k], dtype=np.float32) for k in ("zero_point", "scale", "target")]
    info = {k: v for k, v in data.items() if k not in ("format", "zero_point", "scale", "target")}
    return NeutralCalibration(*vectors, info=info)
