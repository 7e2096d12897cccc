"""The edge loop: capture -> landmarks -> features -> encoders -> One Euro -> publish, timed per stage.

Why it looks like this: the landmark models are the cost floor (milliseconds), everything else
should add close to nothing. So face and hands run concurrently (the face detector on a worker
thread, hands on the loop thread; MediaPipe releases the GIL), the rest is a few numpy calls and
a tiny ONNX MLP per part, and the publisher never blocks. Every frame gets a per-stage timing
record (`FrameTiming`) that the status line and `benchmarks/latency.py` read.

The landmark and encoder stages sit behind small interfaces (`LandmarkStage`, `EncoderStage`) so
the loop is testable and the TensorRT/onnxruntime choice stays in one place.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge.capture import Capture, Frame
from edge.filters import OneEuroFilter, OneEuroParams
from edge.labels import PartLabels
from edge.publisher import Publisher
from latentcast.hysteresis import HysteresisConfig
from latentcast.protocol import (
    NO_MODEL,
    Decision,
    FaceBlock,
    HandBlock,
    Handedness,
    LatentMessage,
    PreviewMessage,
    TrackingStatus,
    encode_latents,
    encode_preview,
)

log = logging.getLogger(__name__)

STAGES = ("wait", "landmarks", "features", "encoder", "filter", "publish")
_MARKS = ("start", *STAGES[1:])  # perf_counter marks in `process`; each stage after "wait" is the gap between two


@dataclass
class FacePart:
    features: np.ndarray  # expression encoder input (latentcast.features.face_features)
    pose: np.ndarray  # yaw, pitch, roll in degrees
    points: np.ndarray  # [N, 2] normalised landmarks, for the preview drawing
    gaze: np.ndarray | None = None  # [4] radians (latentcast.gaze.eye_gaze), None without iris landmarks


@dataclass
class HandPart:
    features: np.ndarray  # gesture encoder input (latentcast.features.hand_features)
    handedness: Handedness
    wrist: np.ndarray  # [3]: x, y normalised, 0
    score: float
    points: np.ndarray  # [21, 2] normalised landmarks


class LandmarkStage(Protocol):
    """MediaPipe behind two calls, so the loop can time detection and feature-making separately."""

    face_enabled: bool
    hands_enabled: bool

    def detect_face(self, bgr: np.ndarray, timestamp_ms: int): ...  # raw result or None

    def detect_hands(self, bgr: np.ndarray, timestamp_ms: int): ...  # raw result or None

    def face_part(self, raw, image_size: tuple[int, int]) -> FacePart | None: ...

    def hand_parts(self, raw, image_size: tuple[int, int]) -> list[HandPart]: ...

    def idle(self) -> None: ...  # the frame is published: background work (detection) may use the CPU now

    def close(self) -> None: ...


class EncoderStage(Protocol):
    """Features -> (y, z) per part; `model_id` identifies the bundle for the renderer's decoders."""

    model_id: bytes

    def encode_face(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_hand(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class FrameTiming:
    """One published frame: per-stage durations (ns) plus the absolute times the benchmark needs."""

    seq: int
    frame_index: int
    capture_ns: int  # frame available
    publish_ns: int
    stages_ns: dict[str, int]
    face: bool
    hands: int


@dataclass
class LoopStats:
    frames: int = 0
    lost_messages: int = 0
    errors: int = 0  # recoverable errors in a frame (logged, frame skipped)
    timings: list[FrameTiming] = field(default_factory=list)


class _Filters:
    """One One Euro filter per part over [z, vec3] at once (one call, not two: it is per frame).

    The class probabilities y pass through unfiltered: a low-pass on them delays every label switch
    (about 10 frames on a real clip); labels are steadied by hysteresis instead (edge/labels.py).

    Reset when the part disappears so a re-appearing hand never smears in from its old place.
    """

    def __init__(self, params: OneEuroParams | None) -> None:
        self.params = params
        self._filters: dict[str, OneEuroFilter] = {}

    def __call__(self, part: str, y: np.ndarray, z: np.ndarray, vec3: np.ndarray, t: float):
        if self.params is None:
            return y, z, vec3
        filt = self._filters.get(part)
        if filt is None:
            filt = self._filters[part] = OneEuroFilter(self.params)
        out = filt(np.concatenate((z, vec3)), t)
        return y, out[: z.size], out[z.size :]

    def reset(self, part: str) -> None:
        if part in self._filters:
            self._filters[part].reset()

    def reset_all(self) -> None:
        for filt in self._filters.values():
            filt.reset()


def _empty_hand_blocks() -> list[HandBlock]:
    """The two hand slots the edge always sends, left then right, both absent."""
    return [HandBlock(handedness=Handedness.LEFT), HandBlock(handedness=Handedness.RIGHT)]


def assign_hand_slots(hands: list[HandPart], max_hands: int) -> list[HandPart | None]:
    """[left slot, right slot]: by handedness, best score first; a duplicate label takes the free slot."""
    slots: list[HandPart | None] = [None, None]
    for hand in sorted(hands, key=lambda h: -h.score)[:max_hands]:
        want = 1 if hand.handedness == Handedness.RIGHT else 0
        if slots[want] is None:
            slots[want] = hand
        elif slots[1 - want] is None:
            slots[1 - want] = hand
    return slots


class ConcurrentDetector:
    """Face on a worker thread while hands run on the caller's: both native calls release the GIL.

    The benchmark's landmark floor uses this same class, so floor and loop detect identically.
    """

    def __init__(self, landmarks: LandmarkStage) -> None:
        self.landmarks = landmarks
        both = landmarks.face_enabled and landmarks.hands_enabled
        self._face_pool = ThreadPoolExecutor(1, thread_name_prefix="face") if both else None

    def __call__(self, image: np.ndarray, ts_ms: int):
        """(raw face result or None, raw hands result or None)."""
        lm = self.landmarks
        if self._face_pool is not None:
            face_future = self._face_pool.submit(lm.detect_face, image, ts_ms)
            hands_raw = lm.detect_hands(image, ts_ms)
            return face_future.result(), hands_raw
        face_raw = lm.detect_face(image, ts_ms) if lm.face_enabled else None
        hands_raw = lm.detect_hands(image, ts_ms) if lm.hands_enabled else None
        return face_raw, hands_raw

    def close(self) -> None:
        if self._face_pool is not None:
            self._face_pool.shutdown(wait=True)


class PreviewWorker:
    """Draws landmarks and JPEG-encodes off the loop thread, newest frame only (demo aid)."""

    def __init__(self, publisher: Publisher, source_id: str, quality: int = 70) -> None:
        self.publisher, self.source_id, self.quality = publisher, source_id, quality
        self._slot = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="preview", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, seq: int, capture_ns: int, points: list[np.ndarray]) -> None:
        with self._cond:
            self._slot = (image, seq, capture_ns, points)
            self._cond.notify()

    def _run(self) -> None:
        import cv2

        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._stop)
                if self._stop:
                    return
                image, seq, capture_ns, points = self._slot
                self._slot = None
            canvas = image.copy()
            height, width = canvas.shape[:2]
            for pts in points:
                for x, y in (pts[:, :2] * (width, height)).astype(int):
                    cv2.circle(canvas, (int(x), int(y)), 2, (0, 255, 0), -1)
            ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                self.publisher.send(encode_preview(PreviewMessage(self.source_id, seq, capture_ns, jpeg.tobytes())))

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=2.0)


