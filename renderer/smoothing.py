"""Smoothing and tracked/idle blending of character parameters, frame-rate independent.

The edge already filters its measurements (One Euro, on the device); what is left here is
*presentation* smoothing: the renderer may run at a different rate from the stream, frames arrive
irregularly, and switching between tracked motion and idle motion must never jump. Both stages are
exponential approaches with time constants in seconds, so they behave the same at 30 or 144 fps.

Both keep state across frames, so both refuse non-finite input: one NaN would otherwise stay in the
state for good (every later frame is a mix of it). A non-finite target entry holds the previous
value (so does a value beyond `VALUE_LIMIT`), a non-finite or negative `dt` counts as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from renderer.params import FACE_SIZE, HAND_SIZE, VECTOR_SIZE


def safe_dt(dt: float) -> float:
    """`dt` when it is a finite non-negative number of seconds, else 0 (no time passed)."""
    return float(dt) if math.isfinite(dt) and dt > 0.0 else 0.0


VALUE_LIMIT = 1e3  # every character parameter is an angle, a 0..1 weight or a coordinate: far below this


def keep_finite(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """`new` with every non-finite or absurdly large entry replaced by the one of `old` (itself always sane).

    Huge but finite values matter as much as NaN: 3e38 in an exponential state takes hundreds of
    frames to decay and overflows to Inf in the first subtraction.
    """
    new = np.asarray(new, dtype=np.float64)
    ok = np.abs(new) <= VALUE_LIMIT  # False for NaN and Inf as well
    return new if ok.all() else np.where(ok, new, old)


def approach(current: np.ndarray, target: np.ndarray, dt: float, tau: np.ndarray | float) -> np.ndarray:
    """Move `current` towards `target` as a first-order system with time constant `tau` (s) over `dt` (s)."""
    dt = safe_dt(dt)
    alpha = 1.0 - np.exp(-dt / np.maximum(tau, 1e-6))
    return current + alpha * (target - current)


def default_time_constants() -> np.ndarray:
    """Per-parameter time constants: blinks must stay crisp, the head and wrists may glide."""
    face = np.array([0.08, 0.08, 0.08, 0.08, 0.03, 0.03, 0.05, 0.08, 0.08, 0.08, 0.05, 0.05])  # .., blinks, .., gaze
    hand = np.array([0.08, 0.06, 0.06, 0.05, 0.05, 0.05, 0.05, 0.05, 0.06, 0.06])  # present, wrist, curls, direction
    tau = np.concatenate([face, hand, hand])
    assert tau.shape == (VECTOR_SIZE,)
    return tau


class ParamSmoother:
    """Exponential smoothing of the numeric character vector; the first sample passes through."""

    def __init__(self, tau: np.ndarray | None = None) -> None:
        self.tau = default_time_constants() if tau is None else np.asarray(tau, dtype=np.float64)
        self.state: np.ndarray | None = None

    def update(self, target: np.ndarray, dt: float) -> np.ndarray:
        if self.state is None:
            target = np.array(target, dtype=np.float64)
            self.state = keep_finite(target, np.zeros_like(target))
        else:
            target = keep_finite(target, self.state)
            self.state = approach(self.state, target, dt, self.tau)
        return self.state.copy()


@dataclass
class BlendConfig:
    """How tracking loss hands over to idle motion and back."""

    hold_s: float = 0.25  # keep the last tracked pose this long before fading (covers a dropped frame or two)
    fade_out_s: float = 0.6  # time constant of tracked -> idle
    fade_in_s: float = 0.15  # time constant of idle -> tracked (users want their motion back quickly)


class TrackingBlend:
    """Per body part (face, left hand, right hand): weight 1 = tracked, 0 = idle, moving smoothly.

    A part that stops being tracked keeps its last tracked values for `hold_s`, then its weight
    decays towards 0 so the idle motion takes over; when tracking returns the weight rises back.
    """

    PARTS = (slice(0, FACE_SIZE), slice(FACE_SIZE, FACE_SIZE + HAND_SIZE), slice(FACE_SIZE + HAND_SIZE, VECTOR_SIZE))

    def __init__(self, config: BlendConfig | None = None) -> None:
        self.config = config or BlendConfig()
        self.weights = np.zeros(3)
        self.last_tracked = np.zeros(VECTOR_SIZE)
        self.since_seen = np.full(3, math.inf)

    def update(self, tracked: np.ndarray, present: np.ndarray, idle: np.ndarray, dt: float) -> np.ndarray:
        """Blend `tracked` (valid where `present`) with `idle`; returns the blended vector."""
        cfg = self.config
        dt = safe_dt(dt)
        tracked = keep_finite(tracked, self.last_tracked)
        idle = keep_finite(idle, np.zeros(VECTOR_SIZE))
        for i, part in enumerate(self.PARTS):
            if present[i]:
                self.last_tracked[part] = tracked[part]
                self.since_seen[i] = 0.0
                target, tau = 1.0, cfg.fade_in_s
            else:
                self.since_seen[i] += dt
                target, tau = (1.0, cfg.fade_in_s) if self.since_seen[i] <= cfg.hold_s else (0.0, cfg.fade_out_s)
            if math.isinf(self.since_seen[i]):
                target = 0.0  # never seen: stay idle
            self.weights[i] = float(approach(np.array(self.weights[i]), np.array(target), dt, tau))
        w = np.concatenate([np.full(part.stop - part.start, self.weights[i]) for i, part in enumerate(self.PARTS)])
        return w * self.last_tracked + (1.0 - w) * idle

    @property
    def idle_fraction(self) -> float:
        """0 when some part is fully tracked, 1 when the whole character runs on idle motion."""
        return float(1.0 - self.weights.max())
