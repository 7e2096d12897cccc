"""THE recorded-session file: its fields, atomic save, load, and the one feature-spec policy.

A session is one `.npz` (numpy only, no pickle) written by `python -m edge.record record` and read
by training (`aae/`) and calibration (`calibration/`). Per recorded frame it holds the raw
MediaPipe output (face landmarks, blendshapes, transform; hand slots with landmarks, handedness,
score), the features of `latentcast.features` at recording time, head pose and wrist positions,
timestamps, and one label track per part (`face_labels`, `hand_labels`, -1 = unlabelled, names in
`face_classes` / `hand_classes`). Frame numbers are session rows (0 = first recorded frame).

The spec policy (one, here): raw landmarks are kept so that a session recorded under another
`FEATURE_SPEC_VERSION` is re-featurised on reading (`Session.training_arrays`) and old recordings
keep working. A session stamped with the current spec whose stored features have the wrong width
is damaged: that is an error that says to record it again.

Every write goes to a temporary file in the same folder that replaces the session in one rename,
so a crash or a full disk never leaves half a session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentcast import features as F
from latentcast.errors import UserError

SESSION_FORMAT_VERSION = 1
PARTS = ("face", "hand")
HANDEDNESS_DTYPE = "<U5"


def frame_fields(max_hands: int) -> dict[str, tuple[tuple[int, ...], object]]:
    """{per-frame field: (shape of one frame's value, dtype)}: what every session row holds."""
    return {
        "frame_index": ((), np.int64),
        "frame_size": ((2,), np.int64),
        "timestamp_ms": ((), np.int64),
        "face_present": ((), bool),
        "face_landmarks": ((F.FACE_LANDMARK_COUNT, 3), np.float32),
        "face_blendshapes": ((F.BLENDSHAPE_COUNT,), np.float32),
        "face_transform": ((4, 4), np.float32),
        "face_features": ((F.FACE_FEATURE_DIM,), np.float32),
        "head_pose": ((3,), np.float32),
        "hand_present": ((max_hands,), bool),
        "hand_landmarks": ((max_hands, F.HAND_LANDMARK_COUNT, 3), np.float32),
        "hand_world_landmarks": ((max_hands, F.HAND_LANDMARK_COUNT, 3), np.float32),
        "handedness": ((max_hands,), HANDEDNESS_DTYPE),
        "hand_score": ((max_hands,), np.float32),
        "hand_features": ((max_hands, F.HAND_FEATURE_DIM), np.float32),
        "wrist": ((max_hands, 2), np.float32),
    }


def header(count: int, source: str, recorded_at: str, image_size: tuple[int, int], fps: float) -> dict[str, np.ndarray]:
    """The session-wide fields of a fresh recording of `count` frames (all labels unset)."""
    return {
        "format_version": np.int64(SESSION_FORMAT_VERSION),
        "feature_spec_version": np.int64(F.FEATURE_SPEC_VERSION),
        "source": np.array(source),
        "recorded_at": np.array(recorded_at),
        "image_size": np.array(image_size, np.int64),
        "fps": np.float64(fps),
        "face_feature_names": np.array(F.FACE_FEATURE_NAMES),
        "face_labels": np.full(count, -1, np.int64),
        "face_classes": np.zeros(0, "<U1"),
        "hand_labels": np.full(count, -1, np.int64),
        "hand_classes": np.zeros(0, "<U1"),
    }


def check_part(part: str) -> str:
    if part not in PARTS:
        raise UserError(f"part {part!r} is unknown: use face or hand")
    return part


@dataclass
class Session:
    """A loaded session: `arrays` holds every field of the file by name (see the module docstring)."""

    path: Path
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["timestamp_ms"])

    def classes(self, part: str) -> list[str]:
        return [str(name) for name in self.arrays[f"{check_part(part)}_classes"]]

    def labels(self, part: str) -> np.ndarray:
        return self.arrays[f"{check_part(part)}_labels"]

    @property
    def current_spec(self) -> bool:
        """True when the stored features were computed by this code's feature spec."""
        return int(self.arrays["feature_spec_version"]) == F.FEATURE_SPEC_VERSION

    def training_arrays(self, part: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(x [M, D] float32, labels [M] int64 with -1 = unlabelled, class names) for frames where `part` was seen.

        Hands: every present hand slot is one sample (features are on one canonical side, so both
        hands share the row's label). Another spec: re-featurised from the raw landmarks.
        """
        part = check_part(part)
        labels = self.labels(part)
        a = self.arrays
        dim = F.FACE_FEATURE_DIM if part == "face" else F.HAND_FEATURE_DIM
        stored = a.get(f"{part}_features")
        if self.current_spec and stored is not None and stored.shape[-1] != dim:
            raise UserError(
                f"{self.path} holds {part} features of size {stored.shape[-1]}, expected {dim} "
                f"(feature spec {F.FEATURE_SPEC_VERSION}): record the session again with this version"
            )
        if part == "face":
            rows = np.nonzero(a["face_present"])[0]
            if self.current_spec:
                x = a["face_features"][rows]
            else:
                x = np.array(
                    [F.face_features(a["face_landmarks"][r], a["face_blendshapes"][r], self._size(r)) for r in rows]
                )
            return x.reshape(len(rows), dim), labels[rows], self.classes(part)
        rows, slots = np.nonzero(a["hand_present"])
        if self.current_spec:
            x = a["hand_features"][rows, slots]
        else:
            x = np.array(
                [
                    F.hand_features(a["hand_landmarks"][r, s], str(a["handedness"][r, s]), self._size(r))
                    for r, s in zip(rows, slots, strict=True)
                ]
            )
        return x.reshape(len(rows), dim), labels[rows], self.classes(part)

    def _size(self, row: int) -> tuple[int, int]:
        width, height = self.arrays["frame_size"][row]
        return int(width), int(height)


def save_session(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    """Write atomically: a temporary file in the same folder, flushed to disk, then one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as stream:
            np.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_session(path: str | os.PathLike[str]) -> Session:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"session {path} does not exist: record one with `python -m edge.record record SOURCE -o {path}`"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable session file ({exc}): give a .npz written by edge.record") from exc
    version = int(arrays.get("format_version", -1))
    if version != SESSION_FORMAT_VERSION:
        raise UserError(f"{path} has session format {version}, this tool reads {SESSION_FORMAT_VERSION}: re-record it")
    return Session(path, arrays)
