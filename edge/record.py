"""Record a person's landmark session, label a few frames, export a contact sheet: the few-labels path.

    python -m edge.record record 0 -o me.npz                 # camera 0 (or v4l2:///dev/video0, csi://0)
    python -m edge.record record file://clip.mp4 -o me.npz   # a video file
    python -m edge.record record 0 -o me.npz --config edge.toml   # landmarks as that edge config sets them
    python -m edge.record sheet me.npz -o me.png             # thumbnails with their frame numbers
    python -m edge.record label me.npz --frames 10-40,55 --label smile            # face labels
    python -m edge.record label me.npz --frames 100-130 --label open_palm --part hand
    python -m edge.record info me.npz

The file format (fields, atomic save, load, the feature-spec policy) is `latentcast.session`;
labelling and the contact sheet are `edge.session_tools`. The recorder reads frames through the edge's own
`Capture` and detects with the loop's `ConcurrentDetector` around the landmark stage `edge.run` builds
(`build_landmark_stage`: the `[landmarks]` backend, onnx or mediapipe), so a session sees exactly what
the device sees. The session is saved every `--autosave-s` seconds, at the end, and on Ctrl-C / SIGTERM.
No torch here: this runs on the device too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.landmarks import FaceObservation, HandObservation, LandmarkerConfig
from edge.session_tools import contact_sheet, describe, label
from latentcast import features as F
from latentcast.errors import UserError, run_cli
from latentcast.progress import progress as progress_display
from latentcast.session import PARTS, frame_fields, header, load_session, save_session

log = logging.getLogger(__name__)


class SessionBuffer:
    """Per-frame rows collected in lists; `arrays()` stacks them into the file's fields."""

    def __init__(self, source: str, max_hands: int, thumb_every: int, thumb_height: int) -> None:
        self.source, self.max_hands = source, max_hands
        self.thumb_every, self.thumb_height = thumb_every, thumb_height
        self.rows: dict[str, list[np.ndarray]] = {}
        self.thumb_rows: list[int] = []
        self.thumbs: list[np.ndarray] = []
        self.image_size = (0, 0)
        self.fps = 0.0

    def __len__(self) -> int:
        return len(self.rows.get("timestamp_ms", []))

    def _add(self, **fields: object) -> None:
        for key, value in fields.items():
            self.rows.setdefault(key, []).append(np.asarray(value))

    def add(
        self, frame: np.ndarray, index: int, timestamp_ms: int, face: FaceObservation, hands: Sequence[HandObservation]
    ) -> None:
        import cv2

        row = len(self)
        self.image_size = (frame.shape[1], frame.shape[0])
        face_vector = np.zeros(F.FACE_FEATURE_DIM, np.float32)
        pose = np.zeros(3, np.float32)
        if face.present:
            face_vector = F.face_features(face.landmarks, face.blendshapes, face.image_size)
            pose = F.head_pose(face.transform)
        hand_vectors = np.zeros((self.max_hands, F.HAND_FEATURE_DIM), np.float32)
        wrists = np.zeros((self.max_hands, 2), np.float32)
        for slot, hand in enumerate(hands):
            if hand.present:
                hand_vectors[slot] = F.hand_features(hand.landmarks, hand.handedness, hand.image_size)
                wrists[slot] = F.wrist_position(hand.landmarks)
        self._add(
            frame_index=np.int64(index),
            frame_size=np.array(self.image_size, np.int64),
            timestamp_ms=np.int64(timestamp_ms),
            face_present=face.present,
            face_landmarks=face.landmarks,
            face_blendshapes=face.blendshapes,
            face_transform=face.transform,
            face_features=face_vector,
            head_pose=pose,
            hand_present=np.array([hand.present for hand in hands]),
            hand_landmarks=np.stack([hand.landmarks for hand in hands]),
            hand_world_landmarks=np.stack([hand.world_landmarks for hand in hands]),
            handedness=np.array([hand.handedness for hand in hands], dtype="<U5"),
            hand_score=np.array([hand.score for hand in hands], np.float32),
            hand_features=hand_vectors,
            wrist=wrists,
        )
        if row % self.thumb_every == 0:
            height, width = frame.shape[:2]
            size = (max(1, round(width * self.thumb_height / height)), self.thumb_height)
            self.thumb_rows.append(row)
            self.thumbs.append(cv2.resize(_as_bgr(frame), size, interpolation=cv2.INTER_AREA))

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key, (shape, dtype) in frame_fields(self.max_hands).items():
            rows = self.rows.get(key)
            out[key] = np.stack(rows).astype(dtype) if rows else np.zeros((0, *shape), dtype)
        thumbs = np.stack(self.thumbs) if self.thumbs else np.zeros((0, self.thumb_height, 1, 3), np.uint8)
        if self.thumbs and len({thumb.shape for thumb in self.thumbs}) > 1:  # a source that changed size
            width = min(thumb.shape[1] for thumb in self.thumbs)
            thumbs = np.stack([thumb[:, :width] for thumb in self.thumbs])
        recorded_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        out.update(header(len(self), self.source, recorded_at, self.image_size, self.fps))
        out.update(thumb_rows=np.array(self.thumb_rows, np.int64), thumbs=thumbs)
        return out


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _frame_count(uri: str) -> int | None:
    """Frames in a video file (for the progress bar); None for cameras and unknown counts."""
    import cv2

    from edge.capture import uri_path

    path = uri_path(uri)
    if not path.is_file():
        return None
    capture = cv2.VideoCapture(str(path))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    capture.release()
    return count or None


