"""Idle motion sampled from the AAE priors, so a character never freezes when tracking is lost.

The AAE was trained to make its codes look like the prior: y categorical, z ~ N(0, I). Any sample
from the prior therefore decodes to a plausible pose. For motion rather than flicker, z follows an
Ornstein-Uhlenbeck process whose stationary law is exactly N(0, I) (each step is an exact
discretisation, so the marginal stays the prior at any frame rate), and y holds a class for a few
seconds, preferring calm classes (neutral face, relaxed open hand) when the model card names them
and showing the others only for brief moments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CALM_CLASS_NAMES = ("neutral", "relaxed", "open", "open_palm", "idle", "rest", "none")


@dataclass
class IdleConfig:
    z_time_constant_s: float = 2.5  # how slowly z wanders
    z_scale: float = 0.8  # < 1 stays in the prior's dense middle: calmer, more typical poses
    class_hold_s: tuple[float, float] = (4.0, 9.0)  # a calm class is held for a uniform time in this range
    lively_hold_s: tuple[float, float] = (1.0, 2.5)  # other classes are brief moments
    calm_probability: float = 0.85  # chance of choosing a calm class (when the model card has one)


class PriorIdle:
    """A smooth random walk through one model's prior: call `step(dt)` to get (y one-hot, z)."""

    def __init__(
        self, classes: Sequence[str], code_dim: int, rng: np.random.Generator, config: IdleConfig | None = None
    ) -> None:
        self.classes = list(classes)
        self.config = config or IdleConfig()
        self.rng = rng
        self.z = rng.standard_normal(code_dim)
        self.calm = [i for i, name in enumerate(self.classes) if name.lower() in CALM_CLASS_NAMES]
        self.class_index = self._pick_class()
        self.hold_left = self._hold_time()

    def _pick_class(self) -> int:
        if self.calm and self.rng.random() < self.config.calm_probability:
            return int(self.rng.choice(self.calm))
        return int(self.rng.integers(len(self.classes)))

    def _hold_time(self) -> float:
        calm = not self.calm or self.class_index in self.calm
        lo, hi = self.config.class_hold_s if calm else self.config.lively_hold_s
        return float(self.rng.uniform(lo, hi))

    def step(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance by `dt` seconds; returns y [K] (one-hot) and z [C], both float32."""
        a = math.exp(-dt / self.config.z_time_constant_s)
        self.z = a * self.z + math.sqrt(1.0 - a * a) * self.rng.standard_normal(self.z.shape)
        self.hold_left -= dt
        if self.hold_left <= 0.0:
            self.class_index = self._pick_class()
            self.hold_left = self._hold_time()
        y = np.zeros(len(self.classes), dtype=np.float32)
        y[self.class_index] = 1.0
        return y, (self.config.z_scale * self.z).astype(np.float32)

    @property
    def class_name(self) -> str:
        return self.classes[self.class_index]


class IdleFace:
    """What decoded prior samples cannot provide: a slow head sway and natural blinks."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.t = 0.0
        self.phase = rng.uniform(0, 2 * math.pi, size=3)
        self.next_blink = float(rng.uniform(2.0, 5.0))
        self.blink_t = math.inf  # time since the current blink started

    def step(self, dt: float) -> dict[str, float]:
        """Advance by `dt`; returns head angles (rad) and a blink amount (0..1) for both eyes."""
        self.t += dt
        self.next_blink -= dt
        if self.next_blink <= 0.0:
            self.blink_t = 0.0
            self.next_blink = float(self.rng.uniform(2.5, 6.0))
        self.blink_t += dt
        blink = max(0.0, 1.0 - abs(self.blink_t - 0.075) / 0.075)  # 150 ms triangle
        p = self.phase
        return {
            "yaw": 0.12 * math.sin(0.5 * self.t + p[0]),
            "pitch": 0.05 * math.sin(0.37 * self.t + p[1]),
            "roll": 0.04 * math.sin(0.29 * self.t + p[2]),
            "blink": blink,
        }


class IdleHands:
    """Resting hand positions that drift a little, low in the frame.

    Captured-frame coordinates, like the wire's wrists: the user's left hand is at x > 0.5.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.t = 0.0
        self.phase = rng.uniform(0, 2 * math.pi, size=4)

    def step(self, dt: float) -> dict[str, tuple[float, float]]:
        self.t += dt
        p = self.phase
        return {
            "left": (0.8 + 0.02 * math.sin(0.6 * self.t + p[0]), 0.82 + 0.02 * math.sin(0.8 * self.t + p[1])),
            "right": (0.2 + 0.02 * math.sin(0.55 * self.t + p[2]), 0.82 + 0.02 * math.sin(0.7 * self.t + p[3])),
        }
