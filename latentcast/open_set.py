"""Open-set decisions: a calibrated confidence and an 'unknown' verdict for shapes outside the classes.

A softmax classifier always picks a class, even for a hand shape it never saw. Cheap signals catch
many of those, and the edge has all their inputs (docs/PROTOCOL.md, "Decision"):

1. confidence: the class probabilities after temperature scaling (Guo et al. 2017) so that "0.9"
   means right about 90 % of the time. Low max-probability -> unknown.
2. distance (the gesture rule): the Mahalanobis distance of the input features to the nearest
   known class's Gaussian (`ClassGaussians`, Lee et al. 2018, on the features rather than a
   network layer), estimated on real known rows that travel in the model card. An unseen hand
   shape sits between the classes in directions a class never varies in. On the input features,
   so it is the same number whatever precision the encoder runs at.
3. reconstruction error: the AAE decoder rebuilds the features from (y, z); a shape far from the
   training data rebuilds badly. High error -> unknown. A weak score for hand shapes (an unseen
   shape rebuilds about as well as a known one); cards without a distance half still use it.

Fitting (`fit_rule`) uses REAL held-out rows only (recorder rows of the shared CSVs, real photos,
recorded sessions); synthetic rows are all classified right and make a degenerate rule. The fit is
checked: a temperature on the edge of its grid, or a threshold that keeps everything (0, chance) or
nothing (1), is an `OpenSetFitError` (a `UserError`: the training run fails with one line).

Run time (`OpenSetRule.judge`) is float32 throughout, exactly as the edge computes it, so training,
tests and the device agree bit for bit on the same inputs. numpy only: the edge and renderer import it.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from latentcast.errors import UserError

UNKNOWN = -1
UNKNOWN_NAME = "unknown"  # the label name for UNKNOWN (renderers draw nothing for it)
TEMPERATURE_GRID = (0.05, 20.0)  # log-spaced search range; a fit on either end is an error
MIN_FIT_ROWS = 10  # fewer real rows cannot place a quantile threshold
# A ridge on each class covariance, as a share of its mean variance: a 42-D covariance of a few hundred
# correlated landmark rows is near singular, and its smallest directions would make any new person "far".
DISTANCE_SHRINKAGE = 0.01
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


@dataclass(eq=False)
class ClassGaussians:
    """Per known class a mean and a whitening matrix of the input features (the distance half's reference).

    distance(x) = min over classes k of |(x - mean_k) @ whitener_k|, the Mahalanobis distance to the
    nearest class, with whitener_k @ whitener_k.T = inverse (shrunk) covariance of class k. Stored as
    float32 and computed in float32 row by row (no BLAS: the same row gives the same bits in any batch).
    """

    means: np.ndarray  # [K, D] float32
    whiteners: np.ndarray  # [K, D, D] float32 (lower Cholesky factor of each class's precision)
    shrinkage: float = DISTANCE_SHRINKAGE

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, dtype=np.float32)
        self.whiteners = np.ascontiguousarray(self.whiteners, dtype=np.float32)
        k, d = self.means.shape
        if self.whiteners.shape != (k, d, d):
            raise ValueError(f"class_gaussians: whiteners have shape {self.whiteners.shape}, means {self.means.shape}")
        if not (np.isfinite(self.means).all() and np.isfinite(self.whiteners).all()):
            raise ValueError("class_gaussians hold non-finite numbers")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassGaussians):
            return NotImplemented
        return (
            self.shrinkage == other.shrinkage
            and np.array_equal(self.means, other.means)
            and np.array_equal(self.whiteners, other.whiteners)
        )

    def distance(self, features: np.ndarray) -> np.ndarray:
        """[N, D] features -> [N] float32 Mahalanobis distance to the nearest class."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float32))
        if x.shape[1] != self.means.shape[1]:
            raise ValueError(f"features have {x.shape[1]} columns, the open-set rule's Gaussians {self.means.shape[1]}")
        diff = x[:, None, :] - self.means[None, :, :]  # [N, K, D]
        white = np.einsum("nkd,kde->nke", diff, self.whiteners)  # float32, no BLAS
        d2 = np.einsum("nke,nke->nk", white, white)
        return np.sqrt(d2.min(axis=1)).astype(np.float32)

    def to_dict(self) -> dict:
        k, d = self.means.shape
        return {
            "classes": k,
            "dim": d,
            "shrinkage": self.shrinkage,
            "dtype": "float32 little-endian, base64",
            "means": _pack(self.means),
            "whiteners": _pack(self.whiteners),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ClassGaussians:
        try:
            k, d = int(data["classes"]), int(data["dim"])
            means = _unpack(data["means"], (k, d))
            whiteners = _unpack(data["whiteners"], (k, d, d))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"open_set class_gaussians are malformed ({exc})") from None
        return cls(means, whiteners, float(data.get("shrinkage", DISTANCE_SHRINKAGE)))


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f4")
    if raw.size != int(np.prod(shape)):
        raise ValueError(f"{raw.size} numbers where {shape} needs {int(np.prod(shape))}")
    return raw.reshape(shape).astype(np.float32)


def fit_gaussians(
    x: np.ndarray, y: np.ndarray, n_classes: int, shrinkage: float = DISTANCE_SHRINKAGE, what: str = "rows"
) -> ClassGaussians:
    """Class means and whitened (ridge-shrunk) inverse covariances of known rows `x` [N, D] with labels `y`.

    Estimated in float64, stored in float32. Every class needs at least `MIN_FIT_ROWS` rows, or the
    fit is an `OpenSetFitError` (a class without rows would be "unknown" wherever it appears).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    means, whiteners = [], []
    for k in range(n_classes):
        rows = x[y == k]
        if len(rows) < MIN_FIT_ROWS:
            raise OpenSetFitError(
                f"{what}: class {k} has {len(rows)} rows, the distance half needs at least {MIN_FIT_ROWS} per class: "
                "record more rows of that class"
            )
        cov = np.cov(rows.T)
        d = cov.shape[0]
        cov = (1.0 - shrinkage) * cov + shrinkage * (np.trace(cov) / d) * np.eye(d)
        means.append(rows.mean(axis=0))
        whiteners.append(np.linalg.cholesky(np.linalg.inv(cov)))
    return ClassGaussians(np.asarray(means), np.asarray(whiteners), shrinkage)


@dataclass
class Judgement:
    """The rule's per-row verdict: what the edge publishes per part (docs/PROTOCOL.md)."""

    calibrated: np.ndarray  # [N, K] float32 temperature-scaled probabilities
    label: np.ndarray  # [N] int64: argmax class, or UNKNOWN
    confidence: np.ndarray  # [N] float32: calibrated max-probability
    unknown: np.ndarray  # [N] bool
    recon_ratio: np.ndarray | None  # [N] float32 reconstruction error / max_recon_error (None: not measured)
    distance_ratio: np.ndarray | None = None  # [N] float32 distance / max_distance (None: not measured)

    @property
    def novelty_ratio(self) -> np.ndarray | None:
        """[N] the worse of the measured score / threshold ratios (> 1: a novelty half said unknown), or None."""
        ratios = [r for r in (self.recon_ratio, self.distance_ratio) if r is not None]
        if not ratios:
            return None
        return ratios[0] if len(ratios) == 1 else np.maximum(*ratios)


@dataclass
class OpenSetRule:
    """'unknown' when calibrated max-probability < min_confidence, distance to the nearest class > max_distance
    or reconstruction error > max_recon_error (a half whose threshold is null is left out)."""

    temperature: float
    min_confidence: float
    max_recon_error: float | None  # None: no reconstruction half
    keep: float  # share of held-out known rows the whole rule keeps (each half rejects an equal share of the rest)
    max_distance: float | None = None  # None: no distance half
    gaussians: ClassGaussians | None = None  # the distance half's reference (with max_distance)

    def __post_init__(self) -> None:
        if (self.max_distance is None) != (self.gaussians is None):
            raise ValueError("open_set max_distance and class_gaussians come together (both or neither)")

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        return apply_temperature(probs, self.temperature)

    def judge(
        self,
        probs: np.ndarray,
        recon_error: np.ndarray | None = None,
        features: np.ndarray | None = None,
        distance: np.ndarray | None = None,
    ) -> Judgement:
        """The float32 verdict for each row of `probs` [N, K] (with its reconstruction error [N] and its
        input features [N, D] where known: a half whose input is not given is not applied). `distance` [N]
        instead of `features`: distances measured elsewhere (a trainer's held-out ones)."""
        calibrated = self.confidence(probs)
        confidence = calibrated.max(axis=1)
        unknown = confidence < np.float32(self.min_confidence)
        ratio = distance_ratio = None
        if recon_error is not None and self.max_recon_error is not None:
            err = np.asarray(recon_error, dtype=np.float32).reshape(-1)
            unknown |= err > np.float32(self.max_recon_error)
            ratio = err / np.float32(self.max_recon_error)
        if features is not None and self.gaussians is not None:
            distance = self.gaussians.distance(features)
        if distance is not None and self.max_distance is not None:
            distance = np.asarray(distance, dtype=np.float32).reshape(-1)
            unknown |= distance > np.float32(self.max_distance)
            distance_ratio = distance / np.float32(self.max_distance)
        label = np.where(unknown, UNKNOWN, calibrated.argmax(axis=1))
        return Judgement(calibrated, label, confidence, unknown, ratio, distance_ratio)

    def decide(
        self,
        probs: np.ndarray,
        recon_error: np.ndarray | None = None,
        features: np.ndarray | None = None,
        distance: np.ndarray | None = None,
    ) -> np.ndarray:
        """Predicted class per row, or UNKNOWN (-1)."""
        return self.judge(probs, recon_error, features, distance).label

    @property
    def halves(self) -> int:
        """How many thresholds the rule has (confidence, and reconstruction and/or distance where fitted)."""
        return 1 + int(self.max_recon_error is not None) + int(self.gaussians is not None)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "gaussians"}
        out["class_gaussians"] = None if self.gaussians is None else self.gaussians.to_dict()
        rule = " ".join(type(self).__doc__.split())
        return {**out, "rule": rule, "unknown_label": UNKNOWN, "arithmetic": "float32"}

    @classmethod
    def from_dict(cls, data: Mapping) -> OpenSetRule:
        gaussians = data.get("class_gaussians")
        max_distance = data.get("max_distance")
        return cls(
            temperature=float(data["temperature"]),
            min_confidence=float(data["min_confidence"]),
            max_recon_error=None if data["max_recon_error"] is None else float(data["max_recon_error"]),
            keep=float(data["keep"]),
            max_distance=None if max_distance is None else float(max_distance),
            gaussians=None if gaussians is None else ClassGaussians.from_dict(gaussians),
        )


