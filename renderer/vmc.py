"""VMC output (OSC over UDP) that VSeeFace, Warudo, VNyan, VMagicMirror, EVMC4U or Blender accept as they are.

VMC (https://protocol.vmc.info) is OSC with a fixed vocabulary. This renderer acts as a
*Performer* sending to a *Marionette* (default UDP port 39539). One frame is:

- ``/VMC/Ext/OK (int loaded, int calibration state, int calibration mode, int tracking status)``
- ``/VMC/Ext/T (float seconds)``
- ``/VMC/Ext/Root/Pos (string "root", p.xyz, q.xyzw)`` only when asked (`root=True`)
- ``/VMC/Ext/Bone/Pos (string bone, p.xyz, q.xyzw)`` for every humanoid bone the avatar has (all 55
  of the default skeleton): Unity HumanBodyBones names, the bone's own local rest position (receivers
  with bone-position sync write it as is) and its local rotation, measured from the avatar's rest
  rotation (`renderer.avatar`, `renderer.pose`): head and neck, eye gaze, arms by two-bone IK from the
  wrists, fingers
- ``/VMC/Ext/Blend/Val (string name, float value)`` for the chosen blendshape set, then one
  ``/VMC/Ext/Blend/Apply``.

A frame is split into several OSC bundles of at most 1472 bytes each (one Ethernet frame of UDP
payload: a lost IP fragment would drop a whole larger datagram), in the order above, Apply last.
Every float is finite: parameters pass `renderer.finite` and the encoder replaces anything else.
Coordinates are Unity's: left-handed, +Y up, the avatar facing +Z (see docs/RENDERER.md).
"""

from __future__ import annotations

import functools
import logging
import math
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from renderer import quat
from renderer.avatar import Skeleton, default_skeleton, load_avatar
from renderer.finite import finite, finite_params
from renderer.params import CharacterParams
from renderer.pose import PoseConfig, local_rotations, normalized_pose

log = logging.getLogger(__name__)

DEFAULT_PORT = 39539
MAX_PACKET = 1472  # 1500-byte Ethernet MTU - 20 (IPv4) - 8 (UDP)
CALIBRATED = 3  # VMC calibration state: 0 uncalibrated, 1 waiting, 2 calibrating, 3 calibrated
NORMAL_MODE = 0  # VMC calibration mode: 0 normal, 1 MR hand, 2 MR floor
BLENDSHAPE_SETS = ("auto", "presets", "perfect-sync", "both")

# VRM 0.x preset names as VMC receivers expect them, with the VRM 1.0 expression that means the same.
PRESET_VRM1 = {"Blink_L": "blinkLeft", "Blink_R": "blinkRight", "A": "aa", "I": "ih", "U": "ou", "E": "ee",
               "O": "oh", "Joy": "happy", "Angry": "angry", "Surprised": "surprised", "Neutral": "neutral"}  # fmt: skip


@dataclass
class VMCConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    avatar: Path | None = None  # the receiver's .vrm: its rest pose and expressions (None: default skeleton)
    mirror: bool = False  # the avatar moves like a mirror image of the user
    root: bool = False  # also send /VMC/Ext/Root/Pos (identity)
    blendshapes: str = "auto"  # presets | perfect-sync | both | auto (by what the avatar has)
    pose: PoseConfig = field(default_factory=PoseConfig)

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


# ----------------------------------------------------------------------------- OSC encoding


def _pad(raw: bytes) -> bytes:
    return raw + b"\x00" * (4 - len(raw) % 4)


@functools.lru_cache(maxsize=512)
def _osc_string(text: str) -> bytes:
    return _pad(text.encode("utf-8"))


def osc_message(address: str, *args: str | int | float) -> bytes:
    """One OSC message; str -> 's', int -> 'i', float -> 'f' (a non-finite float is sent as 0.0)."""
    tags, payload = ",", []
    for arg in args:
        if isinstance(arg, str):
            tags += "s"
            payload.append(_osc_string(arg))
        elif isinstance(arg, (int, np.integer)) and not isinstance(arg, bool):
            tags += "i"
            payload.append(struct.pack(">i", int(arg)))
        else:
            value = float(arg)
            tags += "f"
            payload.append(struct.pack(">f", value if math.isfinite(value) else 0.0))
    return _osc_string(address) + _osc_string(tags) + b"".join(payload)


BUNDLE_HEADER = b"#bundle\x00" + struct.pack(">Q", 1)  # time tag 1 = immediately


def pack_bundles(messages: list[bytes], limit: int = MAX_PACKET) -> list[bytes]:
    """Messages, in order, packed greedily into OSC bundles of at most `limit` bytes."""
    bundles, current = [], BUNDLE_HEADER
    for m in messages:
        element = struct.pack(">i", len(m)) + m
        if len(BUNDLE_HEADER) + len(element) > limit:
            raise ValueError(f"one OSC message of {len(m)} bytes cannot fit a {limit}-byte packet")
        if len(current) + len(element) > limit:
            bundles.append(current)
            current = BUNDLE_HEADER
        current += element
    if len(current) > len(BUNDLE_HEADER):
        bundles.append(current)
    return bundles


# ----------------------------------------------------------------------------- blendshapes


def choose_blendshape_set(requested: str, skeleton: Skeleton | None) -> str:
    """presets / perfect-sync / both; `auto` follows the avatar (PerfectSync when it has the ARKit names)."""
    if requested not in BLENDSHAPE_SETS:
        raise UserError(f"--vmc-blendshapes {requested!r}: use one of {', '.join(BLENDSHAPE_SETS)}")
    if requested != "auto":
        return requested
    return "perfect-sync" if skeleton is not None and skeleton.has_perfect_sync() else "presets"


