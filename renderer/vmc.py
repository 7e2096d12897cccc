"""VMC protocol output (OSC over UDP) so VSeeFace, Warudo, VNyan, Unity (EVMC4U) or Blender can be driven.

VMC (https://protocol.vmc.info) is OSC with a fixed vocabulary. This renderer acts as a
*Performer*-like sender to a *Marionette* (default UDP port 39539) and sends one OSC bundle per
rendered frame, so the receiver applies a whole frame atomically:

- ``/VMC/Ext/OK (int loaded, int calibration state, int calibration mode, int tracking status)``
- ``/VMC/Ext/T (float seconds)``
- ``/VMC/Ext/Root/Pos (string "root", px, py, pz, qx, qy, qz, qw)``
- ``/VMC/Ext/Bone/Pos (string bone, px, py, pz, qx, qy, qz, qw)`` for Neck, Head and the 30 finger
  bones (Unity HumanBodyBones names), local rotations for a VRM-normalised rig (rest pose = identity)
- ``/VMC/Ext/Blend/Val (string name, float value)`` for every blendshape, then ``/VMC/Ext/Blend/Apply``.
  Names are case sensitive: VRM 0.x presets (Blink_L, Blink_R, A, Joy, ...) and the PerfectSync
  names (Unity's ARKit BlendShapeLocation spelling: EyeBlinkLeft, JawOpen, MouthSmileLeft, ...;
  all 51 when an expression decoder ran).

Coordinates are Unity's: left-handed, +Y up, the avatar faces +Z. See docs/RENDERER.md for the
full mapping table and per-application setup.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from latentcast.errors import UserError
from renderer.finite import finite, finite_params
from renderer.params import FINGERS, CharacterParams, HandParams

log = logging.getLogger(__name__)

DEFAULT_PORT = 39539
CALIBRATED = 3  # VMC calibration state: 0 uncalibrated, 1 waiting, 2 calibrating, 3 calibrated
NORMAL_MODE = 0  # VMC calibration mode: 0 normal, 1 MR hand, 2 MR floor

UNITY_FINGERS = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}
SEGMENTS = ("Proximal", "Intermediate", "Distal")
# Fully curled joint angles (degrees) per segment; the thumb folds less and across the palm.
CURL_DEGREES = {"finger": (70.0, 100.0, 70.0), "thumb": (25.0, 40.0, 50.0)}
NECK_SHARE = 0.3  # share of the head rotation given to the neck, so the turn looks natural


@dataclass
class VMCConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    vrm_presets: bool = True  # Blink_L, Blink_R, A, Joy, ...
    perfect_sync: bool = True  # ARKit-style names for PerfectSync avatars

    @classmethod
    def parse(cls, text: str) -> VMCConfig:
        """From `HOST:PORT`, `HOST` or `:PORT`."""
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
        try:
            port_number = int(port) if port else DEFAULT_PORT
        except ValueError:
            raise UserError(f"--vmc {text!r} has no valid port: write HOST:PORT, e.g. 127.0.0.1:39539") from None
        if not 0 < port_number < 65536:
            raise UserError(f"--vmc port {port_number} is out of range: use 1..65535 (VMC default 39539)")
        return cls(host=host or "127.0.0.1", port=port_number)


def quaternion_from_euler(x_deg: float, y_deg: float, z_deg: float) -> tuple[float, float, float, float]:
    """Unity's Quaternion.Euler(x, y, z) (rotation order Z, then X, then Y) as (qx, qy, qz, qw)."""
    hx, hy, hz = (math.radians(a) / 2.0 for a in (x_deg, y_deg, z_deg))
    cx, sx, cy, sy, cz, sz = math.cos(hx), math.sin(hx), math.cos(hy), math.sin(hy), math.cos(hz), math.sin(hz)
    # q = qy * qx * qz
    qw = cy * cx * cz + sy * sx * sz
    qx = cy * sx * cz + sy * cx * sz
    qy = sy * cx * cz - cy * sx * sz
    qz = cy * cx * sz - sy * sx * cz
    return qx, qy, qz, qw


def head_euler_unity(yaw: float, pitch: float, roll: float, share: float = 1.0) -> tuple[float, float, float]:
    """Character head angles (radians, the user's conventions) -> Unity Euler degrees (x, y, z).

    The avatar (facing +Z, its right at +X) turns to its left for yaw + : -Y in Unity; looks up
    for pitch + : -X; tilts towards its right shoulder for roll + : -Z.
    """
    return (-math.degrees(pitch) * share, -math.degrees(yaw) * share, -math.degrees(roll) * share)