def fit_rule(
    probs: np.ndarray,
    labels: np.ndarray,
    recon_error: np.ndarray | None,
    keep: float = 0.95,
    what: str = "rows",
    recon: bool = True,
    distance: np.ndarray | None = None,
    gaussians: ClassGaussians | None = None,
) -> OpenSetRule:
    """Fit temperature and the thresholds on REAL held-out known-class rows (`what` names them in errors).

    The whole rule keeps at least `keep` of the rows: each of its h halves alone rejects (1 - keep) / h
    of them (quantiles of their float32 scores; the Bonferroni split, since the halves overlap). Raises
    `OpenSetFitError` for too few rows, a temperature on the grid's edge, or a degenerate threshold.
    `recon=False` leaves the reconstruction half out (max_recon_error None): for rows the model was
    trained on, whose reconstruction errors say nothing about a new person's (expressions: in-sample
    photos rebuild 5-25 x better), or when the distance half replaces it (gestures). `distance` [N]:
    each row's distance to `gaussians` (estimated WITHOUT that row: see aae/gestures.py) adds the
    distance half.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < MIN_FIT_ROWS:
        raise OpenSetFitError(
            f"the open-set rule needs at least {MIN_FIT_ROWS} labelled real rows to fit, {what} has {len(labels)}: "
            "label more frames (python -m edge.record label)"
        )
    if not 0.5 < keep < 1.0:
        raise OpenSetFitError(f"--keep {keep} must be between 0.5 and 1 (the share of known rows kept)")
    if (distance is None) != (gaussians is None):
        raise ValueError("fit_rule: the distance half needs both the rows' distances and the class Gaussians")
    try:
        temperature = fit_temperature(probs, labels)
    except OpenSetFitError as exc:
        raise OpenSetFitError(f"{what}: {exc}") from None
    each = _share_each(keep, 1 + int(recon) + int(distance is not None))
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
    max_recon = None
    if recon:
        max_recon = _positive_quantile(recon_error, each, what, "reconstruction", "check the rows and the decoder")
    max_distance = None
    if distance is not None:
        if len(distance) != len(labels):
            raise ValueError(f"fit_rule: {len(distance)} distances for {len(labels)} rows")
        max_distance = _positive_quantile(distance, each, what, "distance", "check the rows and the class Gaussians")
    return OpenSetRule(
        temperature=temperature,
        min_confidence=min_confidence,
        max_recon_error=max_recon,
        keep=keep,
        max_distance=max_distance,
        gaussians=gaussians,
    )


def _share_each(keep: float, halves: int) -> float:
    """The share of known rows each of `halves` thresholds keeps so that the whole rule keeps `keep` (Bonferroni)."""
    return 1.0 - (1.0 - keep) / halves


def keep_also(rule: OpenSetRule, probs: np.ndarray, distance: np.ndarray | None, what: str) -> OpenSetRule:
    """`rule` with its confidence and distance thresholds loosened, never tightened, so that each also keeps
    its share of these rows: a person's own labelled frames (`--session`), whose known shapes a rule fitted
    mostly on other people would otherwise call unknown. `distance` [N]: the rows' distances to
    `rule.gaussians`, estimated without them (None: the distance threshold is left as it is).
    """
    if len(probs) < MIN_FIT_ROWS:
        raise OpenSetFitError(f"{what}: {len(probs)} rows, at least {MIN_FIT_ROWS} are needed to place a threshold")
    each = _share_each(rule.keep, rule.halves)
    confidence = rule.confidence(probs).max(axis=1)
    min_confidence = min(rule.min_confidence, _f32(np.quantile(confidence, 1.0 - each)))
    k = np.asarray(probs).shape[1]
    if not 1.0 / k < min_confidence:
        raise OpenSetFitError(
            f"{what}: keeping these rows needs a confidence threshold of {min_confidence!r}, at or below chance "
            f"1/{k}: the model does not know these frames' classes; check their labels or label more frames"
        )
    max_distance = rule.max_distance
    if distance is not None and rule.gaussians is not None:
        if len(distance) != len(probs):
            raise ValueError(f"keep_also: {len(distance)} distances for {len(probs)} rows")
        max_distance = max(rule.max_distance, _positive_quantile(distance, each, what, "distance", "check the rows"))
    return replace(rule, min_confidence=min_confidence, max_distance=max_distance)


def _positive_quantile(scores: np.ndarray | None, share: float, what: str, name: str, fix: str) -> float:
    """The float32 `share` quantile of `scores`, which must be a positive finite number (else a fit error)."""
    value = float("nan") if scores is None else _f32(np.quantile(np.asarray(scores, dtype=np.float32), share))
    if not (np.isfinite(value) and value > 0.0):
        raise OpenSetFitError(
            f"{what}: the fitted {name} threshold {value!r} is degenerate (it must be a positive number): {fix}"
        )
    return value


def unknown_rate(decisions: np.ndarray) -> float:
    return float(np.mean(decisions == UNKNOWN)) if len(decisions) else float("nan")


def rule_from_block(open_set_block: Mapping | None, need_recon: bool = False) -> OpenSetRule | None:
    """The rule in a model card's "open_set" block, or None when the card has none.

    None or an empty block means no rule. A block needs "temperature" (> 0) and "min_confidence";
    "max_recon_error" too when `need_recon` (the edge, which has the features and the decoder): a
    positive number, or null for a rule without a reconstruction half. "max_distance" (a positive
    number) and "class_gaussians" are optional and come together (the distance half; older cards
    have neither).
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
    raw_distance, raw_gaussians = open_set_block.get("max_distance"), open_set_block.get("class_gaussians")
    if (raw_distance is None) != (raw_gaussians is None):
        raise ValueError("open_set max_distance and class_gaussians come together (both or neither)")
    max_distance = None if raw_distance is None else float(raw_distance)
    if max_distance is not None and not (np.isfinite(max_distance) and max_distance > 0):
        raise ValueError(f"open_set max_distance must be a positive number or null, not {max_distance}")
    return OpenSetRule(
        temperature=temperature,
        min_confidence=float(open_set_block["min_confidence"]),
        max_recon_error=max_recon,
        keep=float(open_set_block.get("keep", np.nan)),
        max_distance=max_distance,
        gaussians=None if raw_gaussians is None else ClassGaussians.from_dict(raw_gaussians),
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
    distance and reconstruction halves need the features, which only the edge has). Without a block: the argmax
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
