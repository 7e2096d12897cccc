"""Messages in, character parameters out: decode, retarget, fall back to idle motion, smooth.

`Animator.update(msg, dt)` is called once per rendered frame with the newest message (or None when
nothing new arrived). Latents of a part that is tracked are decoded and retargeted; a part that is
not tracked (absent, the stream stalled, the edge lost its camera) fades into idle motion decoded
from prior samples, and fades back when tracking returns (see `renderer.smoothing.TrackingBlend`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from latentcast.open_set import confident_label, label_name
from latentcast.protocol import Handedness, LatentMessage, TrackingStatus
from renderer import retarget
from renderer.decode import BundleDecoders, PartDecoder
from renderer.idle import IdleFace, IdleHands, PriorIdle
from renderer.params import CharacterParams, FaceParams, HandParams
from renderer.smoothing import BlendConfig, ParamSmoother, TrackingBlend, safe_dt


@dataclass
class AnimatorConfig:
    stale_after_s: float = 0.5  # no message for this long = tracking lost (edge stalled or gone)
    blend: BlendConfig = field(default_factory=BlendConfig)
    seed: int = 0


@dataclass
class AnimatorStats:
    updates: int = 0
    tracked_frames: int = 0
    idle_frames: int = 0
    decoded_face: int = 0
    decoded_hands: int = 0
    nonfinite_decoded: int = 0  # decoder outputs with NaN/Inf: dropped (the part keeps pose/wrist only)


def _set_face(face: FaceParams, features: np.ndarray) -> None:
    """Decoded face features -> the face's controls (blinks, mouth, smile, brows) and all its blendshapes."""
    shapes = retarget.blendshapes_from_features(features)
    for name, value in retarget.face_controls(shapes).items():
        setattr(face, name, value)
    face.blendshapes = shapes


def _set_hand(hand: HandParams, features: np.ndarray, handedness: str) -> None:
    """Decoded hand features -> the hand's finger curls and pointing direction."""
    hand.curls = tuple(float(c) for c in retarget.finger_curls(features))
    hand.dir_x, hand.dir_y = retarget.hand_direction(features, handedness)


def _label(part: PartDecoder | None, block) -> tuple[str, float]:
    """(class name or "unknown", confidence): the edge's decision when the message has one (protocol v2:
    full open-set rule + hysteresis); else (v1) the card's confidence half; without a rule argmax and raw p."""
    if part is None or block.y.size == 0:
        return "", 0.0
    if block.decision is not None:
        return label_name(block.decision.label, part.classes), float(block.decision.confidence)
    return confident_label(block.y, part.classes, part.open_set)


