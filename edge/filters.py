"""One Euro filter (Casiez, Roussel, Vogel, CHI 2012) on vectors.

Why One Euro: landmark jitter is worst when the subject is still, lag is worst when it moves.
The filter is an exponential smoother whose cutoff rises with speed: `min_cutoff` (Hz) sets the
smoothing at rest (lower = less jitter), `beta` how fast the cutoff opens with speed (higher =
less lag), `d_cutoff` (Hz) smooths the speed estimate itself. Time comes from the frames'
capture timestamps, so dropped frames do not distort it.

A convex blend of probability vectors is a probability vector, so y can be filtered too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """The `[filter]` section of the edge config (edge/config.py), one default per knob."""

    enabled: bool = True  # the edge loop smooths latents and pose with these parameters
    min_cutoff: float = 1.0  # Hz; lower = less jitter at rest
    beta: float = 0.05  # higher = less lag when moving fast
    d_cutoff: float = 1.0  # Hz; smoothing of the speed estimate


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filter a stream of same-shaped vectors; `reset()` when the tracked thing disappears."""

    def __init__(self, params: OneEuroParams = OneEuroParams()) -> None:
        self.params = params
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t_seconds: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self._x is None or self._x.shape != x.shape or self._t is None or t_seconds <= self._t:
            # First sample (or a shape change / clock step): nothing to smooth against yet.
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_seconds
            return x.copy()
        dt = t_seconds - self._t
        p = self.params
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(p.d_cutoff, dt) * (dx - self._dx)
        cutoff = p.min_cutoff + p.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt).astype(np.float32) * (x - self._x)
        self._t = t_seconds
        return self._x.copy()
