"""Open-set decisions: a calibrated confidence and an 'unknown' verdict for shapes outside the classes.

A softmax classifier always picks a class, even for a hand shape it never saw. Two cheap signals,
both available wherever the encoder and decoder run (torch or onnxruntime), catch most of those:

1. confidence: the class probabilities after temperature scaling (Guo et al. 2017), fitted on a
   held-out split so that "0.9" means right about 90 % of the time. Low max-probability -> unknown.
2. reconstruction error: the AAE decoder rebuilds the features from (y, z); a shape far from the
   training data rebuilds badly. High error -> unknown.

Thresholds are set from held-out in-class data so that a chosen share of known samples is kept
(`keep` = 0.95 rejects about 5 % of known shapes). Everything here is numpy: the runtime and the
renderer can apply the same rule from the model card's "open_set" block.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

UNKNOWN = -1


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
