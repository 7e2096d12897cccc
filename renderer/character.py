"""The built-in 2D character, drawn with OpenCV in a few milliseconds per frame.

A round-headed figure with floating gloved hands (no arms to solve, so any wrist position looks
right). By default it is the user's mirror image (what people expect on their own screen):
their left eye and left hand appear on the screen's left. Head rotation is faked in 2D: yaw and
pitch slide the facial features across the head and the head outline a little the other way,
roll rotates the whole face. Everything is anti-aliased and drawn in face coordinates (units of
the head radius), then placed by one rotation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from latentcast.open_set import UNKNOWN_NAME
from renderer.finite import finite_params
from renderer.params import CharacterParams, FaceParams, HandParams

BGR = tuple[int, int, int]


@dataclass
class Palette:
    background_top: BGR = (250, 232, 214)
    background_bottom: BGR = (236, 206, 222)
    skin: BGR = (182, 214, 250)
    skin_shadow: BGR = (150, 186, 232)
    hair: BGR = (70, 52, 60)
    shirt: BGR = (176, 120, 76)
    eye_white: BGR = (255, 255, 255)
    iris: BGR = (120, 80, 40)
    line: BGR = (50, 40, 45)
    mouth: BGR = (70, 60, 160)
    tongue: BGR = (130, 130, 235)
    blush: BGR = (170, 170, 250)
    glove: BGR = (250, 250, 250)
    text: BGR = (60, 50, 55)
    ok: BGR = (90, 180, 90)
    idle: BGR = (60, 170, 240)


def _gradient(height: int, width: int, top: BGR, bottom: BGR) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
    return np.repeat(column, width, axis=1).astype(np.uint8)


class CharacterRenderer:
    """Draws `CharacterParams` onto a BGR canvas of a fixed size."""

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        palette: Palette | None = None,
        mirror: bool = True,
        # Without an open-set rule in the model card, a gesture name is shown only when the classifier's
        # raw probability is at least this; with one, the rule decides and "unknown" is not drawn.
        min_label_confidence: float = 0.4,
    ):
        self.width, self.height = width, height
        self.min_label_confidence = min_label_confidence
        self.mirror = mirror
        self.flip = -1.0 if mirror else 1.0  # screen-x sign of the user's left
        self.palette = palette or Palette()
        self.background = _gradient(height, width, self.palette.background_top, self.palette.background_bottom)
        self.radius = 0.27 * height
        self.center = np.array([0.5 * width, 0.46 * height])

    # -- geometry helpers ---------------------------------------------------------------------
    @staticmethod
    def _rotation(angle: float) -> np.ndarray:
        """2x2 matrix turning image points (y down) clockwise on screen by `angle` radians."""
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[c, -s], [s, c]])

    @staticmethod
    def _ipts(pts: np.ndarray) -> np.ndarray:
        return np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)  # 4 fractional bits for smooth lines

    def _poly(self, img, pts, color, filled=True, thickness=2) -> None:
        import cv2

        if filled:
            cv2.fillPoly(img, [self._ipts(pts)], color, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(img, [self._ipts(pts)], False, color, thickness, cv2.LINE_AA, shift=4)

    @staticmethod
    def _ellipse_pts(cx: float, cy: float, rx: float, ry: float, n: int = 40, start=0.0, end=2 * math.pi):
        a = np.linspace(start, end, n)
        return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)

    # -- drawing ------------------------------------------------------------------------------
    def render(self, params: CharacterParams, status: str = "", out: np.ndarray | None = None) -> np.ndarray:
        """Draw one frame; returns a new [H, W, 3] uint8 BGR image (or fills `out`)."""
        img = out if out is not None else np.empty_like(self.background)
        img[...] = self.background
        params = finite_params(params)  # math.sin(inf) raises; NaN would draw garbage
        self._draw_body(img, params.face)
        self._draw_head(img, params.face)
        for hand, side in ((params.left_hand, "left"), (params.right_hand, "right")):
            self._draw_hand(img, hand, side)
        self._draw_status(img, params, status)
        return img

    def _draw_body(self, img: np.ndarray, face: FaceParams) -> None:
        p, r = self.palette, self.radius
        cx, cy = self.center
        shift = 0.15 * r * math.sin(face.yaw)
        body = self._ellipse_pts(cx + shift, cy + 2.1 * r, 1.25 * r, 1.05 * r, 60)
        self._poly(img, body, p.shirt)
        neck = np.array(
            [
                [cx - 0.25 * r, cy + 0.6 * r],
                [cx + 0.25 * r, cy + 0.6 * r],
                [cx + 0.28 * r + shift, cy + 1.15 * r],
                [cx - 0.28 * r + shift, cy + 1.15 * r],
            ]
        )
        self._poly(img, neck, p.skin_shadow)

    def _draw_head(self, img: np.ndarray, face: FaceParams) -> None:
        p, r = self.palette, self.radius
        # On screen: turning to the user's left moves the features towards the screen side of their left.
        yaw, pitch = self.flip * math.sin(face.yaw), math.sin(face.pitch)
        # The outline moves a little against the features: that parallax reads as rotation.
        origin = self.center + np.array([-0.08 * r * yaw, 0.06 * r * pitch])
        fx, fy = 0.38 * yaw, -0.3 * pitch  # feature offset in head radii
        roll = -self.flip * face.roll  # towards the right shoulder: clockwise on a mirror image
        rot = self._rotation(roll)

        def place(pts):
            """Face coordinates (head radii, y down) -> pixel coordinates, rotated by roll about origin."""
            return origin + (np.asarray(pts, np.float64) * r) @ rot.T

        self._poly(img, place(self._ellipse_pts(0, -0.12, 1.08, 1.02)), p.hair)  # hair behind the head
        for side in (-1, 1):  # ears, hidden on the side the head turns away from
            ear_x = side * (0.98 - 0.25 * max(0.0, side * yaw))
            self._poly(img, place(self._ellipse_pts(ear_x - 0.2 * fx, 0.05, 0.16, 0.22)), p.skin_shadow)
        self._poly(img, place(self._ellipse_pts(0, 0, 0.96, 1.0, 72)), p.skin)
        bangs = np.concatenate(
            [
                self._ellipse_pts(0, -0.12, 1.0, 0.95, 30, math.pi, 2 * math.pi),
                [
                    [0.7 + 0.3 * fx, -0.38],
                    [0.3 + fx, -0.55],
                    [0.0 + fx, -0.42],
                    [-0.4 + fx, -0.6],
                    [-0.75 + 0.3 * fx, -0.35],
                ],
            ]
        )
        self._poly(img, place(bangs), p.hair)
        for side in (-1, 1):  # blush
            self._poly(img, place(self._ellipse_pts(side * 0.55 + fx, 0.3 + fy, 0.16, 0.09)), p.blush)
        left = int(self.flip)  # screen side of the user's left eye
        for side, blink, brow in ((left, face.blink_left, face.brow_left), (-left, face.blink_right, face.brow_right)):
            self._draw_eye(img, place, side * 0.36 + fx, -0.02 + fy, blink, side, fx)
            self._draw_brow(img, place, side * 0.36 + fx, -0.3 + fy, brow, side)
        self._draw_mouth(img, place, fx, 0.45 + fy, face.mouth_open, face.smile)

    def _draw_eye(self, img, place, x: float, y: float, blink: float, side: int, fx: float) -> None:
        p = self.palette
        openness = float(np.clip(1.0 - blink, 0.0, 1.0))
        if openness < 0.15:  # closed: a soft downward arc
            self._poly(
                img,
                place(self._ellipse_pts(x, y - 0.02, 0.14, 0.06, 16, 0.1, math.pi - 0.1)),
                p.line,
                filled=False,
                thickness=3,
            )
            return
        ry = 0.17 * openness
        self._poly(img, place(self._ellipse_pts(x, y, 0.14, ry)), p.eye_white)
        px = x + 0.05 * fx / 0.38
        iris = self._ellipse_pts(px, y + 0.01, 0.085, min(0.1, ry))
        self._poly(img, place(iris), p.iris)
        self._poly(img, place(self._ellipse_pts(px, y + 0.01, 0.045, min(0.055, ry))), p.line)
        self._poly(img, place(self._ellipse_pts(px + 0.03, y - 0.03, 0.022, min(0.022, ry))), p.eye_white)
        self._poly(
            img, place(self._ellipse_pts(x, y, 0.14, ry, 40, math.pi, 2 * math.pi)), p.line, filled=False, thickness=3
        )

    def _draw_brow(self, img, place, x: float, y: float, brow: float, side: int) -> None:
        lift = -0.1 * float(np.clip(brow, -1.0, 1.0))
        tilt = 0.06 * min(0.0, brow)  # frowning pulls the inner ends down
        inner, outer = x - side * 0.13, x + side * 0.13
        pts = np.array([[inner, y + lift - tilt], [x, y + lift - 0.04], [outer, y + lift + 0.01]])
        self._poly(img, place(pts), self.palette.hair, filled=False, thickness=max(2, int(self.radius * 0.06)))

    def _draw_mouth(self, img, place, x: float, y: float, mouth_open: float, smile: float) -> None:
        p = self.palette
        mouth_open, smile = float(np.clip(mouth_open, 0, 1)), float(np.clip(smile, 0, 1))
        half = 0.2 + 0.08 * smile
        u = np.linspace(-1.0, 1.0, 21)
        upper = np.stack([x + half * u, y - 0.1 * smile * u**2 + 0.03 * smile], axis=1)
        if mouth_open < 0.05:
            self._poly(img, place(upper), p.line, filled=False, thickness=3)
            return
        depth = 0.05 + 0.35 * mouth_open
        lower = np.stack([x + half * u[::-1], upper[::-1, 1] + depth * (1 - u[::-1] ** 2)], axis=1)
        shape = np.concatenate([upper, lower])
        self._poly(img, place(shape), p.mouth)
        tongue = self._ellipse_pts(
            x, y + 0.75 * depth + 0.03 * smile, 0.6 * half, 0.3 * depth, 24, math.pi, 2 * math.pi
        )
        self._poly(img, place(tongue), p.tongue)
        self._poly(img, place(np.concatenate([shape, shape[:1]])), p.line, filled=False, thickness=2)

    def _shows_gesture(self, hand: HandParams) -> bool:
        """Whether the hand's gesture name is drawn: never "unknown"; the card's rule, or the raw threshold."""
        if not hand.gesture or hand.gesture == UNKNOWN_NAME:
            return False
        return hand.gesture_open_set or hand.gesture_confidence >= self.min_label_confidence

    def _draw_hand(self, img: np.ndarray, hand: HandParams, side: str) -> None:
        """A glove drawn in its own frame (wrist at the origin, fingers up), then turned and placed."""
        import cv2

        if hand.present < 0.05:
            return
        p = self.palette
        size = 0.095 * self.height * (0.6 + 0.4 * float(np.clip(hand.present, 0, 1)))
        wrist_x = 1.0 - hand.wrist_x if self.mirror else hand.wrist_x
        wrist = np.array([np.clip(wrist_x, 0.05, 0.95) * self.width, np.clip(hand.wrist_y, 0.05, 0.95) * self.height])
        dx, dy = (-hand.dir_x if self.mirror else hand.dir_x), hand.dir_y
        theta = math.atan2(dx, -dy) if abs(dx) + abs(dy) > 1e-6 else 0.0  # 0 = fingers up, + = clockwise
        rot = self._rotation(theta)

        def place(pts) -> np.ndarray:
            return wrist + np.asarray(pts, np.float64) @ rot.T

        # Palm towards the viewer, the thumb points to the body's middle, mirror image or not.
        on_screen_right = (side == "right") == self.mirror
        thumb_dir = -1.0 if on_screen_right else 1.0
        palm_y = -0.6 * size
        spread = (75, 25, 5, -14, -32)
        lengths = (0.75, 0.95, 1.05, 0.95, 0.75)
        chains = []
        for i, (deg, length, curl) in enumerate(zip(spread, lengths, hand.curls, strict=True)):
            angle = math.radians(-90 + deg * thumb_dir)
            curl = float(np.clip(curl, 0.0, 1.0))
            if i == 0:  # the thumb folds across the palm rather than shortening
                pts = [np.array([thumb_dir * 0.5 * size, palm_y + 0.3 * size])]
                bend, shrink = -thumb_dir * 0.75 * curl, 0.3 * curl
            else:
                pts = [np.array([0.62 * size * math.cos(angle), palm_y + 0.62 * size * math.sin(angle)])]
                bend, shrink = 0.0, 0.75 * curl
            direction = angle
            for seg in (0.45, 0.35, 0.3):
                direction += bend
                step = seg * length * size * (1.0 - shrink)
                pts.append(pts[-1] + step * np.array([math.cos(direction), math.sin(direction)]))
            chains.append(place(np.array(pts)))
        width = int(0.26 * size)

        def finger(chain: np.ndarray) -> None:
            cv2.polylines(img, [self._ipts(chain)], False, p.line, width + 4, cv2.LINE_AA, shift=4)
            cv2.polylines(img, [self._ipts(chain)], False, p.glove, width, cv2.LINE_AA, shift=4)

        for chain in chains[1:]:
            finger(chain)
        palm = place(self._ellipse_pts(0.0, palm_y, 0.72 * size, 0.68 * size))
        self._poly(img, palm, p.glove)
        self._poly(img, np.concatenate([palm, palm[:1]]), p.line, filled=False, thickness=2)
        finger(chains[0])  # in front of the palm, where a folded thumb lies
        cuff = place([[-0.55 * size, 0.0], [0.55 * size, 0.0], [0.6 * size, 0.35 * size], [-0.6 * size, 0.35 * size]])
        self._poly(img, cuff, p.shirt)
        if self._shows_gesture(hand):
            label = hand.gesture.replace("_", " ")
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            centre = place([0.0, 0.55 * size + 0.5 * th + 8])  # beyond the cuff, away from the fingers
            tx = int(np.clip(centre[0] - tw / 2, 6, self.width - tw - 6))
            ty = int(np.clip(centre[1] + th / 2, th + 6, self.height - 6))
            cv2.rectangle(img, (tx - 6, ty - th - 6), (tx + tw + 6, ty + 6), p.glove, -1, cv2.LINE_AA)
            cv2.putText(img, label, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.5, p.text, 1, cv2.LINE_AA)

    def _draw_status(self, img: np.ndarray, params: CharacterParams, status: str) -> None:
        import cv2

        p = self.palette
        tracked = params.idle < 0.5
        cv2.circle(img, (16, 18), 6, p.ok if tracked else p.idle, -1, cv2.LINE_AA)
        text = "tracking" if tracked else "idle motion"
        if params.face.expression and params.face.expression != UNKNOWN_NAME:
            text += f"  face: {params.face.expression}"
        cv2.putText(img, text, (28, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.5, p.text, 1, cv2.LINE_AA)
        if status:
            cv2.putText(img, status, (10, self.height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, p.text, 1, cv2.LINE_AA)
