"""Class labels that switch fast and never flicker: hysteresis with a minimum dwell, no low-pass.

Why not a filter: a One Euro (or any low-pass) filter on class probabilities delays every switch by
its time constant (about 10 frames on a real fist -> thumbs-up clip) and still flickers when the
probabilities hover at a threshold. The per-frame verdict of the open-set rule is already good;
what a user needs is that it does not chatter. So:

- enter a class when the frame's verdict has named it for `dwell_frames` frames in a row (its
  calibrated probability above the rule's `min_confidence`, novelty ratio <= 1: the distance and/or
  reconstruction error within their thresholds, `Judgement.novelty_ratio`);
- hold it while its calibrated probability stays above a lower `leave` threshold and the
  novelty ratio within `recon_leave` (named for the first such score; it applies to all), unless another class has taken
  the argmax with a passing verdict: inside that band an "unknown" verdict must last `hold_frames`
  frames before the label drops to unknown;
- otherwise switch to whatever the verdict (a class or unknown) has said for `dwell_frames`
  frames; until then the old label stays.

A constant input therefore never switches twice, and a clean step switches `dwell_frames - 1`
frames after the verdict changes. numpy only; the edge runs one `LabelHysteresis` per part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNKNOWN = -1  # same value as latentcast.open_set.UNKNOWN (kept here so this module stands alone)


@dataclass
class HysteresisConfig:
    """One default per knob; the edge config's [labels] table overrides them."""

    # Defaults chosen by `benchmarks/label_stability.py --tune` on clips of the open-set rule's FIT rows only
    # (baron105 validation split, kinivi fit half; never the evaluation clips), docs/RESULTS.md: dwell 2 keeps
    # the median switch within 1 frame; hold 6 (was 4) and the 0.3 leave band stop a held class from
    # blinking to unknown (fewest spurious switches of the grid with median latency <= 2).
    dwell_frames: int = 2  # k: frames a new verdict must hold before the label follows it
    leave_margin: float = 0.3  # leave threshold = enter threshold - margin (calibrated probability)
    recon_leave: float = 3.0  # a held class is dropped when its novelty ratio (score / threshold) > this
    hold_frames: int = 6  # inside the band, frames of an "unknown" verdict before the label drops to unknown

    def __post_init__(self) -> None:
        if self.dwell_frames < 1:
            raise ValueError(f"dwell_frames must be at least 1, not {self.dwell_frames}")
        if not 0.0 <= self.leave_margin < 1.0:
            raise ValueError(f"leave_margin must be in [0, 1), not {self.leave_margin}")
        if self.recon_leave < 1.0:
            raise ValueError(f"recon_leave must be at least 1, not {self.recon_leave}")
        if self.hold_frames < self.dwell_frames:
            raise ValueError(f"hold_frames ({self.hold_frames}) must be at least dwell_frames ({self.dwell_frames})")


class LabelHysteresis:
    """Per-frame (calibrated probabilities, novelty ratio) in, a steady label index out."""

    def __init__(self, enter: float, config: HysteresisConfig | None = None) -> None:
        self.config = config or HysteresisConfig()
        self.enter = np.float32(enter)
        self.leave = np.float32(max(enter - self.config.leave_margin, 0.0))
        self.reset()

    def reset(self) -> None:
        """Forget everything (the part disappeared): the next label must be entered afresh."""
        self.label = UNKNOWN
        self._pending = UNKNOWN
        self._count = 0

    def verdict(self, calibrated: np.ndarray, recon_ratio: float | None) -> int:
        """This frame's open-set verdict alone: the argmax class if it passes both thresholds, else UNKNOWN."""
        best = int(np.argmax(calibrated))
        recon_ok = recon_ratio is None or recon_ratio <= 1.0
        return best if calibrated[best] >= self.enter and recon_ok else UNKNOWN

    def update(self, calibrated: np.ndarray, recon_ratio: float | None = None) -> int:
        """Advance one frame; returns the label to publish (class index or UNKNOWN)."""
        p = np.asarray(calibrated, dtype=np.float32).reshape(-1)
        now = self.verdict(p, recon_ratio)
        current = self.label
        held = (
            current != UNKNOWN
            and p[current] >= self.leave
            and (recon_ratio is None or recon_ratio <= self.config.recon_leave)
            and now in (UNKNOWN, current)  # another confident class breaks the hold
        )
        if now == current:
            self._pending, self._count = current, 0
            return current
        if now == self._pending:
            self._count += 1
        else:
            self._pending, self._count = now, 1
        if self._count >= (self.config.hold_frames if held else self.config.dwell_frames):
            self.label, self._count = now, 0
        return self.label