class Animator:
    """Turns the newest `LatentMessage` into smoothed `CharacterParams`, never freezing."""

    def __init__(self, decoders: BundleDecoders | None, config: AnimatorConfig | None = None) -> None:
        self.decoders = decoders or BundleDecoders(None, None, b"")
        self.config = config or AnimatorConfig()
        rng = np.random.default_rng(self.config.seed)
        d = self.decoders
        self.face_prior = PriorIdle(d.face.classes, d.face.code_dim, rng) if d.face else None
        self.hand_priors = {
            side: PriorIdle(d.hand.classes, d.hand.code_dim, rng) if d.hand else None for side in ("left", "right")
        }
        self.idle_face, self.idle_hands = IdleFace(rng), IdleHands(rng)
        self.blend = TrackingBlend(self.config.blend)
        self.smoother = ParamSmoother()
        self.tracked = CharacterParams()
        self.present = np.zeros(3, dtype=bool)
        self.since_message = float("inf")
        self.stats = AnimatorStats()

    # -- tracked -----------------------------------------------------------------------------
    def _decode(self, part: PartDecoder | None, y: np.ndarray, z: np.ndarray, model_id: bytes) -> np.ndarray | None:
        """Decoded features of a valid block of this bundle's model; None otherwise or if they are not finite."""
        if part is None or not part.valid(y, z) or not self.decoders.accepts(model_id):
            return None
        features = part(y, z)
        if not np.isfinite(features).all():
            self.stats.nonfinite_decoded += 1
            return None
        return features

    def _face(self, msg: LatentMessage) -> FaceParams | None:
        block = msg.face
        if not block.present:
            return None
        face = FaceParams(present=1.0, **retarget.head_angles(block.pose))
        part = self.decoders.face
        features = self._decode(part, block.y, block.z, msg.model_id)
        if features is not None:
            _set_face(face, features)
            face.expression, face.expression_confidence = _label(part, block)
            self.stats.decoded_face += 1
        gaze = block.gaze  # measured from the irises (protocol v2): wins over the eyeLook* scores
        if gaze is not None and np.isfinite(gaze).all():
            face.gaze_yaw, face.gaze_pitch = float(gaze[0] + gaze[2]) / 2.0, float(gaze[1] + gaze[3]) / 2.0
        return face

    def _hand(self, msg: LatentMessage, side: Handedness) -> HandParams | None:
        block = next((h for h in msg.hands if h.present and h.handedness == side), None)
        if block is None:
            return None
        hand = HandParams(present=1.0, wrist_x=float(block.wrist[0]), wrist_y=float(block.wrist[1]))
        part = self.decoders.hand
        features = self._decode(part, block.y, block.z, msg.model_id)
        if features is not None:
            _set_hand(hand, features, side.name.title())
            hand.gesture, hand.gesture_confidence = _label(part, block)
            hand.gesture_open_set = block.decision is not None or part.open_set is not None
            self.stats.decoded_hands += 1
        return hand

    def _take(self, msg: LatentMessage) -> None:
        ok = msg.tracking == TrackingStatus.OK
        face = self._face(msg) if ok else None
        left = self._hand(msg, Handedness.LEFT) if ok else None
        right = self._hand(msg, Handedness.RIGHT) if ok else None
        t = self.tracked
        self.tracked = CharacterParams(
            face=face or t.face, left_hand=left or t.left_hand, right_hand=right or t.right_hand
        )
        self.present = np.array([face is not None, left is not None, right is not None])

    # -- idle --------------------------------------------------------------------------------
    def _idle(self, dt: float) -> CharacterParams:
        head = self.idle_face.step(dt)
        face = FaceParams(present=1.0, yaw=head["yaw"], pitch=head["pitch"], roll=head["roll"])
        if self.face_prior is not None:
            y, z = self.face_prior.step(dt)
            _set_face(face, self.decoders.face(y, z))
            face.expression = self.face_prior.class_name
        face.blink_left = max(face.blink_left, head["blink"])
        face.blink_right = max(face.blink_right, head["blink"])
        spots = self.idle_hands.step(dt)
        hands = {}
        for side in ("left", "right"):
            x, y_pos = spots[side]
            hand = HandParams(present=1.0, wrist_x=x, wrist_y=y_pos, curls=(0.3, 0.35, 0.35, 0.4, 0.45))
            prior = self.hand_priors[side]
            if prior is not None:
                y, z = prior.step(dt)
                _set_hand(hand, self.decoders.hand(y, z), side.title())
            hands[side] = hand
        return CharacterParams(face=face, left_hand=hands["left"], right_hand=hands["right"], idle=1.0)

    # -- per frame ---------------------------------------------------------------------------
    def update(self, msg: LatentMessage | None, dt: float) -> CharacterParams:
        """Advance by `dt` seconds with the newest message (None: nothing new); returns what to draw."""
        dt = safe_dt(dt)  # NaN/Inf/negative would reach math.sin in the idle motion: no time passed instead
        self.stats.updates += 1
        if msg is not None:
            self.since_message = 0.0
            self._take(msg)
        else:
            self.since_message += dt
            if self.since_message > self.config.stale_after_s:
                self.present[:] = False
        idle = self._idle(dt)
        mixed = self.blend.update(self.tracked.to_vector(), self.present, idle.to_vector(), dt)
        smooth = self.smoother.update(mixed, dt)
        weights = self.blend.weights
        face_src = self.tracked.face if weights[0] >= 0.5 else idle.face
        left_src = self.tracked.left_hand if weights[1] >= 0.5 else idle.left_hand
        right_src = self.tracked.right_hand if weights[2] >= 0.5 else idle.right_hand
        labels = CharacterParams(face=face_src, left_hand=left_src, right_hand=right_src, idle=self.blend.idle_fraction)
        out = labels.with_vector(smooth)
        if weights[0] < 0.5:
            out.face.expression = ""  # labels name what the user does, never the idle motion
        if weights[1] < 0.5:
            out.left_hand.gesture = ""
        if weights[2] < 0.5:
            out.right_hand.gesture = ""
        if self.present.any():
            self.stats.tracked_frames += 1
        else:
            self.stats.idle_frames += 1
        return out
