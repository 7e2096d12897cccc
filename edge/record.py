"""Record a person's landmark session, label a few frames, export a contact sheet: the few-labels path.

    python -m edge.record record 0 -o me.npz                 # camera 0 (or v4l2:///dev/video0, csi://0)
    python -m edge.record record file://clip.mp4 -o me.npz   # a video file
    python -m edge.record sheet me.npz -o me.png             # thumbnails with their frame numbers
    python -m edge.record label me.npz --frames 10-40,55 --label smile            # face labels
    python -m edge.record label me.npz --frames 100-130 --label open_palm --part hand
    python -m edge.record info me.npz

A session is one `.npz` (numpy only, no pickle) holding, per recorded frame: the raw MediaPipe
output (face landmarks, blendshapes, transform; hand slots with landmarks, handedness, score),
the features of `latentcast.features` at recording time, head pose and wrist positions,
timestamps, and one label track per part (`face_labels`, `hand_labels`, -1 = unlabelled, names in
`face_classes` / `hand_classes`). Raw landmarks are kept so a session can be re-featurised when
`FEATURE_SPEC_VERSION` changes. `load_session(path).training_arrays("face")` gives (x, labels,
classes) for `aae/` training. Frame numbers are session rows (0 = first recorded frame).

Never lose a recording: every write goes to a temporary file that replaces the session in one
rename; the session is saved every `--autosave-s` seconds, at the end, and on Ctrl-C / SIGTERM.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.landmarks import FaceObservation, FaceTracker, HandObservation, HandTracker, LandmarkerConfig
from latentcast import features as F
from latentcast.errors import UserError, run_cli

log = logging.getLogger(__name__)

SESSION_FORMAT_VERSION = 1
PARTS = ("face", "hand")


# ----------------------------------------------------------------------------- the session file


@dataclass
class Session:
    """A loaded session: `arrays` holds every field of the file by name (see the module docstring)."""

    path: Path
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.arrays["timestamp_ms"])

    def classes(self, part: str) -> list[str]:
        return [str(name) for name in self.arrays[f"{_part(part)}_classes"]]

    def labels(self, part: str) -> np.ndarray:
        return self.arrays[f"{_part(part)}_labels"]

    def training_arrays(self, part: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(x [M, D] float32, labels [M] int64 with -1 = unlabelled, class names) for frames where `part` was seen.

        Hands: every present hand slot is one sample (features are on one canonical side, so both
        hands share the row's label). A session recorded under another `FEATURE_SPEC_VERSION` is
        re-featurised from its raw landmarks, so old recordings keep working.
        """
        part = _part(part)
        labels = self.labels(part)
        a = self.arrays
        current = int(a["feature_spec_version"]) == F.FEATURE_SPEC_VERSION
        if part == "face":
            rows = np.nonzero(a["face_present"])[0]
            if current:
                x = a["face_features"][rows]
            else:
                x = np.array(
                    [F.face_features(a["face_landmarks"][r], a["face_blendshapes"][r], _size(a, r)) for r in rows]
                )
            return x.reshape(len(rows), F.FACE_FEATURE_DIM), labels[rows], self.classes(part)
        rows, slots = np.nonzero(a["hand_present"])
        if current:
            x = a["hand_features"][rows, slots]
        else:
            x = np.array(
                [
                    F.hand_features(a["hand_landmarks"][r, s], str(a["handedness"][r, s]), _size(a, r))
                    for r, s in zip(rows, slots, strict=True)
                ]
            )
        return x.reshape(len(rows), F.HAND_FEATURE_DIM), labels[rows], self.classes(part)


def _size(arrays: dict[str, np.ndarray], row: int) -> tuple[int, int]:
    width, height = arrays["frame_size"][row]
    return int(width), int(height)


def _part(part: str) -> str:
    if part not in PARTS:
        raise UserError(f"part {part!r} is unknown: use face or hand")
    return part


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


