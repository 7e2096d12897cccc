"""Video sources named by URI (as jetson-inference does), read in their own thread, newest frame wins.

    csi://0                 CSI camera via GStreamer nvarguscamerasrc ... ! appsink drop=1 max-buffers=1
    v4l2:///dev/video0      a V4L2 (USB) camera; a bare index like `0` works too
    file://clip.mp4         a video file (relative after file://, or file:///abs/path.mp4)
    photo.jpg / folder/     one image, or a folder of images in name order

Why a thread: the loop must never wait on the camera nor process a stale frame. The reader
thread keeps exactly one slot; a frame that was replaced before the loop took it is counted as
dropped. Files play at their native rate (pace="native", frames can drop like a camera) or in
lock-step as fast as the loop can take them (pace="fast", no drops: for benchmarks and batch
runs). A live camera that fails is closed and reopened with exponential backoff; while it is down
`lost` is true so the loop can publish a tracking-lost status, and it recovers by itself.

A source that never worked is a mistake, not an outage: a camera that cannot be opened within
`open_timeout_s` of the start, a file or folder that yields no readable frame, or a file that
disappears mid-run sets `Capture.error` and ends the source, so `edge.run` exits non-zero (and
systemd's Restart=on-failure applies its own backoff).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from latentcast.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SCHEMES = ("csi", "v4l2", "file")  # rtsp://, http://, ... are refused by name, not reported "not found"


@dataclass
class Frame:
    image: np.ndarray  # HxWx3 uint8, BGR (OpenCV order)
    index: int  # running count of frames the source produced (gaps = drops)
    t_ns: int  # time.monotonic_ns() when the frame became available


@dataclass
class SourceSettings:
    """The `[source]` section of the edge config (edge/config.py): what to open and how to read it."""

    uri: str = "csi://0"  # csi://N, v4l2:///dev/videoN, a camera index, file://clip.mp4, an image or a folder
    width: int = 1280
    height: int = 720
    fps: float = 30.0  # camera request; also the rate for image sources and files without one
    pace: str = "native"  # "native" or "fast" (files and images only)
    loop: bool = False  # restart files / image lists at the end
    open_timeout_s: float = 10.0  # a camera not opened within this long of the start is an error (then: exit)


class FrameReader(Protocol):
    """The small interface every source implements; the camera device is the only thing tests fake."""

    live: bool  # a camera: failures are retried. Not live: a failed read means the end.
    fps: float  # native frame rate

    def open(self) -> None: ...  # raise OSError when the device/file cannot be opened

    def read(self) -> np.ndarray | None: ...  # None: end of file or the device failed

    def close(self) -> None: ...


class OpenCVReader:
    """cv2.VideoCapture on a GStreamer pipeline, a V4L2 device, a camera index or a video file."""

    def __init__(self, target: str | int, api: int | None, live: bool, settings: SourceSettings) -> None:
        self.target, self.api, self.live, self.settings = target, api, live, settings
        self.fps = settings.fps
        self._cap = None

    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.target, self.api) if self.api is not None else cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open video source {self.target!r}")
        if self.live and self.api != cv2.CAP_GSTREAMER:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height)
            cap.set(cv2.CAP_PROP_FPS, self.settings.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        native = cap.get(cv2.CAP_PROP_FPS)
        if native and 1.0 <= native <= 1000.0:
            self.fps = float(native)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageListReader:
    """One image or a folder of images, in name order, at `settings.fps`."""

    live = False

    def __init__(self, paths: list[Path], settings: SourceSettings) -> None:
        self.paths, self.fps = paths, settings.fps
        self._next = 0

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        import cv2

        while self._next < len(self.paths):  # a loop, not recursion: a long run of bad files is fine
            path = self.paths[self._next]
            self._next += 1
            if not path.exists():
                raise OSError(f"image {path} disappeared while the source was being read")
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            log.warning("skipping unreadable image %s", path)
        return None

    def close(self) -> None:
        pass


def csi_pipeline(sensor_id: int, settings: SourceSettings) -> str:
    """The Jetson CSI pipeline: hardware ISP -> BGR appsink that keeps only the newest buffer."""
    fps = round(settings.fps)
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={settings.width}, height={settings.height}, framerate={fps}/1 ! "
        "nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
        "appsink drop=1 max-buffers=1"
    )


def uri_path(uri: str) -> Path:
    """The file or folder a non-camera source URI names (`file://` optional, `~` expanded)."""
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()


def open_reader(uri: str, settings: SourceSettings | None = None) -> FrameReader:
    """Turn a source URI into a reader (not yet opened). Unknown or missing sources are a UserError."""
    import cv2

    settings = settings or SourceSettings()
    uri = str(uri).strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme and scheme not in SCHEMES:
        raise UserError(
            f"source {uri!r}: unsupported scheme {scheme}://: use csi://N, v4l2:///dev/videoN, a camera index, "
            "file://clip.mp4, an image or a folder (network streams are not read directly)"
        )
    if uri.startswith("csi://"):
        sensor = uri[len("csi://") :]
        if not sensor.isdigit():
            raise UserError(f"source {uri!r}: a CSI camera is csi://N with N the sensor number, e.g. csi://0")
        return OpenCVReader(csi_pipeline(int(sensor), settings), cv2.CAP_GSTREAMER, True, settings)
    if uri.startswith("v4l2://"):
        device = uri[len("v4l2://") :]
        if not device.startswith("/dev/"):
            raise UserError(f"source {uri!r}: a V4L2 camera is v4l2:///dev/videoN")
        return OpenCVReader(device, cv2.CAP_V4L2, True, settings)
    if uri.isdigit():
        return OpenCVReader(int(uri), None, True, settings)
    path = uri_path(uri)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UserError(f"source {uri!r}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return ImageListReader(images, settings)
    if not path.is_file():
        raise UserError(f"source {uri!r} not found: give csi://N, v4l2:///dev/videoN, a camera index, a file or folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageListReader([path], settings)
    return OpenCVReader(str(path), cv2.CAP_FFMPEG, False, settings)


@dataclass
class CaptureStats:
    produced: int = 0  # frames read from the source
    taken: int = 0  # frames the loop took
    dropped: int = 0  # frames replaced before the loop took them
    failures: int = 0  # times a live source failed
    reconnects: int = 0  # times it came back


class Capture:
    """Runs a FrameReader in a daemon thread; `next()` hands out the newest frame exactly once."""

    def __init__(
        self,
        reader: FrameReader,
        pace: str = "native",
        loop: bool = False,
        backoff_s: tuple[float, float] = (0.1, 2.0),
        open_timeout_s: float = SourceSettings.open_timeout_s,
    ) -> None:
        if pace not in ("native", "fast"):
            raise UserError(f'source.pace must be "native" or "fast", got {pace!r}')
        self.reader, self.pace, self.loop, self.backoff_s = reader, pace, loop, backoff_s
        self.open_timeout_s = open_timeout_s
        self._ever_opened = False
        self.stats = CaptureStats()
        self.lost = False  # a live source is down and being retried
        self.ended = False  # a file or image list is finished (and not looping)
        self.error: str | None = None
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    # ---- reader thread -------------------------------------------------------------------------
    def _open_with_retry(self) -> bool:
        delay, start = self.backoff_s[0], time.monotonic()
        while not self._stop.is_set():
            try:
                self.reader.open()
                self.lost = False
                self._ever_opened = True
                return True
            except OSError as exc:
                if not self.reader.live:
                    self.error = str(exc)
                    return False
                if not self._ever_opened and time.monotonic() - start >= self.open_timeout_s:
                    self.error = f"{exc}; not opened within {self.open_timeout_s:g} s of the start"
                    return False
                self.lost = True  # also at start: renderers hear "source lost", not silence
                log.warning("source unavailable (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
        return False

    def _publish(self, image: np.ndarray) -> None:
        with self._cond:
            if self.pace == "fast":
                while self._slot is not None and not self._stop.is_set():
                    self._cond.wait(0.1)
            elif self._slot is not None:
                self.stats.dropped += 1
            self._slot = Frame(image, self.stats.produced, time.monotonic_ns())
            self.stats.produced += 1
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._read_until_stopped()
        finally:
            self.reader.close()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _read_until_stopped(self) -> None:
        if not self._open_with_retry():
            return
        start_ns, played = time.monotonic_ns(), 0
        while not self._stop.is_set():
            if self.pace == "native" and not self.reader.live:
                # Wait first, then decode, as a camera delivers: decoding the next frame right
                # after handing one out would compete with the loop for the CPU while it works.
                due_ns = start_ns + int(played * 1e9 / self.reader.fps)
                wait_s = (due_ns - time.monotonic_ns()) / 1e9
                if wait_s > 0 and self._stop.wait(wait_s):
                    return
            try:
                image = self.reader.read()
            except OSError as exc:  # e.g. a file of an image list deleted mid-run
                if not self.reader.live:
                    self.error = str(exc)
                    return
                image = None
            if image is None:
                if self.reader.live:
                    self.stats.failures += 1
                    self.lost = True
                    log.warning("source lost; reconnecting")
                    self.reader.close()
                    if not self._open_with_retry():
                        return
                    self.stats.reconnects += 1
                    log.info("source back after %d failure(s)", self.stats.failures)
                    continue
                if played == 0:
                    self.error = "no readable frame in the source (not an image or video, or every file is damaged)"
                    return
                if not self.loop:
                    return
                self.reader.close()
                if not self._open_with_retry():
                    return
                continue
            played += 1
            self._publish(image)

    # ---- loop side -----------------------------------------------------------------------------
    def next(self, timeout: float = 0.5) -> Frame | None:
        """The newest frame not yet taken; None after `timeout` s, or at once when the source ended."""
        with self._cond:
            if self._slot is None and not self.ended:
                self._cond.wait_for(lambda: self._slot is not None or self.ended, timeout)
            frame, self._slot = self._slot, None
            if frame is not None:
                self.stats.taken += 1
                self._cond.notify_all()
            return frame

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
