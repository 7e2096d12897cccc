"""Build the moving-face clip (head motion, zoom, neutral -> smiling crossfades) from the real face photos.

No moving-face video exists in the mirror, and the face path must be measured on motion, not a
still. This makes one reproducibly (no randomness): for each person of the London set it holds
the neutral photo, moves it (translation, in-plane rotation up to +-12 degrees, zoom 0.75-1.25x),
and crossfades to the same person's smiling photo and back. The photos are read through the asset
resolver. OpenCV cannot write H.264, so the clip is MPEG-4 Part 2 (`mp4v`) in .mp4, or MJPG in .avi.

    python scripts/make_face_clip.py --out runs/face_clip.mp4 [--people 3] [--seconds-per-person 3]

`face_clip(path)` builds it on demand (benchmarks and tests), reusing an existing file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentcast.errors import UserError, run_cli

PEOPLE = ("004", "005", "006", "008", "025", "042")  # London set ids with a neutral (_03) and a smiling (_08) photo
WIDTH, HEIGHT, FPS = 640, 480, 30.0
DEFAULT_PATH = Path("runs") / "face_clip.mp4"


def _photo(person: str, smiling: bool) -> np.ndarray:
    import cv2

    from latentcast.assets import resolve

    kind, suffix = ("smiling", "08") if smiling else ("neutral", "03")
    path = resolve(f"data/face_expressions/london_set/{kind}/{person}_{suffix}.jpg")
    image = cv2.imread(str(path))
    if image is None:
        raise UserError(f"cannot read face photo {path}: fetch the assets again (`python -m latentcast.assets fetch`)")
    return image


def _pose(t: float) -> tuple[float, float, float, float]:
    """(dx, dy as a fraction of the frame, rotation degrees, zoom) at t in [0, 1) of a person's segment."""
    w = 2 * math.pi * t
    return 0.12 * math.sin(w), 0.06 * math.sin(2 * w), 12.0 * math.sin(w + 0.7), 1.0 + 0.25 * math.sin(3 * w)


def _blend(t: float) -> float:
    """Smile weight: neutral, crossfade in over the middle third, hold, fade back at the end."""
    if t < 0.25:
        return 0.0
    if t < 0.45:
        return (t - 0.25) / 0.2
    if t < 0.75:
        return 1.0
    return max(0.0, 1.0 - (t - 0.75) / 0.2)


def render(people: Sequence[str], seconds_per_person: float) -> list[np.ndarray]:
    """The frames (BGR uint8, WIDTH x HEIGHT)."""
    import cv2

    frames = []
    per = max(1, round(seconds_per_person * FPS))
    for person in people:
        neutral, smiling = _photo(person, False), _photo(person, True)
        side = neutral.shape[0]
        base = HEIGHT / side * 1.1  # the face fills about half the frame height at zoom 1
        for i in range(per):
            t = i / per
            dx, dy, angle, zoom = _pose(t)
            alpha = _blend(t)
            photo = neutral if alpha == 0 else cv2.addWeighted(neutral, 1.0 - alpha, smiling, alpha, 0.0)
            matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, base * zoom)
            matrix[0, 2] += WIDTH / 2 - side / 2 + dx * WIDTH
            matrix[1, 2] += HEIGHT / 2 - side / 2 + dy * HEIGHT
            frames.append(cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE))  # fmt: skip
    return frames


def write(path: str | Path, people: Sequence[str] = PEOPLE[:3], seconds_per_person: float = 3.0) -> Path:
    """Render and write the clip; returns its path."""
    import cv2

    path = Path(path)
    codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    if path.suffix.lower() not in (".mp4", ".avi"):
        raise UserError(f"clip path {path} must end in .mp4 (mp4v) or .avi (MJPG)")
    unknown = [p for p in people if p not in PEOPLE]
    if unknown:
        raise UserError(f"unknown person id(s) {', '.join(unknown)}: choose from {', '.join(PEOPLE)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise UserError(f"OpenCV cannot write {codec} video to {path}: check the folder")
    for frame in render(people, seconds_per_person):
        writer.write(frame)
    writer.release()
    tmp.replace(path)  # never a half-written clip under the final name
    return path


def face_clip(path: str | Path = DEFAULT_PATH) -> Path:
    """The clip at `path`, built first if missing (the default build: 3 people, 3 s each)."""
    path = Path(path)
    return path if path.is_file() else write(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/make_face_clip.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help="output .mp4 (mp4v) or .avi (MJPG)")
    parser.add_argument("--people", type=int, default=3, help=f"how many people, 1 to {len(PEOPLE)}")
    parser.add_argument("--seconds-per-person", type=float, default=3.0)
    args = parser.parse_args(argv)
    if not 1 <= args.people <= len(PEOPLE):
        raise UserError(f"--people {args.people} is out of range: use 1 to {len(PEOPLE)}")
    if args.seconds_per_person <= 0:
        raise UserError("--seconds-per-person must be > 0")
    path = write(args.out, PEOPLE[: args.people], args.seconds_per_person)
    print(f"wrote {path} ({args.people} people x {args.seconds_per_person:g} s, {WIDTH}x{HEIGHT} @ {FPS:g} fps)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
