"""Quaternion and frame helpers (numpy, (x, y, z, w) order as glTF, VRM, Unity and VMC write them).

The rig math (avatar rest poses, forward kinematics, IK, VMC output) works in one frame: glTF's
right-handed coordinates with +Y up and the avatar facing +Z, its left hand at +X (the VRM 1.0
convention). VRM 0.x files face -Z and are turned into it on reading; Unity/VMC output leaves it
through `to_unity_*` (UniVRM mirrors X on import, so Unity's avatar faces +Z with its right at +X).
"""

from __future__ import annotations

import math

import numpy as np

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b, then a)."""
    x1, y1, z1, w1 = a
    x2, y2, z2, w2 = b
    return np.array(
        [
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        ]
    )


def conj(q: np.ndarray) -> np.ndarray:
    """The inverse of a unit quaternion."""
    return np.array([-q[0], -q[1], -q[2], q[3]])


def normalize(q: np.ndarray) -> np.ndarray:
    n = math.sqrt(float(q[0]) ** 2 + float(q[1]) ** 2 + float(q[2]) ** 2 + float(q[3]) ** 2)
    return IDENTITY.copy() if not np.isfinite(n) or n < 1e-12 else np.asarray(q, dtype=np.float64) / n


def cross(a, b) -> np.ndarray:
    """3-vector cross product (plain floats: numpy's np.cross costs ~20x more for one pair)."""
    ax, ay, az = float(a[0]), float(a[1]), float(a[2])
    bx, by, bz = float(b[0]), float(b[1]), float(b[2])
    return np.array([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector v by unit quaternion q."""
    u, w = q[:3], float(q[3])
    v = np.asarray(v, dtype=np.float64)
    t = 2.0 * cross(u, v)
    return v + w * t + cross(u, t)


def is_identity(q: np.ndarray, tol: float = 1e-9) -> bool:
    return abs(abs(float(q[3])) - 1.0) < tol


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by `angle` radians about `axis` (right-hand rule)."""
    axis = np.asarray(axis, dtype=np.float64)
    n = float(np.linalg.norm(axis))
    if n < 1e-12:
        return IDENTITY.copy()
    s = np.sin(angle / 2.0)
    return np.array([*(axis / n * s), np.cos(angle / 2.0)])


def from_to(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The shortest rotation taking direction a to direction b."""
    a = np.asarray(a, dtype=np.float64) / max(float(np.linalg.norm(a)), 1e-12)
    b = np.asarray(b, dtype=np.float64) / max(float(np.linalg.norm(b)), 1e-12)
    d = float(np.dot(a, b))
    if d < -0.999999:  # opposite: any perpendicular axis
        axis = cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = cross(a, [0.0, 1.0, 0.0])
        return axis_angle(axis, np.pi)
    return normalize(np.array([*cross(a, b), 1.0 + d]))


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1) along the short way."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = float(np.dot(a, b))
    if d < 0.0:
        b, d = -b, -d
    if d > 0.9995:
        return normalize(a + t * (b - a))
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    return (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


def angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Rotation angle (radians, 0..pi) between two unit quaternions."""
    return float(2.0 * np.arccos(np.clip(abs(float(np.dot(a, b))), 0.0, 1.0)))


def euler_head(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation in the rig frame from the character's angles (radians, the user's conventions).

    yaw + turns to the avatar's left (+Z towards +X: about +Y), pitch + looks up (+Z towards +Y:
    about -X), roll + tilts towards the right shoulder (+Y towards -X: about +Z); applied yaw, then
    pitch, then roll in the head's own frame.
    """
    return mul(mul(axis_angle([0, 1, 0], yaw), axis_angle([1, 0, 0], -pitch)), axis_angle([0, 0, 1], roll))


# VRM 0.x files face -Z: a half turn about Y maps them onto the rig frame (and back).
def from_vrm0_position(p: np.ndarray) -> np.ndarray:
    return np.array([-p[0], p[1], -p[2]], dtype=np.float64)


def from_vrm0_rotation(q: np.ndarray) -> np.ndarray:
    return np.array([-q[0], q[1], -q[2], q[3]], dtype=np.float64)


def to_unity_position(p: np.ndarray) -> np.ndarray:
    """Rig frame -> Unity (left-handed, as UniVRM imports the avatar: X mirrored)."""
    return np.array([-p[0], p[1], p[2]], dtype=np.float64)


def to_unity_rotation(q: np.ndarray) -> np.ndarray:
    """A rotation mirrored through the X plane, as UniVRM's import mirrors the rig."""
    return np.array([q[0], -q[1], -q[2], q[3]], dtype=np.float64)
