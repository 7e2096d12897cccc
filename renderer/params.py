"""Character parameters: the one small vector every renderer stage agrees on.

Everything after retargeting (idle blending, smoothing, drawing, VMC) works on this dataclass, so a
new output (another character, another protocol) only has to read it. Conventions are the user's
own (anatomical), so no output has to guess about mirroring: "left" is the user's left; angles are
radians with yaw + = turning to the user's left, pitch + = looking up, roll + = tilting towards
the user's right shoulder; weights and curls are 0..1; brows are -1 (frown) .. +1 (raised); wrist
positions are normalised coordinates of the camera frame *as captured* (x right, y down, 0..1).
The drawing decides whether to show a mirror image (the default, what users expect on screen).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "pinky")


@dataclass
class HandParams:
    """One hand: how present it is, where the wrist is, how curled each finger is, its gesture."""

    present: float = 0.0  # 1 tracked, 0 absent (fades in between)
    wrist_x: float = 0.5
    wrist_y: float = 0.75
    curls: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)  # thumb..pinky, 0 straight, 1 fully curled
    # Where the fingers point (wrist -> middle knuckle) in the captured frame, a unit vector
    # (x right, y down); a vector rather than an angle so smoothing never wraps around.
    dir_x: float = 0.0
    dir_y: float = -1.0
    gesture: str = ""  # a class name, "unknown" (the model card's open-set rule) or "" (none)
    gesture_confidence: float = 0.0  # calibrated when gesture_open_set, else the raw class probability
    gesture_open_set: bool = False  # the model card's open-set rule decided the label (drawn as it says)

    def to_vector(self) -> np.ndarray:
        return np.array(
            [self.present, self.wrist_x, self.wrist_y, *self.curls, self.dir_x, self.dir_y], dtype=np.float64
        )

    @classmethod
    def from_vector(
        cls, v: np.ndarray, gesture: str = "", gesture_confidence: float = 0.0, gesture_open_set: bool = False
    ) -> HandParams:
        return cls(
            present=float(v[0]),
            wrist_x=float(v[1]),
            wrist_y=float(v[2]),
            curls=tuple(float(c) for c in v[3:8]),
            dir_x=float(v[8]),
            dir_y=float(v[9]),
            gesture=gesture,
            gesture_confidence=gesture_confidence,
            gesture_open_set=gesture_open_set,
        )

    def with_vector(self, v: np.ndarray) -> HandParams:
        """A copy with the numeric part replaced by `v`, keeping the gesture label."""
        return HandParams.from_vector(v, self.gesture, self.gesture_confidence, self.gesture_open_set)

    def mirrored(self) -> HandParams:
        """This hand as a mirror shows it (x flipped), to be used as the other side's hand."""
        return replace(self, wrist_x=1.0 - self.wrist_x, dir_x=-self.dir_x)


HAND_SIZE = 10


@dataclass
class FaceParams:
    """The face: head rotation and the few expression controls a character needs."""

    present: float = 0.0
    yaw: float = 0.0  # + turns to the user's left
    pitch: float = 0.0  # + looks up
    roll: float = 0.0  # + tilts towards the user's right shoulder
    blink_left: float = 0.0  # the user's left eye, 0 open, 1 closed
    blink_right: float = 0.0
    mouth_open: float = 0.0
    smile: float = 0.0
    brow_left: float = 0.0
    brow_right: float = 0.0
    gaze_yaw: float = 0.0  # both eyes, relative to the head: + looks to the user's left (radians)
    gaze_pitch: float = 0.0  # + looks up
    expression: str = ""
    expression_confidence: float = 0.0
    # Every decoded ARKit-style blendshape (MediaPipe names) when an expression decoder ran, for
    # PerfectSync output; not smoothed or drawn (the ten controls above are).
    blendshapes: dict[str, float] = field(default_factory=dict)

    def to_vector(self) -> np.ndarray:
        return np.array([getattr(self, f.name) for f in fields(self)[:FACE_SIZE]], dtype=np.float64)

    def mirrored(self) -> FaceParams:
        """The face a mirror shows: turns and tilts reversed, left and right controls swapped."""
        return replace(
            self,
            yaw=-self.yaw,
            roll=-self.roll,
            blink_left=self.blink_right,
            blink_right=self.blink_left,
            brow_left=self.brow_right,
            brow_right=self.brow_left,
            gaze_yaw=-self.gaze_yaw,
            blendshapes={swap_sides(name): v for name, v in self.blendshapes.items()},
        )

    @classmethod
    def from_vector(
        cls, v: np.ndarray, expression: str = "", expression_confidence: float = 0.0, blendshapes=None
    ) -> FaceParams:
        names = [f.name for f in fields(cls)[:FACE_SIZE]]
        return cls(
            **{n: float(x) for n, x in zip(names, v, strict=True)},
            expression=expression,
            expression_confidence=expression_confidence,
            blendshapes=dict(blendshapes or {}),
        )


FACE_SIZE = 12


@dataclass
class CharacterParams:
    """The whole character for one rendered frame."""

    face: FaceParams = field(default_factory=FaceParams)
    # The user's left/right hand as the hand tracker labels it; VMC sends it as the avatar's same hand.
    left_hand: HandParams = field(default_factory=lambda: HandParams(wrist_x=0.75))
    right_hand: HandParams = field(default_factory=lambda: HandParams(wrist_x=0.25))
    idle: float = 0.0  # 0 fully tracked, 1 fully idle motion (for display and VMC tracking status)

    def to_vector(self) -> np.ndarray:
        """Numeric part as one float vector (face, left hand, right hand), for blending and smoothing."""
        return np.concatenate([self.face.to_vector(), self.left_hand.to_vector(), self.right_hand.to_vector()])

    def with_vector(self, v: np.ndarray) -> CharacterParams:
        """A copy with the numeric part replaced by `v`, keeping labels (expression, gestures)."""
        f = self.face
        face = FaceParams.from_vector(v[:FACE_SIZE], f.expression, f.expression_confidence, f.blendshapes)
        lo = FACE_SIZE
        left = self.left_hand.with_vector(v[lo : lo + HAND_SIZE])
        lo += HAND_SIZE
        right = self.right_hand.with_vector(v[lo : lo + HAND_SIZE])
        return CharacterParams(face=face, left_hand=left, right_hand=right, idle=self.idle)

    def mirrored(self) -> CharacterParams:
        """The mirror image: the user's left hand drives the character's right, turns are reversed."""
        return CharacterParams(
            face=self.face.mirrored(),
            left_hand=self.right_hand.mirrored(),
            right_hand=self.left_hand.mirrored(),
            idle=self.idle,
        )


def swap_sides(name: str) -> str:
    """A blendshape name with Left and Right exchanged (eyeBlinkLeft <-> eyeBlinkRight)."""
    return name.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right")


VECTOR_SIZE = FACE_SIZE + 2 * HAND_SIZE