class StatusLine:
    """A one-line live report on stderr, refreshed once a second: fps, per-stage ms, drops."""

    def __init__(self, capture: Capture, stream=sys.stderr, period_s: float | None = None) -> None:
        self.capture, self.stream = capture, stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.period_s = period_s or (1.0 if self.tty else 10.0)  # a journal needs fewer lines
        self._recent: deque[FrameTiming] = deque(maxlen=120)
        self._last = time.monotonic()

    def update(self, timing: FrameTiming | None, stats: LoopStats) -> None:
        if timing is not None:
            self._recent.append(timing)
        now = time.monotonic()
        if now - self._last < self.period_s:
            return
        self._last = now
        # On a terminal, rewrite one line; in a log (systemd journal), one line every period.
        if self.tty:
            self.stream.write("\r" + self.render(stats) + "\x1b[K")
        else:
            self.stream.write(self.render(stats) + "\n")
        self.stream.flush()

    def render(self, stats: LoopStats) -> str:
        recent = list(self._recent)
        if len(recent) >= 2:
            span = (recent[-1].capture_ns - recent[0].capture_ns) / 1e9
            fps = (len(recent) - 1) / span if span > 0 else 0.0
        else:
            fps = 0.0
        parts = [f"fps {fps:5.1f}"]
        for stage in STAGES:
            values = [t.stages_ns.get(stage, 0) for t in recent]
            parts.append(f"{stage} {np.median(values) / 1e6 if values else 0:.1f}")
        e2e = [t.publish_ns - t.capture_ns for t in recent]
        parts.append(f"e2e {np.median(e2e) / 1e6 if e2e else 0:.1f} ms")
        cap = self.capture.stats
        parts.append(f"drops {cap.dropped} lost {cap.failures} errors {stats.errors}")
        if self.capture.lost:
            parts.append("SOURCE LOST, retrying")
        return " | ".join(parts)