# ----------------------------------------------------------------------------- recording


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
        count = len(self)
        empty_shapes = {
            "frame_index": ((), np.int64),
            "frame_size": ((2,), np.int64),
            "timestamp_ms": ((), np.int64),
            "face_present": ((), bool),
            "face_landmarks": ((F.FACE_LANDMARK_COUNT, 3), np.float32),
            "face_blendshapes": ((F.BLENDSHAPE_COUNT,), np.float32),
            "face_transform": ((4, 4), np.float32),
            "face_features": ((F.FACE_FEATURE_DIM,), np.float32),
            "head_pose": ((3,), np.float32),
            "hand_present": ((self.max_hands,), bool),
            "hand_landmarks": ((self.max_hands, F.HAND_LANDMARK_COUNT, 3), np.float32),
            "hand_world_landmarks": ((self.max_hands, F.HAND_LANDMARK_COUNT, 3), np.float32),
            "handedness": ((self.max_hands,), "<U5"),
            "hand_score": ((self.max_hands,), np.float32),
            "hand_features": ((self.max_hands, F.HAND_FEATURE_DIM), np.float32),
            "wrist": ((self.max_hands, 2), np.float32),
        }
        out: dict[str, np.ndarray] = {}
        for key, (shape, dtype) in empty_shapes.items():
            rows = self.rows.get(key)
            out[key] = np.stack(rows).astype(dtype) if rows else np.zeros((0, *shape), dtype)
        thumbs = np.stack(self.thumbs) if self.thumbs else np.zeros((0, self.thumb_height, 1, 3), np.uint8)
        if self.thumbs and len({thumb.shape for thumb in self.thumbs}) > 1:  # a source that changed size
            width = min(thumb.shape[1] for thumb in self.thumbs)
            thumbs = np.stack([thumb[:, :width] for thumb in self.thumbs])
        out.update(
            format_version=np.int64(SESSION_FORMAT_VERSION),
            feature_spec_version=np.int64(F.FEATURE_SPEC_VERSION),
            source=np.array(self.source),
            recorded_at=np.array(time.strftime("%Y-%m-%dT%H:%M:%S%z")),
            image_size=np.array(self.image_size, np.int64),
            fps=np.float64(self.fps),
            face_feature_names=np.array(F.FACE_FEATURE_NAMES),
            face_labels=np.full(count, -1, np.int64),
            face_classes=np.zeros(0, "<U1"),
            hand_labels=np.full(count, -1, np.int64),
            hand_classes=np.zeros(0, "<U1"),
            thumb_rows=np.array(self.thumb_rows, np.int64),
            thumbs=thumbs,
        )
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
) -> Path:
    """Record `source` (camera index, v4l2://, csi://, file://, a video or image path) into `output`.

    pace "fast" processes every frame of a file as fast as possible; "native" reads a file at its
    own rate like a camera (frames the trackers cannot keep up with are skipped). Cameras are live.
    Returns the saved path; a Ctrl-C or SIGTERM stops early and still saves what was recorded.
    """
    from tqdm import tqdm

    from edge.capture import SourceSettings, open_reader

    if not face and not hands:
        raise UserError("nothing to record: enable the face, the hands or both")
    if thumb_every < 1 or thumb_height < 16:
        raise UserError("--thumb-every must be >= 1 and --thumb-height >= 16")
    output = Path(output)
    if output.suffix != ".npz":
        raise UserError(f"session file {output} must end in .npz (numpy archive)")
    reader = open_reader(source, SourceSettings(pace=pace))
    try:
        reader.open()
    except OSError as exc:
        raise UserError(f"cannot open source {source!r} ({exc}): check the camera index, device or file") from exc
    buffer = SessionBuffer(source, max_hands, thumb_every, thumb_height)
    buffer.fps = float(reader.fps)
    config = LandmarkerConfig(mode="video", max_hands=max_hands)
    face_tracker = FaceTracker(config) if face else None
    hand_tracker = HandTracker(config) if hands else None
    total = _frame_count(source) if not reader.live else None
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames

    def stop(signum, _frame):  # SIGTERM (systemd, docker stop) behaves like Ctrl-C
        raise _StopRequested(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, stop) if _in_main_thread() else None
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="record")
    start = time.monotonic()
    last_save = start
    index = -1
    interrupted = None
    bar = tqdm(total=total, unit="frame", desc=f"recording {Path(output).name}", disable=not progress)
    log.info("recording %s into %s (Ctrl-C stops and saves)", source, output)
    try:
        while max_frames is None or len(buffer) < max_frames:
            frame = reader.read()
            if frame is None:
                if reader.live:
                    log.warning("camera returned no frame; stopping and saving what was recorded")
                break
            index += 1
            timestamp_ms = _now_ms(start) if reader.live else _file_time_ms(index, reader.fps)
            if pace == "native" and not reader.live:  # a file played like a camera, skipping what the trackers miss
                if timestamp_ms < _now_ms(start) - 1000 / reader.fps:
                    continue
                wait_s = timestamp_ms / 1000 - (time.monotonic() - start)
                if wait_s > 0:
                    time.sleep(wait_s)
            face_job = pool.submit(face_tracker.detect, frame, timestamp_ms) if face_tracker else None
            hand_slots = hand_tracker.detect(frame, timestamp_ms) if hand_tracker else None
            size = (frame.shape[1], frame.shape[0])
            found_face = face_job.result() if face_job else FaceObservation.absent(size)
            found_hands = hand_slots or tuple(HandObservation.absent(size) for _ in range(max_hands))
            buffer.add(frame, index, timestamp_ms, found_face, found_hands)
            bar.update(1)
            if autosave_s > 0 and time.monotonic() - last_save >= autosave_s:
                save_session(output, buffer.arrays())
                last_save = time.monotonic()
    except (KeyboardInterrupt, _StopRequested) as exc:
        interrupted = type(exc).__name__ if isinstance(exc, KeyboardInterrupt) else str(exc)
    finally:
        bar.close()
        pool.shutdown(wait=True)
        reader.close()
        for tracker in (face_tracker, hand_tracker):
            if tracker is not None:
                tracker.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        saved = save_session(output, buffer.arrays())
    if interrupted:
        log.warning("stopped by %s: saved %d frames to %s", interrupted, len(buffer), saved)
    else:
        log.info("saved %d frames to %s", len(buffer), saved)
    return saved


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _file_time_ms(index: int, fps: float) -> int:
    return round(index * 1000.0 / (fps or 30.0))


