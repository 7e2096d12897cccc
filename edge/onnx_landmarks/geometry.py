"""The facial transformation matrix: MediaPipe's face geometry pipeline in numpy.

Reproduces `tasks/cc/vision/face_geometry/libs/geometry_pipeline.cc` (screen -> metric space,
two scale iterations, FACE_LANDMARK_PIPELINE input) and `procrustes_solver.cc` (weighted
orthogonal Procrustes with scale) against the canonical face and the landmark weights stored in
`geometry_pipeline_metadata_landmarks.binarypb` inside face_landmarker.task. Environment as the
FaceLandmarker's default: perspective camera, vertical FOV 63 degrees, near 1 cm, far 100 m,
origin top-left. The .binarypb is decoded with a tiny protobuf wire reader (no generated code
needed: three fields are read).
"""

from __future__ import annotations

import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from latentcast.errors import UserError
from latentcast.landmark_models import GEOMETRY_FILE

_VERTEX_SIZE = 5  # VERTEX_PT: x, y, z, u, v
_MESH_LANDMARKS = 468


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) for each field of one protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_metadata(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """GeometryPipelineMetadata bytes -> canonical landmarks [468, 3] (cm) and Procrustes weights [468]."""
    vertices: list[float] = []
    weights = np.zeros(_MESH_LANDMARKS, np.float32)
    for number, _wire, value in _fields(data):
        if number == 1:  # canonical_mesh: Mesh3d
            for n, w, v in _fields(value):
                if n == 3 and w == 2:  # packed floats
                    vertices.extend(struct.unpack(f"<{len(v) // 4}f", v))
                elif n == 3 and w == 5:
                    vertices.append(struct.unpack("<f", v)[0])
        elif number == 2:  # WeightedLandmarkRef {landmark_id = 1; weight = 2}
            index, weight = 0, 0.0
            for n, w, v in _fields(value):
                if n == 1:
                    index = v
                elif n == 2 and w == 5:
                    weight = struct.unpack("<f", v)[0]
            weights[index] = weight
    mesh = np.asarray(vertices, np.float32).reshape(-1, _VERTEX_SIZE)[:, :3]
    if mesh.shape[0] != _MESH_LANDMARKS or weights.sum() <= 0:
        raise UserError(
            f"{GEOMETRY_FILE} holds {mesh.shape[0]} vertices, expected 468: use the face_landmarker.task file"
        )
    return mesh, weights


def load_canonical_face(task_or_file: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """From face_landmarker.task (a zip) or the extracted .binarypb."""
    path = Path(task_or_file)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return parse_metadata(archive.read(GEOMETRY_FILE))
    return parse_metadata(path.read_bytes())


def weighted_procrustes(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """4x4 scale * rotation + translation mapping source [3, N] onto target [3, N] (procrustes_solver.cc)."""
    sqrt_w = np.sqrt(weights)
    ws, wt = source * sqrt_w, target * sqrt_w
    total = float((sqrt_w * sqrt_w).sum())
    centre = (ws * sqrt_w).sum(1) / total
    centred = ws - np.outer(centre, sqrt_w)
    u, _, vt = np.linalg.svd(wt @ centred.T)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        u[:, 2] *= -1
    rotation = u @ vt
    scale = float(((rotation @ centred) * wt).sum() / (centred * ws).sum())
    rs = scale * rotation
    translation = ((wt - rs @ ws) * sqrt_w).sum(1) / total
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rs, translation
    return out


class FaceGeometry:
    """Screen landmarks -> facial transformation matrix (canonical face -> camera space, cm)."""

    def __init__(self, canonical: np.ndarray, weights: np.ndarray, vertical_fov_deg: float = 63.0) -> None:
        self.canonical = np.asarray(canonical, np.float64).T  # [3, 468]
        self.weights = np.asarray(weights, np.float64)
        self.fov, self.near = vertical_fov_deg, 1.0

    def _scale(self, landmarks: np.ndarray) -> float:
        return float(np.linalg.norm(weighted_procrustes(self.canonical, landmarks, self.weights)[:3, 0]))

    def __call__(self, landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
        """[>=468, 3] frame-normalised landmarks -> [4, 4] float32 (ScreenToMetricSpaceConverter.Convert)."""
        h_near = 2.0 * self.near * math.tan(0.5 * math.radians(self.fov))
        w_near = width * h_near / height
        left, bottom = -0.5 * w_near, -0.5 * h_near
        screen = np.asarray(landmarks[:_MESH_LANDMARKS], np.float64).T.copy()
        screen[1] = 1.0 - screen[1]  # TOP_LEFT_CORNER origin
        screen *= np.array([[w_near], [h_near], [w_near]])
        screen += np.array([[left], [bottom], [0.0]])
        depth_offset = screen[2].mean()

        inter = screen.copy()
        inter[2] *= -1
        first = self._scale(inter)

        inter = screen.copy()
        self._move_rescale_unproject(inter, depth_offset, first)
        second = self._scale(inter)

        metric = screen.copy()
        self._move_rescale_unproject(metric, depth_offset, first * second)
        return weighted_procrustes(self.canonical, metric, self.weights).astype(np.float32)

    def _move_rescale_unproject(self, points: np.ndarray, depth_offset: float, scale: float) -> None:
        points[2] = (points[2] - depth_offset + self.near) / scale
        points[0] = points[0] * points[2] / self.near
        points[1] = points[1] * points[2] / self.near
        points[2] *= -1
