"""Tracking with detection off the critical path: the landmark model follows what it already has,
a background worker looks for new or lost subjects at a bounded rate.

MediaPipe's VIDEO mode runs the detector on every frame while fewer than `num_hands` hands are
tracked, so one visible hand with num_hands=2 pays for palm detection every frame, and an empty
scene pays for it too. Here:
- nothing tracked: detect inline on the first frame and on the frame after a subject was lost
  (it is probably still there); otherwise the scene is empty and detection goes to the background
  worker like below, so a part with nothing in view costs the loop nothing;
- something tracked but fewer than the maximum: the frame is offered to `DetectorWorker`, which
  runs at most once per `interval_s` on its own thread and never queues (a busy or too-early
  worker just skips the frame); its ROIs join the tracks on a later frame, except those that
  overlap a tracked ROI (IoU above `min_tracking_confidence`, MediaPipe's association rule);
- the worker holds an offered frame until the loop has published that frame (`idle()`, called by
  the edge loop after each frame) or `interval_s` passed: on a 2-core device a detection that
  starts at once competes with the landmark models and the loop's own work for the two cores, one
  that starts after the publish runs in the time the loop waits for the next camera frame;
- everything tracked: no detection at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edge.onnx_landmarks.anchors import iou
from edge.onnx_landmarks.roi import Roi

log = logging.getLogger(__name__)

DetectFn = Callable[[np.ndarray, int], list[Roi]]  # (rgb, max count) -> ROIs


class DetectorWorker:
    """One background thread, one pending frame at most, one result slot (newest wins).

    A pending frame starts when `idle()` says the loop is done with its frame, or `interval_s` after
    it was offered, whichever comes first (a caller that never calls `idle()` still gets detections).
    """

    def __init__(self, detect: DetectFn, max_count: int, interval_s: float, name: str) -> None:
        self.detect, self.max_count, self.interval_s = detect, max_count, interval_s
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._result: list[Roi] | None = None
        self._busy = False
        self._stop = False
        self._go = False  # the loop is idle: start the pending frame now
        self._last_start = -float("inf")
        self.runs = 0
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=f"{name}-detector", daemon=True)
        self._thread.start()

    def offer(self, rgb: np.ndarray) -> bool:
        """Hand a frame over if the worker is idle and the rate allows; never blocks. True if taken."""
        with self._cond:
            now = time.monotonic()
            if self._busy or self._frame is not None or now - self._last_start < self.interval_s:
                return False
            self._frame, self._last_start = rgb, now
            self._cond.notify()
            return True

    def idle(self) -> None:
        """The loop has published its frame: a pending detection may take the CPU now."""
        with self._cond:
            if self._frame is not None:
                self._go = True
                self._cond.notify()

    def take(self) -> list[Roi] | None:
        """The newest finished result (once), or None."""
        with self._cond:
            result, self._result = self._result, None
            return result

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._frame is not None or self._stop)
                hold = self._last_start + self.interval_s - time.monotonic()
                self._cond.wait_for(lambda: self._go or self._stop, timeout=max(0.0, hold))
                if self._stop:
                    return
                frame, self._frame, self._busy, self._go = self._frame, None, True, False
            try:
                rois = self.detect(frame, self.max_count)
            except Exception as exc:  # a detector failure must not kill tracking; counted and logged
                self.errors += 1
                log.warning("background detection failed (%d so far): %s", self.errors, exc)
                rois = None
            with self._cond:
                self._busy = False
                self.runs += 1
                if rois is not None:
                    self._result = rois

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=5.0)


def merge(tracked: list[Roi], detected: list[Roi], threshold: float, max_count: int) -> list[Roi]:
    """Tracked ROIs first, then detected ones that overlap none of them (IoU > threshold), up to max_count."""
    out = list(tracked)
    for roi in detected:
        if all(iou(roi.box(), kept.box()) <= threshold for kept in out):
            out.append(roi)
    return out[:max_count]


class RoiTracker:
    """Which ROIs the landmark model runs on this frame; `update` feeds back the next-frame ROIs."""

    def __init__(
        self,
        detect: DetectFn,
        max_count: int,
        min_tracking_confidence: float = 0.5,
        interval_s: float = 0.1,
        background: bool = True,
        name: str = "roi",
    ) -> None:
        self.detect, self.max_count, self.threshold = detect, max_count, min_tracking_confidence
        self.tracks: list[Roi] = []
        self.inline_detections = 0
        self._inline_next = True  # the first frame, and the first after a loss, detect inline
        self.worker = DetectorWorker(detect, max_count, interval_s, name) if background else None

    def rois(self, rgb: np.ndarray, video: bool = True) -> list[Roi]:
        if not video:
            return self.detect(rgb, self.max_count)
        if not self.tracks:
            if self.worker is None or self._inline_next:
                self._inline_next = False
                self.inline_detections += 1
                if self.worker is not None:
                    self.worker.take()  # stale: from before the subject was lost
                return self.detect(rgb, self.max_count)
            found = self.worker.take()  # an empty scene: look in the background, at the bounded rate
            if found:
                return found[: self.max_count]
            self.worker.offer(rgb)
            return []
        rois = list(self.tracks)
        if self.worker is not None:
            found = self.worker.take()
            if found:
                rois = merge(rois, found, self.threshold, self.max_count)
            if len(rois) < self.max_count:
                self.worker.offer(rgb)
        return rois

    def update(self, next_rois: list[Roi]) -> None:
        if self.tracks and not next_rois:
            self._inline_next = True  # just lost: look again at once, the subject is probably still there
        self.tracks = list(next_rois)[: self.max_count]

    def reset(self) -> None:
        self.tracks = []

    def idle(self) -> None:
        """The loop has published its frame (see `DetectorWorker.idle`)."""
        if self.worker is not None:
            self.worker.idle()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
