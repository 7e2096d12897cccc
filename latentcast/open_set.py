"""Open-set decisions: a calibrated confidence and an 'unknown' verdict for shapes outside the classes.

A softmax classifier always picks a class, even for a hand shape it never saw. Two cheap signals
catch most of those, and the edge has both (docs/PROTOCOL.md, "Decision"):

1. confidence: the class probabilities after temperature scaling (Guo et al. 2017) so that "0.9"
   means right about 90 % of the time. Low max-probability -> unknown.
2. reconstruction error: the AAE decoder rebuilds the features from (y, z); a shape far from the
   training data rebuilds badly. High error -> unknown.

Fitting (`fit_rule`) uses REAL held-out rows only (recorder rows of the shared CSVs, real photos,
recorded sessions); synthetic rows are all classified right and make a degenerate rule. The fit is
checked: a temperature on the edge of its grid, or a threshold that keeps everything (0, chance) or
nothing (1), is an `OpenSetFitError` (a `UserError`: the training run fails with one line).

Run time (`OpenSetRule.judge`) is float32 throughout, exactly as the edge computes it, so training,
tests and the device agree bit for bit on the same inputs. numpy only: the edge and renderer import it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from latentcast.errors import UserError

UNKNOWN = -1
UNKNOWN_NAME = "unknown"  # the label name for UNKNOWN (renderers draw nothing for it)
TEMPERATURE_GRID = (0.05, 20.0)  # log-spaced search range; a fit on either end is an error
MIN_FIT_ROWS = 10  # fewer real rows cannot place a quantile threshold
_EPS32 = np.float32(1e-12)


class OpenSetFitError(UserError):
    """The open-set rule could not be fitted honestly on the rows given (a training error)."""


def _f32(value: float) -> float:
    """`value` rounded to the nearest float32, as a Python float (JSON keeps it exactly)."""
    return float(np.float32(value))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) in float32 (the run-time arithmetic); T > 1 softens, T < 1 sharpens."""
    p = np.asarray(probs, dtype=np.float32)
    if p.ndim == 1:
        p = p[None, :]
    logits = np.log(np.clip(p, _EPS32, np.float32(1.0))) / np.float32(temperature)
    logits = logits - logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))