def _score(shapes: dict[str, float], *names: str) -> float:
    return sum(shapes.get(n, 0.0) for n in names) / len(names)


def preset_values(params: CharacterParams) -> dict[str, float]:
    """VRM preset name -> value; visemes and Surprised only when decoded blendshapes exist."""
    f, s = params.face, params.face.blendshapes
    brow_down = 0.5 * (max(-f.brow_left, 0.0) + max(-f.brow_right, 0.0))
    values = {"Blink_L": f.blink_left, "Blink_R": f.blink_right, "A": f.mouth_open, "Joy": f.smile,
              "Angry": brow_down * (1.0 - f.smile), "Neutral": 0.0}  # fmt: skip
    if s:
        rounded = 1.6 * _score(s, "mouthFunnel")
        values |= {
            "O": rounded * f.mouth_open * 2.0,
            "U": 1.6 * _score(s, "mouthPucker") * (1.0 - f.mouth_open),
            "E": 1.5 * _score(s, "mouthStretchLeft", "mouthStretchRight"),
            "I": 1.2 * _score(s, "mouthRollLower", "mouthShrugUpper"),
            "Surprised": 1.4 * _score(s, "eyeWideLeft", "eyeWideRight", "browInnerUp") * (1.0 - f.smile),
        }
    return values


def perfect_sync_values(params: CharacterParams) -> dict[str, float]:
    """Unity ARKit names: every decoded score, with the smoothed, idle-blended controls on top."""
    f = params.face
    up_l, up_r = max(f.brow_left, 0.0), max(f.brow_right, 0.0)
    values = {name[0].upper() + name[1:]: score for name, score in f.blendshapes.items()}
    values |= {
        "EyeBlinkLeft": f.blink_left, "EyeBlinkRight": f.blink_right, "JawOpen": f.mouth_open,
        "MouthSmileLeft": f.smile, "MouthSmileRight": f.smile, "BrowInnerUp": 0.5 * (up_l + up_r),
        "BrowOuterUpLeft": up_l, "BrowOuterUpRight": up_r, "BrowDownLeft": max(-f.brow_left, 0.0),
        "BrowDownRight": max(-f.brow_right, 0.0),
    }  # fmt: skip
    return values


def blendshapes(params: CharacterParams, chosen: str, skeleton: Skeleton | None = None) -> dict[str, float]:
    """Blendshape name -> 0..1 for this frame; with an avatar, only names it has."""
    values: dict[str, float] = {}
    if chosen in ("presets", "both"):
        presets = preset_values(params)
        if skeleton is not None:
            have = {e.lower() for e in skeleton.expressions}
            presets = {k: v for k, v in presets.items() if k.lower() in have or PRESET_VRM1[k].lower() in have}
        values |= presets
    if chosen in ("perfect-sync", "both"):
        values |= perfect_sync_values(params)
    return {name: float(np.clip(finite(v), 0.0, 1.0)) for name, v in values.items()}


# ----------------------------------------------------------------------------- the sender


class VMCSender:
    """Builds and sends one VMC frame (several <= 1472-byte bundles) per rendered frame over UDP."""

    def __init__(self, config: VMCConfig | None = None) -> None:
        self.config = config or VMCConfig()
        self.avatar = load_avatar(self.config.avatar) if self.config.avatar else None
        self.skeleton = self.avatar or default_skeleton()
        self.blendshape_set = choose_blendshape_set(self.config.blendshapes, self.avatar)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.sent = 0
        self.errors = 0
        self.packets = 0

    def bones(self, params: CharacterParams) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(Unity bone name, local position, local rotation) in Unity coordinates, parents first."""
        pose = normalized_pose(params, self.skeleton, self.config.pose)
        rotations = local_rotations(self.skeleton, pose)
        return [
            (name, quat.to_unity_position(rest.local_position), quat.to_unity_rotation(rotations[name]))
            for name, rest in self.skeleton.bones.items()
        ]

    def messages(self, params: CharacterParams, t: float) -> list[bytes]:
        """The frame's OSC messages in order."""
        params, t = finite_params(params), finite(t)  # never send NaN/Inf: receivers keep it for good
        if self.config.mirror:
            params = params.mirrored()
        tracking = int(params.idle < 0.5)
        out = [osc_message("/VMC/Ext/OK", 1, CALIBRATED, NORMAL_MODE, tracking), osc_message("/VMC/Ext/T", float(t))]
        if self.config.root:
            out.append(osc_message("/VMC/Ext/Root/Pos", "root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        for name, p, q in self.bones(params):
            out.append(osc_message("/VMC/Ext/Bone/Pos", name, *(float(v) for v in p), *(float(v) for v in q)))
        for name, value in blendshapes(params, self.blendshape_set, self.avatar).items():
            out.append(osc_message("/VMC/Ext/Blend/Val", name, value))
        out.append(osc_message("/VMC/Ext/Blend/Apply"))
        return out

    def build(self, params: CharacterParams, t: float) -> list[bytes]:
        """The frame as UDP payloads, each an OSC bundle of at most 1472 bytes."""
        return pack_bundles(self.messages(params, t))

    def send(self, params: CharacterParams, t: float) -> bool:
        """Send one frame; a full socket buffer or an unreachable host is counted, never raised."""
        try:
            for packet in self.build(params, t):
                self.socket.sendto(packet, (self.config.host, self.config.port))
                self.packets += 1
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
        self.socket.close()
