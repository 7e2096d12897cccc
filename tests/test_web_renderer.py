"""The browser renderer in a real browser: Debian's chromium (headless, SwiftShader WebGL) driven by Playwright.

The host side is the real `renderer.web.WebRenderer` (HTTP + WebSocket on a free localhost port);
the page loads three.js and three-vrm from `renderer/web/node_modules` (`npm ci` in scripts/setup.sh)
and the generated default avatar. Poses are published as the render loop does, 30 times a second,
and the checks read screenshots (pixels) and the page's own state. Skipped, with the reason, where
chromium or the npm modules are missing (CI installs both: .ci/run and scripts/setup.sh).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port

from renderer.default_avatar import write
from renderer.params import CharacterParams, FaceParams, HandParams
from renderer.pose import PoseConfig
from renderer.web import CHROMIUM_ARGS, WEB_DIR, WebConfig, WebRenderer, frame_message

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(not (WEB_DIR / "node_modules" / "three").is_dir(), reason="needs `npm ci` in renderer/web"),
]

REST = CharacterParams(
    face=FaceParams(present=1),
    left_hand=HandParams(present=1, wrist_x=0.7, wrist_y=0.85),
    right_hand=HandParams(present=1, wrist_x=0.3, wrist_y=0.85),
)
ACTION = CharacterParams(
    face=FaceParams(present=1, yaw=0.5, pitch=0.2, mouth_open=1.0, blink_left=1.0),
    left_hand=HandParams(present=1, wrist_x=0.85, wrist_y=0.2, curls=(1, 1, 1, 1, 1)),
    right_hand=HandParams(present=1, wrist_x=0.2, wrist_y=0.5, curls=(0, 0, 0, 0, 0)),
)


class Stream:
    """Publishes `self.params` at 30 fps from a thread, as the renderer loop would."""

    def __init__(self, web: WebRenderer) -> None:
        self.web, self.params, self.running = web, REST, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            self.web.publish(self.params, time.monotonic_ns() / 1e6)  # captured "now" on this host's clock
            time.sleep(1 / 30)

    def stop(self) -> None:
        self.running = False
        self.thread.join(2.0)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh --user-data-dir
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport={"width": 480, "height": 400},
        )  # fmt: skip
        yield context
        context.close()


@pytest.fixture
def web():
    w = WebRenderer(WebConfig(port=0, mirror=True)).start()
    yield w
    w.close()


def _open(browser, web):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"http://127.0.0.1:{web.port}/")
    page.wait_for_function("window.__latentcast && window.__latentcast.vrm !== null", timeout=60_000)
    return page, errors


def _shot(page, streaming: bool = True) -> np.ndarray:
    """A screenshot after the page drew 3 more frames (and got new messages while `streaming`): a loaded
    host draws slowly, and a screenshot alone may show an old frame."""
    import cv2

    time.sleep(0.5)
    state = "[window.__latentcast.frames, window.__latentcast.messages]"
    frames, messages = page.evaluate(state)
    page.wait_for_function(
        f"window.__latentcast.frames >= {frames + 3} && window.__latentcast.messages > {messages if streaming else -1}",
        timeout=30_000,
    )
    image = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    return image.astype(np.float32)


def _avatar_area(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return image[int(0.12 * h) : int(0.88 * h), int(0.1 * w) : int(0.9 * w)]  # no badge, no overlay text


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(_avatar_area(a) - _avatar_area(b)).mean())


def test_the_avatar_follows_the_stream_and_shows_tracking_lost_when_it_stops(browser, web, tmp_path):
    page, errors = _open(browser, web)
    stream = Stream(web)
    try:
        page.wait_for_function("window.__latentcast.tracking === 'tracking'", timeout=20_000)
        rest = _shot(page)
        background = np.array([240, 230, 223], np.float32)  # #dfe6f0 as BGR
        figure = np.abs(_avatar_area(rest) - background).sum(axis=2) > 40
        assert figure.mean() > 0.05, "WebGL drew no avatar"  # SwiftShader renders: the figure is there
        stream.params = ACTION
        action = _shot(page)
        stream.params = REST
        back = _shot(page)
        (tmp_path / "rest.png").write_bytes(page.screenshot())
    finally:
        stream.stop()
    assert _diff(rest, action) > 4.0 * max(_diff(rest, back), 0.3), (_diff(rest, action), _diff(rest, back))
    badge = rest[20:30, 18:40].mean(axis=(0, 1))  # BGR of the tracking badge
    assert badge[1] > badge[2] + 40, "the badge is not green while tracked"
    page.wait_for_function("window.__latentcast.tracking === 'lost'", timeout=5_000)
    lost = _shot(page, streaming=False)
    assert page.inner_text("#status") == "tracking lost"
    badge = lost[20:30, 18:40].mean(axis=(0, 1))
    assert badge[2] > badge[1] + 60, "the badge is not red after the stream stopped"
    # The page measured capture -> its frame on the host's clock and reported it back.
    latencies = list(web.browser_latency_ms)
    assert len(latencies) > 10 and 0.0 <= float(np.median(latencies)) < 1000.0
    assert web.summary()["capture_to_browser_frame"]["count"] == len(latencies)
    assert not errors, errors
    page.close()


def test_a_dropped_vrm0_avatar_is_posed_like_the_default_one(browser, web, tmp_path):
    """Drop a VRM 0.x file (the same figure, facing -Z) on the page: the same pose must look the same."""
    page, errors = _open(browser, web)
    stream = Stream(web)
    stream.params = ACTION
    try:
        page.wait_for_function("window.__latentcast.tracking === 'tracking'", timeout=20_000)
        v1 = _shot(page)
        data = base64.b64encode(write(tmp_path / "mine.vrm", "0.x").read_bytes()).decode()
        page.evaluate(
            """(b64) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], 'mine.vrm'));
                window.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
            }""",
            data,
        )
        page.wait_for_function("window.__latentcast.avatar === 'mine.vrm'", timeout=30_000)
        assert page.evaluate("window.__latentcast.vrm0") is True
        v0 = _shot(page)
    finally:
        stream.stop()
    assert _diff(v1, v0) < 2.0, _diff(v1, v0)  # posed and facing the camera exactly as the 1.0 avatar
    assert not errors, errors
    page.close()


def test_a_slow_client_does_not_grow_the_hosts_memory(web):
    """A client that never reads after the handshake: frames are skipped (latest value), never queued."""

    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10.0)
    sock.connect(("127.0.0.1", web.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)  # the handshake only; from here on this client reads nothing
    assert response.startswith(b"HTTP/1.1 101")
    try:
        for _ in range(300):  # warm up: the buffers fill, allocations settle
            web.publish(ACTION, 0.0)
        time.sleep(0.3)
        before, sent_before = rss_mb(), web.sent
        n = 3000
        for _ in range(n):
            web.publish(ACTION, 0.0)
        time.sleep(0.5)
        grown = rss_mb() - before
    finally:
        sock.close()
    assert web.clients == 1 and web.published == n + 300
    assert web.sent - sent_before < 50, (web.sent, sent_before)  # the stalled client got none of the n: skipped
    size = len(json.dumps(frame_message(ACTION, 1, 0.0, True, PoseConfig())))
    assert grown < 0.25 * n * size / 2**20, f"host memory grew {grown:.1f} MB"  # queueing would add n * size


def test_a_frozen_page_is_sent_only_the_newest_frames(browser, web):
    """A real page whose main thread is blocked: the host does not grow, the page catches up to the newest."""

    def rss_mb() -> float:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    page, errors = _open(browser, web)
    stream = Stream(web)
    try:
        page.wait_for_function("window.__latentcast.tracking === 'tracking'", timeout=20_000)
        page.evaluate("setTimeout(() => { const end = Date.now() + 6000; while (Date.now() < end) {} }, 0)")
        time.sleep(0.5)  # the page is now frozen for ~6 s
        before, sent_before, published_before = rss_mb(), web.sent, web.published
        for _ in range(3000):  # far faster than any page draws: ~9 MB if it were queued
            web.publish(ACTION, time.monotonic_ns() / 1e6)
        grown = rss_mb() - before
        sent = web.sent - sent_before
        published = web.published - published_before
        page.wait_for_function(f"window.__latentcast.messages > 0 && window.__latentcast.lastSeq >= {web.published}",
                               timeout=30_000)  # fmt: skip
    finally:
        stream.stop()
    # Chromium's network process takes several MB before TCP pushes back (the raw-client test above
    # shows the host side alone); the host itself stays flat and the page ends on the newest frame.
    assert published >= 3000 and sent <= published, (sent, published)
    assert grown < 5.0, f"host memory grew {grown:.1f} MB while {published} frames were published"
    assert not errors, errors
    page.close()


def test_page_modules_are_served_locally_never_from_a_cdn(web):
    import urllib.request

    html = urllib.request.urlopen(f"http://127.0.0.1:{web.port}/", timeout=10).read().decode()
    assert "/vendor/three/build/three.module.js" in html and "https://" not in html
    js = urllib.request.urlopen(f"http://127.0.0.1:{web.port}/vendor/three/build/three.module.js", timeout=10)
    assert js.headers["Content-Type"] == "text/javascript"
    for bad in ("/vendor/../web.py", "/vendor/left-pad/index.js", "/etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{web.port}{bad}", timeout=10)
        assert err.value.code == 404


def test_renderer_cli_streams_a_recorded_sequence_to_the_page_and_reports_its_latency(browser, tmp_path):
    """The whole host: edge-like latent messages over ZeroMQ -> renderer.run --web -> the page -> summary."""
    import subprocess
    import sys

    import renderer_support as support

    root = Path(__file__).resolve().parents[1]
    bundle = support.make_bundle(tmp_path / "latentcast-bundle-test")

    port, web_port, summary_path = free_port(), free_port(), tmp_path / "summary.json"
    renderer = subprocess.Popen(
        [sys.executable, "-m", "renderer.run", "--endpoint", f"tcp://127.0.0.1:{port}", "--bundle", str(bundle),
         "--web", str(web_port), "--start-on-message", "--exit-after-silence", "1.5", "--duration", "60",
         "--summary", str(summary_path), "--out", str(tmp_path / "frames")],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    page = browser.new_page()
    try:
        deadline = time.monotonic() + 60
        while True:  # the renderer is starting
            try:
                page.goto(f"http://127.0.0.1:{web_port}/", timeout=5_000)
                break
            except Exception:
                if time.monotonic() > deadline or renderer.poll() is not None:
                    raise
                time.sleep(0.3)
        page.wait_for_function("window.__latentcast.vrm !== null && window.__latentcast.connected", timeout=60_000)
        code = ("import sys; sys.path.insert(0, 'tests'); import renderer_support as s; "
                f"s.publish_stream('tcp://127.0.0.1:{port}', {str(bundle)!r}, 200)")  # fmt: skip
        publisher = subprocess.Popen([sys.executable, "-c", code], cwd=root)
        page.wait_for_function("window.__latentcast.tracking === 'tracking'", timeout=30_000)
        shots = [_shot(page)]
        time.sleep(1.5)  # classes and head yaw move on in the recorded sequence
        shots.append(_shot(page))
        publisher.wait(timeout=60)
        page.wait_for_function("window.__latentcast.tracking === 'lost'", timeout=10_000)
        assert page.inner_text("#status") == "tracking lost"
        stdout, stderr = renderer.communicate(timeout=60)
    finally:
        if renderer.poll() is None:
            renderer.kill()
        page.close()
    assert renderer.returncode == 0, stderr
    assert f"open http://127.0.0.1:{web_port}/" in stdout
    background = np.array([240, 230, 223], np.float32)  # #dfe6f0 as BGR
    assert (np.abs(_avatar_area(shots[0]) - background).sum(axis=2) > 40).mean() > 0.05, "no avatar drawn"
    assert _diff(shots[0], shots[1]) > 1.0  # the avatar moved with the stream
    summary = json.loads(summary_path.read_text())
    web = summary["web"]
    assert web["published"] == summary["frames_rendered"], web  # every rendered frame was offered to the page
    assert web["clients"] >= 1 and web["sent"] >= 10, web  # (few on a loaded 2-core host: the latest only)
    browser_latency = summary["latency"]["capture_to_browser_frame"]
    assert browser_latency["count"] >= 5 and 0 < browser_latency["p50_ms"] < 2000, browser_latency
    # The page's figure includes the host's own capture -> render on top of the WebSocket hop.
    assert browser_latency["p50_ms"] >= 0.5 * summary["latency"]["capture_to_render"]["p50_ms"]
