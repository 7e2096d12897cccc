"""One Euro filter against the published algorithm (Casiez, Roussel, Vogel, CHI 2012), written here from
the paper's pseudocode, independently of edge/filters.py.

The reference below is the paper's listing in float64: a low-pass filter `hatx = a*x + (1-a)*hatxprev`,
`a = 1 / (1 + tau/Te)` with `tau = 1/(2*pi*fc)` and `Te` the time since the last sample; the speed
`dx = (x - hatxprev) * rate` (hatxprev: the last *filtered* value) is low-passed at `dcutoff`; the value
is low-passed at `fc = mincutoff + beta*|filtered dx|`. The first sample passes through with dx = 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.filters import OneEuroFilter, OneEuroParams


class PaperOneEuro:
    """The CHI 2012 pseudocode, scalar per channel, float64."""

    def __init__(self, mincutoff: float, beta: float, dcutoff: float) -> None:
        self.mincutoff, self.beta, self.dcutoff = mincutoff, beta, dcutoff
        self.hatx = self.hatdx = self.t = None

    @staticmethod
    def alpha(rate: float, cutoff: float) -> float:
        te = 1.0 / rate
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, x: float, t: float) -> float:
        if self.hatx is None:
            self.hatx, self.hatdx, self.t = x, 0.0, t
            return x
        rate = 1.0 / (t - self.t)
        dx = (x - self.hatx) * rate
        a_d = self.alpha(rate, self.dcutoff)
        self.hatdx = a_d * dx + (1.0 - a_d) * self.hatdx
        cutoff = self.mincutoff + self.beta * abs(self.hatdx)
        a = self.alpha(rate, cutoff)
        self.hatx = a * x + (1.0 - a) * self.hatx
        self.t = t
        return self.hatx


def signal() -> tuple[np.ndarray, np.ndarray]:
    """Irregular timestamps (8-60 ms, a dropped-frame gap), a slow drift, a fast step, jitter; 3 channels."""
    rng = np.random.default_rng(7)
    dt = rng.uniform(0.008, 0.060, size=160)
    dt[70] = 0.25  # a gap, as after dropped frames
    t = 12.0 + np.cumsum(dt)  # the capture clock does not start at 0
    base = np.stack([np.sin(1.3 * t), 0.4 * np.cos(0.7 * t), np.where(t > t[90], 3.0, -1.0)], axis=1)
    return t, base + 0.02 * rng.normal(size=base.shape)


def reference(params: OneEuroParams, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    chans = [PaperOneEuro(params.min_cutoff, params.beta, params.d_cutoff) for _ in range(x.shape[1])]
    return np.array(
        [[f(float(v), float(ti)) for f, v in zip(chans, row, strict=True)] for row, ti in zip(x, t, strict=True)]
    )


# Both cutoffs differ from each other and beta is large enough that the speed term matters: a filter that
# smooths the speed with min_cutoff, or opens the cutoff with the raw speed, lands far from the reference.
PARAMS = [
    OneEuroParams(min_cutoff=1.0, beta=0.05, d_cutoff=1.0),  # the edge default
    OneEuroParams(min_cutoff=0.6, beta=0.8, d_cutoff=3.5),
    OneEuroParams(min_cutoff=4.0, beta=2.5, d_cutoff=0.3),
    OneEuroParams(min_cutoff=0.2, beta=0.0, d_cutoff=9.0),  # beta 0: a plain exponential smoother at min_cutoff
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"fc{p.min_cutoff}-b{p.beta}-dc{p.d_cutoff}")
def test_one_euro_matches_the_published_algorithm_on_irregular_timestamps(params):
    t, x = signal()
    want = reference(params, t, x)
    filt = OneEuroFilter(params)
    got = np.array([filt(row, ti) for row, ti in zip(x, t, strict=True)])
    assert got.dtype == np.float32  # what goes on the wire
    # float32 state against a float64 reference: ~1e-6 relative measured; 2e-5 leaves 20x margin and is
    # still ~1000x below the smallest planted-bug deviation (see the next test).
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_the_reference_tells_the_two_cutoffs_and_the_filtered_speed_apart():
    """The check above is sharp enough: the two planted bugs move the output well beyond its tolerance."""
    params = PARAMS[1]
    t, x = signal()
    want = reference(params, t, x)
    swapped = reference(OneEuroParams(params.min_cutoff, params.beta, params.min_cutoff), t, x)
    assert np.abs(swapped - want).max() > 1e-2  # speed smoothed with min_cutoff instead of d_cutoff

    class RawSpeed(PaperOneEuro):
        def __call__(self, x, t):
            if self.hatx is None:
                return super().__call__(x, t)
            rate = 1.0 / (t - self.t)
            dx = (x - self.hatx) * rate
            a = self.alpha(rate, self.mincutoff + self.beta * abs(dx))  # the bug: raw speed opens the cutoff
            self.hatx, self.t = a * x + (1.0 - a) * self.hatx, t
            return self.hatx

    raw = [RawSpeed(params.min_cutoff, params.beta, params.d_cutoff) for _ in range(3)]
    raw_out = np.array(
        [[f(float(v), float(ti)) for f, v in zip(raw, row, strict=True)] for row, ti in zip(x, t, strict=True)]
    )
    assert np.abs(raw_out - want).max() > 1e-2


def test_first_sample_reset_shape_change_and_clock_step_restart_the_filter():
    params = PARAMS[1]
    filt = OneEuroFilter(params)
    first = filt(np.array([1.0, 2.0], np.float64), 5.0)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, [1.0, 2.0])  # the first sample passes through
    moved = filt(np.array([2.0, 0.0]), 5.02)
    assert 1.0 < moved[0] < 2.0 and 0.0 < moved[1] < 2.0  # smoothed toward the new value, not jumped
    # The same timestamp again (dt = 0) or a clock step back: restart on the new sample, no inf/nan.
    np.testing.assert_array_equal(filt(np.array([7.0, 7.0]), 5.02), [7.0, 7.0])
    np.testing.assert_array_equal(filt(np.array([3.0, 3.0]), 4.0), [3.0, 3.0])
    # A shape change restarts too (a part whose vector changed size).
    np.testing.assert_array_equal(filt(np.array([9.0, 9.0, 9.0]), 4.1), [9.0, 9.0, 9.0])
    # After the restart the state is the new sample with zero speed: the next step equals the paper's second step.
    ref = [PaperOneEuro(params.min_cutoff, params.beta, params.d_cutoff) for _ in range(3)]
    for f in ref:
        f(9.0, 4.1)
    np.testing.assert_allclose(filt(np.array([8.0, 9.5, 12.0]), 4.13), [ref[0](8.0, 4.13), ref[1](9.5, 4.13),
                                                                      ref[2](12.0, 4.13)], rtol=2e-5)  # fmt: skip
    filt.reset()
    np.testing.assert_array_equal(filt(np.array([0.5, 0.5, 0.5]), 4.2), [0.5, 0.5, 0.5])
    # After reset the speed estimate starts from zero again (no leak of the old speed).
    after = filt(np.array([0.6, 0.6, 0.6]), 4.23)
    ref2 = PaperOneEuro(params.min_cutoff, params.beta, params.d_cutoff)
    ref2(0.5, 4.2)
    np.testing.assert_allclose(after, ref2(0.6, 4.23), rtol=2e-5)
