"""The last line of defence against NaN/Inf: every output stage (drawing, VMC) passes its parameters through here.

Why a guard at the outputs as well as validation at the wire (`latentcast.protocol.check_values`) and
in the smoothing state (`renderer.smoothing`): a decoder model, a retarget formula or a future input
can still produce a non-finite number, and `math.sin(inf)` raises while NaN silently poisons a VMC
receiver for good. Non-finite numbers are replaced by the parameter's neutral default, never passed on.
"""

from __future__ import annotations

import math

import numpy as np

from renderer.params import CharacterParams


def finite(value: float, default: float = 0.0) -> float:
    """`value` as a float when finite, else `default`."""
    value = float(value)
    return value if math.isfinite(value) else default


def finite_params(params: CharacterParams) -> CharacterParams:
    """`params` itself when every number is finite, else a copy with each non-finite number set to its default."""
    vector = params.to_vector()
    shapes = params.face.blendshapes
    scalars = [params.idle, params.face.expression_confidence]
    scalars += [params.left_hand.gesture_confidence, params.right_hand.gesture_confidence, *shapes.values()]
    if np.isfinite(vector).all() and all(math.isfinite(v) for v in scalars):
        return params
    defaults = CharacterParams().to_vector()
    out = params.with_vector(np.where(np.isfinite(vector), vector, defaults))
    out.face.blendshapes = {name: finite(v) for name, v in shapes.items()}
    out.idle = finite(params.idle, 1.0)
    out.face.expression_confidence = finite(params.face.expression_confidence)
    for hand in (out.left_hand, out.right_hand):
        hand.gesture_confidence = finite(hand.gesture_confidence)
    return out
