"""Per-user neutral calibration: the user's resting face becomes the model's neutral face.

Why: an expression encoder learns "neutral" from other people's faces; a user whose resting mouth
turns up, or whose brows sit low, reads as a constant smile or frown. OpenSeeFace and NVIDIA
Maxine fix this the same way: record a few seconds of the user at rest and measure expressions
relative to that. The file and its numpy-only `apply` (what the edge runs on every frame) are
`latentcast.neutral`; this module fits one on the workstation. `zero_point` is the per-feature
median of the resting frames (median: a blink or a twitch in a few frames does not move it),
`target` is the model's own neutral face (its decoder at y = neutral, z = 0, the prior's mode),
`scale` is 1 unless the user asks for more or less expressiveness (`--gain`).

    python -m calibration.neutral --source v4l2:///dev/video0 --bundle BUNDLE --out me.neutral.json
    python -m calibration.neutral --source file://rest.mp4 --decoder decoder.onnx --card model_card.json ...
    python -m calibration.neutral --features session.npz --bundle BUNDLE --out me.neutral.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from latentcast.errors import UserError, run_cli
from latentcast.neutral import NeutralCalibration

NEUTRAL_CLASS = "neutral"
MIN_FRAMES = 5

log = logging.getLogger(__name__)


def fit_neutral(
    frames: np.ndarray, target: np.ndarray, gain: float = 1.0, info: dict | None = None
) -> NeutralCalibration:
    """A calibration from resting-face feature rows [N, D] and the model's neutral features [D]."""
    frames = np.asarray(frames, dtype=np.float32)
    frames = frames[np.isfinite(frames).all(axis=1)] if frames.ndim == 2 else frames
    if frames.ndim != 2 or len(frames) < MIN_FRAMES:
        raise UserError(
            f"only {len(frames)} frames with a face (need {MIN_FRAMES}): look at the camera, relaxed, for a few seconds"
        )
    target = np.asarray(target, dtype=np.float32).reshape(-1)
    if len(target) != frames.shape[1]:
        raise UserError(
            f"the model's neutral face has {len(target)} features, the frames {frames.shape[1]}: wrong model"
        )
    if not 0.1 <= gain <= 10:
        raise UserError(f"--gain {gain} is out of range: use 0.1 to 10 (1 keeps expressions as they are)")
    zero_point = np.median(frames, axis=0).astype(np.float32)
    spread = float(np.median(np.abs(frames - zero_point)))  # how still the user was: a quality figure
    meta = {"frames": len(frames), "resting_spread": spread, "gain": gain}
    meta["created"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return NeutralCalibration(zero_point, np.full_like(zero_point, gain), target, {**meta, **(info or {})})


def model_neutral_target(decoder_path: str | Path, classes: Sequence[str], neutral: str = NEUTRAL_CLASS) -> np.ndarray:
    """The model's neutral face: its decoder at y = one-hot(neutral), z = 0 (torch-free, onnxruntime)."""
    from latentcast.inference import DecoderSession

    if neutral not in classes:
        raise UserError(
            f"the expression model has no {neutral!r} class (it has {', '.join(classes)}): pass --neutral_class"
        )
    decoder = DecoderSession(decoder_path, providers=["cpu"])
    y = np.zeros((1, len(classes)), np.float32)
    y[0, list(classes).index(neutral)] = 1.0
    return decoder(y, np.zeros((1, decoder.code_dim), np.float32))[0]


def face_feature_rows(frames: Iterable[np.ndarray], mode: str = "video", face_model: str | None = None) -> np.ndarray:
    """Face features [N, D] of BGR frames (those with a face), via edge.landmarks + latentcast.features."""
    from edge.landmarks import FaceTracker, LandmarkerConfig
    from latentcast.features import face_features

    rows = []
    with FaceTracker(LandmarkerConfig(mode=mode, face_model=face_model)) as tracker:
        for index, frame in enumerate(frames):
            face = tracker.detect(frame, index * 33 if mode == "video" else None)
            if face.present:
                rows.append(face_features(face.landmarks, face.blendshapes, face.image_size))
    width = len(rows[0]) if rows else 0
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), width)


def frames_from_source(uri: str, max_frames: int) -> tuple[list[np.ndarray], bool]:
    """Up to `max_frames` BGR frames from a source URI (edge.capture), and whether they are stills."""
    from edge.capture import ImageListReader, open_reader

    reader = open_reader(uri)
    stills = isinstance(reader, ImageListReader)
    frames: list[np.ndarray] = []
    try:
        reader.open()
    except OSError as exc:
        raise UserError(f"cannot open {uri} ({exc}): check the camera or file") from None
    try:
        while len(frames) < max_frames:
            frame = reader.read()
            if frame is None:
                break
            frames.append(frame)
    finally:
        reader.close()
    return frames, stills


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibration.neutral", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--source", help="camera or video URI (csi://0, v4l2:///dev/video0, file://rest.mp4, a folder)")
    what.add_argument("--features", type=Path, help="face features [N, D] of resting frames (.npz 'features' or .npy)")
    parser.add_argument("--frames", type=int, default=90, help="frames to read from --source (90 = 3 s at 30 fps)")
    parser.add_argument("--bundle", type=Path, help="bundle with an expression model (its decoder gives the target)")
    parser.add_argument("--decoder", type=Path, help="expression decoder.onnx (instead of --bundle)")
    parser.add_argument("--card", type=Path, help="with --decoder: the model_card.json listing the classes")
    parser.add_argument("--neutral_class", default=NEUTRAL_CLASS)
    parser.add_argument("--gain", type=float, default=1.0, help="expressiveness: scale of deviations from rest")
    parser.add_argument("--out", type=Path, required=True, help="calibration JSON to write")
    args = parser.parse_args(argv)

    if args.bundle is not None:
        from latentcast.bundle import open_bundle

        bundle = open_bundle(args.bundle)
        decoder, card = bundle.decoder("expression"), bundle.model_card("expression")
    elif args.decoder is not None and args.card is not None:
        decoder, card = args.decoder, json.loads(args.card.read_text())
    else:
        raise UserError(
            "say which model to calibrate for: --bundle BUNDLE, or --decoder decoder.onnx --card model_card.json"
        )
    target = model_neutral_target(decoder, card["classes"], args.neutral_class)

    if args.source is not None:
        frames, stills = frames_from_source(args.source, args.frames)
        rows = face_feature_rows(frames, mode="image" if stills else "video")
        source = {"source": args.source, "frames_read": len(frames)}
    else:
        from calibration.sets import array_set

        rows = array_set(args.features, rows=10**9).features
        source = {"source": str(args.features)}
    from latentcast.assets import sha256_of

    info = {
        **source,
        "model": card.get("name"),
        "decoder_sha256": sha256_of(Path(decoder)),  # the target belongs to this model: recalibrate after retraining
        "classes": card.get("classes"),
        "neutral_class": args.neutral_class,
        "feature_spec_version": card.get("feature_spec_version"),
    }
    calib = fit_neutral(rows, target, args.gain, info)
    calib.save(args.out)
    print(f"wrote {args.out}: {calib.info['frames']} resting frames, spread {calib.info['resting_spread']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
