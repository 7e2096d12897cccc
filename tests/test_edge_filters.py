"""One Euro filter on vectors: less jitter at rest, less lag with beta when moving."""

from __future__ import annotations

import numpy as np

from edge.filters import OneEuroFilter, OneEuroParams


def test_one_euro_smooths_jitter_at_rest_and_follows_motion():
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30.0
    still = 0.5 + 0.01 * rng.normal(size=(300, 3))
    filt = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    out = np.array([filt(x, ti) for x, ti in zip(still, t, strict=True)])
    assert out[30:].std(axis=0).max() < 0.4 * still[30:].std(axis=0).min()
    # A fast ramp: a large beta opens the cutoff, so the filter lags less than with beta = 0.
    ramp = np.stack([np.linspace(0, 10, 300)] * 3, axis=1)
    lags = []
    for beta in (0.0, 5.0):
        filt = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=beta))
        res = np.array([filt(x, ti) for x, ti in zip(ramp, t, strict=True)])
        lags.append(np.abs(ramp[100:] - res[100:]).mean())
    assert lags[1] < 0.5 * lags[0]
    filt.reset()
    np.testing.assert_array_equal(filt(np.ones(3), 0.0), np.ones(3))  # first sample after reset passes through