class EdgeLoop:
    """Owns nothing but the per-frame work; the caller builds and closes capture/stages/publisher."""

    def __init__(
        self,
        capture: Capture,
        landmarks: LandmarkStage,
        publisher: Publisher,
        encoders: EncoderStage | None = None,
        filter_params: OneEuroParams | None = None,  # None: no smoothing
        source_id: str = "edge0",
        max_hands: int = 2,
        preview: Publisher | None = None,
        keep_timings: bool = False,
        status: StatusLine | None = None,
        labels: HysteresisConfig | None = None,  # label hysteresis knobs (defaults: latentcast.hysteresis)
    ) -> None:
        self.capture, self.landmarks, self.publisher, self.encoders = capture, landmarks, publisher, encoders
        self.filters = _Filters(filter_params)
        self.labels = PartLabels(labels)
        self.judges = getattr(encoders, "judges", {})  # part -> PartJudge; stages without a rule have none
        self.source_id, self.max_hands, self.keep_timings, self.status = source_id, max_hands, keep_timings, status
        self.model_id = encoders.model_id if encoders is not None else NO_MODEL
        self.stats = LoopStats()
        self._seq = 0
        self.detector = ConcurrentDetector(landmarks)
        self._preview = PreviewWorker(preview, source_id) if preview is not None else None

    # -------------------------------------------------------------------------------- stages
    def _message(self, frame: Frame, face, hands, marks: dict[str, int]) -> LatentMessage:
        t = frame.t_ns / 1e9
        empty = np.zeros(0, np.float32)
        face_block = FaceBlock()
        hand_blocks = _empty_hand_blocks()
        encoded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        decisions: dict[str, Decision] = {}  # the open-set decision where its inputs are (edge/labels.py)
        if self.encoders is not None:
            if face is not None:
                y, z = self.encoders.encode_face(face.features)
                encoded["face"] = (y[0], z[0])
                if "face" in self.judges:
                    judge = self.judges["face"]
                    decisions["face"] = self.labels.decide("face", judge, judge(face.features, y, z))
            slots = [slot for slot, hand in enumerate(hands) if hand is not None]
            if slots:  # both hands in one call: each call costs more than its arithmetic
                x = np.stack([hands[slot].features for slot in slots])
                y, z = self.encoders.encode_hand(x)
                verdict = self.judges["hands"](x, y, z) if "hands" in self.judges else None
                for row, slot in enumerate(slots):
                    encoded[f"hand{slot}"] = (y[row], z[row])
                    if verdict is not None:
                        decisions[f"hand{slot}"] = self.labels.decide(f"hand{slot}", self.judges["hands"], verdict, row)
        marks["encoder"] = time.perf_counter_ns()
        if face is not None:
            y, z = encoded.get("face", (empty, empty))
            gaze = face.gaze  # smoothed with the head pose: both are continuous
            vec = face.pose if gaze is None else np.concatenate((face.pose, gaze))
            y, z, pose_gaze = self.filters("face", y, z, vec, t)
            gaze = None if gaze is None else pose_gaze[3:]
            face_block = FaceBlock(True, y, z, pose_gaze[:3], decisions.get("face"), gaze)
        else:
            self.filters.reset("face")
            self.labels.reset("face")
        for slot, hand in enumerate(hands):
            part = f"hand{slot}"
            if hand is None:
                self.filters.reset(part)
                self.labels.reset(part)
                continue
            y, z = encoded.get(part, (empty, empty))
            y, z, wrist = self.filters(part, y, z, hand.wrist, t)
            hand_blocks[slot] = HandBlock(True, hand.handedness, y, z, wrist, decisions.get(part))
        marks["filter"] = time.perf_counter_ns()
        tracking = (
            TrackingStatus.OK if face is not None or any(h is not None for h in hands) else TrackingStatus.NO_SUBJECT
        )
        return LatentMessage(self.source_id, self._seq, frame.t_ns, 0, self.model_id, tracking, face_block, hand_blocks)

    def process(self, frame: Frame) -> FrameTiming:
        """One frame through every stage; returns its timing record."""
        t_take = time.monotonic_ns()
        marks = {"start": time.perf_counter_ns()}
        image = frame.image
        size = (image.shape[1], image.shape[0])
        # The trackers keep MediaPipe's video-mode timestamps strictly increasing themselves.
        face_raw, hands_raw = self.detector(image, frame.t_ns // 1_000_000)
        marks["landmarks"] = time.perf_counter_ns()
        face = self.landmarks.face_part(face_raw, size) if face_raw is not None else None
        hands = assign_hand_slots(
            self.landmarks.hand_parts(hands_raw, size) if hands_raw is not None else [], self.max_hands
        )
        marks["features"] = time.perf_counter_ns()
        msg = self._message(frame, face, hands, marks)
        msg.publish_ns = time.monotonic_ns()
        self.publisher.send(encode_latents(msg))
        marks["publish"] = time.perf_counter_ns()
        self.landmarks.idle()  # background detection runs while the loop waits for the next frame
        if self._preview is not None:
            points = ([face.points] if face is not None else []) + [h.points for h in hands if h is not None]
            self._preview.submit(frame.image, self._seq, frame.t_ns, points)
        stages = {"wait": t_take - frame.t_ns}
        stages.update({b: marks[b] - marks[a] for a, b in itertools.pairwise(_MARKS)})
        timing = FrameTiming(
            self._seq,
            frame.index,
            frame.t_ns,
            msg.publish_ns,
            stages,
            face is not None,
            sum(h is not None for h in hands),
        )
        self._seq += 1
        return timing

    def publish_lost(self) -> None:
        """The camera is down: tell renderers (they switch to idle motion) instead of going silent."""
        now = time.monotonic_ns()
        msg = LatentMessage(
            self.source_id, self._seq, now, now, self.model_id, TrackingStatus.SOURCE_LOST, hands=_empty_hand_blocks()
        )
        self.publisher.send(encode_latents(msg))
        self._seq += 1
        self.stats.lost_messages += 1
        self.filters.reset_all()
        self.labels.reset_all()

    # -------------------------------------------------------------------------------- run
    def run(self, max_frames: int | None = None, stop: threading.Event | None = None) -> LoopStats:
        """Until the source ends, `max_frames` frames were published, or `stop` is set."""
        stop = stop or threading.Event()
        while not stop.is_set() and (max_frames is None or self.stats.frames < max_frames):
            frame = self.capture.next(timeout=0.25)
            if frame is None:
                if self.capture.ended:
                    break
                if self.capture.lost:
                    self.publish_lost()
                if self.status is not None:
                    self.status.update(None, self.stats)
                continue
            try:
                timing = self.process(frame)
            except (ValueError, RuntimeError) as exc:  # a bad frame must not kill a device service
                self.stats.errors += 1
                log.warning("frame %d skipped (%d errors so far): %s", frame.index, self.stats.errors, exc)
                continue
            self.stats.frames += 1
            if self.keep_timings:
                self.stats.timings.append(timing)
            if self.status is not None:
                self.status.update(timing, self.stats)
        return self.stats

    def close(self) -> None:
        self.detector.close()
        if self._preview is not None:
            self._preview.close()