def _smoothed_nll(log_probs: np.ndarray, labels: np.ndarray, smoothing: float) -> float:
    """Cross-entropy against labels smoothed by `smoothing` (spread over the other classes)."""
    n, k = log_probs.shape
    true = log_probs[np.arange(n), labels]
    others = (log_probs.sum(axis=1) - true) / max(k - 1, 1)
    return float(-np.mean((1.0 - smoothing) * true + smoothing * others))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, smoothing: float | None = None) -> float:
    """The temperature minimising held-out cross-entropy, searched over log T in `TEMPERATURE_GRID`.

    Labels are smoothed by Laplace's rule, 1 / (n + 2): with no error in n rows, the next row is
    wrong with about that probability. Plain NLL on rows that are all right is minimised at T -> 0
    (the degenerate rule this replaces); smoothed, the minimum is interior whenever the model beats
    chance. A minimum on the grid's edge raises `OpenSetFitError`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    smoothing = 1.0 / (len(labels) + 2) if smoothing is None else smoothing
    log_p = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0))

    def loss(t: float) -> float:
        logits = log_p / t
        logits -= logits.max(axis=1, keepdims=True)
        log_q = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return _smoothed_nll(log_q, labels, smoothing)

    lo, hi = TEMPERATURE_GRID
    grid = np.exp(np.linspace(np.log(lo), np.log(hi), 121))
    losses = [loss(t) for t in grid]
    i = int(np.argmin(losses))
    if i in (0, len(grid) - 1):
        raise OpenSetFitError(
            f"open-set temperature fit landed on the edge of its grid (T = {grid[i]:.3g}, grid {lo}-{hi}) on "
            f"{len(labels)} rows: the rows cannot calibrate this model (all trivially right, or the model is at "
            "chance); fit on more real held-out rows or retrain"
        )
    fine = np.exp(np.linspace(np.log(grid[i - 1]), np.log(grid[i + 1]), 41))
    return _f32(fine[int(np.argmin([loss(t) for t in fine]))])


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
    """Per-sample mean squared error between features and their reconstruction, float32 (the edge's arithmetic)."""
    diff = np.asarray(x, dtype=np.float32) - np.asarray(x_hat, dtype=np.float32)
    return np.mean(diff * diff, axis=1, dtype=np.float32)


@dataclass
class Judgement:
    """The rule's per-row verdict: what the edge publishes per part (docs/PROTOCOL.md)."""

    calibrated: np.ndarray  # [N, K] float32 temperature-scaled probabilities
    label: np.ndarray  # [N] int64: argmax class, or UNKNOWN
    confidence: np.ndarray  # [N] float32: calibrated max-probability
    unknown: np.ndarray  # [N] bool
    recon_ratio: np.ndarray | None  # [N] float32 reconstruction error / max_recon_error (None: not measured)


@dataclass
class OpenSetRule:
    """'unknown' when calibrated max-probability < min_confidence or reconstruction error > max_recon_error."""

    temperature: float
    min_confidence: float
    max_recon_error: float | None  # None: no reconstruction half (no held-out real rows to fit it on)
    keep: float  # share of held-out known rows the whole rule keeps (each threshold rejects half the rest)

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        return apply_temperature(probs, self.temperature)

    def judge(self, probs: np.ndarray, recon_error: np.ndarray | None = None) -> Judgement:
        """The float32 verdict for each row of `probs` [N, K] (and its reconstruction error [N], if known)."""
        calibrated = self.confidence(probs)
        confidence = calibrated.max(axis=1)
        unknown = confidence < np.float32(self.min_confidence)
        ratio = None
        if recon_error is not None and self.max_recon_error is not None:
            err = np.asarray(recon_error, dtype=np.float32).reshape(-1)
            unknown |= err > np.float32(self.max_recon_error)
            ratio = err / np.float32(self.max_recon_error)
        label = np.where(unknown, UNKNOWN, calibrated.argmax(axis=1))
        return Judgement(calibrated, label, confidence, unknown, ratio)

    def decide(self, probs: np.ndarray, recon_error: np.ndarray | None = None) -> np.ndarray:
        """Predicted class per row, or UNKNOWN (-1)."""
        return self.judge(probs, recon_error).label

    def to_dict(self) -> dict:
        return {**asdict(self), "rule": type(self).__doc__.strip(), "unknown_label": UNKNOWN, "arithmetic": "float32"}

    @classmethod
    def from_dict(cls, data: Mapping) -> OpenSetRule:
        return cls(
            temperature=float(data["temperature"]),
            min_confidence=float(data["min_confidence"]),
            max_recon_error=None if data["max_recon_error"] is None else float(data["max_recon_error"]),
            keep=float(data["keep"]),
        )


def fit_rule(
    probs: np.ndarray,
    labels: np.ndarray,
    recon_error: np.ndarray,
    keep: float = 0.95,
    what: str = "rows",
    recon: bool = True,
) -> OpenSetRule:
    """Fit temperature and both thresholds on REAL held-out known-class rows (`what` names them in errors).

    The whole rule keeps at least `keep` of the rows: each threshold alone rejects (1 - keep) / 2 of
    them (quantiles of their float32 scores; the Bonferroni split, since the two overlap). Raises
    `OpenSetFitError` for too few rows, a temperature on the grid's edge, or a degenerate threshold.
    `recon=False` leaves the reconstruction half out (max_recon_error None) and gives the confidence
    threshold all of the (1 - keep): for rows the model was trained on, whose reconstruction errors
    say nothing about a new person's (expressions: in-sample photos rebuild 5-25 x better).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < MIN_FIT_ROWS:
        raise OpenSetFitError(
            f"the open-set rule needs at least {MIN_FIT_ROWS} labelled real rows to fit, {what} has {len(labels)}: "
            "label more frames (python -m edge.record label)"
        )
    if not 0.5 < keep < 1.0:
        raise OpenSetFitError(f"--keep {keep} must be between 0.5 and 1 (the share of known rows kept)")
    try:
        temperature = fit_temperature(probs, labels)
    except OpenSetFitError as exc:
        raise OpenSetFitError(f"{what}: {exc}") from None
    each = 1.0 - (1.0 - keep) / 2.0 if recon else keep  # the share each threshold keeps
    confidence = apply_temperature(probs, temperature).max(axis=1)
    min_confidence = _f32(np.quantile(confidence, 1.0 - each))
    k = np.asarray(probs).shape[1]
    if float(np.ptp(confidence)) <= 1e-6:
        raise OpenSetFitError(
            f"{what}: every row has the same calibrated confidence {min_confidence!r} (a saturated softmax), so "
            "a confidence threshold cannot separate anything: fit on more varied real rows or retrain"
        )
    if not 1.0 / k < min_confidence < 1.0:
        raise OpenSetFitError(
            f"{what}: the fitted confidence threshold {min_confidence!r} is degenerate (it must lie between chance "
            f"1/{k} and 1, or it rejects nothing or everything): fit on more varied real rows"
        )
    if not recon:
        return OpenSetRule(temperature=temperature, min_confidence=min_confidence, max_recon_error=None, keep=keep)
    err = np.asarray(recon_error, dtype=np.float32)
    max_recon = _f32(np.quantile(err, each))
    if not (np.isfinite(max_recon) and max_recon > 0.0):
        raise OpenSetFitError(
            f"{what}: the fitted reconstruction threshold {max_recon!r} is degenerate (it must be a positive "
            "number): check the rows and the decoder"
        )
    return OpenSetRule(temperature=temperature, min_confidence=min_confidence, max_recon_error=max_recon, keep=keep)


def unknown_rate(decisions: np.ndarray) -> float:
    return float(np.mean(decisions == UNKNOWN)) if len(decisions) else float("nan")


def rule_from_block(open_set_block: Mapping | None, need_recon: bool = False) -> OpenSetRule | None:
    """The rule in a model card's "open_set" block, or None when the card has none.

    None or an empty block means no rule. A block needs "temperature" (> 0) and "min_confidence";
    "max_recon_error" too when `need_recon` (the edge, which has the features and the decoder): a
    positive number, or null for a rule without a reconstruction half.
    """
    if not open_set_block:
        return None
    keys = ("temperature", "min_confidence", "max_recon_error") if need_recon else ("temperature", "min_confidence")
    missing = [key for key in keys if key not in open_set_block]
    if missing:
        raise ValueError(f"open_set block lacks {', '.join(missing)}")
    temperature = float(open_set_block["temperature"])
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"open_set temperature must be a positive number, not {temperature}")
    raw = open_set_block.get("max_recon_error", None if need_recon else np.inf)
    max_recon = None if raw is None else float(raw)
    if need_recon and max_recon is not None and not (np.isfinite(max_recon) and max_recon > 0):
        raise ValueError(f"open_set max_recon_error must be a positive number or null, not {max_recon}")
    return OpenSetRule(
        temperature=temperature,
        min_confidence=float(open_set_block["min_confidence"]),
        max_recon_error=max_recon,
        keep=float(open_set_block.get("keep", np.nan)),
    )


def confidence_rule(open_set_block: Mapping | None) -> OpenSetRule | None:
    """The confidence half of a model card's "open_set" block (what a renderer can apply to v1 messages)."""
    return rule_from_block(open_set_block, need_recon=False)


def confident_label(
    probs: np.ndarray, classes: Sequence[str], open_set_block: Mapping | None = None
) -> tuple[str, float]:
    """(label, confidence) for one probability vector [K] from class probabilities alone.

    Only for protocol v1 messages, which carry no edge decision: the temperature-scaled
    max-probability is the confidence, and the label is `UNKNOWN_NAME` below min_confidence (the
    reconstruction half needs the features, which only the edge has). Without a block: the argmax
    class and its raw probability.
    """
    p = np.asarray(probs, dtype=np.float32).reshape(1, -1)
    rule = confidence_rule(open_set_block)
    if rule is None:
        k = int(np.argmax(p[0]))
        return classes[k], float(p[0, k])
    verdict = rule.judge(p)
    decision = int(verdict.label[0])
    return (UNKNOWN_NAME if decision == UNKNOWN else classes[decision]), float(verdict.confidence[0])


def label_name(label: int, classes: Sequence[str]) -> str:
    """A published label index as a name: UNKNOWN -> `UNKNOWN_NAME`, out of range -> `UNKNOWN_NAME`."""
    return classes[label] if 0 <= label < len(classes) else UNKNOWN_NAME
