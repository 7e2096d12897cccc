"""The open-set decision where all its inputs are: the edge (features, latents and the decoder).

The renderer receives (y, z) but never the features, so it cannot compute the distance or
reconstruction half of the open-set rule; shapes only those halves catch were drawn as a confident
class. Here the features' distance to the card's class Gaussians is measured (the gesture rule) or
each part's encoder output is decoded again (`decoder.onnx` of the same bundle, for a card with a
reconstruction half), the rule of the model card (`latentcast.open_set`, float32) judges the frame, and a per-part
`LabelHysteresis` turns the per-frame verdicts into a label that switches fast and never flickers.
The message then carries per part: label after hysteresis, calibrated confidence, unknown flag.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from latentcast import open_set
from latentcast.hysteresis import HysteresisConfig, LabelHysteresis
from latentcast.protocol import Decision


class PartJudge:
    """One model's open-set rule with the decoder its reconstruction error needs (if it has that half)."""

    def __init__(self, rule: open_set.OpenSetRule, decoder: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.rule, self.decoder = rule, decoder

    def __call__(self, features: np.ndarray, y: np.ndarray, z: np.ndarray) -> open_set.Judgement:
        """features [N, D], y [N, K], z [N, C] -> the float32 verdict per row."""
        x = np.atleast_2d(np.asarray(features, np.float32))
        err = None
        if self.rule.max_recon_error is not None:  # a rule without a reconstruction half: no decoder call
            err = open_set.reconstruction_error(x, self.decoder(y, z))
        return self.rule.judge(y, err, x)


class PartLabels:
    """One hysteresis state per part slot ("face", "hand0", "hand1"); reset when the part disappears."""

    def __init__(self, config: HysteresisConfig | None = None) -> None:
        self.config = config or HysteresisConfig()
        self._states: dict[str, LabelHysteresis] = {}

    def decide(self, slot: str, judge: PartJudge, verdict: open_set.Judgement, row: int = 0) -> Decision:
        state = self._states.get(slot)
        if state is None:
            state = self._states[slot] = LabelHysteresis(judge.rule.min_confidence, self.config)
        novelty = verdict.novelty_ratio
        ratio = None if novelty is None else float(novelty[row])
        label = state.update(verdict.calibrated[row], ratio)
        return Decision(int(label), float(verdict.confidence[row]), bool(verdict.unknown[row]))

    def reset(self, slot: str) -> None:
        if slot in self._states:
            self._states[slot].reset()

    def reset_all(self) -> None:
        for state in self._states.values():
            state.reset()