class _StopRequested(Exception):
    pass


def record(
    source: str,
    output: str | os.PathLike[str],
    *,
    max_frames: int | None = None,
    face: bool = True,
    hands: bool = True,
    max_hands: int = 2,
    pace: str = "fast",
    thumb_every: int = 5,
    thumb_height: int = 96,
    autosave_s: float = 60.0,
    progress: bool = True,
    force: bool = False,
    landmarks: LandmarkerConfig | None = None,
) -> Path:
    """Record `source` (camera index, v4l2://, csi://, file://, a video or image path) into `output`.

    pace "fast" processes every frame of a file as fast as possible; "native" reads a file at its
    own rate like a camera (frames the trackers cannot keep up with are skipped, as on the device).
    Returns the saved path; a Ctrl-C or SIGTERM stops early and still saves what was recorded. An
    existing `output` is refused unless `force` (it would be replaced, not appended to). `landmarks`:
    the edge config's `[landmarks]` section (backend, models); None: its defaults, as `edge.run`.
    """
    from edge.capture import Capture, SourceSettings, open_reader
    from edge.loop import ConcurrentDetector
    from edge.onnx_landmarks.stage import build_landmark_stage

    if not face and not hands:
        raise UserError("nothing to record: enable the face, the hands or both")
    if thumb_every < 1 or thumb_height < 16:
        raise UserError("--thumb-every must be >= 1 and --thumb-height >= 16")
    output = Path(output)
    if output.suffix != ".npz":
        raise UserError(f"session file {output} must end in .npz (numpy archive)")
    if output.exists() and not force:
        raise UserError(f"session {output} already exists: choose another -o, or pass --force to replace it")
    reader = open_reader(source, SourceSettings(uri=source, pace=pace))
    buffer = SessionBuffer(source, max_hands, thumb_every, thumb_height)
    stage = build_landmark_stage(face, hands, landmarks, mode="video", max_hands=max_hands)
    detect = ConcurrentDetector(stage)
    capture = Capture(reader, pace)
    total = _frame_count(source) if not reader.live else None
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames

    def stop(signum, _frame):  # SIGTERM (systemd, docker stop) behaves like Ctrl-C
        raise _StopRequested(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop) if _in_main_thread() else None
    interrupted = None
    bar = progress_display(total=total, unit="frame", desc=f"recording {Path(output).name}", disable=not progress)
    log.info("recording %s into %s (Ctrl-C stops and saves)", source, output)
    try:
        capture.start()
        start_ns = time.monotonic_ns()
        last_save, last_ms = time.monotonic(), -1
        while max_frames is None or len(buffer) < max_frames:
            frame = capture.next(timeout=0.5)
            if frame is None:
                if capture.ended:
                    break
                continue  # a live source that is slow or reconnecting (Capture logs it)
            buffer.fps = float(reader.fps)
            if reader.live:  # MediaPipe's video mode needs strictly increasing timestamps
                timestamp_ms = max((frame.t_ns - start_ns) // 1_000_000, last_ms + 1)
            else:
                timestamp_ms = _file_time_ms(frame.index, reader.fps)
            last_ms = timestamp_ms
            size = (frame.image.shape[1], frame.image.shape[0])
            face_raw, hands_raw = detect(frame.image, timestamp_ms)
            found_face = face_raw if face_raw is not None else FaceObservation.absent(size)
            found_hands = hands_raw or tuple(HandObservation.absent(size) for _ in range(max_hands))
            buffer.add(frame.image, frame.index, timestamp_ms, found_face, found_hands)
            bar.update(1)
            if autosave_s > 0 and time.monotonic() - last_save >= autosave_s:
                save_session(output, buffer.arrays())
                last_save = time.monotonic()
    except (KeyboardInterrupt, _StopRequested) as exc:
        interrupted = type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else str(exc)
    finally:
        bar.close()
        capture.stop()
        detect.close()
        stage.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if capture.error and len(buffer) == 0:  # the source never opened: no empty session file
            raise UserError(f"cannot open source {source!r} ({capture.error}): check the camera index, device or file")
        saved = save_session(output, buffer.arrays())
    if capture.error:  # the source failed mid-run: what came before is saved, but the job failed
        done = f"{len(buffer)} frame(s)"
        raise UserError(f"source {source!r} failed after {done} ({capture.error}): the {done} are saved in {saved}")
    if interrupted:
        log.warning("stopped by %s: saved %d frames to %s", interrupted, len(buffer), saved)
    else:
        log.info("saved %d frames to %s", len(buffer), saved)
    return saved


def _landmarks_config(path: str | None, backend: str | None) -> LandmarkerConfig:
    """The `[landmarks]` section edge.run would use with this config file (and --backend on top)."""
    from edge.config import load_config

    return load_config(path, {"landmarks.backend": backend} if backend else None).landmarks


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _file_time_ms(index: int, fps: float) -> int:
    return round(index * 1000.0 / (fps or 30.0))


# ----------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.record", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="record a landmark session from a camera or a video file")
    rec.add_argument("source", help="camera index (0), v4l2:///dev/video0, csi://0, file://clip.mp4 or a path")
    rec.add_argument("-o", "--output", required=True, help="session file to write (.npz)")
    rec.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    rec.add_argument("--no-face", action="store_true", help="do not run the face landmarker")
    rec.add_argument("--no-hands", action="store_true", help="do not run the hand landmarker")
    rec.add_argument("--max-hands", type=int, default=2)
    rec.add_argument("--pace", choices=["fast", "native"], default="fast", help="files: every frame, or real time")
    rec.add_argument("--thumb-every", type=int, default=5, help="keep a thumbnail every N frames (for the sheet)")
    rec.add_argument("--thumb-height", type=int, default=96)
    rec.add_argument("--autosave-s", type=float, default=60.0, help="save the session this often (0: only at the end)")
    rec.add_argument("--no-progress", action="store_true")
    rec.add_argument("--force", action="store_true", help="replace an existing session file")
    rec.add_argument("--config", help="edge TOML config: its [landmarks] section (backend, models) as edge.run uses it")
    rec.add_argument("--backend", choices=["onnx", "mediapipe"], help="landmark backend (default: the config's)")

    lab = sub.add_parser("label", help="label frames of a session (face or hand)")
    lab.add_argument("session")
    lab.add_argument("--frames", required=True, help="rows, e.g. 10-40,55 (inclusive ranges)")
    group = lab.add_mutually_exclusive_group(required=True)
    group.add_argument("--label", help="class name, e.g. smile or open_palm")
    group.add_argument("--clear", action="store_true", help="set the frames back to unlabelled")
    lab.add_argument("--part", choices=PARTS, default="face")

    sheet = sub.add_parser("sheet", help="export a contact sheet PNG of the stored thumbnails")
    sheet.add_argument("session")
    sheet.add_argument("-o", "--output", default=None, help="PNG path (default: next to the session)")
    sheet.add_argument("--frames", default=None, help="only these rows, e.g. 0-200")
    sheet.add_argument("--columns", type=int, default=8)

    info = sub.add_parser("info", help="summarise a session")
    info.add_argument("session")

    args = parser.parse_args(argv)
    if args.command == "record":
        if args.max_frames is not None and args.max_frames < 1:
            raise UserError("--max-frames must be at least 1")
        saved = record(
            args.source,
            args.output,
            max_frames=args.max_frames,
            face=not args.no_face,
            hands=not args.no_hands,
            max_hands=args.max_hands,
            pace=args.pace,
            thumb_every=args.thumb_every,
            thumb_height=args.thumb_height,
            autosave_s=args.autosave_s,
            progress=not args.no_progress,
            force=args.force,
            landmarks=_landmarks_config(args.config, args.backend),
        )
        print(describe(load_session(saved)))
    elif args.command == "label":
        session = label(args.session, args.frames, None if args.clear else args.label, args.part)
        print(describe(session))
    elif args.command == "sheet":
        session = load_session(args.session)
        output = args.output or str(Path(args.session).with_suffix(".sheet.png"))
        print(f"wrote {contact_sheet(session, output, args.frames, args.columns)}")
    else:
        print(describe(load_session(args.session)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
