"""Open-set decisions: a calibrated confidence and an 'unknown' verdict for shapes outside the classes.

A softmax classifier always picks a class, even for a hand shape it never saw. Two cheap signals,
both available wherever the encoder and decoder run (torch or onnxruntime), catch most of those:

1. confidence: the class probabilities after temperature scaling (Guo et al. 2017), fitted on a
   held-out split so that "0.9" means right about 90 % of the time. Low max-probability -> unknown.
2. reconstruction error: the AAE decoder rebuilds the features from (y, z); a shape far from the
   training data rebuilds badly. High error -> unknown.

Thresholds are set from held-out in-class data so that a chosen share of known samples is kept
(`keep` = 0.95 rejects about 5 % of known shapes). Everything here is numpy, shared by training
(`aae/`) and run time: the renderer, which receives class probabilities but not the input features,
applies the confidence half of the rule from the model card's "open_set" block (`confident_label`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

UNKNOWN = -1
UNKNOWN_NAME = "unknown"  # the label shown for UNKNOWN


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale class probabilities as softmax(log p / T); T > 1 softens, T < 1 sharpens."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising held-out negative log-likelihood (a 1-D search over log T)."""

    def best(grid: np.ndarray) -> int:
        return int(np.argmin([nll(apply_temperature(probs, t), labels) for t in grid]))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    i = best(grid)
    # refine around the best grid point
    fine = np.exp(np.linspace(np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)]), 41))
    return float(fine[best(fine)])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE: |accuracy - confidence| averaged over confidence bins, weighted by bin size."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def reconstruction_error(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """Per-sample mean squared error between features and their reconstruction."""
    return np.mean((np.asarray(x) - np.asarray(x_hat)) ** 2, axis=1)


@dataclass
class OpenSetRule:
    """'unknown' when calibrated max-probability < min_confidence or reconstruction error > max_recon_error."""

    temperature: float
    min_confidence: float
    max_recon_error: float
    keep: float  # share of held-out known samples each threshold keeps

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        return apply_temperature(probs, self.temperature)

    def decide(self, probs: np.ndarray, recon_error: np.ndarray | None = None) -> np.ndarray:
        """Predicted class per row, or UNKNOWN (-1)."""
        calibrated = self.confidence(probs)
        labels = calibrated.argmax(axis=1)
        unknown = calibrated.max(axis=1) < self.min_confidence
        if recon_error is not None:
            unknown |= np.asarray(recon_error) > self.max_recon_error
        return np.where(unknown, UNKNOWN, labels)

    def to_dict(self) -> dict:
        return {**asdict(self), "rule": type(self).__doc__.strip(), "unknown_label": UNKNOWN}

    @classmethod
    def from_dict(cls, data: dict) -> OpenSetRule:
        return cls(
            temperature=float(data["temperature"]),
            min_confidence=float(data["min_confidence"]),
            max_recon_error=float(data["max_recon_error"]),
            keep=float(data["keep"]),
        )


def fit_rule(probs: np.ndarray, labels: np.ndarray, recon_error: np.ndarray, keep: float = 0.95) -> OpenSetRule:
    """Fit temperature and both thresholds on held-out known-class data.

    Each threshold alone keeps `keep` of the known samples (quantiles of their scores).
    """
    temperature = fit_temperature(probs, labels)
    confidence = apply_temperature(probs, temperature).max(axis=1)
    return OpenSetRule(
        temperature=temperature,
        min_confidence=float(np.quantile(confidence, 1.0 - keep)),
        max_recon_error=float(np.quantile(recon_error, keep)),
        keep=keep,
    )


def unknown_rate(decisions: np.ndarray) -> float:
    return float(np.mean(decisions == UNKNOWN)) if len(decisions) else float("nan")


def confidence_rule(open_set_block: Mapping | None) -> OpenSetRule | None:
    """The confidence half of a model card's "open_set" block, or None when the card has no rule.

    None or an empty block means no rule. A block needs "temperature" (> 0) and "min_confidence";
    the reconstruction threshold is optional (it needs the input features, which the renderer never gets).
    """
    if not open_set_block:
        return None
    missing = [key for key in ("temperature", "min_confidence") if key not in open_set_block]
    if missing:
        raise ValueError(f"open_set block lacks {', '.join(missing)}")
    temperature = float(open_set_block["temperature"])
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"open_set temperature must be a positive number, not {temperature}")
    return OpenSetRule(
        temperature=temperature,
        min_confidence=float(open_set_block["min_confidence"]),
        max_recon_error=float(open_set_block.get("max_recon_error", np.inf)),
        keep=float(open_set_block.get("keep", np.nan)),
    )


def confident_label(
    probs: np.ndarray, classes: Sequence[str], open_set_block: Mapping | None = None
) -> tuple[str, float]:
    """(label, confidence) for one probability vector [K]: the rule's verdict from class probabilities alone.

    With an "open_set" block: the temperature-scaled max-probability is the confidence, and the label
    is `UNKNOWN_NAME` when it is below min_confidence, else the class name (`OpenSetRule.decide`
    without reconstruction error). Without a block: the argmax class and its raw probability.
    """
    p = np.asarray(probs)
    p = p.astype(np.result_type(p.dtype, np.float32), copy=False).reshape(1, -1)
    rule = confidence_rule(open_set_block)
    if rule is None:
        k = int(np.argmax(p[0]))
        return classes[k], float(p[0, k])
    decision = int(rule.decide(p)[0])
    confidence = float(rule.confidence(p)[0].max())
    return (UNKNOWN_NAME if decision == UNKNOWN else classes[decision]), confidence
