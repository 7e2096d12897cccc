"""Issue 11, item 6: bad input gives one line and a non-zero exit, never a traceback or a silent success.

Every case runs the real CLI in a subprocess, as a user (or systemd) would meet it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from helpers import one_line_error

from latentcast.assets import resolve

ROOT = Path(__file__).resolve().parents[1]
CLIP = "data/video/hand_landmarker_test_video.mp4"
PHOTO = "data/images/hands/hand_thumb_up.jpg"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=env)  # fmt: skip


def edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return cli("edge.run", "--quiet", *args, timeout=timeout)


# -- renderer ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--endpoint", "garbage"], "--endpoint 'garbage' is not an endpoint"),
        (["--endpoint", "tcp://*:5555"], "is not an endpoint"),
        (["--size", "0x0"], "--size '0x0'"),
        (["--size", "640x-1"], "--size"),
        (["--duration", "-1"], "--duration -1"),
        (["--exit-after-silence", "0"], "--exit-after-silence 0"),
        (["--curve-client-key", "renderer.key_secret"], "needs both"),
        (["--curve-server-key", "missing.key", "--curve-client-key", "missing.key_secret"], "missing.key not found"),
    ],
)
def test_renderer_rejects_bad_arguments_in_one_line(args, needle, tmp_path):
    one_line_error(cli("renderer.run", "--out", str(tmp_path / "frames"), "--frames", "1", *args), needle)


# -- edge sources -----------------------------------------------------------------------------
@pytest.mark.parametrize("uri", ["rtsp://camera.local/stream", "http://camera.local/video.mjpg"])
def test_network_stream_uri_says_unsupported_scheme(uri):
    one_line_error(edge("--source", uri, "--frames", "1"), "unsupported scheme")


def test_text_file_as_image_and_folder_of_fake_images_fail_the_job(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    one_line_error(edge("--source", str(text), "--frames", "5"), "no readable frame")
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    for i in range(3):
        (fakes / f"{i:03d}.png").write_bytes(b"\x89PNG but not really" * i)
    one_line_error(edge("--source", str(fakes), "--frames", "5"), "no readable frame")


def test_nonexistent_camera_index_fails_within_the_open_timeout(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("[source]\nopen_timeout_s = 1.0\n")
    start = time.monotonic()
    result = edge("--config", str(config), "--source", "57", "--frames", "5", timeout=60)
    one_line_error(result, "57", "not opened within 1 s")
    assert time.monotonic() - start < 30  # bounded, not forever
    assert "retrying" in result.stderr  # the backoff ran before giving up


@pytest.mark.slow
def test_source_deleted_mid_run_exits_non_zero(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(40):
        shutil.copyfile(resolve(PHOTO), folder / f"{i:03d}.jpg")
    config = tmp_path / "edge.toml"
    config.write_text("[source]\nfps = 5.0\n[parts]\nface = false\n")
    proc = subprocess.Popen([sys.executable, "-m", "edge.run", "--quiet", "--config", str(config), "--source",
                             str(folder)], cwd=ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(4.0)  # a few frames published, most still to come
    shutil.rmtree(folder)
    _, err = proc.communicate(timeout=60)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", err)
    one_line_error(result, "disappeared", "after")


@pytest.mark.slow
def test_corrupt_task_in_a_bundle_closes_the_other_tracker_without_tracebacks(tmp_path):
    from edge.landmarks import FACE_MODEL_KEY, HAND_MODEL_KEY
    from latentcast import bundle as reader
    from latentcast.features import FEATURE_SPEC_VERSION

    root = tmp_path / "latentcast-bundle-corrupt"
    (root / "landmarks").mkdir(parents=True)
    shutil.copyfile(resolve(FACE_MODEL_KEY), root / reader.LANDMARK_FILES["face"])
    damaged = root / reader.LANDMARK_FILES["hand"]
    with zipfile.ZipFile(resolve(HAND_MODEL_KEY)) as good, zipfile.ZipFile(damaged, "w") as bad:
        for info in good.infolist():  # the right members, each cut to a third: a damaged download
            data = good.read(info)
            bad.writestr(info.filename, data[: len(data) // 3])
    manifest = {"format": reader.FORMAT, "format_version": reader.FORMAT_VERSION, "version": "corrupt", "models": {},
                "feature_spec_version": FEATURE_SPEC_VERSION, "files": reader.file_entries(root)}  # fmt: skip
    (root / reader.MANIFEST).write_text(json.dumps(manifest))
    result = edge("--bundle", str(root), "--source", f"file://{resolve(CLIP)}", "--frames", "3", "--fast")
    one_line_error(result, "hand model", "hand_landmarker.task")
    assert "Exception ignored" not in result.stderr


# -- edge.record ------------------------------------------------------------------------------
def test_record_refuses_text_and_fake_images_and_an_existing_session_without_force(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    out = tmp_path / "s.npz"
    one_line_error(cli("edge.record", "record", str(text), "-o", str(out), "--no-progress"), "no readable frame")
    assert not out.exists()
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (fakes / "a.png").write_bytes(b"not a png")
    one_line_error(cli("edge.record", "record", str(fakes), "-o", str(out), "--no-progress"), "no readable frame")
    photo = resolve(PHOTO)
    first = cli("edge.record", "record", str(photo), "-o", str(out), "--no-progress", "--no-face")
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    again = cli("edge.record", "record", str(photo), "-o", str(out), "--no-progress", "--no-face")
    one_line_error(again, "already exists", "--force")
    assert out.read_bytes() == before  # untouched (it used to be overwritten silently)
    forced = cli("edge.record", "record", str(photo), "-o", str(out), "--no-progress", "--no-face", "--force")
    assert forced.returncode == 0, forced.stderr
