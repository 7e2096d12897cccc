"""Face training data: the real photos (MediaPipe run once, cached by sha256) and recorded sessions.

The photos are the mirror's London set (neutral + smiling pairs), lisa and a few unlabelled faces;
`load_faces` gives the landmark-stage output of each. Recorded sessions are read through their
file format, `latentcast.session`. The synthesis recipe that puts expressions on these faces is
`aae/face_recipe.py`. MediaPipe and edge/ are imported lazily, only where a photo is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aae.datasets import LabelledSet, read_image_asset
from latentcast import features
from latentcast.assets import resolve
from latentcast.errors import UserError

EXPRESSION_CLASSES = ["neutral", "smile", "surprise", "mouth_open", "eyes_closed"]
FACE_FEATURE_DIM = features.FACE_FEATURE_DIM
LONDON_IDS = ("004", "005", "006", "008", "025", "042")


@dataclass(frozen=True)
class FacePhoto:
    """One face photo asset: who it is (for leave-one-person-out) and its label (None = unlabelled)."""

    key: str
    person: str
    label: str | None


def face_photos() -> list[FacePhoto]:
    """The real face photos in the mirror: 6 London people neutral + smiling, lisa x4 neutral, 3 unlabelled."""
    root = "data/face_expressions/london_set"
    photos = [FacePhoto(f"{root}/neutral/{i}_03.jpg", f"london_{i}", "neutral") for i in LONDON_IDS]
    photos += [FacePhoto(f"{root}/smiling/{i}_08.jpg", f"london_{i}", "smile") for i in LONDON_IDS]
    photos += [FacePhoto(f"{root}/lisa_cc0/lisa{n}.jpg", "lisa", "neutral") for n in range(1, 5)]
    photos += [FacePhoto(key, Path(key).stem, None) for key in _image_keys("data/images/faces/")]
    return photos


def _image_keys(prefix: str) -> list[str]:
    from latentcast.assets import catalog_keys

    return [k for k in catalog_keys(prefix) if k.lower().endswith((".jpg", ".jpeg", ".png"))]


@dataclass
class Face:
    """A face's landmark-stage output, cached: what `latentcast.features.face_features` needs."""

    landmarks: np.ndarray  # [478, 3] normalised image coordinates
    blendshapes: np.ndarray  # [52]
    image_size: tuple[int, int]

    def features(self) -> np.ndarray:
        return features.face_features(self.landmarks, self.blendshapes, self.image_size)


def landmark_cache_dir() -> Path:
    from latentcast.assets import cache_dir

    return cache_dir() / "landmarks"


def face_from_asset(key: str, cache: Path | None = None) -> Face | None:
    """The first face in an image asset (None if MediaPipe finds none), cached by image + model sha256.

    Why a cache: MediaPipe on 20 photos costs seconds per training run; its output for a given image
    and model file never changes, so it is computed once and kept under the user cache.
    """
    from latentcast.assets import sha256_of

    image_path = resolve(key)
    model_path = resolve("models/mediapipe/face_landmarker.task")
    cache = cache if cache is not None else landmark_cache_dir()
    entry = cache / f"face-{sha256_of(image_path)[:20]}-{sha256_of(model_path)[:12]}.npz"
    if entry.is_file():
        stored = np.load(entry)
        if not bool(stored["present"]):
            return None
        return Face(stored["landmarks"], stored["blendshapes"], tuple(int(v) for v in stored["image_size"]))
    from edge.landmarks import FaceTracker, LandmarkerConfig

    with FaceTracker(LandmarkerConfig(mode="image")) as tracker:
        found = tracker.detect(read_image_asset(key))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(
        entry,
        present=found.present,
        landmarks=found.landmarks,
        blendshapes=found.blendshapes,
        image_size=np.asarray(found.image_size),
    )
    return Face(found.landmarks, found.blendshapes, found.image_size) if found.present else None


def load_faces(photos: list[FacePhoto] | None = None) -> list[tuple[FacePhoto, Face]]:
    """(photo, face) for every photo where a face is found."""
    pairs = []
    for photo in photos if photos is not None else face_photos():
        face = face_from_asset(photo.key)
        if face is not None:
            pairs.append((photo, face))
    return pairs


def load_session(path: str | Path, classes: list[str] = EXPRESSION_CLASSES, part: str = "face") -> LabelledSet:
    """A session recorded with `edge/record.py` as rows labelled into `classes` (-1 = unlabelled frame).

    Frames where the part was not seen are dropped; the feature-spec policy (re-featurise an older
    spec, refuse damaged features) is the file format's own, `latentcast.session`.
    """
    from latentcast.session import load_session as read_session

    session = read_session(path)
    try:
        x, labels, names = session.training_arrays(part)
    except (KeyError, ValueError) as exc:
        raise UserError(f"{path} has no usable {part} features ({exc}): record it again (edge.record)") from exc
    unknown = sorted({names[i] for i in labels[labels >= 0]} - set(classes))
    if unknown:
        raise UserError(f"{path} labels frames {unknown}, not one of {', '.join(classes)}: relabel them")
    y = np.asarray([classes.index(names[i]) if i >= 0 else -1 for i in labels], np.int64)
    source = {"session": str(path), "rows": len(y), "labelled": int((y >= 0).sum())}
    return LabelledSet(np.asarray(x, np.float32), y, list(classes), source)
