"""Where rendered frames go: a window when a display exists, else an MP4 file or numbered PNGs.

Named by target like jetson-inference's video outputs: ``display://0`` (a window), ``*.mp4`` /
``*.avi`` (OpenCV VideoWriter with mp4v / MJPG; OpenCV cannot write H.264), or a folder for PNG
frames. `open_output(None)` picks a window when a display exists, otherwise nothing.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from latentcast.errors import UserError

log = logging.getLogger(__name__)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class FrameOutput:
    """Base: write frames, close. `closed_by_user` turns true when a window is closed with q/Esc."""

    closed_by_user = False
    frames = 0

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class VideoFileOutput(FrameOutput):
    """MP4 (mp4v) or AVI (MJPG) at a constant rate that keeps real time; size fixed by the first frame.

    Frames arrive when messages do (irregularly); a video file has fixed slots. Each frame fills
    the slots up to now (repeating it when frames were late, skipping it when a newer one already
    took its slot), so the video plays back at the speed the session happened.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self.writer = None
        self.t0: float | None = None

    def write(self, frame: np.ndarray) -> None:
        import cv2

        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = int((now - self.t0) * self.fps) + 1  # slots that should be filled by now
        if due <= self.frames:
            return

        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            h, w = frame.shape[:2]
            self.writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise UserError(f"cannot write video {self.path}: check the folder is writable (mp4v/MJPG codecs)")
        for _ in range(due - self.frames):
            self.writer.write(frame)
        self.frames = due

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            log.info("wrote %d frames to %s", self.frames, self.path)


class PngFolderOutput(FrameOutput):
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, frame: np.ndarray) -> None:
        import cv2

        cv2.imwrite(str(self.folder / f"frame_{self.frames:06d}.png"), frame)
        self.frames += 1


class WindowOutput(FrameOutput):
    def __init__(self, title: str = "latentcast") -> None:
        self.title = title

    def write(self, frame: np.ndarray) -> None:
        import cv2

        cv2.imshow(self.title, frame)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.closed_by_user = True
        self.frames += 1

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


def open_output(target: str | None, fps: float) -> FrameOutput | None:
    """`display://0`, a .mp4/.avi path, a folder (PNG frames), or None (a window if a display exists)."""
    if target is None:
        return WindowOutput() if has_display() else None
    if target.startswith("display://"):
        if not has_display():
            raise UserError("no display here (DISPLAY is unset): write to a file instead, e.g. --out runs/out.mp4")
        return WindowOutput()
    path = Path(target)
    if path.suffix.lower() in (".mp4", ".avi"):
        return VideoFileOutput(path, fps)
    if path.suffix:
        raise UserError(f"--out {target}: use a .mp4 or .avi file, a folder for PNG frames, or display://0")
    return PngFolderOutput(path)
