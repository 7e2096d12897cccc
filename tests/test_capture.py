"""Video sources by URI: the real hand clip and photos, and camera loss with a fake camera device."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from edge.capture import Capture, ImageListReader, OpenCVReader, SourceSettings, csi_pipeline, open_reader
from latentcast.assets import resolve
from latentcast.errors import UserError

CLIP = "data/video/hand_landmarker_test_video.mp4"


def test_file_uri_reads_the_real_clip_every_frame_when_fast():
    reader = open_reader(f"file://{resolve(CLIP)}")
    assert isinstance(reader, OpenCVReader) and not reader.live
    with Capture(reader, pace="fast") as cap:
        frames = []
        while (frame := cap.next(timeout=2.0)) is not None:
            frames.append(frame)
    assert len(frames) > 150  # 8 s of video
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in frames] == list(range(len(frames)))
    assert cap.stats.dropped == 0 and cap.ended


def test_native_pace_plays_at_the_file_rate_and_counts_drops():
    reader = open_reader(str(resolve(CLIP)))
    with Capture(reader, pace="native") as cap:
        time.sleep(1.0)  # the loop is "busy": frames pile up in the one slot and get replaced
        first = cap.next(timeout=1.0)
        got = [cap.next(timeout=1.0) for _ in range(10)]
    assert reader.fps > 10
    assert first is not None and all(f is not None for f in got)
    assert cap.stats.dropped >= int(0.5 * reader.fps)  # ~1 s of frames replaced unseen
    # native pacing: 10 consecutive frames span about 9 frame periods
    span_s = (got[-1].t_ns - got[0].t_ns) / 1e9
    assert 0.5 * 9 / reader.fps < span_s < 3 * 9 / reader.fps


def test_image_folder_source_reads_photos_in_name_order(tmp_path):
    for key in ("data/images/hands/hand_victory.jpg", "data/images/faces/testImg.jpeg"):
        shutil.copy(resolve(key), tmp_path / resolve(key).name)
    (tmp_path / "notes.txt").write_text("not an image")
    reader = open_reader(str(tmp_path))
    assert isinstance(reader, ImageListReader)
    with Capture(reader, pace="fast") as cap:
        frames = [cap.next(2.0), cap.next(2.0), cap.next(2.0)]
    assert frames[0] is not None and frames[1] is not None and frames[2] is None
    assert [p.name for p in reader.paths] == ["hand_victory.jpg", "testImg.jpeg"]


def test_a_long_run_of_unreadable_images_is_skipped_not_fatal(tmp_path):
    for i in range(1500):  # more than Python's default recursion limit
        (tmp_path / f"a{i:04d}.jpg").write_bytes(b"not a jpeg")
    shutil.copy(resolve("data/images/faces/testImg.jpeg"), tmp_path / "z.jpeg")
    reader = ImageListReader(sorted(tmp_path.iterdir()), SourceSettings())
    reader.open()
    image = reader.read()
    assert image is not None and image.shape[2] == 3
    assert reader.read() is None


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("csi://front", "csi://N"),
        ("v4l2://video0", "v4l2:///dev/videoN"),
        ("file:///no/such/clip.mp4", "not found"),
    ],
)
def test_bad_uris_are_user_errors(uri, message):
    with pytest.raises(UserError, match=message):
        open_reader(uri)


def test_csi_pipeline_keeps_only_the_newest_buffer():
    pipeline = csi_pipeline(1, SourceSettings(width=1920, height=1080, fps=30))
    assert "nvarguscamerasrc sensor-id=1" in pipeline and "width=1920" in pipeline
    assert pipeline.endswith("appsink drop=1 max-buffers=1")


class FakeCameraDevice:
    """Stands in for the camera hardware (none exists here): it dies after `fail_after` frames,
    refuses `refusals` reopen attempts, then works again."""

    live = True
    fps = 100.0

    def __init__(self, fail_after: int, refusals: int) -> None:
        self.fail_after, self.refusals = fail_after, refusals
        self.opens = 0
        self.served = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1 and self.refusals > 0:
            self.refusals -= 1
            raise OSError("fake camera device unplugged")
        self.is_open = True

    def read(self):
        time.sleep(0.01)
        if self.served == self.fail_after and self.opens == 1:
            return None  # the device fails mid-stream
        self.served += 1
        return np.full((48, 64, 3), self.served % 256, np.uint8)

    def close(self) -> None:
        self.is_open = False


def test_fake_camera_device_lost_mid_stream_is_retried_with_backoff_and_recovers():
    device = FakeCameraDevice(fail_after=5, refusals=3)
    cap = Capture(device, backoff_s=(0.02, 0.1)).start()
    seen_lost = False
    frames = []
    deadline = time.monotonic() + 10
    while len(frames) < 15 and time.monotonic() < deadline:
        frame = cap.next(timeout=0.05)
        seen_lost |= cap.lost
        if frame is not None:
            frames.append(frame)
    cap.stop()
    assert len(frames) == 15, "capture did not recover after the fake camera came back"
    assert seen_lost
    assert cap.stats.failures == 1 and cap.stats.reconnects == 1
    assert device.opens == 1 + 3 + 1  # first open, three refused retries, the one that worked
    assert not cap.lost and not device.is_open


def test_fake_camera_device_missing_at_start_reports_lost_until_it_appears():
    device = FakeCameraDevice(fail_after=-1, refusals=0)
    attempts = []

    def open_late() -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise OSError("fake camera device not plugged in yet")

    device.open = open_late
    cap = Capture(device, backoff_s=(0.05, 0.1)).start()
    lost_seen = False
    deadline = time.monotonic() + 5
    frame = None
    while frame is None and time.monotonic() < deadline:
        lost_seen |= cap.lost
        frame = cap.next(timeout=0.02)
    cap.stop()
    assert lost_seen and frame is not None and not cap.lost and len(attempts) == 4