def blendshapes(params: CharacterParams, config: VMCConfig) -> dict[str, float]:
    """Blendshape name -> 0..1 value for this frame."""
    f = params.face
    brow_up_l, brow_up_r = max(f.brow_left, 0.0), max(f.brow_right, 0.0)
    brow_down_l, brow_down_r = max(-f.brow_left, 0.0), max(-f.brow_right, 0.0)
    values: dict[str, float] = {}
    if config.vrm_presets:
        values |= {
            "Blink_L": f.blink_left,
            "Blink_R": f.blink_right,
            "A": f.mouth_open,
            "Joy": f.smile,
            "Angry": 0.5 * (brow_down_l + brow_down_r) * (1.0 - f.smile),
            "Neutral": 0.0,
        }
    if config.perfect_sync:
        # Every decoded ARKit-style score first (MediaPipe's camelCase -> Unity's PascalCase), then the
        # smoothed, idle-blended controls on top for the shapes the character also uses.
        values |= {name[0].upper() + name[1:]: score for name, score in f.blendshapes.items()}
        values |= {
            "EyeBlinkLeft": f.blink_left,
            "EyeBlinkRight": f.blink_right,
            "JawOpen": f.mouth_open,
            "MouthSmileLeft": f.smile,
            "MouthSmileRight": f.smile,
            "BrowInnerUp": 0.5 * (brow_up_l + brow_up_r),
            "BrowOuterUpLeft": brow_up_l,
            "BrowOuterUpRight": brow_up_r,
            "BrowDownLeft": brow_down_l,
            "BrowDownRight": brow_down_r,
        }
    return {name: float(np.clip(value, 0.0, 1.0)) for name, value in values.items()}


def finger_bones(side: str, hand: HandParams) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(bone name, local rotation) for the 15 finger bones of one hand ('Left' or 'Right').

    In the VRM-normalised T-pose the right hand points +X and the left -X, palms down; curling
    bends a finger towards -Y: a rotation about Z, negative on the right hand, positive on the left.
    The thumb curls about Y (across the palm).
    """
    sign = 1.0 if side == "Left" else -1.0
    bones = []
    for name, curl in zip(FINGERS, hand.curls, strict=True):
        degrees = CURL_DEGREES["thumb" if name == "thumb" else "finger"]
        for segment, full in zip(SEGMENTS, degrees, strict=True):
            angle = sign * full * float(np.clip(curl, 0.0, 1.0))
            euler = (0.0, -angle, 0.0) if name == "thumb" else (0.0, 0.0, angle)
            bones.append((f"{side}{UNITY_FINGERS[name]}{segment}", quaternion_from_euler(*euler)))
    return bones


class VMCSender:
    """Builds and sends one VMC OSC bundle per frame over UDP."""

    def __init__(self, config: VMCConfig | None = None) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.config = config or VMCConfig()
        self.client = SimpleUDPClient(self.config.host, self.config.port)
        self.sent = 0
        self.errors = 0

    def build(self, params: CharacterParams, t: float):
        """The OSC bundle for one frame (python-osc OscBundle)."""
        from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
        from pythonosc.osc_message_builder import OscMessageBuilder

        def message(address: str, *args) -> object:
            builder = OscMessageBuilder(address)
            for arg in args:
                builder.add_arg(arg, "s" if isinstance(arg, str) else "i" if isinstance(arg, int) else "f")
            return builder.build()

        params, t = finite_params(params), finite(t)  # never send NaN/Inf: receivers keep it for good
        f = params.face
        tracking = int(params.idle < 0.5)
        bundle = OscBundleBuilder(IMMEDIATELY)
        bundle.add_content(message("/VMC/Ext/OK", 1, CALIBRATED, NORMAL_MODE, tracking))
        bundle.add_content(message("/VMC/Ext/T", float(t)))
        bundle.add_content(message("/VMC/Ext/Root/Pos", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        neck = quaternion_from_euler(*head_euler_unity(f.yaw, f.pitch, f.roll, NECK_SHARE))
        head = quaternion_from_euler(*head_euler_unity(f.yaw, f.pitch, f.roll, 1.0 - NECK_SHARE))
        rotations = [("Neck", neck), ("Head", head)]
        rotations += finger_bones("Left", params.left_hand) + finger_bones("Right", params.right_hand)
        for bone, q in rotations:
            bundle.add_content(message("/VMC/Ext/Bone/Pos", bone, 0.0, 0.0, 0.0, *(float(v) for v in q)))
        for name, value in blendshapes(params, self.config).items():
            bundle.add_content(message("/VMC/Ext/Blend/Val", name, value))
        bundle.add_content(message("/VMC/Ext/Blend/Apply"))
        return bundle.build()

    def send(self, params: CharacterParams, t: float) -> bool:
        """Send one frame; a full socket buffer or an unreachable host is counted, never raised."""
        try:
            self.client.send(self.build(params, t))
        except OSError as exc:
            self.errors += 1
            if self.errors % 1000 == 1:
                log.warning(
                    "VMC send to %s:%d failed (%d so far): %s", self.config.host, self.config.port, self.errors, exc
                )
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        self.client.close()