def _now_ms(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


# ----------------------------------------------------------------------------- labelling


def parse_frames(spec: str, count: int) -> np.ndarray:
    """'10-40,55,60-62' -> sorted unique row numbers; ranges are inclusive; every row must exist."""
    rows: set[int] = set()
    for piece in spec.replace(" ", "").split(","):
        if not piece:
            continue
        try:
            if "-" in piece:
                first, last = (int(value) for value in piece.split("-", 1))
            else:
                first = last = int(piece)
        except ValueError:
            raise UserError(f"frames {piece!r} is not a number or a range: write e.g. 10-40,55") from None
        if first > last:
            raise UserError(f"frames {piece!r} runs backwards: write the smaller number first ({last}-{first})")
        if first < 0 or last >= count:
            raise UserError(f"frames {piece!r} are outside the session's 0-{count - 1}: see `info` or the sheet")
        rows.update(range(first, last + 1))
    if not rows:
        raise UserError("no frames given: write e.g. --frames 10-40,55")
    return np.array(sorted(rows), np.int64)


def label(session_path: str | os.PathLike[str], frames: str, name: str | None, part: str = "face") -> Session:
    """Give `frames` the label `name` (a new class name is appended) or, with name None, clear them."""
    session = load_session(session_path)
    part = _part(part)
    rows = parse_frames(frames, len(session))
    classes = session.classes(part)
    labels = session.labels(part).copy()
    if name is None:
        labels[rows] = -1
    else:
        name = name.strip()
        if not name or "," in name:
            raise UserError(f"label {name!r} is not a usable class name: give a word like smile or open_palm")
        if name not in classes:
            classes.append(name)
        labels[rows] = classes.index(name)
        seen = session.arrays[f"{part}_present"][rows]
        if seen.ndim > 1:
            seen = seen.any(axis=1)
        if not seen.all():
            log.warning("%d of %d labelled frames have no %s: they will not be used", (~seen).sum(), len(rows), part)
    session.arrays[f"{part}_labels"] = labels
    session.arrays[f"{part}_classes"] = np.array(classes) if classes else np.zeros(0, "<U1")
    save_session(session.path, session.arrays)
    return session


# ----------------------------------------------------------------------------- contact sheet


def contact_sheet(
    session: Session, output: str | os.PathLike[str], frames: str | None = None, columns: int = 8
) -> Path:
    """A PNG grid of the stored thumbnails, each captioned with its row, labels and what was seen."""
    import cv2

    rows = session.arrays["thumb_rows"]
    thumbs = session.arrays["thumbs"]
    if len(rows) == 0:
        raise UserError(f"{session.path} has no thumbnails: record with --thumb-every N to keep some")
    if frames:
        wanted = set(parse_frames(frames, len(session)).tolist())
        keep = np.array([row in wanted for row in rows])
        rows, thumbs = rows[keep], thumbs[keep]
        if len(rows) == 0:
            raise UserError(f"no thumbnail within frames {frames}: thumbnails exist for every row in {{0, N, 2N...}}")
    height, width = thumbs.shape[1:3]
    columns = max(1, min(columns, len(rows)))
    grid_rows = -(-len(rows) // columns)
    caption = 30
    sheet = np.full((grid_rows * (height + caption), columns * width, 3), 255, np.uint8)
    face_classes, hand_classes = session.classes("face"), session.classes("hand")
    for k, (row, thumb) in enumerate(zip(rows, thumbs, strict=True)):
        top, left = (k // columns) * (height + caption), (k % columns) * width
        sheet[top : top + height, left : left + width] = thumb
        seen = ("F" if session.arrays["face_present"][row] else "") + "H" * int(
            session.arrays["hand_present"][row].sum()
        )
        names = [
            classes[labels[row]]
            for classes, labels in ((face_classes, session.labels("face")), (hand_classes, session.labels("hand")))
            if labels[row] >= 0
        ]
        text_color = (0, 0, 0)
        cv2.putText(sheet, f"{row} {seen}", (left + 3, top + height + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, text_color, 1)
        if names:
            cv2.putText(
                sheet, "/".join(names), (left + 3, top + height + 25), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 200), 1
            )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(output), sheet):
        raise UserError(f"could not write {output}: give a writable path ending in .png")
    return output


# ----------------------------------------------------------------------------- CLI


def describe(session: Session) -> str:
    a = session.arrays
    width, height = (int(value) for value in a["image_size"])
    thumbs = ", ".join(str(int(row)) for row in a["thumb_rows"][:3]) + (", ..." if len(a["thumb_rows"]) > 3 else "")
    lines = [
        f"{session.path}: {len(session)} frames from {a['source']} ({width}x{height}, {float(a['fps']):.1f} fps), "
        f"feature spec {int(a['feature_spec_version'])}, recorded {a['recorded_at']}",
        f"face seen in {int(a['face_present'].sum())} frames; a hand in {int(a['hand_present'].any(axis=1).sum())}",
        f"thumbnails: {len(a['thumb_rows'])} (rows {thumbs or '-'})",
    ]
    for part in PARTS:
        labels = session.labels(part)
        counts = ", ".join(f"{name}={int((labels == k).sum())}" for k, name in enumerate(session.classes(part)))
        lines.append(f"{part} labels: {counts or 'none'} ({int((labels < 0).sum())} unlabelled)")
    return "\n".join(lines)


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
